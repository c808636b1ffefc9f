"""Core errors -> Alibaba errors.

The raiser may pick the code: `NotFound("no such job", code=BusinessCode.JOB_NOT_FOUND)`
or `code="iot.ota.JobNotFound"`. A code in the gateway table (for example
`Throttling.User`) gives a gateway error with that table's HTTP status. Without a
code, the class decides (see `DEFAULTS`).
"""

from __future__ import annotations

from otahub.aliyun.protocol.codes import BY_CODE, BusinessCode
from otahub.aliyun.protocol.errors import (
    GATEWAY_CODES,
    AliyunError,
    BusinessError,
    GatewayError,
    gateway,
)
from otahub.domain import errors as core

DEFAULTS: dict[type[core.OtahubError], BusinessCode | str] = {
    core.NotFound: BusinessCode.RESOURCE_NOT_FOUND,
    core.AlreadyExists: BusinessCode.RESOURCE_EXISTS,
    core.InvalidRequest: BusinessCode.ILLEGAL_REQUEST,
    core.LimitExceeded: BusinessCode.LIMIT_EXCEEDED,
    core.Conflict: BusinessCode.RESOURCE_IN_USE,
    core.VersionConflict: BusinessCode.CONCURRENT_MODIFICATION,
    core.InvalidStateTransition: BusinessCode.INVALID_STATUS,
    core.Throttled: "Throttling.User",
    core.Unauthorized: "Forbidden.RAM",
}


def _default_code(error: core.OtahubError) -> BusinessCode | str:
    for cls in type(error).__mro__:
        if cls in DEFAULTS:
            return DEFAULTS[cls]
    return BusinessCode.SYSTEM_EXCEPTION


def from_core(error: core.OtahubError) -> AliyunError:
    chosen = error.details.get("code")
    code: BusinessCode | str = (
        chosen if isinstance(chosen, BusinessCode | str) and chosen else _default_code(error)
    )
    if isinstance(code, str) and code in BY_CODE:
        code = BY_CODE[code]
    if isinstance(code, BusinessCode):
        return BusinessError(code.code, error.message or code.message)
    if code in GATEWAY_CODES:
        known = GATEWAY_CODES[code]
        # Throttling keeps Alibaba's exact text, which SDK users match on.
        message = known.message if code.startswith("Throttling") else error.message
        return GatewayError(code, message or known.message, known.http_status)
    return BusinessError(code, error.message)


def internal_error() -> GatewayError:
    """For an unexpected exception: HTTP 500 `InternalError`, no details leaked."""
    return gateway("InternalError")

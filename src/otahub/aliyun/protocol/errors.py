"""The two kinds of Alibaba RPC errors.

A *gateway* error is what Alibaba's API gateway answers before the service runs
(signature, missing parameter, throttling): a non-2xx status, and the SDK raises
`ServerException` from its `Code`/`Message`. A *business* error comes from the
service itself: HTTP 200 with `Success:false`, which the SDK does not raise.
"""

from __future__ import annotations

from dataclasses import dataclass


class AliyunError(Exception):
    """Base of both kinds; `code` and `message` go on the wire as they are."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class GatewayError(AliyunError):
    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(code, message)
        self.http_status = http_status


class BusinessError(AliyunError):
    """HTTP 200, `Success:false`. Codes are listed in `codes.py`."""


@dataclass(frozen=True)
class GatewayCode:
    code: str
    http_status: int
    message: str


# Messages follow Alibaba's common-error wording where it is known (specs §1.7).
MISSING_MESSAGE = "{param} is mandatory for this action."

GATEWAY_CODES: dict[str, GatewayCode] = {
    c.code: c
    for c in (
        GatewayCode("InvalidParameter", 400, "The specified parameter is not valid."),
        GatewayCode("InvalidParameter.Format", 400, "The specified parameter Format is not valid."),
        GatewayCode(
            "InvalidApi.NotFound",
            404,
            "Specified api is not found, please check your url and method.",
        ),
        GatewayCode("InvalidVersion", 400, "Specified parameter Version is not valid."),
        GatewayCode("InvalidAccessKeyId.NotFound", 404, "Specified access key is not found."),
        GatewayCode("InvalidAccessKeyId.Inactive", 400, "Specified access key is disabled."),
        GatewayCode(
            "IncompleteSignature",
            400,
            "The request signature does not conform to Aliyun standards.",
        ),
        GatewayCode(
            "SignatureDoesNotMatch",
            400,
            "Specified signature is not matched with our calculation.",
        ),
        GatewayCode("InvalidSignatureMethod", 400, "Specified signature method is not supported."),
        GatewayCode(
            "InvalidSignatureVersion", 400, "Specified signature version is not supported."
        ),
        GatewayCode(
            "InvalidTimeStamp.Format",
            400,
            "Specified time stamp or date value is not well formatted.",
        ),
        GatewayCode(
            "InvalidTimeStamp.Expired",
            400,
            "Specified time stamp or date value is expired.",
        ),
        GatewayCode("SignatureNonceUsed", 400, "Specified signature nonce was used already."),
        GatewayCode("UnsupportedHTTPMethod", 400, "This http method is not supported."),
        GatewayCode("Throttling.User", 400, "Request was denied due to user flow control."),
        GatewayCode("Throttling", 400, "Request was denied due to flow control."),
        GatewayCode(
            "Forbidden.RAM", 403, "User not authorized to operate on the specified resource."
        ),
        GatewayCode(
            "InternalError", 500, "The request processing has failed due to some unknown error."
        ),
        GatewayCode(
            "ServiceUnavailable",
            503,
            "The request has failed due to a temporary failure of the server.",
        ),
    )
}


def gateway(code: str, message: str | None = None) -> GatewayError:
    """A gateway error with the table's status and, unless given, its message."""
    known = GATEWAY_CODES.get(code)
    status = known.http_status if known else 400
    text = message if message is not None else (known.message if known else code)
    return GatewayError(code, text, status)


def missing(param: str) -> GatewayError:
    return GatewayError(f"Missing{param}", MISSING_MESSAGE.format(param=param), 400)


def invalid(param: str, reason: str) -> GatewayError:
    return GatewayError(
        "InvalidParameter",
        f'The specified parameter "{param}" is not valid: {reason}',
        400,
    )

"""AWS-shaped errors: the code botocore turns into `client.exceptions.<Code>`."""

from __future__ import annotations

import functools
from typing import Any

import botocore.model

from otahub.domain import errors as core


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int | None = None, **members: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.members = members


# Core errors by service. iot's ThrottlingException is 400 and LimitExceeded 410:
# the model says so and botocore reads the code, not the status.
_IOT = {
    core.NotFound: "ResourceNotFoundException",
    core.AlreadyExists: "ResourceAlreadyExistsException",
    core.InvalidRequest: "InvalidRequestException",
    core.LimitExceeded: "LimitExceededException",
    core.Throttled: "ThrottlingException",
    core.VersionConflict: "VersionConflictException",
    core.InvalidStateTransition: "InvalidStateTransitionException",
    core.Conflict: "DeleteConflictException",
    core.Unauthorized: "UnauthorizedException",
}
_JOBS_DATA = {
    **_IOT,
    core.VersionConflict: "InvalidStateTransitionException",  # the only modeled 409 there
    core.AlreadyExists: "InvalidRequestException",
    core.LimitExceeded: "InvalidRequestException",
    core.Conflict: "InvalidRequestException",
    core.Unauthorized: "CertificateValidationException",
}
_SIGNER = {
    core.NotFound: "ResourceNotFoundException",
    core.AlreadyExists: "ConflictException",
    core.InvalidRequest: "ValidationException",
    core.LimitExceeded: "ServiceLimitExceededException",
    core.Throttled: "TooManyRequestsException",
    core.VersionConflict: "ConflictException",
    core.InvalidStateTransition: "ValidationException",
    core.Conflict: "ConflictException",
    core.Unauthorized: "AccessDeniedException",
}
BY_SERVICE = {"iot": _IOT, "iot-jobs-data": _JOBS_DATA, "signer": _SIGNER}


def from_core(service: str, exc: core.OtahubError) -> AwsError:
    table = BY_SERVICE.get(service, _IOT)
    internal = _INTERNAL.get(service, _INTERNAL["iot"])[0]
    code = next((c for cls, c in table.items() if isinstance(exc, cls)), internal)
    members = {}
    if code == "ResourceAlreadyExistsException":
        for key in ("resource_id", "resource_arn"):
            if key in exc.details:
                members["resourceId" if key == "resource_id" else "resourceArn"] = exc.details[key]
    return AwsError(code, exc.message, **members)


# What a failure that no handler expected becomes, by service: the store being out
# of reach is "unavailable" (503, worth a retry), anything else an internal failure.
_INTERNAL = {
    "iot": ("InternalFailureException", "ServiceUnavailableException"),
    "iot-jobs-data": ("InternalServerException", "ServiceUnavailableException"),
    "signer": ("InternalServiceErrorException", "InternalServiceErrorException"),
}
_UNREACHABLE_TEXT = (
    "database is locked",
    "unable to open database",
    "could not connect",
    "connection refused",
    "connection is closed",
    "connection was closed",
    "the database system is",  # starting up / shutting down / in recovery
)


def store_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says the database cannot be reached now."""
    import sqlalchemy.exc

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError | sqlalchemy.exc.TimeoutError):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if (
            type(current).__module__.startswith("asyncpg")
            and "Connection" in type(current).__name__
        ):
            return True
        if any(text in str(current).lower() for text in _UNREACHABLE_TEXT):
            return True
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )
    return False


def unexpected(service: str, exc: BaseException) -> AwsError:
    internal, unavailable = _INTERNAL.get(service, _INTERNAL["iot"])
    if store_unreachable(exc):
        return AwsError(unavailable, "The service is temporarily unavailable; retry later.", 503)
    return AwsError(internal, "An unexpected error occurred; the request was not completed.", 500)


# Codes any operation may answer, declared or not: the wire app's own (authentication,
# routing, throttling, size) and the failures that are no fault of the request.
_UNDECLARED_OK = frozenset(
    {
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
        "UnknownOperationException",
        "NotImplementedException",
        *(code for pair in _INTERNAL.values() for code in pair),
    }
)
# What an operation answers for a request it refuses when it does not declare the
# service's own code for that: the first of these it declares.
_REFUSAL_FALLBACK = (
    "InvalidRequestException",
    "ValidationException",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "UnauthorizedException",
)


@functools.cache
def _declared(op: botocore.model.OperationModel) -> frozenset[str]:
    return frozenset(shape.name for shape in op.error_shapes)


def as_declared(op: botocore.model.OperationModel, err: AwsError) -> AwsError:
    """`err` in a code the operation's model declares: clients parse errors by the
    model, so a code it does not list becomes the nearest one it does."""
    codes = _declared(op)
    if err.code in codes or err.code in _UNDECLARED_OK:
        return err
    code = next((c for c in _REFUSAL_FALLBACK if c in codes), err.code)
    return AwsError(code, err.message, err.status if code == err.code else None, **err.members)

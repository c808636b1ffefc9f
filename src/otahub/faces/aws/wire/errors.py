"""AWS-shaped errors: the code botocore turns into `client.exceptions.<Code>`."""

from __future__ import annotations

from typing import Any

from otahub.core import errors as core


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

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
    code = next((c for cls, c in table.items() if isinstance(exc, cls)), "InternalFailureException")
    members = {}
    if code == "ResourceAlreadyExistsException":
        for key in ("resource_id", "resource_arn"):
            if key in exc.details:
                members["resourceId" if key == "resource_id" else "resourceArn"] = exc.details[key]
    return AwsError(code, exc.message, **members)

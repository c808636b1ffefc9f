"""The errors of the core. Faces map each one to their protocol's error shape."""

from __future__ import annotations

from typing import Any


class OtahubError(Exception):
    """Base of every domain error; `message` is safe to show to the caller."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(OtahubError):
    """The addressed resource does not exist (in this tenant)."""


class AlreadyExists(OtahubError):
    """A resource with that identity exists with a different configuration."""


class InvalidRequest(OtahubError):
    """The request breaks a domain rule (bad value, bad combination)."""


class LimitExceeded(OtahubError):
    """A quota or size limit would be exceeded."""


class Throttled(OtahubError):
    """The caller exceeded its request rate."""


class Conflict(OtahubError):
    """The resource is in use and cannot be changed or deleted now."""


class Unauthorized(OtahubError):
    """The caller is not who it claims to be or may not do this."""


class VersionConflict(OtahubError):
    """An expected version did not match; `details['current']` holds the current state."""


class InvalidStateTransition(OtahubError):
    """The state machine forbids this change; `details['current']` holds the current state."""

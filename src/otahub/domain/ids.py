"""Identifiers otahub mints."""

from __future__ import annotations

import secrets
import string
import uuid

_ALNUM = string.ascii_letters + string.digits


def new_uuid() -> str:
    return str(uuid.uuid4())


def opaque_id(length: int = 26) -> str:
    """An opaque id in the style of Alibaba's FirmwareId / JobId / TaskId."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def secret_key(length: int = 40) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))

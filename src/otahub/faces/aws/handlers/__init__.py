"""One handler per AWS operation, registered by (service, operation name)."""

from __future__ import annotations

from collections.abc import Callable

from otahub.faces.aws.wire.app import Handler

HANDLERS: dict[tuple[str, str], Handler] = {}


def handles(service: str, operation: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[(service, operation)] = fn
        return fn

    return register


def all_handlers() -> dict[tuple[str, str], Handler]:
    from otahub.faces.aws.handlers import (  # noqa: F401
        certificates,
        endpoint,
        jobs,
        jobs_data,
        ota,
        signer,
        streams,
        tags,
        things,
    )

    return HANDLERS

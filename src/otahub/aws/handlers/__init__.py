"""One handler per AWS operation, registered by (service, operation name)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from otahub.aws.wire.app import AwsContext, Handler
from otahub.aws.wire.errors import as_declared, from_core
from otahub.aws.wire.model import service_model
from otahub.domain.errors import OtahubError

HANDLERS: dict[tuple[str, str], Handler] = {}


def handles(service: str, operation: str) -> Callable[[Handler], Handler]:
    """Register `fn` as the operation's handler. What it registers answers a core
    error in a code the operation's model declares; `fn` itself is returned as it is,
    for the handlers that call one another."""

    def register(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def answer(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any] | None:
            try:
                return await fn(ctx, p)
            except OtahubError as exc:
                op = service_model(service).operation_model(operation)
                raise as_declared(op, from_core(service, exc)) from exc

        HANDLERS[(service, operation)] = answer
        return fn

    return register


def all_handlers() -> dict[tuple[str, str], Handler]:
    from otahub.aws.handlers import (  # noqa: F401
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

"""One handler per Alibaba RPC action, registered by action name."""

from __future__ import annotations

from collections.abc import Callable

from otahub.aliyun.app import Handler

HANDLERS: dict[str, Handler] = {}


def handles(action: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[action] = fn
        return fn

    return register


def all_handlers() -> dict[str, Handler]:
    from otahub.aliyun.handlers import (  # noqa: F401
        applications,
        devices,
        firmware,
        groups,
        jobs,
        modules,
        products,
        tasks,
        upload,
    )

    return HANDLERS

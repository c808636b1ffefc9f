"""Blocking calls run in the loop's executor, cancellation-safe."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in the default executor.

    If the caller is cancelled, wait for the worker before re-raising: the
    worker may still be using a file or an upload that the caller's cleanup is
    about to close or abort.
    """
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        raise

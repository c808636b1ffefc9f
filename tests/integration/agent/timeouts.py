"""Time out a fleet's hung devices by moving the server's clock, not by waiting.

The shortest job timeout is a minute. The server under test runs with a movable
clock (ServerProcess(movable_clock=True)); once every device that finishes has
finished and the server has recorded them, and the hung ones IN_PROGRESS, the clock
jumps past the timeout and the engine's next tick times the hung ones out. Moving
it earlier would time out devices still updating, or count a late first report
from the jumped time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from otahub.agent.fleet import Fleet
from tests.integration.server import ServerProcess


async def time_out_the_hung(
    server: ServerProcess,
    fleet: Fleet,
    server_counts: Callable[[str], Awaitable[dict[str, int]]],
    *,
    done: dict[str, int],
    hung: int,
    timeout_minutes: int,
) -> None:
    """Run beside the fleet; returns once the clock has moved."""
    while True:
        await asyncio.sleep(0.2)
        job_id = fleet.job_id
        devices_done = all(fleet.counts[s] == n for s, n in done.items())
        if job_id is None or not devices_done or fleet.counts["HUNG"] != hung:
            continue
        if await server_counts(job_id) == {**done, "IN_PROGRESS": hung}:
            break
    server.advance_clock(timeout_minutes * 60 + 1)

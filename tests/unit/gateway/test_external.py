"""The external broker's workers: a message that fails, or that the bridge refuses,
never stops the worker that the other devices mapped to it depend on."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import aiomqtt
import pytest

from otahub.core.services import JobSpec, Services
from otahub.gateway.external import ExternalBroker
from otahub.gateway.messages import Outgoing
from otahub.runtime import device_bridge


class Recorder:
    """Stands for the bridge: fails on one topic, records the others."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def on_message(
        self, device: Any, topic: str, payload: bytes, qos: int = 1
    ) -> list[Outgoing]:
        if topic == "boom":
            raise RecursionError("a bug deep in a decoder")
        self.seen.append((topic, payload))
        return []


def message(topic: str, payload: Any) -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, qos=1, retain=False, mid=1, properties=None)


async def drain(broker: ExternalBroker, messages: list[aiomqtt.Message]) -> None:
    queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)
    worker = asyncio.create_task(broker._work(queue))
    try:
        async with asyncio.timeout(30):
            await queue.join()
    finally:
        worker.cancel()


async def test_a_failing_message_does_not_stop_the_worker() -> None:
    bridge = Recorder()
    broker = ExternalBroker("mqtt://127.0.0.1:1", bridge, client_id="t")  # type: ignore[arg-type]
    await drain(broker, [message("boom", b"x"), message("a", bytearray(b"1")), message("b", None)])
    assert bridge.seen == [("a", b"1"), ("b", b"")]


async def test_hostile_payloads_through_the_worker_are_answered_and_logged_once(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """The real bridge behind the worker: deep JSON and 2**64 from a thing are
    refused (no traceback), and its next request is answered."""
    caplog.set_level(logging.INFO)
    tenant = await services.accounts.tenant("1")
    thing = await services.registry.create_device(tenant.id, "t1")
    await services.jobs.create_job(
        tenant.id, JobSpec(ref="j1", kind="job", device_ids=[thing.id], document="{}")
    )

    async def no_blobs(key: str, start: int, length: int) -> bytes:
        return b""

    bridge = device_bridge(services, services.ctx.clock, no_blobs, default_tenant=tenant.id)
    broker = ExternalBroker("mqtt://127.0.0.1:1", bridge, client_id="t")
    sent: list[Outgoing] = []

    async def publish_all(answers: list[Outgoing]) -> list[BaseException]:
        sent.extend(answers)
        return []

    broker.publish_all = publish_all  # type: ignore[method-assign,assignment]
    base = "$aws/things/t1/jobs/"
    hostile = [
        message(base + "j1/update", b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        message(base + "j1/update", b'{"status":"FAILED","executionNumber":' + b"9" * 20 + b"}"),
        message("$aws/things/t\x00/jobs/get", b"{}"),
        message(base + "get", b'{"clientToken":"ok"}'),
    ]
    await drain(broker, hostile)
    assert [o.topic for o in sent] == [
        base + "j1/update/rejected",
        base + "j1/update/rejected",
        base + "get/accepted",
    ]
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


class InstantStop(asyncio.Event):
    """A stop whose wait does not hold the reconnection back (no wall-clock wait)."""

    async def wait(self) -> Literal[True]:
        return True


async def test_a_session_that_fails_with_a_bug_is_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = ExternalBroker("mqtt://127.0.0.1:1", Recorder(), client_id="t")  # type: ignore[arg-type]
    stop = InstantStop()
    sessions: list[int] = []

    async def session(stop_event: asyncio.Event) -> None:
        sessions.append(1)
        if len(sessions) == 1:
            raise KeyError("a bug")
        stop_event.set()

    broker._session = session  # type: ignore[method-assign]
    await broker.run(stop)
    assert len(sessions) == 2
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [
        "broker session failed; reconnecting"
    ]

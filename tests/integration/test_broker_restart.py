"""Mosquitto is stopped and started again in the middle of a rollout to 200 devices:
every device finishes, no status update and no notification is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from otahub.core.engine import Engine
from otahub.core.outbox import OutboxPublisher
from otahub.core.services import JobSpec, Services
from otahub.domain.clock import FakeClock
from otahub.domain.policies import JobPolicies, RolloutPolicy
from otahub.domain.states import ExecutionStatus
from otahub.gateway.external import ExternalBroker
from otahub.runtime import device_bridge

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]
DEVICES = 200


class PrivateMosquitto:
    """A Mosquitto of the test's own, with persistent sessions, that can be restarted."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n"
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
            "max_queued_messages 100000\nmax_keepalive 10\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    if shutil.which("mosquitto") is None:
        pytest.skip("no mosquitto binary")
    m = PrivateMosquitto(tmp_path)
    m.start()
    yield m
    m.stop()


class Fleet:
    """What the simulated devices saw: who subscribed, who was notified."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.subscribed: set[str] = set()
        self.all_subscribed = asyncio.Event()
        self.notified: set[str] = set()

    def joined(self, name: str) -> None:
        self.subscribed.add(name)
        if len(self.subscribed) == self.size:
            self.all_subscribed.set()


async def device(name: str, port: int, fleet: Fleet, stop: asyncio.Event) -> None:
    """A device that reports SUCCEEDED for every job it is told about, reconnecting
    (with its persistent session) whenever the broker goes away."""
    base = f"$aws/things/{name}/jobs"
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier=name, clean_session=False, keepalive=5
            ) as c:
                await c.subscribe(f"{base}/notify-next", qos=1)
                await c.subscribe(f"{base}/+/update/accepted", qos=1)
                await c.publish(f"{base}/$next/get", b"{}", qos=1)  # catch up after reconnect
                await c.subscribe(f"{base}/$next/get/accepted", qos=1)
                fleet.joined(name)
                async for message in c.messages:
                    body = json.loads(message.payload) if isinstance(message.payload, bytes) else {}
                    ex = body.get("execution")
                    if ex and str(message.topic).endswith("/notify-next"):
                        fleet.notified.add(name)
                    if ex and ex.get("status") == "QUEUED":
                        await c.publish(
                            f"{base}/{ex['jobId']}/update",
                            json.dumps({"status": "SUCCEEDED"}),
                            qos=1,
                        )
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)


async def test_rollout_survives_a_broker_restart(
    services: Services, clock: FakeClock, broker: PrivateMosquitto
) -> None:
    tenant = await services.accounts.tenant("333333333333")
    tag = uuid.uuid4().hex[:6]
    names = [f"r{tag}-{i}" for i in range(DEVICES)]
    await services.registry.create_devices_bulk(tenant.id, names)
    await services.registry.create_group(tenant.id, "fleet")
    await services.registry.add_group_members_from_query(tenant.id, "fleet")
    group = await services.registry.get_group(tenant.id, "fleet")
    job = await services.jobs.create_job(
        tenant.id,
        JobSpec(
            ref="restart",
            kind="job",
            group_ids=[group.id],
            document="{}",
            policies=JobPolicies(RolloutPolicy(max_per_minute=50)),
        ),
    )
    bridge = device_bridge(
        services,
        clock,
        lambda *a: asyncio.sleep(0, b""),  # type: ignore[arg-type]
        default_tenant=tenant.id,
    )
    ext = ExternalBroker(f"mqtt://127.0.0.1:{broker.port}", bridge, client_id=f"otahub-{tag}")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(ext.run(stop))]
    publisher = OutboxPublisher(services.ctx.db, clock, ext.sink)
    tasks.append(asyncio.create_task(publisher.run(stop, interval=0.1, ready=ext.is_connected)))
    fleet = Fleet(DEVICES)
    tasks += [asyncio.create_task(device(n, broker.port, fleet, stop)) for n in names]
    engine = Engine(services.ctx.db, clock)
    try:
        await asyncio.wait_for(ext.connected.wait(), 10)
        # Sessions start clean: a device must be subscribed before its first release.
        await asyncio.wait_for(fleet.all_subscribed.wait(), 60)
        for minute in range(DEVICES // 50):
            await engine.tick()
            if minute == 1:
                await asyncio.sleep(0.5)
                broker.stop()  # mid-rollout: some of this minute's work is in flight
                await asyncio.sleep(1)
                broker.start()
            clock.advance(60)
            await asyncio.sleep(1)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            counts = await services.jobs.counts(job.id)
            if counts.get(ExecutionStatus.SUCCEEDED) == DEVICES:
                break
            await asyncio.sleep(0.5)
        assert await services.jobs.counts(job.id) == {ExecutionStatus.SUCCEEDED: DEVICES}
        # Every release reached its device as a notify-next from the outbox, even those
        # drained while the broker was down (a response to a request published in
        # that second may be lost; the device's next request gets a fresh one).
        assert len(fleet.notified) == DEVICES
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

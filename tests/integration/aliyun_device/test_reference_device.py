"""otahub's reference Alibaba device (paho-mqtt 2 through aiomqtt) against
`otahub serve` and its embedded broker: NeedConfirm, NeedPush=false with
firmware/get, MQTT download frames, SHA256, and a failed self-test that the job's
retry policy takes again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from otahub.agent.aliyun import (
    AliyunAgent,
    AliyunAgentConfig,
    identity_from,
    mqtt_client,
    run_device,
)
from tests.integration.aliyun_device.control import AliyunControl
from tests.integration.server import ServerProcess

IMAGE = os.urandom(60_000)


@contextlib.asynccontextmanager
async def agent(
    server: ServerProcess,
    control: AliyunControl,
    tmp_path: Path,
    pk: str,
    dn: str,
    *,
    port: int | None = None,
    **cfg: Any,
) -> AsyncIterator[AliyunAgent]:
    secret = await control.device(pk, dn)
    async with (
        httpx.AsyncClient() as http,
        mqtt_client(pk, dn, secret, "127.0.0.1", port or server.mqtt_port) as client,
    ):
        device = AliyunAgent(
            client, AliyunAgentConfig(pk, dn, tmp_path / dn, timeout=5, **cfg), http
        )
        await device.start()
        try:
            yield device
        finally:
            await device.stop()


async def test_need_confirm_waits_then_takes_the_push(
    server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    async with agent(server, control, tmp_path, pk, "ref-confirm") as device:
        await device.report_version()
        fw = await control.firmware(pk, IMAGE, "2.0.0")
        job = await control.job(pk, fw, ["ref-confirm"], need_confirm=True)
        await control.wait_task(job, pk, "ref-confirm", "CONFIRM")
        assert await device.ask() is None
        try:
            await device.next_push(2)
            raise AssertionError("pushed before confirmation")
        except TimeoutError:
            pass
        assert await control.confirm(job) == 1
        offer = await device.next_push(20)
        outcome = await device.apply(offer)
        assert outcome.succeeded and device.version == "2.0.0"
        await control.wait_task(job, pk, "ref-confirm", "SUCCEEDED")


async def test_need_push_false_device_asks_and_downloads_over_mqtt(
    server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    async with agent(server, control, tmp_path, pk, "ref-pull", module="MCU") as device:
        await device.report_version()
        fw = await control.firmware(pk, IMAGE, "3.1.0", module="MCU", sign_method="SHA256")
        job = await control.job(pk, fw, ["ref-pull"], need_push=False, download_protocol="MQTT")
        await control.wait_task(job, pk, "ref-pull", "QUEUED")
        offer = await device.ask()
        assert offer is not None and offer.stream_id is not None and offer.url is None
        assert (offer.version, offer.module, offer.sign_method) == ("3.1.0", "MCU", "SHA256")
        await control.wait_task(job, pk, "ref-pull", "NOTIFIED")
        outcome = await device.apply(offer)
        assert outcome.succeeded, outcome
        assert device.slots.image(device.slots.state().active).read_bytes() == IMAGE
        await control.wait_task(job, pk, "ref-pull", "SUCCEEDED")
        assert (await control.modules(pk, "ref-pull"))["MCU"] == "3.1.0"


async def test_failed_self_test_is_reported_and_retried(
    server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    tries: list[Path] = []

    def self_test(image: Path) -> bool:
        tries.append(image)
        return len(tries) > 1  # the first boot fails

    async with agent(
        server,
        control,
        tmp_path,
        pk,
        "ref-retry",
        self_test=self_test,
        interrupt_http_after=20_000,
    ) as device:
        await device.report_version()
        fw = await control.firmware(pk, IMAGE, "2.1.0")
        # Ten minutes between tries: the FAILED task stays to be seen until the
        # server's clock is moved past them (at 0 the engine's next tick retries it).
        job = await control.job(pk, fw, ["ref-retry"], retry_count=1, retry_interval=10)
        first = await device.apply(await device.next_push(20))
        assert (first.step, device.version) == (-4, "1.0.0")  # rolled back
        failed = await control.wait_task(job, pk, "ref-retry", "FAILED")
        assert failed["TaskDesc"] == "self-test failed; rolled back"  # the device's desc
        kept = await control.execution(job, pk, "ref-retry")
        assert kept.reason == "flashing failed: self-test failed; rolled back"
        server.advance_clock(10 * 60)
        second = await device.apply(await device.next_push(20))
        assert second.succeeded and device.version == "2.1.0"
        await control.wait_task(job, pk, "ref-retry", "SUCCEEDED")
        assert (await control.execution(job, pk, "ref-retry")).execution_number == 2


async def test_run_loop_takes_a_push(
    server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    async with agent(server, control, tmp_path, pk, "ref-run") as device:
        stop = asyncio.Event()
        running = asyncio.create_task(device.run(stop))
        fw = await control.firmware(pk, IMAGE, "4.0.0")
        job = await control.job(pk, fw, ["ref-run"])
        await control.wait_task(job, pk, "ref-run", "SUCCEEDED")
        stop.set()
        [outcome] = await asyncio.wait_for(running, 10)
        assert outcome.succeeded and outcome.version == "4.0.0"


async def test_run_device_as_the_device_command_runs_it(
    server: ServerProcess,
    control: AliyunControl,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`otahub device run --dialect aliyun --thing PK/DN --once` calls run_device."""
    pk = await control.product()
    secret = await control.device(pk, "ref-cmd")
    fw = await control.firmware(pk, IMAGE, "5.0.0")
    job = await control.job(pk, fw, ["ref-cmd"])  # the device is offline: pushed on connect
    monkeypatch.setenv("OTAHUB_DEVICE_SECRET", secret)
    options = SimpleNamespace(
        thing=f"{pk}/ref-cmd",
        broker=f"mqtt://127.0.0.1:{server.mqtt_port}",
        slot_dir=tmp_path / "cmd",
        fail_self_test=False,
        once=True,
        wait=30.0,
    )
    await asyncio.to_thread(run_device, options)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["succeeded"] and printed["version"] == "5.0.0"
    await control.wait_task(job, pk, "ref-cmd", "SUCCEEDED")
    monkeypatch.delenv("OTAHUB_DEVICE_SECRET")
    with pytest.raises(ValueError):
        identity_from(SimpleNamespace(thing="no-slash"))

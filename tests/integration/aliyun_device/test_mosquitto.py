"""The same device side through the real Mosquitto (`--broker-url`): otahub reads
the Alibaba topics with a shared subscription and publishes the pushes; a device
counts as online once it has said something."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from otahub.agent.aliyun import AliyunAgent, AliyunAgentConfig, mqtt_client
from otahub.core.states import ExecutionStatus
from tests.integration.aliyun_device.conftest import LinkkitDevice, open_control
from tests.integration.aliyun_device.control import AliyunControl
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.mosquitto
S = ExecutionStatus
IMAGE = os.urandom(80_000)


@pytest.fixture
async def control(mosquitto_server: ServerProcess) -> AsyncIterator[AliyunControl]:
    c = await open_control(mosquitto_server)
    yield c
    await c.close()


async def test_linkkit_device_through_mosquitto(
    mosquitto_server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    secret = await control.device(pk, "lk-mosq")
    device = LinkkitDevice("127.0.0.1", "1883", pk, "lk-mosq", secret, "1.0.0", str(tmp_path))
    try:
        assert (await device.expect("connected"))["rc"] == 0
        await control.wait_online(pk, "lk-mosq")
        fw = await control.firmware(pk, IMAGE, "2.0.0", sign_method="SHA256")
        job = await control.job(pk, fw, ["lk-mosq"], tags={"via": "mosquitto"})
        ota = await device.expect("ota")
        assert ota["sign_method"] == "SHA256" and ota["sign"] == hashlib.sha256(IMAGE).hexdigest()
        assert ota["url"].startswith(mosquitto_server.url + "/dl/")
        await device.expect("reported")
        await control.wait_task(job, pk, "lk-mosq", S.SUCCEEDED)
    finally:
        device.stop()


async def test_reference_device_mqtt_download_through_mosquitto(
    mosquitto_server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    secret = await control.device(pk, "ref-mosq")
    async with (
        httpx.AsyncClient() as http,
        mqtt_client(pk, "ref-mosq", secret, "127.0.0.1", 1883) as client,
    ):
        device = AliyunAgent(client, AliyunAgentConfig(pk, "ref-mosq", tmp_path, timeout=10), http)
        await device.start()
        try:
            await device.report_version()
            await control.wait_online(pk, "ref-mosq")
            fw = await control.firmware(pk, IMAGE, "2.2.0")
            job = await control.job(pk, fw, ["ref-mosq"], download_protocol="MQTT")
            offer = await device.next_push(20)
            assert offer.stream_id is not None
            outcome = await device.apply(offer)
            assert outcome.succeeded, outcome
            await control.wait_task(job, pk, "ref-mosq", S.SUCCEEDED)
        finally:
            await device.stop()

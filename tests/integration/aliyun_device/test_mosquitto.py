"""The same device side through the real Mosquitto (`--broker-url`): otahub reads
the Alibaba topics with a shared subscription and publishes the pushes; a device
counts as online once it has said something."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from otahub.agent.aliyun import AliyunAgent, AliyunAgentConfig, linkkit_login, mqtt_client
from tests.integration.aliyun.conftest import upload
from tests.integration.aliyun_device.conftest import LinkkitDevice, open_control
from tests.integration.aliyun_device.control import AliyunControl
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.mosquitto
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
        await control.wait_task(job, pk, "lk-mosq", "SUCCEEDED")
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
            await control.wait_task(job, pk, "ref-mosq", "SUCCEEDED")
        finally:
            await device.stop()


async def test_broker_events_set_presence_and_release_pushes(
    mosquitto_server: ServerProcess, control: AliyunControl
) -> None:
    """EMQX's webhook (`POST /mqtt/events`) tells otahub who connected and left: a
    device with a queued task is pushed once it connects, and marked offline when it
    leaves, which Mosquitto alone never tells."""
    pk = await control.product()
    secret = await control.device(pk, "hook-dev")
    client_id, user, _ = linkkit_login(pk, "hook-dev", secret)
    fw = await control.firmware(pk, IMAGE, "2.0.0")
    job = await control.job(pk, fw, ["hook-dev"])
    await control.wait_task(job, pk, "hook-dev", "QUEUED")

    async def status() -> str:
        found = await control.call("GetDeviceStatus", ProductKey=pk, DeviceName="hook-dev")
        state: str = found["Data"]["Status"]
        return state

    assert await status() == "UNACTIVE"
    now = int(time.time() * 1000)
    login = {"clientid": client_id, "username": user}
    async with httpx.AsyncClient(base_url=mosquitto_server.url) as http:

        async def event(name: str, **fields: object) -> str:
            answer = await http.post("/mqtt/events", json={"event": name, **login, **fields})
            assert answer.status_code == 200, answer.text
            result: str = answer.json()["result"]
            return result

        assert await event("client.connected", connected_at=now) == "ok"
        assert await status() == "ONLINE"
        # The engine pushes to online devices: the queued task goes out.
        await control.wait_task(job, pk, "hook-dev", "NOTIFIED")
        # A disconnect older than the last connect arrived late: ignored.
        assert await event("client.disconnected", disconnected_at=now - 5000) == "ignored"
        assert await status() == "ONLINE"
        assert await event("client.disconnected", disconnected_at=now + 1000) == "ok"
        assert await status() == "OFFLINE"
        # Without a time (an older EMQX), the event counts as it arrives.
        assert await event("client.connected") == "ok"
        assert await status() == "ONLINE"

        # What is not a device's presence is ignored, and answered 200.
        assert await event("message.publish") == "ignored"
        other = {"clientid": "stranger", "username": "nobody"}
        stranger = await http.post("/mqtt/events", json={"event": "client.connected", **other})
        assert stranger.json()["result"] == "ignored"
        service = {"clientid": "otahub-x", "username": "otahub"}
        own = await http.post("/mqtt/events", json={"event": "client.connected", **service})
        assert own.json()["result"] == "ignored"
        bad = await http.post("/mqtt/events", content=b"not json")
        assert bad.status_code == 400


async def test_device_of_an_instance_through_mosquitto(
    mosquitto_server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    """otahub finds the device a Mosquitto topic names in any instance of the account."""
    inst = {"IotInstanceId": "iot-mosq-instance"}
    pk = (await control.call("CreateProduct", ProductName="p_inst", NodeType=0, **inst))[
        "ProductKey"
    ]
    found = await control.call("RegisterDevice", ProductKey=pk, DeviceName="lk-inst", **inst)
    secret = found["Data"]["DeviceSecret"]
    url = await asyncio.to_thread(upload, control.client, IMAGE)
    fw = (
        await control.call(
            "CreateOTAFirmware",
            ProductKey=pk,
            FirmwareName="fw-inst",
            DestVersion="2.0.0",
            FirmwareUrl=url,
            NeedToVerify=False,
            **inst,
        )
    )["Data"]["FirmwareId"]
    device = LinkkitDevice("127.0.0.1", "1883", pk, "lk-inst", secret, "1.0.0", str(tmp_path))
    try:
        assert (await device.expect("connected"))["rc"] == 0

        async def online() -> bool:
            got = await control.call("GetDeviceStatus", ProductKey=pk, DeviceName="lk-inst", **inst)
            return bool(got["Data"]["Status"] == "ONLINE")

        deadline = time.monotonic() + 20
        while not await online():  # its version report, read through Mosquitto
            assert time.monotonic() < deadline, "the instance's device never came online"
            await asyncio.sleep(0.2)
        job = (
            await control.call(
                "CreateOTAStaticUpgradeJob",
                FirmwareId=fw,
                ProductKey=pk,
                TargetSelection="SPECIFIC",
                TargetDeviceNames=["lk-inst"],
                **inst,
            )
        )["Data"]["JobId"]
        ota = await device.expect("ota")
        assert ota["version"] == "2.0.0" and ota["sign"] == hashlib.md5(IMAGE).hexdigest()
        await device.expect("reported")
        deadline = time.monotonic() + 30
        while True:
            listed = await control.call("ListOTATaskByJob", JobId=job, **inst)
            [task] = listed["Data"]["SimpleOTATaskInfo"]
            if task["TaskStatus"] == "SUCCEEDED":
                break
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.2)
    finally:
        device.stop()

"""The SDK's control plane and a device together: a verify job created with
aliyun-python-sdk-iot reaches otahub's reference Alibaba device over the embedded
broker, the device updates, the firmware is verified and a batch job is allowed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx
from aliyunsdkcore.client import AcsClient

from otahub.agent import aliyun as agent_module
from tests.integration.aliyun.conftest import ok, product, refused, tasks, unique, upload
from tests.integration.server import ServerProcess


async def _wait(predicate: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(predicate):
            return True
        await asyncio.sleep(0.2)
    return False


async def test_sdk_verify_job_updates_a_device(
    client: AcsClient, server: ServerProcess, tmp_path: Path
) -> None:
    pk = product(client)
    dn = unique("e2e-")
    secret = ok(client, "RegisterDevice", ProductKey=pk, DeviceName=dn)["Data"]["DeviceSecret"]
    image = os.urandom(40_000)
    fid = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="2.0.0",
        FirmwareUrl=upload(client, image),
        FirmwareSign=hashlib.md5(image).hexdigest(),
    )["Data"]["FirmwareId"]

    config = agent_module.AliyunAgentConfig(pk, dn, tmp_path / dn, timeout=5)
    async with (
        httpx.AsyncClient() as http,
        agent_module.mqtt_client(pk, dn, secret, "127.0.0.1", server.mqtt_port) as mqtt,
    ):
        device = agent_module.AliyunAgent(mqtt, config, http)
        await device.start()
        try:
            await device.report_version()
            job = ok(
                client,
                "CreateOTAVerifyJob",
                FirmwareId=fid,
                ProductKey=pk,
                TargetDeviceNames=[dn],
                Tags=[{"Key": "wave", "Value": "1"}],
            )["Data"]["JobId"]
            offer = await device.next_push(20)
            assert offer.version == "2.0.0" and offer.ext.get("wave") == "1"
            outcome = await device.apply(offer)
            assert outcome.succeeded
        finally:
            await device.stop()

    assert await _wait(lambda: tasks(client, job)[0]["TaskStatus"] == "SUCCEEDED")
    assert await _wait(
        lambda: ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]["Status"] == 1
    )
    detail = ok(client, "QueryDeviceDetail", ProductKey=pk, DeviceName=dn)["Data"]
    assert detail["FirmwareVersion"] == "2.0.0"
    # Verified: a batch job is allowed, and skips the device already on 2.0.0.
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.NoDeviceMatched",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="ALL",
    )
    other = unique("e2e-")
    ok(client, "RegisterDevice", ProductKey=pk, DeviceName=other)
    batch = ok(
        client,
        "CreateOTAStaticUpgradeJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="ALL",
        NeedPush=False,
    )["Data"]["JobId"]
    assert await _wait(lambda: [t["DeviceName"] for t in tasks(client, batch)] == [other])

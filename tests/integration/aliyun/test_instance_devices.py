"""Devices of a non-default instance (IotInstanceId) log in over MQTT: a device names
its product key and no instance, and otahub finds it in any instance of the account."""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
from aliyunsdkcore.client import AcsClient

from otahub.agent.aliyun import linkkit_login
from tests.integration.aliyun.conftest import call, ok, refused, tasks, unique, upload, wait_for
from tests.integration.aliyun_device.conftest import LinkkitDevice
from tests.integration.server import ServerProcess

IMAGE = os.urandom(50_000)


async def test_device_of_an_instance_logs_in_and_takes_a_push(
    client: AcsClient, server: ServerProcess, tmp_path: Path
) -> None:
    instance = unique("iot-inst-")
    inst: dict[str, Any] = {"IotInstanceId": instance}
    pk = ok(client, "CreateProduct", ProductName=unique("prod_"), NodeType=0, **inst)["ProductKey"]
    dn = unique("inst-dev-")
    secret = ok(client, "RegisterDevice", ProductKey=pk, DeviceName=dn, **inst)["Data"][
        "DeviceSecret"
    ]
    # The device lives in its instance only.
    assert call(client, "QueryDeviceDetail", ProductKey=pk, DeviceName=dn)["Success"] is False

    # The broker hooks (EMQX) take the same login.
    client_id, user, password = linkkit_login(pk, dn, secret)
    login = {"clientid": client_id, "username": user}
    async with httpx.AsyncClient(base_url=server.url) as http:
        auth = await http.post("/mqtt/auth", json={**login, "password": password})
        assert auth.json()["result"] == "allow"
        topic = f"/ota/device/upgrade/{pk}/{dn}"
        acl = await http.post("/mqtt/acl", json={**login, "topic": topic, "action": "subscribe"})
        assert acl.json()["result"] == "allow"

    fid = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="3.0.0",
        FirmwareUrl=upload(client, IMAGE, IotInstanceId=instance),
        NeedToVerify=False,
        **inst,
    )["Data"]["FirmwareId"]
    device = LinkkitDevice(
        "127.0.0.1", str(server.mqtt_port), pk, dn, secret, "1.0.0", str(tmp_path)
    )
    try:
        assert (await device.expect("connected"))["rc"] == 0
        assert wait_for(
            lambda: (
                ok(client, "GetDeviceStatus", ProductKey=pk, DeviceName=dn, **inst)["Data"][
                    "Status"
                ]
                == "ONLINE"
            )
        )
        job = ok(
            client,
            "CreateOTAStaticUpgradeJob",
            FirmwareId=fid,
            ProductKey=pk,
            TargetSelection="SPECIFIC",
            TargetDeviceNames=[dn],
            Tags=[{"Key": "instance", "Value": instance}],
            **inst,
        )["Data"]["JobId"]
        ota = await device.expect("ota")
        assert ota["version"] == "3.0.0" and ota["sign"] == hashlib.md5(IMAGE).hexdigest()
        assert ast.literal_eval(ota["extra"]) == {"instance": instance}
        assert (await device.expect("downloaded"))["rc"].endswith("SUCCESS")
        await device.expect("reported")
        assert wait_for(lambda: tasks(client, job, **inst)[0]["TaskStatus"] == "SUCCEEDED"), tasks(
            client, job, **inst
        )
        detail = ok(client, "QueryDeviceDetail", ProductKey=pk, DeviceName=dn, **inst)["Data"]
        assert detail["FirmwareVersion"] == "3.0.0"
    finally:
        device.stop()
    # Another instance's job is not visible from the default one.
    refused(client, "QueryOTAJob", "iot.ota.JobNotFound", JobId=job)

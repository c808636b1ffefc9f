"""Real aliyun-iot-linkkit 1.2.13 devices, unchanged, against `otahub serve` and its
embedded broker, set up with aliyun-python-sdk-iot: device-secret login (plain TCP
and TLS with otahub's CA), version report, the push with the batch tags in extData,
HTTP download with the digest check, progress, the new version; the verify job's
firmware becomes verified."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import os
from pathlib import Path

import httpx

from tests.integration.aliyun_device.conftest import LinkkitDevice
from tests.integration.aliyun_device.control import VERIFIED, AliyunControl
from tests.integration.server import ServerProcess, engine_ticks

IMAGE = os.urandom(150_000)


async def test_verify_job_with_linkkit_devices(
    server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    secrets = {dn: await control.device(pk, dn) for dn in ("lk-plain", "lk-tls")}
    ca = tmp_path / "ca.pem"
    async with httpx.AsyncClient() as http:
        ca.write_text((await http.get(f"{server.url}/ca.pem")).text)
    plain = LinkkitDevice(
        "127.0.0.1",
        str(server.mqtt_port),
        pk,
        "lk-plain",
        secrets["lk-plain"],
        "1.0.0",
        str(tmp_path),
    )
    tls = LinkkitDevice(
        "127.0.0.1",
        str(server.mqtts_port),
        pk,
        "lk-tls",
        secrets["lk-tls"],
        "1.0.0",
        str(tmp_path),
        str(ca),
    )
    try:
        for device in (plain, tls):
            assert (await device.expect("connected"))["rc"] == 0
        fw = await control.firmware(pk, IMAGE, "2.0.0", verify=True, udi="udi-42")
        job = await control.job(
            pk, fw, ["lk-plain", "lk-tls"], verify=True, tags={"env": "test", "batch": "7"}
        )
        for dn, device in (("lk-plain", plain), ("lk-tls", tls)):
            ota = await device.expect("ota")
            assert ota["type"] == 1 and ota["version"] == "2.0.0"
            assert ota["sign_method"] == "Md5" and ota["sign"] == hashlib.md5(IMAGE).hexdigest()
            assert ota["size"] == len(IMAGE) and ota["module"] == "default"
            assert ast.literal_eval(ota["extra"]) == {
                "env": "test",
                "batch": "7",
                "_package_udi": "udi-42",
            }
            assert (await device.expect("downloaded"))["rc"].endswith("SUCCESS")
            await device.expect("reported")
            done = await control.wait_task(job, pk, dn, "SUCCEEDED")
            assert done["Progress"] == "100"
            assert await control.modules(pk, dn) == {"default": "2.0.0"}
            assert (tmp_path / f"{dn}-2.0.0.bin").read_bytes() == IMAGE
        assert await control.wait_verified(fw) == VERIFIED
    finally:
        plain.stop()
        tls.stop()


async def test_offline_linkkit_device_is_pushed_when_it_connects(
    server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    secret = await control.device(pk, "lk-late")
    fw = await control.firmware(pk, IMAGE, "2.5.0")
    job = await control.job(pk, fw, ["lk-late"])
    await control.wait_task(job, pk, "lk-late", "QUEUED")
    await asyncio.to_thread(engine_ticks)  # nobody to push to
    assert (await control.task(job, pk, "lk-late"))["TaskStatus"] == "QUEUED"
    device = LinkkitDevice(
        "127.0.0.1", str(server.mqtt_port), pk, "lk-late", secret, "1.0.0", str(tmp_path)
    )
    try:
        ota = await device.expect("ota")
        assert ota["version"] == "2.5.0" and ast.literal_eval(ota["extra"] or "{}") == {}
        await device.expect("reported")
        await control.wait_task(job, pk, "lk-late", "SUCCEEDED")
    finally:
        device.stop()


async def test_linkkit_device_asks_for_a_need_push_false_task(
    server: ServerProcess, control: AliyunControl, tmp_path: Path
) -> None:
    pk = await control.product()
    secret = await control.device(pk, "lk-pull")
    fw = await control.firmware(pk, IMAGE, "3.0.0", sign_method="SHA256")
    job = await control.job(pk, fw, ["lk-pull"], need_push=False)
    await control.wait_task(job, pk, "lk-pull", "QUEUED")
    device = LinkkitDevice(
        "127.0.0.1",
        str(server.mqtt_port),
        pk,
        "lk-pull",
        secret,
        "1.0.0",
        str(tmp_path),
        query=True,
    )
    try:
        ota = await device.expect("ota")
        assert ota["type"] == 2 and ota["version"] == "3.0.0"  # the get_reply
        assert ota["sign"] == hashlib.sha256(IMAGE).hexdigest()
        await device.expect("reported")
        await control.wait_task(job, pk, "lk-pull", "SUCCEEDED")
    finally:
        device.stop()

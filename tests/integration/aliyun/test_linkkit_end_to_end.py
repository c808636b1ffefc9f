"""Issue #6's proof, with real clients only: aliyun-python-sdk-iot drives a running
`otahub serve` (embedded broker) and unchanged aliyun-iot-linkkit devices take the
upgrade.

The SDK creates a product, registers four devices, uploads the firmware through
GenerateOTAUploadURL and the OSS form, creates it with NeedToVerify and runs a verify
job with batch tags on two devices. Those two see the push with the tags in extData,
download over HTTP, check the digest, report progress and their new version; their
tasks succeed and the firmware is verified. A second verify job is refused; a static
GRAY job then upgrades the other two linkkit devices.
"""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path
from typing import Any

from aliyunsdkcore.client import AcsClient

from tests.integration.aliyun.conftest import (
    ok,
    product,
    refused,
    tasks,
    unique,
    upload,
    wait_for,
)
from tests.integration.aliyun_device.conftest import LinkkitDevice
from tests.integration.server import ServerProcess

IMAGE = os.urandom(120_000)
TAGS = {"wave": "canary", "batch": "7"}


def _statuses(client: AcsClient, job_id: str) -> dict[str, str]:
    return {t["DeviceName"]: t["TaskStatus"] for t in tasks(client, job_id, PageSize=100)}


def _settled(client: AcsClient, job_id: str, names: list[str]) -> dict[str, str] | None:
    """The job's tasks once every one of `names` has succeeded (None until then)."""
    found = _statuses(client, job_id)
    return found if all(found.get(n) == "SUCCEEDED" for n in names) else None


async def _upgraded(device: LinkkitDevice, dn: str, workdir: Path, tags: dict[str, str]) -> None:
    """What the linkkit device saw: the push, the digest check, its new version."""
    ota = await device.expect("ota")
    assert ota["type"] == 1 and ota["version"] == "2.0.0", ota  # a push, not a get_reply
    assert ota["sign_method"] == "Md5" and ota["sign"] == hashlib.md5(IMAGE).hexdigest()
    assert ota["size"] == len(IMAGE) and ota["module"] == "default"
    assert ota["url"].startswith("http://127.0.0.1:") and "/dl/" in ota["url"]
    assert ast.literal_eval(ota["extra"] or "{}") == {**tags, "_package_udi": "udi-e2e"}
    assert (await device.expect("downloaded"))["rc"].endswith("SUCCESS")
    assert (await device.expect("reported"))["version"] == "2.0.0"
    assert (workdir / f"{dn}-2.0.0.bin").read_bytes() == IMAGE


async def test_sdk_and_linkkit_devices_end_to_end(
    client: AcsClient, server: ServerProcess, tmp_path: Path
) -> None:
    pk = product(client)
    names = [unique("lk-e2e-") for _ in range(4)]
    secrets = {
        dn: ok(client, "RegisterDevice", ProductKey=pk, DeviceName=dn)["Data"]["DeviceSecret"]
        for dn in names
    }
    canaries, rest = names[:2], names[2:]

    fid = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="2.0.0",
        FirmwareUrl=upload(client, IMAGE),
        SignMethod="MD5",
        NeedToVerify=True,
        Udi="udi-e2e",
    )["Data"]["FirmwareId"]
    info = ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]
    # otahub filled in what the SDK left out, from the uploaded file.
    assert info["FirmwareSign"] == hashlib.md5(IMAGE).hexdigest()
    assert info["FirmwareSize"] == len(IMAGE)
    assert info["Status"] == 0  # not verified yet

    devices = {
        dn: LinkkitDevice(
            "127.0.0.1", str(server.mqtt_port), pk, dn, secrets[dn], "1.0.0", str(tmp_path)
        )
        for dn in names
    }
    try:
        for device in devices.values():
            assert (await device.expect("connected"))["rc"] == 0

        def online() -> bool:
            return all(
                ok(client, "GetDeviceStatus", ProductKey=pk, DeviceName=dn)["Data"]["Status"]
                == "ONLINE"
                for dn in names
            )

        assert wait_for(online), "the linkkit devices never showed ONLINE"

        verify = ok(
            client,
            "CreateOTAVerifyJob",
            FirmwareId=fid,
            ProductKey=pk,
            TargetDeviceNames=canaries,
            TimeoutInMinutes=10,
            Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
        )["Data"]["JobId"]
        for dn in canaries:
            await _upgraded(devices[dn], dn, tmp_path, TAGS)

        done = wait_for(lambda: _settled(client, verify, canaries), timeout=30)
        assert done == dict.fromkeys(canaries, "SUCCEEDED"), _statuses(client, verify)
        for task in tasks(client, verify):
            assert task["Progress"] == "100" and task["DestVersion"] == "2.0.0", task
        assert wait_for(
            lambda: ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]["Status"] == 1
        ), "the firmware was not verified"
        assert ok(client, "QueryOTAJob", JobId=verify)["Data"]["JobStatus"] == "COMPLETED"
        for dn in canaries:
            detail = ok(client, "QueryDeviceDetail", ProductKey=pk, DeviceName=dn)["Data"]
            assert detail["FirmwareVersion"] == "2.0.0"

        # Verified once: a second verify job is refused.
        refused(
            client,
            "CreateOTAVerifyJob",
            "iot.ota.FirmwareVerifyStatusError",
            FirmwareId=fid,
            ProductKey=pk,
            TargetDeviceNames=rest[:1],
        )
        # The devices outside the verify job were pushed nothing.
        for dn in rest:
            assert not [e for e in _drain(devices[dn]) if e["event"] == "ota"]

        gray = ok(
            client,
            "CreateOTAStaticUpgradeJob",
            FirmwareId=fid,
            ProductKey=pk,
            TargetSelection="GRAY",
            GrayPercent="100",
            SrcVersions=["1.0.0"],
            Tags=[{"Key": "wave", "Value": "gray"}],
        )["Data"]["JobId"]
        job = ok(client, "QueryOTAJob", JobId=gray)["Data"]
        assert job["TargetSelection"] == "GRAY" and job["GrayPercent"] == "100"
        for dn in rest:
            await _upgraded(devices[dn], dn, tmp_path, {"wave": "gray"})
        done = wait_for(lambda: _settled(client, gray, rest), timeout=30)
        # The canaries already run 2.0.0: the gray job took only the rest.
        assert done == dict.fromkeys(rest, "SUCCEEDED"), _statuses(client, gray)
        for dn in names:
            versions = ok(
                client,
                "ListOTAModuleVersionsByDevice",
                ProductKey=pk,
                DeviceName=dn,
                CurrentPage=1,
                PageSize=10,
            )["Data"]
            assert _default_version(versions) == "2.0.0", versions
    finally:
        for device in devices.values():
            device.stop()
    for device in devices.values():
        assert device.proc.returncode is not None


def _drain(device: LinkkitDevice) -> list[dict[str, Any]]:
    """Every event the device has printed so far, without waiting."""
    while not device.events.empty():
        device.seen.append(device.events.get_nowait())
    return device.seen


def _default_version(data: Any) -> str | None:
    for item in data.get("SimpleOTAModuleInfo", []) if isinstance(data, dict) else data:
        if item.get("ModuleName") == "default":
            return str(item.get("ModuleVersion"))
    return None

"""The Alibaba face in process, on the fake clock, with the engine ticked by hand:
what the control plane shows while a rollout runs (devices' reports are made through
the core, as the device gateway makes them)."""

from __future__ import annotations

import hashlib
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from otahub.aliyun.app import AliyunApp, AliyunDeps
from otahub.aliyun.handlers import all_handlers
from otahub.aliyun.oss import OssUploadApp
from otahub.aliyun.protocol.ratelimits import ApiRateLimiter
from otahub.aliyun.protocol.signature import sign, string_to_sign
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.engine import Engine
from otahub.core.services import Report, Services
from otahub.core.services.objects import ObjectService
from otahub.domain.clock import FakeClock
from otahub.domain.states import ExecutionStatus

KEY, SECRET, ACCOUNT = "LTAIinprocess", "in-process-secret", "123456789012"
BASE = "http://otahub.test"


class Console:
    """Signs RPC calls as the SDK does, stamped with the fake clock."""

    def __init__(self, app: AliyunApp, oss: OssUploadApp, clock: FakeClock) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        self.oss = httpx.AsyncClient(transport=httpx.ASGITransport(app=oss), base_url=BASE)
        self.clock = clock

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        query = {
            "Action": action,
            "Version": "2018-01-20",
            "Format": "JSON",
            "AccessKeyId": KEY,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureType": "",
            "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RegionId": "cn-shanghai",
        }
        for name, value in params.items():
            if isinstance(value, list):
                for i, item in enumerate(value, 1):
                    query[f"{name}.{i}"] = str(item)
            else:
                query[name] = str(value)
        query["Signature"] = sign(string_to_sign("POST", query), SECRET)
        response = await self.http.post("/?" + urllib.parse.urlencode(query))
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, body
        return body

    async def ok(self, action: str, **params: Any) -> dict[str, Any]:
        body = await self.call(action, **params)
        assert body["Success"] is True, body
        return body

    async def upload(self, content: bytes) -> str:
        data = (await self.ok("GenerateOTAUploadURL"))["Data"]
        form = {
            "key": data["Key"],
            "policy": data["Policy"],
            "OSSAccessKeyId": data["OSSAccessKeyId"],
            "signature": data["Signature"],
            "success_action_status": "200",
        }
        posted = await self.oss.post("/oss", data=form, files={"file": ("fw.bin", content)})
        assert posted.status_code == 200, posted.text
        url: str = data["FirmwareUrl"]
        return url


@pytest.fixture
async def console(services: Services, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Console]:
    await services.accounts.ensure_access_key(KEY, SECRET, ACCOUNT)
    objects = ObjectService(services.ctx, FilesystemBlobStore(tmp_path / "blobs"))
    app = AliyunApp(
        services,
        clock,
        all_handlers(),
        AliyunDeps(objects, BASE),
        limiter=ApiRateLimiter(clock, enabled=False),
    )
    c = Console(app, OssUploadApp(services, objects, clock), clock)
    yield c
    await c.http.aclose()
    await c.oss.aclose()


async def _setup(
    console: Console, count: int, *, need_to_verify: bool = True
) -> tuple[str, list[str], str]:
    pk = (await console.ok("CreateProduct", ProductName="meters", NodeType=0))["ProductKey"]
    names = [f"meter-{i:04d}" for i in range(count)]
    for name in names:
        await console.ok("RegisterDevice", ProductKey=pk, DeviceName=name)
    content = b"image" * 1000
    url = await console.upload(content)
    fid = (
        await console.ok(
            "CreateOTAFirmware",
            ProductKey=pk,
            FirmwareName="fw-2",
            DestVersion="2.0.0",
            FirmwareUrl=url,
            FirmwareSign=hashlib.md5(content).hexdigest(),
            NeedToVerify=str(need_to_verify).lower(),
        )
    )["Data"]["FirmwareId"]
    return pk, names, fid


async def _tasks(console: Console, job_id: str) -> dict[str, dict[str, Any]]:
    data = (await console.ok("ListOTATaskByJob", JobId=job_id, PageSize=100))["Data"]
    return {t["DeviceName"]: t for t in data["SimpleOTATaskInfo"]}


async def _device_id(services: Services, tenant: int, pk: str, name: str) -> int:
    found = await services.registry.find_device(tenant, name, pk)
    assert found is not None
    return found.id


async def test_verified_firmware_unlocks_batch_jobs(
    console: Console, services: Services, engine: Engine
) -> None:
    pk, names, fid = await _setup(console, 3)
    job_id = (
        await console.ok(
            "CreateOTAVerifyJob",
            FirmwareId=fid,
            ProductKey=pk,
            TargetDeviceName=names[:2],
            NeedPush="false",
        )
    )["Data"]["JobId"]
    await engine.tick()
    assert {t["TaskStatus"] for t in (await _tasks(console, job_id)).values()} == {"QUEUED"}

    tenant = (await services.accounts.tenant(ACCOUNT)).id
    job = await services.jobs.get_job(tenant, job_id)
    first = await _device_id(services, tenant, pk, names[0])
    await services.executions.report(
        job.id, first, Report(ExecutionStatus.IN_PROGRESS, progress=40)
    )
    task = (await _tasks(console, job_id))[names[0]]
    assert (task["TaskStatus"], task["Progress"]) == ("IN_PROGRESS", "40")
    info = (await console.ok("QueryOTAFirmware", FirmwareId=fid))["FirmwareInfo"]
    assert (info["Status"], info["VerifyProgress"]) == (2, 0)

    for name in names[:2]:
        device = await _device_id(services, tenant, pk, name)
        await services.registry.report_version(device, "default", "2.0.0")
        await services.executions.settle_by_version(device, "default", "2.0.0")
    await engine.tick()
    assert {t["TaskStatus"] for t in (await _tasks(console, job_id)).values()} == {"SUCCEEDED"}
    job_info = (await console.ok("QueryOTAJob", JobId=job_id))["Data"]
    assert job_info["JobStatus"] == "COMPLETED" and job_info["UtcEndTime"]
    info = (await console.ok("QueryOTAFirmware", FirmwareId=fid))["FirmwareInfo"]
    assert (info["Status"], info["VerifyProgress"]) == (1, 100)
    refused = await console.call(
        "CreateOTAVerifyJob", FirmwareId=fid, ProductKey=pk, TargetDeviceName=names[2:]
    )
    assert refused["Code"] == "iot.ota.FirmwareVerifyStatusError"

    # Verified: a batch job goes through, and skips devices already on the version.
    batch = (
        await console.ok(
            "CreateOTAStaticUpgradeJob",
            FirmwareId=fid,
            ProductKey=pk,
            TargetSelection="ALL",
            NeedPush="false",
        )
    )["Data"]["JobId"]
    await engine.tick()
    assert list(await _tasks(console, batch)) == [names[2]]
    detail = (await console.ok("QueryDeviceDetail", ProductKey=pk, DeviceName=names[0]))["Data"]
    assert detail["FirmwareVersion"] == "2.0.0"
    versions = (
        await console.ok(
            "ListOTAModuleVersionsByDevice",
            ProductKey=pk,
            DeviceName=names[0],
            CurrentPage=1,
            PageSize=10,
        )
    )["Data"]["SimpleOTAModuleInfo"]
    assert versions == [
        {
            "ProductKey": pk,
            "DeviceName": names[0],
            "IotId": detail["IotId"],
            "ModuleName": "default",
            "ModuleVersion": "2.0.0",
        }
    ]


async def test_timeout_fails_without_retry_and_failure_retries(
    console: Console, services: Services, engine: Engine, clock: FakeClock
) -> None:
    pk, names, fid = await _setup(console, 2, need_to_verify=False)
    job_id = (
        await console.ok(
            "CreateOTAStaticUpgradeJob",
            FirmwareId=fid,
            ProductKey=pk,
            TargetSelection="SPECIFIC",
            TargetDeviceName=names,
            NeedPush="false",
            TimeoutInMinutes=30,
            RetryInterval=10,
            RetryCount=1,
        )
    )["Data"]["JobId"]
    await engine.tick()
    tenant = (await services.accounts.tenant(ACCOUNT)).id
    job = await services.jobs.get_job(tenant, job_id)
    slow, broken = [await _device_id(services, tenant, pk, n) for n in names]
    # The timeout clock starts at the first progress report, not at the push.
    clock.advance(minutes=45)
    await engine.tick()
    assert {t["TaskStatus"] for t in (await _tasks(console, job_id)).values()} == {"QUEUED"}
    await services.executions.report(job.id, slow, Report(ExecutionStatus.IN_PROGRESS, progress=5))
    await services.executions.report(job.id, broken, Report(ExecutionStatus.FAILED, reason="-2"))
    clock.advance(minutes=31)
    await engine.tick()
    shown = await _tasks(console, job_id)
    # Timed out: FAILED (Alibaba has no TIMEOUT status) and never retried.
    assert shown[names[0]]["TaskStatus"] == "FAILED"
    # A failure is retried after RetryInterval: a new QUEUED task for the device.
    assert shown[names[1]]["TaskStatus"] == "QUEUED"
    clock.advance(minutes=30)
    await engine.tick()
    assert (await _tasks(console, job_id))[names[0]]["TaskStatus"] == "FAILED"


async def test_an_upload_is_good_for_60_minutes(console: Console, clock: FakeClock) -> None:
    pk = (await console.ok("CreateProduct", ProductName="lamps", NodeType=0))["ProductKey"]
    url = await console.upload(b"image")
    clock.advance(minutes=61)
    late = await console.call(
        "CreateOTAFirmware", ProductKey=pk, FirmwareName="late", DestVersion="1.0", FirmwareUrl=url
    )
    assert late["Code"] == "iot.ota.UploadExpired"

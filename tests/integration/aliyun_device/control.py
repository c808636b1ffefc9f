"""The Alibaba control plane the device tests need, through aliyun-python-sdk-iot
against the running server (CreateProduct, RegisterDevice, CreateOTAModule,
GenerateOTAUploadURL + the OSS form + CreateOTAFirmware, CreateOTAVerifyJob /
CreateOTAStaticUpgradeJob, ConfirmOTATask, ListOTATaskByJob, QueryOTAFirmware,
ListOTAModuleVersionsByDevice, GetDeviceStatus), so the device tests prove the
protocol end to end.

The SDK blocks: each call runs in a thread, so that devices running on the test's
event loop (the reference device) keep going while the test waits.

Core access is kept for what no API shows: how many times a task ran (the retry)
and the reason the server recorded for a failure (TaskDesc shows the device's own
`desc`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aliyunsdkcore.client import AcsClient

from otahub.core.services import Services
from otahub.domain.clock import SystemClock
from otahub.domain.entities import Execution
from otahub.store.db import Database
from tests.integration.aliyun.conftest import call, make_client, unique, upload
from tests.integration.server import ServerProcess

# QueryOTAFirmware's Status.
NOT_VERIFIED, VERIFIED, VERIFYING, VERIFY_FAILED = 0, 1, 2, 3


class AliyunControl:
    def __init__(self, server: ServerProcess, key: str, secret: str) -> None:
        self.server = server
        self.client: AcsClient = make_client(server, key, secret)

    async def close(self) -> None:
        pass

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        """An SDK call that must succeed; its parsed body."""
        result = await asyncio.to_thread(call, self.client, action, **params)
        assert result["Success"] is True, (action, result)
        return result

    async def product(self) -> str:
        found = await self.call("CreateProduct", ProductName=unique("prod_"), NodeType=0)
        key: str = found["ProductKey"]
        return key

    async def device(self, pk: str, dn: str) -> str:
        found = await self.call("RegisterDevice", ProductKey=pk, DeviceName=dn)
        secret: str = found["Data"]["DeviceSecret"]
        return secret

    async def firmware(
        self,
        pk: str,
        image: bytes,
        version: str,
        *,
        module: str = "default",
        sign_method: str = "MD5",
        verify: bool = False,
        udi: str | None = None,
    ) -> str:
        """Uploaded through GenerateOTAUploadURL and the OSS form; otahub fills in the
        sign and size. Returns the FirmwareId."""
        extra: dict[str, Any] = {}
        if module != "default":
            listed = await self.call("ListOTAModuleByProduct", ProductKey=pk)
            if module not in {m["ModuleName"] for m in listed["Data"]}:
                await self.call("CreateOTAModule", ProductKey=pk, ModuleName=module)
            extra["ModuleName"] = module
        if udi is not None:
            extra["Udi"] = udi
        url = await asyncio.to_thread(upload, self.client, image)
        found = await self.call(
            "CreateOTAFirmware",
            ProductKey=pk,
            FirmwareName=unique("fw"),
            DestVersion=version,
            FirmwareUrl=url,
            SignMethod=sign_method,
            NeedToVerify=verify,
            **extra,
        )
        fid: str = found["Data"]["FirmwareId"]
        return fid

    async def job(
        self,
        pk: str,
        firmware_id: str,
        device_names: Sequence[str],
        *,
        verify: bool = False,
        tags: dict[str, str] | None = None,
        need_push: bool = True,
        need_confirm: bool = False,
        download_protocol: str = "HTTPS",
        retry_count: int = 0,
        retry_interval: int = 0,
        timeout_minutes: int | None = None,
    ) -> str:
        """A verify job, or a static SPECIFIC upgrade job; returns the JobId."""
        params: dict[str, Any] = {
            "FirmwareId": firmware_id,
            "ProductKey": pk,
            "TargetDeviceNames": list(device_names),
            "NeedPush": need_push,
            "NeedConfirm": need_confirm,
            "DownloadProtocol": download_protocol,
        }
        if tags:
            params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        if timeout_minutes is not None:
            params["TimeoutInMinutes"] = timeout_minutes
        if verify:
            assert not retry_count, "a verify job has no retry policy"
            found = await self.call("CreateOTAVerifyJob", **params)
        else:
            if retry_count:
                params.update(RetryCount=retry_count, RetryInterval=retry_interval)
            found = await self.call(
                "CreateOTAStaticUpgradeJob", TargetSelection="SPECIFIC", **params
            )
        job_id: str = found["Data"]["JobId"]
        return job_id

    async def tasks(self, job_id: str, **params: Any) -> list[dict[str, Any]]:
        found = await self.call("ListOTATaskByJob", JobId=job_id, PageSize=100, **params)
        listed: list[dict[str, Any]] = found["Data"]["SimpleOTATaskInfo"]
        return listed

    async def confirm(self, job_id: str) -> int:
        """ConfirmOTATask for the job's tasks waiting in CONFIRM; how many."""
        waiting = [t["TaskId"] for t in await self.tasks(job_id, TaskStatus="CONFIRM")]
        if waiting:
            await self.call("ConfirmOTATask", TaskIds=waiting)
        return len(waiting)

    async def task(self, job_id: str, pk: str, dn: str) -> dict[str, Any]:
        """The device's task in the job (ListOTATaskByJob), as the SDK returns it."""
        found = await self.find_task(job_id, pk, dn)
        assert found is not None, f"{dn} has no task in {job_id}"
        return found

    async def find_task(self, job_id: str, pk: str, dn: str) -> dict[str, Any] | None:
        """The task, or None while the job has not created it yet."""
        found = await self.tasks(job_id, DeviceNamess=[dn])  # the SDK setter's spelling
        if not found:
            return None
        assert [(t["ProductKey"], t["DeviceName"]) for t in found] == [(pk, dn)], found
        return found[0]

    async def wait_task(
        self, job_id: str, pk: str, dn: str, *statuses: str, seconds: float = 60
    ) -> dict[str, Any]:
        """The task once its TaskStatus is one of `statuses`."""
        deadline = time.monotonic() + seconds
        while True:
            task = await self.find_task(job_id, pk, dn)
            if task is not None and task["TaskStatus"] in statuses:
                return task
            if time.monotonic() > deadline:
                now = task and task["TaskStatus"]
                raise AssertionError(f"task of {dn} is {now}, not {statuses}")
            await asyncio.sleep(0.2)

    async def verify_state(self, firmware_id: str) -> int:
        found = await self.call("QueryOTAFirmware", FirmwareId=firmware_id)
        status: int = found["FirmwareInfo"]["Status"]
        return status

    async def wait_verified(self, firmware_id: str, seconds: float = 30) -> int:
        """QueryOTAFirmware's Status once it is no longer VERIFYING."""
        deadline = time.monotonic() + seconds
        while (state := await self.verify_state(firmware_id)) == VERIFYING:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        return state

    async def modules(self, pk: str, dn: str) -> dict[str, Any]:
        """The versions the device reported, by module (ListOTAModuleVersionsByDevice)."""
        found = await self.call(
            "ListOTAModuleVersionsByDevice",
            ProductKey=pk,
            DeviceName=dn,
            CurrentPage=1,
            PageSize=50,
        )
        return {m["ModuleName"]: m["ModuleVersion"] for m in found["Data"]["SimpleOTAModuleInfo"]}

    async def wait_online(self, pk: str, dn: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = await self.call("GetDeviceStatus", ProductKey=pk, DeviceName=dn)
            if found["Data"]["Status"] == "ONLINE":
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{dn} never came online")

    async def execution(self, job_id: str, pk: str, dn: str) -> Execution:
        """The task as the core keeps it, for what no API shows (how many times it
        ran, the reason the server gave a failure): read on the server's database."""
        data_dir: Path = self.server.data_dir
        account = json.loads((data_dir / "credentials.json").read_text())["account_id"]
        db = Database(self.server.database_url)  # type: ignore[attr-defined]
        try:
            services = Services.build(db, SystemClock())
            tenant = (await services.accounts.tenant(account)).id
            job = await services.jobs.get_job(tenant, job_id)
            device = await services.registry.find_device(tenant, dn, pk)
            assert device is not None
            return await services.executions.get(job.id, device.id)
        finally:
            await db.dispose()

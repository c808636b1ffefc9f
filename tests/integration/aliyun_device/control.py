"""The Alibaba control plane the device tests need, done through the core services
on the running server's own database (the server's engine picks the jobs up).

This is the one place to replace with aliyun-python-sdk-iot calls (CreateProduct,
RegisterDevice, GenerateOTAUploadURL + CreateOTAFirmware, CreateOTAVerifyJob /
CreateOTAStaticUpgradeJob, ConfirmOTATask, ListOTATaskByJob) once the RPC face is
merged.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.clock import SystemClock
from otahub.core.entities import Execution, PackageFile
from otahub.core.policies import JobPolicies, RetryCriterion, RetryPolicy, TimeoutPolicy
from otahub.core.services import JobSpec, Services
from otahub.core.states import ExecutionStatus, FailureType, ReleaseMode, VerifyState
from otahub.store.db import Database


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class AliyunControl:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.db = Database(database_url)
        self.services = Services.build(self.db, SystemClock())
        self.blobs = FilesystemBlobStore(data_dir / "blobs")
        self.account = json.loads((data_dir / "credentials.json").read_text())["account_id"]
        self.tenant = 0

    async def open(self) -> AliyunControl:
        self.tenant = (await self.services.accounts.tenant(self.account)).id
        return self

    async def close(self) -> None:
        await self.db.dispose()

    async def product(self) -> str:
        pk = f"a1{uuid.uuid4().hex[:9]}"
        await self.services.registry.create_product(self.tenant, pk, f"p_{pk}")
        return pk

    async def device(self, pk: str, dn: str) -> str:
        secret = secrets.token_hex(16)
        await self.services.registry.create_device(self.tenant, dn, product_key=pk, secret=secret)
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
    ) -> int:
        key = f"ota/{uuid.uuid4().hex}.bin"
        info = await self.blobs.put_stream(key, _one(image))
        product = await self.services.registry.get_product(self.tenant, pk)
        pkg = await self.services.packages.create_package(
            self.tenant,
            name=f"fw-{version}",
            version=version,
            product_id=product.id,
            module=module,
            need_verify=verify,
            files=[
                PackageFile(
                    0, "fw.bin", blob_key=key, size=info.size, sha256=info.sha256, md5=info.md5
                )
            ],
            data={"sign_method": sign_method, **({"udi": udi} if udi else {})},
        )
        return pkg.id

    async def job(
        self,
        pk: str,
        package_id: int,
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
    ) -> int:
        ids = []
        for dn in device_names:
            found = await self.services.registry.find_device(self.tenant, dn, pk)
            assert found is not None
            ids.append(found.id)
        retry = RetryPolicy(
            (RetryCriterion(FailureType.FAILED, retry_count),) if retry_count else (),
            interval_minutes=retry_interval,
        )
        job = await self.services.jobs.create_job(
            self.tenant,
            JobSpec(
                ref=uuid.uuid4().hex[:26],
                kind="VERFIY_FIRMWARE" if verify else "UPGRADE_FIRMWARE",
                device_ids=ids,
                package_id=package_id,
                release_mode=ReleaseMode.NOTIFY,
                need_push=need_push,
                need_confirm=need_confirm,
                is_verify=verify,
                policies=JobPolicies(
                    retry=retry, timeout=TimeoutPolicy(in_progress_minutes=timeout_minutes)
                ),
                data={
                    "tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
                    "download_protocol": download_protocol,
                },
            ),
        )
        return job.id

    async def confirm(self, job_id: int) -> int:
        return await self.services.jobs.confirm(job_id)

    async def task(self, job_id: int, pk: str, dn: str) -> Execution:
        found = await self.services.registry.find_device(self.tenant, dn, pk)
        assert found is not None
        return await self.services.executions.get(job_id, found.id)

    async def wait_task(
        self, job_id: int, pk: str, dn: str, *statuses: ExecutionStatus, seconds: float = 60
    ) -> Execution:
        deadline = time.monotonic() + seconds
        while True:
            try:
                ex = await self.task(job_id, pk, dn)
                if ex.status in statuses:
                    return ex
            except Exception:
                ex = None
            if time.monotonic() > deadline:
                raise AssertionError(f"task of {dn} is {ex and ex.status}, not {statuses}")
            await asyncio.sleep(0.2)

    async def verify_state(self, package_id: int) -> VerifyState:
        return (await self.services.packages.get_package_by_id(package_id)).verify_state

    async def wait_verified(self, package_id: int, seconds: float = 30) -> VerifyState:
        deadline = time.monotonic() + seconds
        while (state := await self.verify_state(package_id)) is VerifyState.VERIFYING:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        return state

    async def modules(self, pk: str, dn: str) -> dict[str, Any]:
        return dict(
            (await self.services.registry.get_device(self.tenant, dn, product_key=pk)).modules
        )

    async def wait_online(self, pk: str, dn: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = await self.services.registry.find_device(self.tenant, dn, pk)
            if found is not None and found.connected:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{dn} never came online")

"""What an Alibaba fleet simulation needs on the server, set up through the Alibaba
IoT API as a user would: a product, its devices (batch registration by name), a
firmware file uploaded through GenerateOTAUploadURL and the OSS form, the firmware
(CreateOTAFirmware) and a static upgrade job; and afterwards, the server's own count
of the job's tasks per TaskStatus."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from otahub.agent.aliyun_rpc import AliyunApiError, AsyncAliyunClient

PAGE = 50  # QueryPageByApplyId's largest page
TASK_PAGE = 100  # ListOTATaskByJob's largest page
BATCH = 10_000  # BatchCheckDeviceNames' largest list
INLINE_TARGETS = 200  # TargetDeviceName.N of a SPECIFIC job; more go in a device-list file


async def create_product(api: AsyncAliyunClient, name: str) -> str:
    found = await api.call("CreateProduct", ProductName=name, NodeType=0)
    return str(found["ProductKey"])


async def register_devices(
    api: AsyncAliyunClient,
    product_key: str,
    names: Sequence[str],
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Register `names` (BatchCheckDeviceNames + BatchRegisterDeviceWithApplyId) and
    read their secrets (QueryPageByApplyId); names already registered are looked up
    with QueryDeviceDetail. Returns name -> DeviceSecret."""
    secrets: dict[str, str] = {}
    for start in range(0, len(names), BATCH):
        chunk = list(names[start : start + BATCH])
        checked = await api.call(
            "BatchCheckDeviceNames", form={"DeviceName": chunk}, ProductKey=product_key
        )
        data = checked["Data"]
        invalid = (data.get("InvalidDeviceNameList") or {}).get("Name") or []
        if invalid:
            raise ValueError(f"invalid device names: {invalid[:5]}")
        repeated = set((data.get("RepeatedDeviceNameList") or {}).get("Name") or [])
        apply_id = data["ApplyId"]
        if len(repeated) < len(chunk):
            await api.call(
                "BatchRegisterDeviceWithApplyId", ProductKey=product_key, ApplyId=apply_id
            )
            await _wait_created(api, product_key, apply_id)
            page = 1
            while True:
                found = await api.call(
                    "QueryPageByApplyId", ApplyId=apply_id, PageSize=PAGE, CurrentPage=page
                )
                for d in found["ApplyDeviceList"]["ApplyDeviceInfo"]:
                    secrets[d["DeviceName"]] = d["DeviceSecret"]
                if progress is not None:
                    progress(len(secrets))
                if page >= int(found.get("PageCount") or 1):
                    break
                page += 1
        secrets.update(await device_secrets(api, product_key, sorted(repeated)))
        if progress is not None:
            progress(len(secrets))
    return secrets


async def _wait_created(api: AsyncAliyunClient, product_key: str, apply_id: int) -> None:
    for _ in range(600):
        found = await api.call(
            "QueryBatchRegisterDeviceStatus", ProductKey=product_key, ApplyId=apply_id
        )
        status = found["Data"]["Status"]
        if status == "CREATE_SUCCESS":
            return
        if status.endswith("FAILED"):
            raise RuntimeError(f"batch registration {apply_id}: {status}")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"batch registration {apply_id} did not finish")


async def device_secrets(
    api: AsyncAliyunClient, product_key: str, names: Sequence[str], concurrency: int = 16
) -> dict[str, str]:
    """Secrets of devices that exist already (QueryDeviceDetail)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(name: str) -> tuple[str, str]:
        async with gate:
            found = await api.call("QueryDeviceDetail", ProductKey=product_key, DeviceName=name)
        return name, str(found["Data"]["DeviceSecret"])

    return dict(await asyncio.gather(*(one(n) for n in names)))


async def upload(api: AsyncAliyunClient, http: httpx.AsyncClient, content: bytes) -> str:
    """GenerateOTAUploadURL, then the OSS-style form post; returns the FirmwareUrl."""
    data = (await api.call("GenerateOTAUploadURL", FileSuffix="bin"))["Data"]
    form = {
        "key": data["Key"],
        "policy": data["Policy"],
        "OSSAccessKeyId": data["OSSAccessKeyId"],
        "signature": data["Signature"],
        "success_action_status": "200",
    }
    response = await http.post(
        data["Host"], data=form, files={"file": ("firmware.bin", content)}, timeout=120
    )
    if response.status_code not in (200, 201, 204):
        raise RuntimeError(f"firmware upload: HTTP {response.status_code} {response.text[:200]}")
    return str(data["FirmwareUrl"])


async def create_firmware(
    api: AsyncAliyunClient,
    http: httpx.AsyncClient,
    product_key: str,
    content: bytes,
    *,
    name: str,
    version: str,
) -> str:
    """Upload `content` and create an unverified (NeedToVerify=false) SHA-256
    firmware; returns the FirmwareId."""
    url = await upload(api, http, content)
    found = await api.call(
        "CreateOTAFirmware",
        ProductKey=product_key,
        FirmwareName=name,
        DestVersion=version,
        FirmwareUrl=url,
        FirmwareSign=hashlib.sha256(content).hexdigest(),
        FirmwareSize=len(content),
        SignMethod="SHA256",
        NeedToVerify=False,
    )
    return str(found["Data"]["FirmwareId"])


async def create_job(
    api: AsyncAliyunClient,
    http: httpx.AsyncClient,
    product_key: str,
    firmware_id: str,
    *,
    devices: Sequence[str] | None,
    download_protocol: str = "HTTPS",
    max_per_minute: int | None = None,
    timeout_minutes: int | None = None,
) -> str:
    """A static upgrade job: the whole product (`devices` None: TargetSelection ALL)
    or the named devices (SPECIFIC, by a device-list file past 200); returns JobId."""
    params: dict[str, Any] = {
        "FirmwareId": firmware_id,
        "ProductKey": product_key,
        "DownloadProtocol": download_protocol,
        "NeedPush": True,
    }
    if max_per_minute is not None:
        params["MaximumPerMinute"] = max_per_minute
    if timeout_minutes is not None:
        params["TimeoutInMinutes"] = timeout_minutes
    if devices is None:
        params["TargetSelection"] = "ALL"
    elif len(devices) <= INLINE_TARGETS:
        params.update(TargetSelection="SPECIFIC", TargetDeviceName=list(devices))
    else:
        params.update(
            TargetSelection="SPECIFIC", DnListFileUrl=await _device_list(api, http, devices)
        )
    found = await api.call("CreateOTAStaticUpgradeJob", **params)
    return str(found["Data"]["JobId"])


async def _device_list(
    api: AsyncAliyunClient, http: httpx.AsyncClient, devices: Sequence[str]
) -> str:
    data = (await api.call("GenerateDeviceNameListURL"))["Data"]
    form = {
        "key": data["Key"],
        "policy": data["Policy"],
        "OSSAccessKeyId": data["AccessKeyId"],
        "signature": data["Signature"],
        "success_action_status": "200",
    }
    body = "\n".join(devices).encode()
    response = await http.post(data["Host"], data=form, files={"file": ("devices.csv", body)})
    if response.status_code not in (200, 201, 204):
        raise RuntimeError(f"device list upload: HTTP {response.status_code}")
    return str(data["FileUrl"])


async def list_tasks(
    api: AsyncAliyunClient, job_id: str, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The job's tasks (ListOTATaskByJob): all of them, or those of up to 50 `names`."""
    if names is not None:
        found = await api.call("ListOTATaskByJob", JobId=job_id, DeviceNames=list(names))
        return list(found["Data"]["SimpleOTATaskInfo"])
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        found = await api.call(
            "ListOTATaskByJob", JobId=job_id, PageSize=TASK_PAGE, CurrentPage=page
        )
        out += found["Data"]["SimpleOTATaskInfo"]
        if page >= int(found.get("PageCount") or 1):
            return out
        page += 1


TASK_STATUSES = ("CONFIRM", "QUEUED", "NOTIFIED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "CANCELED")


async def server_counts(api: AsyncAliyunClient, job_id: str) -> dict[str, int]:
    """Task states as the server records them: ListOTATaskByJob's `Total` per
    TaskStatus, so a count costs seven calls whatever the fleet's size."""
    counts: dict[str, int] = {}
    for status in TASK_STATUSES:
        found = await api.call(
            "ListOTATaskByJob", JobId=job_id, TaskStatus=status, PageSize=1, CurrentPage=1
        )
        if int(found.get("Total") or 0):
            counts[status] = int(found["Total"])
    return counts


__all__ = [
    "AliyunApiError",
    "create_firmware",
    "create_job",
    "create_product",
    "device_secrets",
    "list_tasks",
    "register_devices",
    "server_counts",
]

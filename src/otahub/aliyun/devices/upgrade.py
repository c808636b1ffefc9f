"""What an Alibaba device is told about one task: the `data` of the upgrade push and
of the firmware/get answer, from the job, its package and the device (specs §5.4).

The control plane keeps the Alibaba job and firmware options in `Job.data` and
`Package.data` (aliyun/firmware_data.py documents them); the keys read here
are listed in JOB_KEYS and PACKAGE_KEYS, and a file's own digest in
`PackageFile.attributes["sign"]` wins over the stored MD5 / SHA-256.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from otahub.aliyun.devices.codec import PackageFile, UpgradeInfo
from otahub.domain.entities import Device, Job, Package
from otahub.domain.entities import PackageFile as StoredFile

# (device, blob key) -> a download URL of otahub valid for that device only.
Presign = Callable[[Device, str], str]

JOB_KEYS = {
    "tags": ("tags", "Tags"),
    "download_protocol": ("download_protocol", "DownloadProtocol"),
}
PACKAGE_KEYS = {
    "sign_method": ("sign_method", "SignMethod"),
    "udi": ("udi", "Udi"),
    "type": ("firmware_type", "type", "Type"),
    "multi_file": ("multi_file",),
}
FILE_SIGN = "sign"
MQTT = "MQTT"


def _get(data: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if data.get(name) is not None:
            return data[name]
    return None


def job_tags(job: Job) -> dict[str, str]:
    """Batch tags as `key: value`: stored as a mapping or as `[{"Key", "Value"}]`."""
    raw = _get(job.data, JOB_KEYS["tags"])
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    tags: dict[str, str] = {}
    if isinstance(raw, list):
        for item in raw:
            if not isinstance(item, Mapping):
                continue
            key = item.get("Key", item.get("key"))
            if key is not None:
                tags[str(key)] = str(item.get("Value", item.get("value", "")))
    return tags


def download_protocol(job: Job) -> str:
    value = _get(job.data, JOB_KEYS["download_protocol"])
    return MQTT if str(value or "").upper() == MQTT else "HTTPS"


def sign_method(package: Package) -> str:
    return str(_get(package.data, PACKAGE_KEYS["sign_method"]) or "MD5")


def _sign(method: str, f: StoredFile) -> str | None:
    given = f.attributes.get(FILE_SIGN)
    if given:
        return given
    return f.md5 if method.strip().upper() == "MD5" else f.sha256


def _url(device: Device, f: StoredFile, presign: Presign | None) -> str | None:
    if f.blob_key and presign is not None:
        return presign(device, f.blob_key)
    return f.url


def upgrade_info(
    job: Job, package: Package, device: Device, presign: Presign | None
) -> UpgradeInfo:
    """Raises ValueError when the package cannot be described to a device."""
    if not package.files:
        raise ValueError(f"package {package.ref} has no files")
    method = sign_method(package)
    kind = _get(package.data, PACKAGE_KEYS["type"])
    udi = _get(package.data, PACKAGE_KEYS["udi"])
    common: dict[str, Any] = {
        "version": package.version,
        "sign_method": method,
        "module": package.module,
        "is_diff": package.source_version is not None or str(kind) == "1",
        "tags": job_tags(job),
        "udi": str(udi) if udi else None,
    }
    if len(package.files) > 1 or _get(package.data, PACKAGE_KEYS["multi_file"]):
        files = []
        for f in package.files:
            url, sign = _url(device, f, presign), _sign(method, f)
            if url is None or sign is None or f.size is None:
                raise ValueError(f"file {f.name} of package {package.ref} is incomplete")
            files.append(PackageFile(f.name or f"file{f.ordinal}", f.size, url, sign, f.md5))
        return UpgradeInfo(files=tuple(files), **common)
    f = package.files[0]
    common.update(size=f.size, sign=_sign(method, f), md5=f.md5)
    if download_protocol(job) == MQTT:
        return UpgradeInfo(stream_id=package.id, stream_file_id=f.ordinal, **common)
    return UpgradeInfo(url=_url(device, f, presign), **common)

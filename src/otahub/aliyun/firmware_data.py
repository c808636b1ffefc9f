"""How an Alibaba firmware is stored on a core package, for this face and the
device side (aliyun/devices), which renders the upgrade push from it.

`Package.data` keys:

- `sign_method`: `"MD5"` or `"SHA256"`, as CreateOTAFirmware took it. Devices must
  get `Md5`/`SHA256` (`aliyun.devices.codec.device_sign_method` converts).
- `firmware_type`: `0` full image, `1` differential (`Package.source_version` is set).
- `udi`: the `Udi` text, or absent; it goes to devices as `extData._package_udi`.
- `need_to_verify`: the `NeedToVerify` given (the state itself is `Package.verify_state`).
- `multi_file`: true for a `MultiFiles` package (the push then carries `files`).

`Package.files`, one per file, ordinal from 0:

- `name`: the MultiFiles `Name`, or the uploaded object's file name;
- `blob_key`: the blob in otahub's store (presign it with `runtime.downloads` for the
  device's `url`); `url`: the FirmwareUrl or MultiFiles Url as given;
- `size`, `md5`, `sha256`: computed by the store on upload (lower-case hex);
- `attributes["sign"]`: the digest in `sign_method` (lower-case hex), which is what
  devices compare.

`Job.data` keys of Alibaba jobs (see `jobspec.py`): `job_type`
(`VERFIY_FIRMWARE`/`UPGRADE_FIRMWARE`), `selection_type` (`STATIC`/`DYNAMIC`),
`target_selection` (`ALL`/`SPECIFIC`/`GRAY`/`GROUP`), `tags` (an object of
key -> value, in the order given: the push's `extData`), `download_protocol`
(`HTTPS`/`MQTT`), `multi_module_mode`, `overwrite_mode`, `dynamic_mode`,
`src_versions`, `gray_percent`, `group_id`, `group_name`, `retry_interval`,
`retry_count`, `timeout_minutes`, `maximum_per_minute`, `schedule_time`,
`schedule_finish_time` (epoch ms).
"""

from __future__ import annotations

from otahub.domain.entities import Package, PackageFile
from otahub.domain.states import VerifyState

SIGN_METHOD = "sign_method"
FIRMWARE_TYPE = "firmware_type"
UDI = "udi"
NEED_TO_VERIFY = "need_to_verify"
MULTI_FILE = "multi_file"
FILE_SIGN = "sign"

MQTT_MAX_BYTES = 16 * 1024 * 1024

STATUS: dict[VerifyState, int] = {
    VerifyState.NOT_REQUIRED: -1,
    VerifyState.UNVERIFIED: 0,
    VerifyState.VERIFIED: 1,
    VerifyState.VERIFYING: 2,
    VerifyState.FAILED: 3,
}


def sign_method(p: Package) -> str:
    return str(p.data.get(SIGN_METHOD, "MD5"))


def file_sign(p: Package, f: PackageFile) -> str | None:
    given = f.attributes.get(FILE_SIGN)
    if given:
        return given
    return f.sha256 if sign_method(p) == "SHA256" else f.md5


def is_multi_file(p: Package) -> bool:
    return bool(p.data.get(MULTI_FILE)) or len(p.files) > 1


def mqtt_capable(p: Package) -> bool:
    """MQTT download needs one file of at most 16 MB."""
    if is_multi_file(p) or len(p.files) != 1:
        return False
    size = p.files[0].size
    return size is not None and size <= MQTT_MAX_BYTES

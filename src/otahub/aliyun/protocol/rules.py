"""Value rules per action and parameter, written by hand from specs §2.1 to §2.3.

The generated table says where a parameter travels and its shape; these rules say
its type, whether it is required, and its ranges, enums and patterns. Rules about
combinations of parameters (TargetSelection vs SrcVersion, ScheduleTime relative
to now, RetryInterval < TimeoutInMinutes, ...) are business rules for the handlers.

A rule with `code` set reports a violation as that business error (HTTP 200)
instead of the gateway's `InvalidParameter`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import MAX_EPOCH_MS
from otahub.domain.limits import INT32_MAX, INT32_MIN

ValueType = Literal["str", "int", "bool"]


@dataclass(frozen=True)
class Rule:
    type: ValueType = "str"
    required: bool = False
    min_len: int | None = None
    max_len: int | None = None
    pattern: re.Pattern[str] | None = None
    choices: frozenset[str | int] | None = None
    fold_case: bool = False
    """Compare string choices ignoring case and return the listed spelling."""
    min: int | None = None
    max: int | None = None
    # Repeat and struct lists:
    min_items: int | None = None
    max_items: int | None = None
    unique: bool = False
    unique_field: str | None = None
    fields: dict[str, Rule] | None = None
    check: Callable[[Any], str | None] | None = None
    """Extra check of the whole parsed value; returns the reason it is invalid."""
    code: BusinessCode | None = None
    duplicate_code: BusinessCode | None = None
    """Business error for a repeated item; defaults to `code`."""


def p(expr: str) -> re.Pattern[str]:
    # ASCII: `\d` is 0-9 only, as in Alibaba's (Java) patterns; CJK ranges are spelled out.
    return re.compile(expr, re.ASCII)


CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"

STR = Rule()
REQ = Rule(required=True)
INT = Rule(type="int")
# Parameters Alibaba's metadata declares `Integer` (Java int); an `int` rule without
# bounds takes any 64-bit value (`Long`).
INTEGER = Rule(type="int", min=INT32_MIN, max=INT32_MAX)
SIZE = replace(INTEGER, min=0)
EPOCH_MS = Rule(type="int", min=0, max=MAX_EPOCH_MS, code=BusinessCode.INVALID_SCHEDULE)
BOOL = Rule(type="bool")
VERSION = Rule(min_len=1, max_len=64, pattern=p(r"[A-Za-z0-9._-]+"))
MODULE_NAME = Rule(min_len=1, max_len=64, pattern=p(r"[A-Za-z0-9._-]+"))
FIRMWARE_NAME = Rule(min_len=1, max_len=40, pattern=p(rf"[A-Za-z0-9{CJK}][A-Za-z0-9_()\-{CJK}]*"))
DEVICE_NAME = Rule(min_len=4, max_len=32, pattern=p(r"[A-Za-z0-9_@.:\-]+"))
PAGE = replace(INTEGER, required=True, min=1, code=BusinessCode.INVALID_PAGE_PARAMS)
TIMEOUT = Rule(type="int", min=1, max=1440)
MAX_PER_MINUTE = Rule(type="int", min=10, max=10_000)
DOWNLOAD_PROTOCOL = Rule(choices=frozenset({"HTTPS", "MQTT"}), fold_case=True)
RETRY_INTERVAL = Rule(type="int", choices=frozenset({0, 10, 30, 60, 1440}))
RETRY_COUNT = Rule(type="int", choices=frozenset({1, 2, 5}))
OVERWRITE_MODE = Rule(type="int", choices=frozenset({1, 2}))
TARGET_SELECTION = Rule(
    required=True, choices=frozenset({"ALL", "SPECIFIC", "GRAY", "GROUP"}), fold_case=True
)
TASK_STATUS = Rule(
    choices=frozenset(
        {"CONFIRM", "QUEUED", "NOTIFIED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "CANCELED"}
    ),
    fold_case=True,
)
UNFINISHED_STATUS = Rule(
    choices=frozenset({"CONFIRM", "QUEUED", "NOTIFIED", "IN_PROGRESS"}), fold_case=True
)
FILE_SUFFIXES = frozenset(
    {"bin", "dav", "apk", "tar", "gz", "tar.gz", "zip", "gzip", "tar.xz", "pack"}
)


def page_size(maximum: int, *, required: bool = True) -> Rule:
    return replace(PAGE, required=required, max=maximum)


def _tags_total(tags: list[dict[str, Any]]) -> str | None:
    total = sum(len(t.get("Key", "")) + len(t.get("Value", "")) for t in tags)
    if total > 4096:
        return "keys and values together exceed 4096 characters"
    return None


def _gray_percent(value: str) -> str | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return "must be a number"
    if not Decimal(0) < number <= Decimal(100):
        return "must be more than 0 and at most 100"
    return None


TAGS = Rule(
    max_items=10,
    unique_field="Key",
    fields={
        "Key": Rule(required=True, min_len=1, max_len=30, pattern=p(r"[A-Za-z0-9.]+")),
        "Value": Rule(required=True, min_len=1, max_len=1024),
    },
    check=_tags_total,
    code=BusinessCode.INVALID_TAG,
)
SRC_VERSIONS = replace(VERSION, max_items=10, unique=True)
FIRMWARE_ID = REQ
PRODUCT_KEY = REQ
JOB_ID = REQ

_JOB_POLICY: dict[str, Rule] = {
    "RetryInterval": RETRY_INTERVAL,
    "RetryCount": RETRY_COUNT,
    "TimeoutInMinutes": TIMEOUT,
    "MaximumPerMinute": MAX_PER_MINUTE,
    "OverwriteMode": OVERWRITE_MODE,
    "MultiModuleMode": BOOL,
    "NeedPush": BOOL,
    "NeedConfirm": BOOL,
    "DownloadProtocol": DOWNLOAD_PROTOCOL,
    "Tag": TAGS,
}

_MODULE: dict[str, Rule] = {
    "ProductKey": PRODUCT_KEY,
    "ModuleName": replace(MODULE_NAME, required=True),
    "AliasName": Rule(min_len=1, max_len=64),
    "Desc": Rule(max_len=100),
}

_DEVICE_REF: dict[str, Rule] = {"IotId": STR, "ProductKey": STR, "DeviceName": STR}

OTA_RULES: dict[str, dict[str, Rule]] = {
    "GenerateOTAUploadURL": {
        "FileSuffix": Rule(choices=frozenset(FILE_SUFFIXES), fold_case=True),
    },
    "CreateOTAFirmware": {
        "FirmwareName": replace(FIRMWARE_NAME, required=True),
        "DestVersion": replace(VERSION, required=True),
        # Optional in the metadata, but firmware belongs to a product (specs §2.1 notes).
        "ProductKey": PRODUCT_KEY,
        "FirmwareUrl": STR,
        "FirmwareSign": STR,
        "FirmwareSize": SIZE,
        "SignMethod": Rule(choices=frozenset({"MD5", "SHA256"}), fold_case=True),
        "Type": Rule(type="int", choices=frozenset({0, 1})),
        "SrcVersion": VERSION,
        "ModuleName": MODULE_NAME,
        "FirmwareDesc": Rule(max_len=100),
        "NeedToVerify": BOOL,
        "Udi": Rule(max_len=4096),
        "MultiFiles": Rule(
            max_items=20,
            unique_field="Name",
            fields={
                "Name": Rule(required=True, min_len=1, max_len=32),
                "Url": REQ,
                "Size": SIZE,
                "SignValue": STR,
                "FileMd5": STR,
            },
        ),
    },
    "QueryOTAFirmware": {"FirmwareId": FIRMWARE_ID},
    "ListOTAFirmware": {
        "CurrentPage": PAGE,
        "PageSize": page_size(100),
        "ProductKey": STR,
        "DestVersion": STR,
    },
    "ModifyOTAFirmware": {
        "FirmwareId": FIRMWARE_ID,
        "ProductKey": PRODUCT_KEY,
        "FirmwareName": FIRMWARE_NAME,
        "FirmwareDesc": Rule(max_len=100),
        "FirmwareUdi": Rule(max_len=4096),
    },
    "DeleteOTAFirmware": {"FirmwareId": FIRMWARE_ID},
    "CreateOTAVerifyJob": {
        "FirmwareId": FIRMWARE_ID,
        "ProductKey": PRODUCT_KEY,
        "TargetDeviceName": Rule(
            required=True,
            min_items=1,
            max_items=10,
            unique=True,
            code=BusinessCode.VERIFY_DEVICE_COUNT_EXCEEDED,
            duplicate_code=BusinessCode.DUPLICATE_DEVICE,
        ),
        "TimeoutInMinutes": TIMEOUT,
        "NeedPush": BOOL,
        "NeedConfirm": BOOL,
        "DownloadProtocol": DOWNLOAD_PROTOCOL,
        "Tag": TAGS,
    },
    "CreateOTAStaticUpgradeJob": {
        "FirmwareId": FIRMWARE_ID,
        "ProductKey": PRODUCT_KEY,
        "TargetSelection": TARGET_SELECTION,
        "SrcVersion": SRC_VERSIONS,
        "TargetDeviceName": Rule(
            max_items=200,
            unique=True,
            code=BusinessCode.DEVICE_COUNT_EXCEEDED,
            duplicate_code=BusinessCode.DUPLICATE_DEVICE,
        ),
        "DnListFileUrl": STR,
        "GrayPercent": Rule(pattern=p(r"\d{1,3}(\.\d{1,3})?"), check=_gray_percent),
        "GroupId": STR,
        "GroupType": Rule(choices=frozenset({"LINK_PLATFORM"})),
        "ScheduleTime": EPOCH_MS,
        "ScheduleFinishTime": EPOCH_MS,
        **_JOB_POLICY,
    },
    "CreateOTADynamicUpgradeJob": {
        "FirmwareId": FIRMWARE_ID,
        "ProductKey": PRODUCT_KEY,
        "SrcVersion": SRC_VERSIONS,
        "GroupId": STR,
        "GroupType": Rule(choices=frozenset({"LINK_PLATFORM_DYNAMIC"})),
        "DynamicMode": Rule(type="int", choices=frozenset({1, 2})),
        **_JOB_POLICY,
    },
    "UpdateOTAJob": {
        "JobId": JOB_ID,
        "UpgradeType": Rule(
            required=True, choices=frozenset({"STATIC", "DYNAMIC"}), fold_case=True
        ),
        "TargetSelection": TARGET_SELECTION,
        "MaximumPerMinute": replace(MAX_PER_MINUTE, required=True),
        "Tags": TAGS,
        "TimeoutInMinutes": TIMEOUT,
        "SrcVersionList": SRC_VERSIONS,
    },
    "QueryOTAJob": {"JobId": JOB_ID},
    "ListOTAJobByFirmware": {
        "FirmwareId": FIRMWARE_ID,
        "CurrentPage": PAGE,
        "PageSize": page_size(200),
    },
    "ListOTAJobByDevice": {
        "ProductKey": PRODUCT_KEY,
        "DeviceName": REQ,
        "FirmwareId": FIRMWARE_ID,
        "CurrentPage": PAGE,
        "PageSize": page_size(100),
    },
    "ListOTATaskByJob": {
        "JobId": JOB_ID,
        "TaskStatus": TASK_STATUS,
        "DeviceNames": Rule(max_items=50),
        "CurrentPage": replace(PAGE, required=False),
        "PageSize": page_size(100, required=False),
    },
    "ListOTAUnfinishedTaskByDevice": {
        **_DEVICE_REF,
        "ModuleName": STR,
        "TaskStatus": UNFINISHED_STATUS,
        "TaskStatusList": replace(UNFINISHED_STATUS, unique=True),
    },
    "CancelOTAStrategyByJob": {"JobId": JOB_ID},
    "CancelOTATaskByJob": {
        "JobId": JOB_ID,
        "CancelScheduledTask": BOOL,
        "CancelQueuedTask": BOOL,
        "CancelNotifiedTask": BOOL,
        "CancelInProgressTask": BOOL,
        "CancelUnconfirmedTask": BOOL,
    },
    "CancelOTATaskByDevice": {
        "ProductKey": PRODUCT_KEY,
        "FirmwareId": FIRMWARE_ID,
        "DeviceName": Rule(
            required=True,
            max_items=200,
            unique=True,
            code=BusinessCode.DEVICE_COUNT_EXCEEDED,
            duplicate_code=BusinessCode.DUPLICATE_DEVICE,
        ),
        "JobId": STR,
    },
    "ConfirmOTATask": {
        "TaskId": Rule(required=True, max_items=10, code=BusinessCode.TASK_COUNT_EXCEEDED),
    },
    "ReupgradeOTATask": {
        "JobId": JOB_ID,
        "TaskId": Rule(required=True, max_items=10, code=BusinessCode.TASK_COUNT_EXCEEDED),
    },
    "CreateOTAModule": _MODULE,
    "UpdateOTAModule": _MODULE,
    "DeleteOTAModule": {"ProductKey": PRODUCT_KEY, "ModuleName": REQ},
    "ListOTAModuleByProduct": {"ProductKey": PRODUCT_KEY},
    "ListOTAModuleVersionsByDevice": {
        **_DEVICE_REF,
        "CurrentPage": PAGE,
        "PageSize": page_size(200),
    },
}

REGISTRY_RULES: dict[str, dict[str, Rule]] = {
    "CreateProduct": {
        "ProductName": Rule(
            required=True, min_len=4, max_len=30, pattern=p(rf"[A-Za-z0-9_\-@(){CJK}]+")
        ),
        "NodeType": Rule(type="int", required=True, choices=frozenset({0, 1})),
        "DataFormat": Rule(type="int", choices=frozenset({0, 1})),
        "Description": Rule(max_len=100),
        "PublishAuto": BOOL,
    },
    "QueryProduct": {"ProductKey": PRODUCT_KEY},
    "RegisterDevice": {
        "ProductKey": PRODUCT_KEY,
        "DeviceName": DEVICE_NAME,
        "Nickname": Rule(min_len=4, max_len=64),
    },
    "BatchRegisterDevice": {
        "ProductKey": PRODUCT_KEY,
        "Count": Rule(type="int", required=True, min=1, max=10_000),
    },
    "BatchRegisterDeviceWithApplyId": {
        "ProductKey": PRODUCT_KEY,
        "ApplyId": Rule(type="int", required=True),
    },
    "BatchCheckDeviceNames": {
        "ProductKey": PRODUCT_KEY,
        "DeviceName": Rule(max_items=10_000),
        "DeviceNameList": Rule(max_items=10_000, fields={"DeviceName": REQ, "DeviceNickname": STR}),
    },
    "QueryBatchRegisterDeviceStatus": {
        "ProductKey": PRODUCT_KEY,
        "ApplyId": Rule(type="int", required=True),
    },
    "QueryPageByApplyId": {
        "ApplyId": Rule(type="int", required=True),
        "PageSize": page_size(50, required=False),
        "CurrentPage": replace(PAGE, required=False),
    },
    "BatchQueryDeviceDetail": {
        "ProductKey": PRODUCT_KEY,
        "DeviceName": Rule(required=True, max_items=100),
    },
    "CreateDeviceGroup": {
        "GroupName": Rule(required=True, min_len=4, max_len=30),
        "GroupDesc": Rule(max_len=100),
    },
    "QueryDeviceGroupInfo": {"GroupId": REQ},
    "DeleteDeviceGroup": {"GroupId": REQ},
    "BatchAddDeviceGroupRelations": {
        "GroupId": REQ,
        "Device": Rule(
            required=True,
            max_items=1000,
            fields={"ProductKey": REQ, "DeviceName": REQ},
        ),
    },
    "BatchDeleteDeviceGroupRelations": {
        "GroupId": REQ,
        "Device": Rule(
            required=True,
            max_items=1000,
            fields={"ProductKey": REQ, "DeviceName": REQ},
        ),
    },
    "QueryDeviceListByDeviceGroup": {
        "GroupId": REQ,
        "CurrentPage": replace(PAGE, required=False),
        "PageSize": page_size(200, required=False),
    },
    "QueryDevice": {
        "CurrentPage": replace(PAGE, required=False),
        "PageSize": page_size(50, required=False),
    },
}

RULES: dict[str, dict[str, Rule]] = {**OTA_RULES, **REGISTRY_RULES}

# Parameters every action takes. An instance's id names a tenant row (64 characters).
COMMON_RULES: dict[str, Rule] = {"IotInstanceId": Rule(max_len=64)}


def rule_for(action: str, param: str) -> Rule:
    return RULES.get(action, {}).get(param) or COMMON_RULES.get(param, STR)

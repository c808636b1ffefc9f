"""Hostile RPC parameters (issue 18): integers past their declared type, NUL in any
name or value, JSON read back from what a parameter names. Each is refused in
Alibaba's shapes (gateway 400 `InvalidParameter`, or the business error the
parameter's rule names) before any handler stores anything, on both databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from otahub.aliyun.protocol.errors import AliyunError, BusinessError, GatewayError
from otahub.aliyun.protocol.parser import merge_params, parse_call
from otahub.core.engine import Engine
from otahub.core.services import Services

from .hostile import form_for, send, upload_keys
from .test_rollout_inprocess import Console

INT64_PAST = "9223372036854775808"
INT64_MAX = "9223372036854775807"
NUL = "\x00"


def refusal(action: str, **params: str) -> AliyunError:
    with pytest.raises(AliyunError) as info:
        parse_call("POST", {"Action": action, "Version": "2018-01-20", **params})
    return info.value


PAGING = "iot.common.InvalidPageParams"
REQUIRED = {
    "CreateOTAFirmware": {"ProductKey": "p", "FirmwareName": "fw", "DestVersion": "1"},
    "CreateOTAStaticUpgradeJob": {"FirmwareId": "f", "ProductKey": "p", "TargetSelection": "ALL"},
}


@pytest.mark.parametrize(
    ("action", "params", "code"),
    [
        ("ListOTAFirmware", {"CurrentPage": INT64_PAST, "PageSize": "10"}, PAGING),
        ("ListOTAFirmware", {"CurrentPage": INT64_MAX, "PageSize": "10"}, PAGING),
        # CurrentPage is an Integer (Java int) in Alibaba's metadata.
        ("ListOTAFirmware", {"CurrentPage": "2147483648", "PageSize": "10"}, PAGING),
        ("ListOTAFirmware", {"CurrentPage": "\u0661", "PageSize": "10"}, PAGING),
        ("ListOTAFirmware", {"CurrentPage": "1", "PageSize": "0"}, PAGING),
        ("ListOTAFirmware", {"CurrentPage": "1", "PageSize": "-1"}, PAGING),
        ("ListOTAFirmware", {"CurrentPage": "1", "PageSize": "1" * 40}, PAGING),
        ("QueryPageByApplyId", {"ApplyId": INT64_PAST}, "InvalidParameter"),
        ("QueryPageByApplyId", {"ApplyId": "1e3"}, "InvalidParameter"),
        ("CreateOTAFirmware", {"FirmwareSize": INT64_PAST}, "InvalidParameter"),
        ("CreateOTAStaticUpgradeJob", {"ScheduleTime": INT64_MAX}, "iot.ota.InvalidScheduleTime"),
        ("CreateOTAStaticUpgradeJob", {"GrayPercent": "NaN"}, "InvalidParameter"),
        ("CreateOTAStaticUpgradeJob", {"GrayPercent": "\u0665\u0660"}, "InvalidParameter"),
        ("CreateOTAStaticUpgradeJob", {"TargetDeviceName.99999999999": "d1"}, "InvalidParameter"),
        ("CreateOTAStaticUpgradeJob", {"TargetDeviceName.999999": "d1"}, "InvalidParameter"),
    ],
)
def test_numbers_past_their_type_are_refused(
    action: str, params: dict[str, str], code: str
) -> None:
    error = refusal(action, **{**REQUIRED.get(action, {}), **params})
    assert error.code == code, error
    assert isinstance(error, BusinessError if code.startswith("iot.") else GatewayError)


@pytest.mark.parametrize(
    ("action", "params", "named"),
    [
        ("QueryDeviceDetail", {"ProductKey": "p", "DeviceName": f"dev{NUL}1"}, "DeviceName"),
        (
            "CreateOTAFirmware",
            {"ProductKey": "p", "FirmwareName": f"fw{NUL}", "DestVersion": "1"},
            "FirmwareName",
        ),
        ("QueryOTAJob", {"JobId": "j", "IotInstanceId": f"iot{NUL}"}, "IotInstanceId"),
        ("QueryOTAJob", {"JobId": "j", f"Extra{NUL}": "1"}, "Extra\\x00"),
        ("BatchQueryDeviceDetail", {"ProductKey": "p", "DeviceName.1": NUL}, "DeviceName.1"),
    ],
)
def test_nul_anywhere_is_an_invalid_parameter(
    action: str, params: dict[str, str], named: str
) -> None:
    error = refusal(action, **params)
    assert isinstance(error, GatewayError)
    assert (error.code, error.http_status) == ("InvalidParameter", 400)
    assert f'"{named}"' in error.message and "NUL" in error.message


def test_a_lone_surrogate_is_an_invalid_parameter() -> None:
    # The wire decodes with replacement characters; a caller of parse_call may not.
    error = refusal("QueryOTAJob", JobId="j\udc80")
    assert isinstance(error, GatewayError)
    assert (error.code, error.http_status) == ("InvalidParameter", 400)
    assert "Unicode" in error.message


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(GatewayError) as info:
        merge_params("JobId=a&JobId=b")
    assert info.value.code == "InvalidParameter"


# -- in process, on SQLite and PostgreSQL ----------------------------------------------


async def answer(console: Console, action: str, **params: str) -> tuple[int, dict[str, Any]]:
    response: httpx.Response = await send(console, action, **params)
    return response.status_code, response.json()


@pytest.mark.parametrize("page", [INT64_PAST, INT64_MAX])
async def test_current_page_past_its_type(console: Console, page: str) -> None:
    status, body = await answer(console, "ListOTAFirmware", CurrentPage=page, PageSize="10")
    assert (status, body["Success"], body["Code"]) == (200, False, "iot.common.InvalidPageParams")


async def test_nul_is_refused_before_any_handler(console: Console) -> None:
    pk = (await console.ok("CreateProduct", ProductName="meters", NodeType=0))["ProductKey"]
    refused = [
        ("RegisterDevice", {"ProductKey": pk, "DeviceName": "dev-1", "Nickname": f"n{NUL}ck"}),
        ("QueryDeviceDetail", {"ProductKey": pk, "DeviceName": f"dev{NUL}1"}),
        ("QueryOTAFirmware", {"FirmwareId": f"f{NUL}"}),
        ("CreateOTAFirmware", {"ProductKey": pk, "FirmwareName": f"f{NUL}", "DestVersion": "1"}),
        ("CreateOTAModule", {"ProductKey": pk, "ModuleName": "m1", "Desc": f"d{NUL}"}),
        ("CreateDeviceGroup", {"GroupName": f"group{NUL}"}),
        ("QueryOTAJob", {"JobId": "j", "IotInstanceId": NUL}),
    ]
    for action, params in refused:
        status, body = await answer(console, action, **params)
        assert (status, body["Code"]) == (400, "InvalidParameter"), (action, body)
        assert "NUL" in body["Message"]
    # Nothing of the refused calls was stored.
    status, body = await answer(console, "QueryDeviceDetail", ProductKey=pk, DeviceName="dev-1")
    assert body["Code"] == "iot.device.NotExistedDevice"
    modules = (await console.ok("ListOTAModuleByProduct", ProductKey=pk))["Data"]
    assert "m1" not in [m["ModuleName"] for m in modules]


async def _firmware(console: Console) -> tuple[str, str]:
    pk = (await console.ok("CreateProduct", ProductName="meters", NodeType=0))["ProductKey"]
    await console.ok("RegisterDevice", ProductKey=pk, DeviceName="dev-1")
    url = await console.upload(b"image")
    created = await console.ok(
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName="fw",
        DestVersion="2.0",
        FirmwareUrl=url,
        NeedToVerify="false",
    )
    return pk, created["Data"]["FirmwareId"]


async def test_schedule_time_past_any_date(console: Console) -> None:
    pk, fid = await _firmware(console)
    status, body = await answer(
        console,
        "CreateOTAStaticUpgradeJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="ALL",
        ScheduleTime=INT64_MAX,
    )
    assert (status, body["Code"]) == (200, "iot.ota.InvalidScheduleTime")
    jobs = await console.ok("ListOTAJobByFirmware", FirmwareId=fid, CurrentPage=1, PageSize=10)
    assert jobs["Total"] == 0


async def test_task_id_past_64_bits(console: Console, engine: Engine) -> None:
    pk, fid = await _firmware(console)
    job = await console.ok(
        "CreateOTAStaticUpgradeJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="SPECIFIC",
        TargetDeviceName=["dev-1"],
        NeedPush="false",
    )
    await engine.tick()
    job_id = job["Data"]["JobId"]
    status, body = await answer(console, "ConfirmOTATask", **{"TaskId.1": f"{job_id}-{'z' * 14}"})
    assert (status, body["Code"]) == (200, "iot.ota.TaskNotFound")


async def test_deep_json_behind_an_apply_id(
    console: Console, services: Services, tmp_path: Path
) -> None:
    """BatchRegisterDeviceWithApplyId reads back the JSON that ApplyId names, from the
    account's upload bucket, where the account may put anything."""
    pk = (await console.ok("CreateProduct", ProductName="meters", NodeType=0))["ProductKey"]
    tenant = (await services.accounts.tenant("123456789012")).id
    hostile = {
        "101": "[" * 5000 + "]" * 5000,
        "102": json.dumps({"names": [{"x": 1}], "nicknames": {}, "tenant": tenant}),
        "103": json.dumps({"names": ["ok-device"], "nicknames": [], "tenant": tenant}),
    }
    for apply_id, document in hostile.items():
        key = f"applications/{pk}/{apply_id}.json"
        posted = await console.oss.post(
            "/oss", data=form_for(key), files={"file": ("a.json", document.encode())}
        )
        assert posted.status_code == 200, posted.text
        status, body = await answer(
            console, "BatchRegisterDeviceWithApplyId", ProductKey=pk, ApplyId=apply_id
        )
        assert (status, body["Code"]) == (200, "iot.device.DeviceApplyIsNotFound"), body
    assert len(await upload_keys(services, tmp_path)) == len(hostile)
    status, body = await answer(console, "QueryDeviceDetail", ProductKey=pk, DeviceName="ok-device")
    assert body["Code"] == "iot.device.NotExistedDevice"


async def test_a_device_list_file_with_nul(console: Console) -> None:
    pk, fid = await _firmware(console)
    data = (await console.ok("GenerateDeviceNameListURL"))["Data"]
    form = {
        "key": data["Key"],
        "policy": data["Policy"],
        "OSSAccessKeyId": data["AccessKeyId"],
        "signature": data["Signature"],
    }
    listed = b"dev-1\ndev\x00-2\n"
    posted = await console.oss.post("/oss", data=form, files={"file": ("list.csv", listed)})
    assert posted.status_code == 204, posted.text
    status, body = await answer(
        console,
        "CreateOTAStaticUpgradeJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="SPECIFIC",
        DnListFileUrl=data["FileUrl"],
    )
    assert (status, body["Code"]) == (200, "iot.ota.DeviceListFileInvalid")
    jobs = await console.ok("ListOTAJobByFirmware", FirmwareId=fid, CurrentPage=1, PageSize=10)
    assert jobs["Total"] == 0


@pytest.mark.parametrize("path", ["a%00b.bin", "a%01b.bin", "%ED%A0%80.bin"])
async def test_a_firmware_url_naming_no_storable_key(console: Console, path: str) -> None:
    pk = (await console.ok("CreateProduct", ProductName="meters", NodeType=0))["ProductKey"]
    status, body = await answer(
        console,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName="fw",
        DestVersion="2.0",
        FirmwareUrl=f"http://otahub.test/oss/ota/{path}",
    )
    assert (status, body["Code"]) == (200, "iot.ota.FirmwareUrlInvalid")


async def test_an_instance_id_longer_than_a_tenant_row_holds(console: Console) -> None:
    status, body = await answer(console, "QueryOTAJob", JobId="j", IotInstanceId="i" * 65)
    assert (status, body["Code"]) == (400, "InvalidParameter")
    assert "IotInstanceId" in body["Message"]
    status, body = await answer(console, "QueryOTAJob", JobId="j", IotInstanceId="i" * 64)
    assert (status, body["Code"]) == (200, "iot.ota.JobNotFound")

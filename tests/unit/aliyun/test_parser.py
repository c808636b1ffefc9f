"""Raw parameters -> typed action parameters."""

from __future__ import annotations

from typing import Any

import pytest
from aliyunsdkiot.request.v20180120.BatchCheckDeviceNamesRequest import (
    BatchCheckDeviceNamesRequest,
)
from aliyunsdkiot.request.v20180120.CreateOTAStaticUpgradeJobRequest import (
    CreateOTAStaticUpgradeJobRequest,
)
from aliyunsdkiot.request.v20180120.CreateOTAVerifyJobRequest import CreateOTAVerifyJobRequest
from aliyunsdkiot.request.v20180120.UpdateOTAJobRequest import UpdateOTAJobRequest

from otahub.aliyun.protocol.errors import AliyunError, BusinessError, GatewayError
from otahub.aliyun.protocol.parser import merge_params, parse_call, response_format

from .sdk import sign_offline

NAMES = [f"dev{i:02d}" for i in range(1, 12)]


def call(action: str, **params: str) -> Any:
    raw = {"Action": action, "Version": "2018-01-20", **params}
    return parse_call("POST", raw)


def sdk_call(request: Any, fmt: str = "JSON") -> Any:
    signed = sign_offline(request, fmt=fmt)
    raw = merge_params(signed.query, signed.body, signed.content_type)
    return parse_call(signed.method, raw)


def error_of(action: str, **params: str) -> AliyunError:
    with pytest.raises(AliyunError) as info:
        call(action, **params)
    return info.value


def verify_job(names: list[str]) -> CreateOTAVerifyJobRequest:
    request = CreateOTAVerifyJobRequest()
    request.set_FirmwareId("fw1")
    request.set_ProductKey("a1pk")
    request.set_TargetDeviceNames(names)
    request.set_Tags([{"Key": "k1", "Value": "v1"}, {"Key": "k.2", "Value": "v 2"}])
    request.set_NeedPush(True)
    request.set_NeedConfirm(False)
    request.set_TimeoutInMinutes(60)
    request.set_DownloadProtocol("HTTPS")
    return request


def test_verify_job_from_the_sdk() -> None:
    parsed = sdk_call(verify_job(NAMES[:10]))
    assert parsed.action == "CreateOTAVerifyJob"
    assert parsed.format == "JSON"
    assert parsed.region_id == "cn-shanghai"
    assert parsed.params == {
        "FirmwareId": "fw1",
        "ProductKey": "a1pk",
        "TargetDeviceName": NAMES[:10],
        "Tag": [{"Key": "k1", "Value": "v1"}, {"Key": "k.2", "Value": "v 2"}],
        "NeedPush": True,
        "NeedConfirm": False,
        "TimeoutInMinutes": 60,
        "DownloadProtocol": "HTTPS",
    }


def test_verify_job_with_eleven_devices_is_refused() -> None:
    with pytest.raises(BusinessError) as info:
        sdk_call(verify_job(NAMES))
    assert info.value.code == "iot.ota.VerifyDeviceCountExceeded"


def test_eleven_items_keep_numeric_order() -> None:
    request = CreateOTAStaticUpgradeJobRequest()
    request.set_FirmwareId("fw1")
    request.set_ProductKey("a1pk")
    request.set_TargetSelection("SPECIFIC")
    request.set_TargetDeviceNames(NAMES)
    request.set_SrcVersions(["1.0.0", "1.0.1"])
    request.set_MultiModuleMode(True)
    request.set_GrayPercent(None)  # the SDK sends the text "None"
    parsed = sdk_call(request)
    assert parsed.params["TargetDeviceName"] == NAMES  # dev10 and dev11 after dev09
    assert parsed.params["SrcVersion"] == ["1.0.0", "1.0.1"]
    assert parsed.params["MultiModuleMode"] is True
    assert "GrayPercent" not in parsed.params


def test_update_job_tags_prefix_and_enum_case() -> None:
    request = UpdateOTAJobRequest()
    request.set_JobId("job1")
    request.set_UpgradeType("dynamic")
    request.set_TargetSelection("ALL")
    request.set_MaximumPerMinute(1000)
    request.set_Tagss([{"Key": "a", "Value": "1"}])
    request.set_SrcVersionLists(["1.0"])
    parsed = sdk_call(request, fmt="XML")
    assert parsed.format == "XML"
    assert parsed.params == {
        "JobId": "job1",
        "UpgradeType": "DYNAMIC",
        "TargetSelection": "ALL",
        "MaximumPerMinute": 1000,
        "Tags": [{"Key": "a", "Value": "1"}],
        "SrcVersionList": ["1.0"],
    }


def test_body_lists_are_parsed() -> None:
    request = BatchCheckDeviceNamesRequest()
    request.set_ProductKey("a1pk")
    request.set_DeviceNames(["dev one", "dev*2"])
    request.set_DeviceNameLists(
        [{"DeviceName": "dev3"}, {"DeviceName": "dev4", "DeviceNickname": "n"}]
    )
    parsed = sdk_call(request)
    assert parsed.params["DeviceName"] == ["dev one", "dev*2"]
    assert parsed.params["DeviceNameList"] == [
        {"DeviceName": "dev3"},
        {"DeviceName": "dev4", "DeviceNickname": "n"},
    ]


@pytest.mark.parametrize("text", ["True", "true", "TRUE", "tRuE"])
def test_booleans_ignore_case(text: str) -> None:
    params = call("CancelOTATaskByJob", JobId="j", CancelQueuedTask=text).params
    assert params["CancelQueuedTask"] is True


def test_bad_boolean() -> None:
    error = error_of("CancelOTATaskByJob", JobId="j", CancelQueuedTask="yes")
    assert isinstance(error, GatewayError) and error.code == "InvalidParameter"
    assert "CancelQueuedTask" in error.message


@pytest.mark.parametrize("text", ["None", ""])
def test_none_and_empty_are_absent(text: str) -> None:
    assert (
        "TimeoutInMinutes"
        not in call(
            "CreateOTAVerifyJob",
            FirmwareId="f",
            ProductKey="p",
            **{"TargetDeviceName.1": "d1"},
            TimeoutInMinutes=text,
        ).params
    )


def test_required_missing() -> None:
    error = error_of("QueryOTAFirmware")
    assert isinstance(error, GatewayError)
    assert (error.code, error.http_status) == ("MissingFirmwareId", 400)
    assert error.message == "FirmwareId is mandatory for this action."


def test_required_none_is_missing() -> None:
    assert error_of("QueryOTAFirmware", FirmwareId="None").code == "MissingFirmwareId"


def test_required_list_missing() -> None:
    error = error_of("ConfirmOTATask")
    assert error.code == "MissingTaskId"


def test_list_gap_is_refused() -> None:
    error = error_of("ConfirmOTATask", **{"TaskId.1": "a", "TaskId.3": "c"})
    assert error.code == "InvalidParameter" and "TaskId.2" in error.message


@pytest.mark.parametrize("key", ["TaskId.0", "TaskId.x", "TaskId.01"])
def test_bad_list_index(key: str) -> None:
    assert error_of("ConfirmOTATask", **{key: "a"}).code == "InvalidParameter"


def test_wrong_shape_is_refused() -> None:
    assert error_of("ConfirmOTATask", TaskId="a").code == "InvalidParameter"
    assert error_of("QueryOTAFirmware", **{"FirmwareId.1": "a"}).code == "InvalidParameter"
    error = error_of("CreateOTAVerifyJob", **{"Tag.1.Colour": "red"})
    assert error.code == "InvalidParameter"


def test_unknown_parameters_are_ignored() -> None:
    assert call("QueryOTAJob", JobId="j", Whatever="x").params == {"JobId": "j"}


def test_ints() -> None:
    params = call("ListOTAFirmware", CurrentPage="2", PageSize="100").params
    assert params == {"CurrentPage": 2, "PageSize": 100}


@pytest.mark.parametrize(("page", "size"), [("0", "10"), ("1", "101"), ("1.5", "10"), ("x", "10")])
def test_bad_paging_is_a_business_error(page: str, size: str) -> None:
    error = error_of("ListOTAFirmware", CurrentPage=page, PageSize=size)
    assert isinstance(error, BusinessError)
    assert error.code == "iot.common.InvalidPageParams"


def test_int_range_and_choices() -> None:
    base = {"FirmwareId": "f", "ProductKey": "p", "TargetSelection": "ALL"}
    assert error_of("CreateOTAStaticUpgradeJob", **base, RetryInterval="15").code == (
        "InvalidParameter"
    )
    assert error_of("CreateOTAStaticUpgradeJob", **base, TimeoutInMinutes="1441").code == (
        "InvalidParameter"
    )
    assert error_of("CreateOTAStaticUpgradeJob", **{**base, "TargetSelection": "SOME"}).code == (
        "InvalidParameter"
    )
    ok = call("CreateOTAStaticUpgradeJob", **base, RetryInterval="30", RetryCount="2").params
    assert (ok["RetryInterval"], ok["RetryCount"]) == (30, 2)


def test_patterns_and_lengths() -> None:
    good = call(
        "CreateOTAFirmware",
        FirmwareName="固件-1_(a)",
        DestVersion="1.0.0-rc.1",
        ProductKey="p",
        SignMethod="md5",
    ).params
    assert good["SignMethod"] == "MD5"
    assert (
        error_of("CreateOTAFirmware", FirmwareName="-bad", DestVersion="1", ProductKey="p").code
        == "InvalidParameter"
    )
    assert (
        error_of("CreateOTAFirmware", FirmwareName="x" * 41, DestVersion="1", ProductKey="p").code
        == "InvalidParameter"
    )
    assert (
        error_of("CreateOTAFirmware", FirmwareName="ok", DestVersion="1 0", ProductKey="p").code
        == "InvalidParameter"
    )


def test_tag_rules() -> None:
    base = {"FirmwareId": "f", "ProductKey": "p", "TargetDeviceName.1": "d"}
    assert error_of("CreateOTAVerifyJob", **base, **{"Tag.1.Key": "k"}).code == "iot.ota.InvalidTag"
    assert error_of(
        "CreateOTAVerifyJob", **base, **{"Tag.1.Key": "bad key", "Tag.1.Value": "v"}
    ).code == ("iot.ota.InvalidTag")
    dup = {"Tag.1.Key": "k", "Tag.1.Value": "v", "Tag.2.Key": "k", "Tag.2.Value": "w"}
    assert error_of("CreateOTAVerifyJob", **base, **dup).code == "iot.ota.InvalidTag"
    big = {
        f"Tag.{i}.{f}": ("k" if f == "Key" else "v" * 1000) + str(i)
        for i in range(1, 6)
        for f in ("Key", "Value")
    }
    assert error_of("CreateOTAVerifyJob", **base, **big).code == "iot.ota.InvalidTag"


def test_duplicate_device_names() -> None:
    error = error_of(
        "CreateOTAVerifyJob",
        FirmwareId="f",
        ProductKey="p",
        **{"TargetDeviceName.1": "d", "TargetDeviceName.2": "d"},
    )
    assert error.code == "iot.ota.DuplicateDevice"


def test_gray_percent() -> None:
    base = {"FirmwareId": "f", "ProductKey": "p", "TargetSelection": "GRAY"}
    assert (
        call("CreateOTAStaticUpgradeJob", **base, GrayPercent="33.333").params["GrayPercent"]
        == "33.333"
    )
    for bad in ("0", "100.5", "33.3333", "abc"):
        assert error_of("CreateOTAStaticUpgradeJob", **base, GrayPercent=bad).code == (
            "InvalidParameter"
        ), bad


def test_unknown_action_and_version() -> None:
    error = error_of("DescribeInstances")
    assert isinstance(error, GatewayError)
    assert (error.code, error.http_status) == ("InvalidApi.NotFound", 404)
    with pytest.raises(GatewayError) as info:
        parse_call("POST", {"Action": "QueryOTAJob", "Version": "2017-04-20", "JobId": "j"})
    assert info.value.code == "InvalidVersion"
    with pytest.raises(GatewayError) as info:
        parse_call("POST", {"Version": "2018-01-20"})
    assert info.value.code == "MissingAction"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("XML", "XML"),
        ("xml", "XML"),
        ("JSON", "JSON"),
        ("None", "JSON"),
        ("", "JSON"),
        ("yaml", "JSON"),
    ],
)
def test_response_format(value: str, expected: str) -> None:
    assert response_format({"Format": value}) == expected
    assert response_format({}) == "JSON"


def test_duplicate_raw_parameter_is_refused() -> None:
    with pytest.raises(GatewayError):
        merge_params("JobId=a&JobId=b")
    with pytest.raises(GatewayError):
        merge_params("JobId=a", b"JobId=b", "application/x-www-form-urlencoded")


def test_non_form_body_is_ignored() -> None:
    assert merge_params("A=1", b'{"B": 2}', "application/json") == {"A": "1"}


def test_order_is_by_index_not_by_arrival() -> None:
    keys = sorted(f"TargetDeviceName.{i}" for i in range(1, 12))  # .1, .10, .11, .2, ...
    raw = {key: f"dev{int(key.rsplit('.', 1)[1]):02d}" for key in reversed(keys)}
    params = call(
        "CreateOTAStaticUpgradeJob",
        FirmwareId="f",
        ProductKey="p",
        TargetSelection="SPECIFIC",
        **raw,
    ).params
    assert params["TargetDeviceName"] == NAMES

"""Verify, static and dynamic jobs and their tasks through aliyun-python-sdk-iot.

No device takes part here (the device side has its own tests): tasks stay where the
control plane puts them, which is what these calls decide.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient

from tests.integration.aliyun.conftest import (
    call,
    devices,
    firmware,
    ok,
    product,
    refused,
    tasks,
    unique,
    upload,
    wait_for,
)


def _statuses(client: AcsClient, job_id: str, count: int) -> dict[str, str]:
    found = wait_for(lambda: len(tasks(client, job_id, PageSize=100)) == count)
    assert found, tasks(client, job_id, PageSize=100)
    return {t["DeviceName"]: t["TaskStatus"] for t in tasks(client, job_id, PageSize=100)}


def _firmware_status(client: AcsClient, fid: str) -> int:
    status: int = ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]["Status"]
    return status


def test_verify_job_tasks_confirm_cancel_and_reupgrade(client: AcsClient) -> None:
    pk = product(client)
    names = devices(client, pk, 3)
    fid = firmware(client, pk)
    assert _firmware_status(client, fid) == 0

    tags = [{"Key": "region", "Value": "north"}, {"Key": "batch.no", "Value": "7"}]
    job_id = ok(
        client,
        "CreateOTAVerifyJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetDeviceNames=names,
        TimeoutInMinutes=30,
        NeedConfirm=True,
        NeedPush=False,
        Tags=tags,
    )["Data"]["JobId"]
    assert _firmware_status(client, fid) == 2

    job = ok(client, "QueryOTAJob", JobId=job_id)["Data"]
    assert job["JobType"] == "VERFIY_FIRMWARE"
    assert job["JobStatus"] == "IN_PROGRESS"
    assert job["TargetSelection"] == "SPECIFIC"
    assert job["TimeoutInMinutes"] == 30
    assert job["NeedConfirm"] is True and job["NeedPush"] is False
    assert job["FirmwareId"] == fid and job["DestVersion"] == "2.0.0"
    assert job["Tags"]["OtaTagDTO"] == tags

    assert _statuses(client, job_id, 3) == dict.fromkeys(names, "CONFIRM")
    listed = tasks(client, job_id, PageSize=100)
    assert {t["FirmwareId"] for t in listed} == {fid}
    assert {t["Timeout"] for t in listed} == {"30"}
    by_name = {t["DeviceName"]: t for t in listed}

    # Verify twice is refused; so is any batch job before the firmware is verified.
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.ota.FirmwareVerifyStatusError",
        FirmwareId=fid,
        ProductKey=pk,
        TargetDeviceNames=[unique("x-")],
    )
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.FirmwareVerifyStatusError",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="ALL",
    )
    refused(
        client,
        "CreateOTADynamicUpgradeJob",
        "iot.ota.FirmwareVerifyStatusError",
        FirmwareId=fid,
        ProductKey=pk,
        SrcVersions=["1.0.0"],
    )

    confirm = [by_name[names[0]]["TaskId"], by_name[names[1]]["TaskId"]]
    ok(client, "ConfirmOTATask", TaskIds=confirm)
    statuses = {t["DeviceName"]: t["TaskStatus"] for t in tasks(client, job_id, PageSize=100)}
    assert statuses == {names[0]: "QUEUED", names[1]: "QUEUED", names[2]: "CONFIRM"}
    refused(client, "ConfirmOTATask", "iot.ota.TaskStatusError", TaskIds=confirm[:1])
    refused(client, "ConfirmOTATask", "iot.ota.TaskNotFound", TaskIds=["nosuchtask"])

    only_confirm = tasks(client, job_id, TaskStatus="CONFIRM")
    assert [t["DeviceName"] for t in only_confirm] == [names[2]]
    picked = tasks(client, job_id, DeviceNamess=[names[1]])
    assert [t["DeviceName"] for t in picked] == [names[1]]

    unfinished = ok(client, "ListOTAUnfinishedTaskByDevice", ProductKey=pk, DeviceName=names[0])[
        "Data"
    ]["SimpleOTATaskInfo"]
    assert [(t["JobId"], t["TaskStatus"], t["ModuleName"]) for t in unfinished] == [
        (job_id, "QUEUED", "default")
    ]
    assert (
        ok(
            client,
            "ListOTAUnfinishedTaskByDevice",
            ProductKey=pk,
            DeviceName=names[0],
            TaskStatus="CONFIRM",
        )["Data"]["SimpleOTATaskInfo"]
        == []
    )

    by_fw = ok(client, "ListOTAJobByFirmware", FirmwareId=fid, CurrentPage=1, PageSize=10)
    assert [j["JobId"] for j in by_fw["Data"]["SimpleOTAJobInfo"]] == [job_id]
    assert by_fw["Total"] == 1
    by_dev = ok(
        client,
        "ListOTAJobByDevice",
        FirmwareId=fid,
        ProductKey=pk,
        DeviceName=names[2],
        CurrentPage=1,
        PageSize=10,
    )
    assert [j["JobType"] for j in by_dev["Data"]["SimpleOTAJobInfo"]] == ["VERFIY_FIRMWARE"]

    refused(client, "CancelOTATaskByJob", "iot.ota.CancelFlagRequired", JobId=job_id)
    refused(
        client, "ReupgradeOTATask", "iot.ota.TaskStatusError", JobId=job_id, TaskIds=confirm[:1]
    )
    ok(client, "CancelOTATaskByJob", JobId=job_id, CancelQueuedTask=True)
    statuses = {t["DeviceName"]: t["TaskStatus"] for t in tasks(client, job_id, PageSize=100)}
    # Without CancelUnconfirmedTask, CancelQueuedTask takes the CONFIRM task too.
    assert set(statuses.values()) == {"CANCELED"}

    # Every verify task ended without success: the job completes, verification failed.
    assert wait_for(
        lambda: ok(client, "QueryOTAJob", JobId=job_id)["Data"]["JobStatus"] == "COMPLETED"
    )
    assert _firmware_status(client, fid) == 3

    ok(client, "ReupgradeOTATask", JobId=job_id, TaskIds=confirm[:1])
    again = {t["DeviceName"]: t["TaskStatus"] for t in tasks(client, job_id, PageSize=100)}
    assert again[names[0]] == "QUEUED"
    assert ok(client, "QueryOTAJob", JobId=job_id)["Data"]["JobStatus"] == "IN_PROGRESS"
    assert _firmware_status(client, fid) == 2
    other = firmware(client, pk, version="2.0.1")
    other_job = ok(
        client, "CreateOTAVerifyJob", FirmwareId=other, ProductKey=pk, TargetDeviceNames=[names[2]]
    )["Data"]["JobId"]
    refused(
        client, "ReupgradeOTATask", "iot.ota.TaskNotInJob", JobId=other_job, TaskIds=confirm[:1]
    )

    # Once that run fails too, verification may be tried again, on devices without a
    # pending task.
    ok(client, "CancelOTATaskByJob", JobId=job_id, CancelQueuedTask=True)
    assert wait_for(lambda: _firmware_status(client, fid) == 3)
    assert _statuses(client, other_job, 1) == {names[2]: "QUEUED"}
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.ota.DeviceInOtherTask",
        FirmwareId=fid,
        ProductKey=pk,
        TargetDeviceNames=[names[2]],
    )
    ok(client, "CreateOTAVerifyJob", FirmwareId=fid, ProductKey=pk, TargetDeviceNames=[names[1]])
    assert _firmware_status(client, fid) == 2


def test_verify_job_refusals(client: AcsClient) -> None:
    pk = product(client)
    names = devices(client, pk, 2)
    fid = firmware(client, pk)
    base: dict[str, Any] = {"FirmwareId": fid, "ProductKey": pk}

    eleven = [f"dev-{i:04d}" for i in range(11)]
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.ota.VerifyDeviceCountExceeded",
        TargetDeviceNames=eleven,
        **base,
    )
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.ota.DuplicateDevice",
        TargetDeviceNames=[names[0], names[0]],
        **base,
    )
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.device.NotExistedDevice",
        TargetDeviceNames=[names[0], "not-registered"],
        **base,
    )
    bad_tags = [
        [{"Key": "bad-key", "Value": "v"}],
        [{"Key": "k", "Value": ""}],
        [{"Key": f"k{i}", "Value": "v"} for i in range(11)],
        [
            {"Key": "k1", "Value": "v" * 1024},
            {"Key": "k2", "Value": "v" * 1024},
            {"Key": "k3", "Value": "v" * 1024},
            {"Key": "k4", "Value": "v" * 1024},
        ],
        [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}],
    ]
    for tags in bad_tags:
        refused(
            client,
            "CreateOTAVerifyJob",
            "iot.ota.InvalidTag",
            TargetDeviceNames=names,
            Tags=tags,
            **base,
        )
    for timeout in (0, 1441):
        with pytest.raises(ServerException) as raised:
            call(
                client,
                "CreateOTAVerifyJob",
                TargetDeviceNames=names,
                TimeoutInMinutes=timeout,
                **base,
            )
        assert raised.value.get_error_code() == "InvalidParameter"
        assert raised.value.get_http_status() == 400
        assert "TimeoutInMinutes" in raised.value.get_error_msg()
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.ota.FirmwareNotFound",
        FirmwareId="nosuchfw",
        ProductKey=pk,
        TargetDeviceNames=names,
    )
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.ota.ProductKeyMismatch",
        FirmwareId=fid,
        ProductKey=product(client),
        TargetDeviceNames=names,
    )
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.prod.NotExistedProduct",
        FirmwareId=fid,
        ProductKey="a1nosuchprod",
        TargetDeviceNames=names,
    )
    with pytest.raises(ServerException) as missing:
        call(client, "CreateOTAVerifyJob", FirmwareId=fid, ProductKey=pk)
    assert missing.value.get_error_code() == "MissingTargetDeviceName"

    # Nothing above changed the firmware: a good verify job still goes through.
    assert _firmware_status(client, fid) == 0
    ok(
        client,
        "CreateOTAVerifyJob",
        TargetDeviceNames=names,
        Tags=[{"Key": "k", "Value": "v"}],
        TimeoutInMinutes=1440,
        DownloadProtocol="MQTT",
        **base,
    )


def test_mqtt_download_needs_one_small_file(client: AcsClient) -> None:
    pk = product(client)
    names = devices(client, pk, 1)
    big = b"\0" * (16 * 1024 * 1024 + 1)
    big_fid = firmware(client, pk, big)
    refused(
        client,
        "CreateOTAVerifyJob",
        "iot.ota.DownloadProtocolNotSupported",
        FirmwareId=big_fid,
        ProductKey=pk,
        TargetDeviceNames=names,
        DownloadProtocol="MQTT",
    )
    ok(
        client,
        "CreateOTAVerifyJob",
        FirmwareId=big_fid,
        ProductKey=pk,
        TargetDeviceNames=names,
        DownloadProtocol="HTTPS",
    )

    files = [{"Name": "a", "Url": upload(client, b"a")}, {"Name": "b", "Url": upload(client, b"b")}]
    multi = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="3.0",
        MultiFiless=files,
        NeedToVerify=False,
    )["Data"]["FirmwareId"]
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.DownloadProtocolNotSupported",
        FirmwareId=multi,
        ProductKey=pk,
        TargetSelection="ALL",
        DownloadProtocol="MQTT",
    )


def test_static_jobs(client: AcsClient) -> None:
    pk = product(client)
    names = devices(client, pk, 4)
    fid = firmware(client, pk, need_to_verify=False)
    base: dict[str, Any] = {"FirmwareId": fid, "ProductKey": pk}

    everyone = ok(
        client,
        "CreateOTAStaticUpgradeJob",
        TargetSelection="ALL",
        NeedPush=False,
        MaximumPerMinute=100,
        **base,
    )["Data"]["JobId"]
    assert _statuses(client, everyone, 4) == dict.fromkeys(names, "QUEUED")
    job = ok(client, "QueryOTAJob", JobId=everyone)["Data"]
    assert (job["JobType"], job["SelectionType"], job["TargetSelection"]) == (
        "UPGRADE_FIRMWARE",
        "STATIC",
        "ALL",
    )
    assert job["MaximumPerMinute"] == 100
    # Every device has a pending task now: a SPECIFIC job on one of them is refused...
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.DeviceInOtherTask",
        TargetSelection="SPECIFIC",
        TargetDeviceNames=names[:1],
        **base,
    )
    # ... unless it overwrites the pending task.
    specific = ok(
        client,
        "CreateOTAStaticUpgradeJob",
        TargetSelection="SPECIFIC",
        TargetDeviceNames=names[:2],
        OverwriteMode=2,
        NeedPush=False,
        **base,
    )["Data"]["JobId"]
    assert _statuses(client, specific, 2) == dict.fromkeys(names[:2], "QUEUED")
    old = {t["DeviceName"]: t["TaskStatus"] for t in tasks(client, everyone, PageSize=100)}
    assert old == {
        names[0]: "CANCELED",
        names[1]: "CANCELED",
        names[2]: "QUEUED",
        names[3]: "QUEUED",
    }

    ok(client, "CancelOTATaskByDevice", **base, DeviceNames=[names[0]])
    now = {t["DeviceName"]: t["TaskStatus"] for t in tasks(client, specific, PageSize=100)}
    assert now == {names[0]: "CANCELED", names[1]: "QUEUED"}
    ok(client, "CancelOTATaskByJob", JobId=everyone, CancelQueuedTask=True)

    gray = ok(
        client,
        "CreateOTAStaticUpgradeJob",
        TargetSelection="GRAY",
        GrayPercent="50",
        NeedPush=False,
        OverwriteMode=2,
        **base,
    )["Data"]["JobId"]
    assert len(_statuses(client, gray, 2)) == 2
    assert ok(client, "QueryOTAJob", JobId=gray)["Data"]["GrayPercent"] == "50"
    # OverwriteMode 2 on a fleet-wide job cancels its targets' unstarted tasks elsewhere.
    assert {t["TaskStatus"] for t in tasks(client, specific)} == {"CANCELED"}
    busy = {n for n, st in _statuses(client, gray, 2).items() if st == "QUEUED"}
    busy |= {t["DeviceName"] for t in tasks(client, specific) if t["TaskStatus"] == "QUEUED"}
    # OverwriteMode 1 (the default) leaves devices with a pending task out.
    rest = ok(client, "CreateOTAStaticUpgradeJob", TargetSelection="ALL", NeedPush=False, **base)
    free = sorted(set(names) - busy)
    assert free and len(free) < len(names)
    assert sorted(_statuses(client, rest["Data"]["JobId"], len(free))) == free

    invalid: list[dict[str, Any]] = [
        {"TargetSelection": "SPECIFIC", "SrcVersions": ["1.0"], "TargetDeviceNames": names[:1]},
        {"TargetSelection": "SPECIFIC"},
        {"TargetSelection": "ALL", "TargetDeviceNames": names[:1]},
        {"TargetSelection": "GRAY"},
        {"TargetSelection": "GROUP"},
        {"TargetSelection": "GROUP", "SrcVersions": ["1.0"]},
    ]
    for params in invalid:
        refused(
            client, "CreateOTAStaticUpgradeJob", "iot.ota.InvalidTargetSelection", **params, **base
        )
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.InvalidRetryPolicy",
        TargetSelection="ALL",
        RetryInterval=10,
        **base,
    )
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.InvalidRetryPolicy",
        TargetSelection="ALL",
        RetryInterval=60,
        RetryCount=2,
        TimeoutInMinutes=30,
        **base,
    )
    in_past = int((time.time() - 60) * 1000)
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.InvalidScheduleTime",
        TargetSelection="ALL",
        ScheduleTime=in_past,
        **base,
    )
    start = int((time.time() + 600) * 1000)
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.InvalidScheduleTime",
        TargetSelection="ALL",
        ScheduleTime=start,
        ScheduleFinishTime=start + 60_000,
        **base,
    )

    planned = ok(
        client,
        "CreateOTAStaticUpgradeJob",
        TargetSelection="ALL",
        ScheduleTime=start,
        ScheduleFinishTime=start + 2 * 3600_000,
        RetryInterval=10,
        RetryCount=2,
        TimeoutInMinutes=60,
        Tags=[{"Key": "wave", "Value": "1"}],
        **base,
    )
    info = ok(client, "QueryOTAJob", JobId=planned["Data"]["JobId"])["Data"]
    assert info["JobStatus"] == "PLANNED"
    assert (info["RetryInterval"], info["RetryCount"], info["TimeoutInMinutes"]) == (10, 2, 60)
    assert info["UtcScheduleTime"] and info["UtcScheduleFinishTime"]
    ok(client, "CancelOTATaskByJob", JobId=planned["Data"]["JobId"], CancelScheduledTask=True)
    assert ok(client, "QueryOTAJob", JobId=planned["Data"]["JobId"])["Data"]["JobStatus"] == (
        "CANCELED"
    )
    refused(
        client,
        "CancelOTATaskByJob",
        "iot.ota.JobStatusError",
        JobId=planned["Data"]["JobId"],
        CancelQueuedTask=True,
    )


def test_static_job_by_group_and_by_device_list(client: AcsClient) -> None:
    pk = product(client)
    names = devices(client, pk, 3)
    fid = firmware(client, pk, need_to_verify=False)
    group = ok(client, "CreateDeviceGroup", GroupName=unique("grp"))["Data"]["GroupId"]
    ok(
        client,
        "BatchAddDeviceGroupRelations",
        GroupId=group,
        Devices=[{"ProductKey": pk, "DeviceName": n} for n in names[:2]],
    )
    by_group = ok(
        client,
        "CreateOTAStaticUpgradeJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="GROUP",
        GroupId=group,
        GroupType="LINK_PLATFORM",
        NeedPush=False,
    )["Data"]["JobId"]
    assert set(_statuses(client, by_group, 2)) == set(names[:2])
    assert ok(client, "QueryOTAJob", JobId=by_group)["Data"]["GroupId"] == group
    empty = ok(client, "CreateDeviceGroup", GroupName=unique("grp"))["Data"]["GroupId"]
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.NoDeviceMatched",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="GROUP",
        GroupId=empty,
        GroupType="LINK_PLATFORM",
    )
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.GroupNotFound",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="GROUP",
        GroupId="nosuchgroup",
        GroupType="LINK_PLATFORM",
    )

    form = ok(client, "GenerateDeviceNameListURL")["Data"]
    posted = httpx.post(
        form["Host"],
        data={
            "key": form["Key"],
            "policy": form["Policy"],
            "OSSAccessKeyId": form["AccessKeyId"],
            "signature": form["Signature"],
            "success_action_status": "200",
        },
        files={"file": ("devices.csv", f"{names[2]}\n".encode())},
    )
    assert posted.status_code == 200
    by_file = ok(
        client,
        "CreateOTAStaticUpgradeJob",
        FirmwareId=fid,
        ProductKey=pk,
        TargetSelection="SPECIFIC",
        DnListFileUrl=form["FileUrl"],
        NeedPush=False,
    )["Data"]["JobId"]
    assert _statuses(client, by_file, 1) == {names[2]: "QUEUED"}


def test_dynamic_jobs(client: AcsClient) -> None:
    pk = product(client)
    fid = firmware(client, pk, need_to_verify=False)
    base: dict[str, Any] = {"FirmwareId": fid, "ProductKey": pk}
    refused(client, "CreateOTADynamicUpgradeJob", "iot.ota.InvalidTargetSelection", **base)
    job_id = ok(
        client,
        "CreateOTADynamicUpgradeJob",
        SrcVersions=["1.0.0", "1.0.1"],
        DynamicMode=2,
        Tags=[{"Key": "a", "Value": "1"}],
        **base,
    )["Data"]["JobId"]
    job = ok(client, "QueryOTAJob", JobId=job_id)["Data"]
    assert (job["SelectionType"], job["TargetSelection"], job["DynamicMode"]) == (
        "DYNAMIC",
        "ALL",
        2,
    )
    assert job["SrcVersions"]["SrcVersion"] == ["1.0.0", "1.0.1"]
    refused(
        client,
        "CreateOTADynamicUpgradeJob",
        "iot.ota.DynamicJobExists",
        SrcVersions=["0.9"],
        **base,
    )

    ok(
        client,
        "UpdateOTAJob",
        JobId=job_id,
        UpgradeType="DYNAMIC",
        TargetSelection="ALL",
        MaximumPerMinute=500,
        TimeoutInMinutes=90,
        SrcVersionLists=["0.9"],
        Tagss=[{"Key": "b", "Value": "2"}],
    )
    job = ok(client, "QueryOTAJob", JobId=job_id)["Data"]
    assert job["MaximumPerMinute"] == 500 and job["TimeoutInMinutes"] == 90
    assert job["SrcVersions"]["SrcVersion"] == ["0.9"]
    assert job["Tags"]["OtaTagDTO"] == [{"Key": "b", "Value": "2"}]
    ok(
        client,
        "UpdateOTAJob",
        JobId=job_id,
        UpgradeType="DYNAMIC",
        TargetSelection="ALL",
        MaximumPerMinute=500,
    )
    assert ok(client, "QueryOTAJob", JobId=job_id)["Data"]["Tags"]["OtaTagDTO"] == []
    refused(
        client,
        "UpdateOTAJob",
        "iot.ota.JobTypeError",
        JobId=job_id,
        UpgradeType="STATIC",
        TargetSelection="ALL",
        MaximumPerMinute=500,
    )
    with pytest.raises(ServerException) as raised:
        call(client, "UpdateOTAJob", JobId=job_id, UpgradeType="DYNAMIC", TargetSelection="ALL")
    assert raised.value.get_error_code() == "MissingMaximumPerMinute"

    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.NoDeviceMatched",
        TargetSelection="ALL",
        SrcVersions=["1.0.0"],
        **base,
    )
    devices(client, pk, 1)
    static = ok(client, "CreateOTAStaticUpgradeJob", TargetSelection="ALL", **base)["Data"]["JobId"]
    refused(client, "CancelOTAStrategyByJob", "iot.ota.JobTypeError", JobId=static)
    refused(
        client,
        "UpdateOTAJob",
        "iot.ota.JobTypeError",
        JobId=static,
        UpgradeType="STATIC",
        TargetSelection="ALL",
        MaximumPerMinute=100,
        TimeoutInMinutes=5,
    )
    ok(client, "CancelOTAStrategyByJob", JobId=job_id)
    assert ok(client, "QueryOTAJob", JobId=job_id)["Data"]["JobStatus"] == "CANCELED"
    refused(client, "CancelOTAStrategyByJob", "iot.ota.JobStatusError", JobId=job_id)
    refused(client, "QueryOTAJob", "iot.ota.JobNotFound", JobId="nosuchjob")
    # The strategy is gone: a new dynamic job for the firmware is allowed again.
    ok(client, "CreateOTADynamicUpgradeJob", SrcVersions=["1.0.0"], **base)


def test_differential_firmware_targets_its_source_version(client: AcsClient) -> None:
    pk = product(client)
    content = b"delta" * 100
    url = upload(client, content)
    fid = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="1.1",
        SrcVersion="1.0",
        Type=1,
        FirmwareUrl=url,
        FirmwareSign=hashlib.md5(content).hexdigest(),
        NeedToVerify=False,
    )["Data"]
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.InvalidSrcVersion",
        FirmwareId=fid["FirmwareId"],
        ProductKey=pk,
        TargetSelection="ALL",
        SrcVersions=["0.9"],
    )
    # Only devices on the source version fit; none has reported one.
    devices(client, pk, 1)
    refused(
        client,
        "CreateOTAStaticUpgradeJob",
        "iot.ota.NoDeviceMatched",
        FirmwareId=fid["FirmwareId"],
        ProductKey=pk,
        TargetSelection="ALL",
        SrcVersions=["1.0"],
    )

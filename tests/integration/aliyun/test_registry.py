"""Products, devices and groups through aliyun-python-sdk-iot."""

from __future__ import annotations

from aliyunsdkcore.client import AcsClient

from tests.integration.aliyun.conftest import call, ok, product, refused, unique


def test_create_and_query_product(client: AcsClient) -> None:
    name = unique("prod_")
    created = ok(client, "CreateProduct", ProductName=name, NodeType=0, Description="meters")
    pk = created["ProductKey"]
    assert created["Data"]["ProductKey"] == pk
    assert created["Data"]["ProductSecret"]
    data = ok(client, "QueryProduct", ProductKey=pk)["Data"]
    assert (data["ProductName"], data["NodeType"], data["Description"]) == (name, 0, "meters")
    refused(
        client, "CreateProduct", "iot.prod.AlreadyExistedProductName", ProductName=name, NodeType=0
    )
    refused(client, "QueryProduct", "iot.prod.NotExistedProduct", ProductKey="a1nosuchprod")


def test_register_query_and_delete_device(client: AcsClient) -> None:
    pk = product(client)
    reg = ok(client, "RegisterDevice", ProductKey=pk, DeviceName="meter-0001", Nickname="kitchen")[
        "Data"
    ]
    assert reg["DeviceName"] == "meter-0001"
    assert reg["ProductKey"] == pk
    assert len(reg["DeviceSecret"]) == 32
    refused(
        client,
        "RegisterDevice",
        "iot.device.AlreadyExistedDeviceName",
        ProductKey=pk,
        DeviceName="meter-0001",
    )

    by_id = ok(client, "QueryDeviceDetail", IotId=reg["IotId"])["Data"]
    by_name = ok(client, "QueryDeviceDetail", ProductKey=pk, DeviceName="meter-0001")["Data"]
    assert by_id == by_name
    assert by_id["Status"] == "UNACTIVE"
    assert by_id["Nickname"] == "kitchen"
    assert by_id["DeviceSecret"] == reg["DeviceSecret"]

    generated = ok(client, "RegisterDevice", ProductKey=pk)["Data"]
    assert generated["DeviceName"]
    status = ok(client, "GetDeviceStatus", ProductKey=pk, DeviceName="meter-0001")["Data"]
    assert status["Status"] == "UNACTIVE"
    batch = ok(
        client,
        "BatchQueryDeviceDetail",
        ProductKey=pk,
        DeviceNames=["meter-0001", generated["DeviceName"], "not-there"],
    )["Data"]["Data"]
    assert [d["DeviceName"] for d in batch] == ["meter-0001", generated["DeviceName"]]
    assert batch[0]["IotId"] == reg["IotId"] and batch[0]["Nickname"] == "kitchen"

    ok(client, "DeleteDevice", IotId=reg["IotId"])
    refused(client, "QueryDeviceDetail", "iot.device.NotExistedDevice", IotId=reg["IotId"])
    refused(
        client,
        "RegisterDevice",
        "iot.prod.NotExistedProduct",
        ProductKey="a1nosuchprod",
        DeviceName="meter-0002",
    )


def test_batch_register(client: AcsClient) -> None:
    pk = product(client)
    apply_id = ok(client, "BatchRegisterDevice", ProductKey=pk, Count=3)["Data"]["ApplyId"]
    status = ok(client, "QueryBatchRegisterDeviceStatus", ProductKey=pk, ApplyId=apply_id)
    assert status["Data"]["Status"] == "CREATE_SUCCESS"
    names = status["Data"]["ValidList"]["Name"]
    assert len(names) == 3
    page = ok(client, "QueryPageByApplyId", ApplyId=apply_id, PageSize=2, CurrentPage=1)
    assert page["Total"] == 3 and page["PageCount"] == 2 and page["Page"] == 1
    infos = page["ApplyDeviceList"]["ApplyDeviceInfo"]
    assert [i["DeviceName"] for i in infos] == names[:2]
    assert all(i["DeviceSecret"] and i["IotId"] for i in infos)
    refused(
        client,
        "QueryBatchRegisterDeviceStatus",
        "iot.device.DeviceApplyIsNotFound",
        ProductKey=pk,
        ApplyId=12345,
    )


def test_device_group(client: AcsClient) -> None:
    pk = product(client)
    names = [unique("gdev-") for _ in range(2)]
    for n in names:
        ok(client, "RegisterDevice", ProductKey=pk, DeviceName=n)
    group = ok(client, "CreateDeviceGroup", GroupName=unique("grp"))["Data"]
    devices = [{"ProductKey": pk, "DeviceName": n} for n in names]
    added = ok(client, "BatchAddDeviceGroupRelations", GroupId=group["GroupId"], Devices=devices)[
        "Data"
    ]
    assert added["SuccessAddedDeviceCount"] == 2
    again = ok(client, "BatchAddDeviceGroupRelations", GroupId=group["GroupId"], Devices=devices)[
        "Data"
    ]
    assert again["AlreadyRelatedGroupDeviceCount"] == 2
    info = ok(client, "QueryDeviceGroupInfo", GroupId=group["GroupId"])["Data"]
    assert info["DeviceCount"] == 2
    members = ok(client, "QueryDeviceListByDeviceGroup", GroupId=group["GroupId"], PageSize=1)
    assert (members["Total"], members["PageCount"], members["Page"]) == (2, 2, 1)
    assert [d["DeviceName"] for d in members["Data"]["SimpleDeviceInfo"]] == names[:1]
    refused(client, "QueryDeviceGroupInfo", "iot.ota.GroupNotFound", GroupId="nope")
    removed = ok(
        client, "BatchDeleteDeviceGroupRelations", GroupId=group["GroupId"], Devices=devices[:1]
    )["Data"]
    assert removed["SuccessDeviceCount"] == 1
    assert ok(client, "QueryDeviceGroupInfo", GroupId=group["GroupId"])["Data"]["DeviceCount"] == 1
    assert call(client, "DeleteDeviceGroup", GroupId=group["GroupId"])["Success"]


def test_batch_register_by_name(client: AcsClient) -> None:
    pk = product(client)
    ok(client, "RegisterDevice", ProductKey=pk, DeviceName="taken-01")
    # The names travel in the form body, which the signature covers too.
    checked = ok(
        client,
        "BatchCheckDeviceNames",
        ProductKey=pk,
        DeviceNames=["lamp-01", "lamp-02", "taken-01", "x", "lamp-01"],
        DeviceNameLists=[{"DeviceName": "lamp-03", "DeviceNickname": "porch lamp"}],
    )["Data"]
    assert checked["InvalidDeviceNameList"]["Name"] == ["x"]
    assert checked["RepeatedDeviceNameList"]["Name"] == ["taken-01", "lamp-01"]
    apply_id = checked["ApplyId"]
    ok(client, "BatchRegisterDeviceWithApplyId", ProductKey=pk, ApplyId=apply_id)
    status = ok(client, "QueryBatchRegisterDeviceStatus", ProductKey=pk, ApplyId=apply_id)
    assert sorted(status["Data"]["ValidList"]["Name"]) == ["lamp-01", "lamp-02", "lamp-03"]
    lamp = ok(client, "QueryDeviceDetail", ProductKey=pk, DeviceName="lamp-03")["Data"]
    assert lamp["Nickname"] == "porch lamp"
    refused(
        client,
        "BatchRegisterDeviceWithApplyId",
        "iot.device.DeviceApplyIsNotFound",
        ProductKey=pk,
        ApplyId=apply_id,
    )

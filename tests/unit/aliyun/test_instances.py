"""Instances (`IotInstanceId`) come into being with their first successful write:
a read of an instance nothing was written to answers as an empty instance, and a
refused call creates no instance (no tenant row, no default product), on both
databases. The account's default instance follows the same rule."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from otahub.core.services import Services
from otahub.store.tables import products, tenants

from .test_rollout_inprocess import ACCOUNT, Console

NEW = "iot-never-written"


async def footprint(services: Services) -> tuple[int, int]:
    """How many tenants and products are stored."""
    async with services.ctx.db.read() as conn:
        tenant_rows = (await conn.execute(select(func.count()).select_from(tenants))).scalar_one()
        product_rows = (await conn.execute(select(func.count()).select_from(products))).scalar_one()
    return tenant_rows, product_rows


REFUSED_IN_AN_EMPTY_INSTANCE: list[tuple[str, dict[str, Any], str]] = [
    ("QueryProduct", {"ProductKey": "a1nosuchprod"}, "iot.prod.NotExistedProduct"),
    (
        "GetDeviceStatus",
        {"ProductKey": "a1nosuchprod", "DeviceName": "dev-1"},
        "iot.prod.NotExistedProduct",
    ),
    (
        "RegisterDevice",
        {"ProductKey": "a1nosuchprod", "DeviceName": "dev-1"},
        "iot.prod.NotExistedProduct",
    ),
    ("QueryDeviceGroupInfo", {"GroupId": "nosuchgroup"}, "iot.ota.GroupNotFound"),
    (
        "BatchAddDeviceGroupRelations",
        {
            "GroupId": "nosuchgroup",
            "Device.1.ProductKey": "a1nosuchprod",
            "Device.1.DeviceName": "dev-1",
        },
        "iot.ota.GroupNotFound",
    ),
    ("CancelOTATaskByJob", {"JobId": "nosuchjob"}, "iot.ota.JobNotFound"),
    ("ListOTAModuleByProduct", {"ProductKey": "a1nosuchprod"}, "iot.prod.NotExistedProduct"),
]


@pytest.mark.parametrize(
    ("action", "params", "code"),
    REFUSED_IN_AN_EMPTY_INSTANCE,
    ids=[case[0] for case in REFUSED_IN_AN_EMPTY_INSTANCE],
)
@pytest.mark.parametrize("instance", [NEW, None], ids=["named", "default"])
async def test_a_refused_call_creates_no_instance(
    console: Console,
    services: Services,
    action: str,
    params: dict[str, Any],
    code: str,
    instance: str | None,
) -> None:
    where = {"IotInstanceId": instance} if instance else {}
    before = await footprint(services)
    body = await console.call(action, **params, **where)
    assert (body["Success"], body["Code"]) == (False, code), body
    assert await footprint(services) == before
    assert await services.accounts.find_tenant(ACCOUNT, instance or "") is None


async def test_a_read_of_an_unknown_instance_answers_as_an_empty_instance(
    console: Console, services: Services
) -> None:
    await console.ok("CreateProduct", ProductName="meters", NodeType=0)  # the default's
    before = await footprint(services)
    firmware = await console.ok("ListOTAFirmware", CurrentPage=1, PageSize=10, IotInstanceId=NEW)
    assert (firmware["Total"], firmware["FirmwareInfo"]["SimpleFirmwareInfo"]) == (0, [])
    assert await footprint(services) == before


async def test_the_first_write_creates_the_instance(console: Console, services: Services) -> None:
    where = {"IotInstanceId": NEW}
    pk = (await console.ok("CreateProduct", ProductName="meters", NodeType=0, **where))[
        "ProductKey"
    ]
    instance = await services.accounts.find_tenant(ACCOUNT, NEW)
    assert instance is not None
    await console.ok("RegisterDevice", ProductKey=pk, DeviceName="dev-1", **where)
    await console.ok("QueryDeviceDetail", ProductKey=pk, DeviceName="dev-1", **where)
    # Firmware of the instance, from an upload to the account's bucket.
    url = await console.upload(b"image" * 100)
    await console.ok(
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName="fw-2",
        DestVersion="2.0.0",
        FirmwareUrl=url,
        NeedToVerify=False,
        **where,
    )
    # The default instance does not see it.
    refused = await console.call("QueryProduct", ProductKey=pk)
    assert refused["Code"] == "iot.prod.NotExistedProduct"
    group = await console.ok("CreateDeviceGroup", GroupName="group-1", IotInstanceId="iot-other")
    found = await console.ok(
        "QueryDeviceGroupInfo", GroupId=group["Data"]["GroupId"], IotInstanceId="iot-other"
    )
    assert found["Data"]["GroupName"] == "group-1"
    assert await services.accounts.find_tenant(ACCOUNT, "iot-other") is not None


async def test_firmware_from_an_upload_nobody_made_is_refused_without_storing(
    console: Console, services: Services
) -> None:
    pk = (await console.ok("CreateProduct", ProductName="meters", NodeType=0, IotInstanceId=NEW))[
        "ProductKey"
    ]
    before = await footprint(services)  # the account's default instance was never written
    body = await console.call(
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName="fw-2",
        DestVersion="2.0.0",
        FirmwareUrl="http://127.0.0.1/oss/ota/abc/def.bin",
        IotInstanceId=NEW,
    )
    assert body["Code"] == "iot.ota.FirmwareUrlInvalid", body
    assert await footprint(services) == before
    assert await services.accounts.find_tenant(ACCOUNT) is None

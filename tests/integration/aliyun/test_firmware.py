"""The OSS-style upload, firmware and modules through aliyun-python-sdk-iot and httpx."""

from __future__ import annotations

import hashlib

import httpx
from aliyunsdkcore.client import AcsClient

from tests.integration.aliyun.conftest import (
    firmware,
    ok,
    product,
    refused,
    unique,
    upload,
)


def test_upload_form_then_create_firmware(client: AcsClient) -> None:
    pk = product(client)
    content = bytes(range(256)) * 4000  # about 1 MB, several request chunks
    data = ok(client, "GenerateOTAUploadURL", FileSuffix="bin")["Data"]
    assert data["ObjectStorage"] == "OSS"
    assert data["FirmwareUrl"] == f"{data['Host']}/{data['Key']}"
    form = {
        "key": data["Key"],
        "policy": data["Policy"],
        "OSSAccessKeyId": data["OSSAccessKeyId"],
        "signature": data["Signature"],
        "success_action_status": "201",
    }
    posted = httpx.post(data["Host"], data=form, files={"file": ("fw.bin", content)})
    assert posted.status_code == 201, posted.text

    sha = hashlib.sha256(content).hexdigest()
    fid = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="2.0.0",
        FirmwareUrl=data["FirmwareUrl"],
        SignMethod="SHA256",
        FirmwareSign=sha,
        FirmwareSize=len(content),
        Udi='{"ota":"yes"}',
    )["Data"]["FirmwareId"]
    info = ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]
    assert info["FirmwareSize"] == len(content)
    assert info["FirmwareSign"] == sha
    assert info["SignMethod"] == "SHA256"
    assert info["FirmwareUrl"] == data["FirmwareUrl"]
    assert info["Status"] == 0
    assert info["ProductKey"] == pk
    assert info["ModuleName"] == "default"
    assert info["Udi"] == '{"ota":"yes"}'


def test_firmware_sign_and_size_filled_in_and_checked(client: AcsClient) -> None:
    pk = product(client)
    content = b"\x7fELF" + b"x" * 5000
    url = upload(client, content)
    fid = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="1.1.0",
        FirmwareUrl=url,
        NeedToVerify=False,
    )["Data"]["FirmwareId"]
    info = ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]
    assert info["FirmwareSign"] == hashlib.md5(content).hexdigest()
    assert info["FirmwareSize"] == len(content)
    assert info["Status"] == -1

    common = dict(ProductKey=pk, DestVersion="1.2.0", FirmwareUrl=url)
    refused(
        client,
        "CreateOTAFirmware",
        "iot.ota.InvalidFirmwareSign",
        FirmwareName=unique("fw"),
        FirmwareSign="0" * 32,
        **common,
    )
    refused(
        client,
        "CreateOTAFirmware",
        "iot.ota.InvalidFirmwareSign",
        FirmwareName=unique("fw"),
        FirmwareSize=3,
        **common,
    )
    refused(
        client,
        "CreateOTAFirmware",
        "iot.ota.FirmwareUrlInvalid",
        FirmwareName=unique("fw"),
        ProductKey=pk,
        DestVersion="1.2.0",
        FirmwareUrl=url + "-missing",
    )
    refused(
        client,
        "CreateOTAFirmware",
        "iot.prod.NotExistedProduct",
        FirmwareName=unique("fw"),
        ProductKey="a1nosuchprod",
        DestVersion="1.2.0",
        FirmwareUrl=url,
    )
    refused(
        client,
        "CreateOTAFirmware",
        "iot.ota.InvalidSrcVersion",
        FirmwareName=unique("fw"),
        Type=1,
        SrcVersion="1.2.0",
        **common,
    )
    name = unique("fw")
    ok(client, "CreateOTAFirmware", FirmwareName=name, **common)
    refused(client, "CreateOTAFirmware", "iot.ota.FirmwareNameExists", FirmwareName=name, **common)


def test_upload_refusals_are_oss_xml(client: AcsClient) -> None:
    data = ok(client, "GenerateOTAUploadURL")["Data"]
    form = {
        "key": data["Key"],
        "policy": data["Policy"],
        "OSSAccessKeyId": data["OSSAccessKeyId"],
        "signature": "AAAA" + data["Signature"],
    }
    bad = httpx.post(data["Host"], data=form, files={"file": ("fw.bin", b"x")})
    assert bad.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in bad.text

    other_key = {**form, "signature": data["Signature"], "key": data["Key"] + "x"}
    denied = httpx.post(data["Host"], data=other_key, files={"file": ("fw.bin", b"x")})
    assert denied.status_code == 403
    assert "<Code>AccessDenied</Code>" in denied.text

    no_file = httpx.post(
        data["Host"], data={**form, "signature": data["Signature"]}, files={"other": ("a", b"b")}
    )
    assert no_file.status_code == 400
    assert "<Code>MalformedPOSTRequest</Code>" in no_file.text

    default_status = httpx.post(
        data["Host"],
        data={**form, "signature": data["Signature"]},
        files={"file": ("fw.bin", b"x")},
    )
    assert default_status.status_code == 204


def test_multi_file_firmware(client: AcsClient) -> None:
    pk = product(client)
    a, b = b"part a" * 10, b"part b" * 20
    files = [
        {"Name": "app", "Url": upload(client, a), "SignValue": hashlib.md5(a).hexdigest()},
        {"Name": "res", "Url": upload(client, b)},
    ]
    fid = ok(
        client,
        "CreateOTAFirmware",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="3.0",
        MultiFiless=files,
    )["Data"]["FirmwareId"]
    info = ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]
    assert [f["Name"] for f in info["MultiFiles"]] == ["app", "res"]
    assert [f["Size"] for f in info["MultiFiles"]] == [len(a), len(b)]
    assert info["MultiFiles"][1]["FileMd5"] == hashlib.md5(b).hexdigest()
    assert info["FirmwareUrl"] is None
    refused(
        client,
        "CreateOTAFirmware",
        "iot.ota.InvalidFirmwareFiles",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="3.1",
    )


def test_list_modify_delete_firmware(client: AcsClient) -> None:
    pk = product(client)
    first = firmware(client, pk, version="1.0.1")
    second = firmware(client, pk, version="1.0.2")
    listed = ok(client, "ListOTAFirmware", ProductKey=pk, CurrentPage=1, PageSize=10)
    assert listed["Total"] == 2
    assert [f["FirmwareId"] for f in listed["FirmwareInfo"]["SimpleFirmwareInfo"]] == [
        second,
        first,
    ]
    by_version = ok(
        client, "ListOTAFirmware", ProductKey=pk, DestVersion="1.0.1", CurrentPage=1, PageSize=10
    )
    assert [f["FirmwareId"] for f in by_version["FirmwareInfo"]["SimpleFirmwareInfo"]] == [first]
    refused(client, "ListOTAFirmware", "iot.common.InvalidPageParams", CurrentPage=1, PageSize=101)

    new_name = unique("renamed")
    ok(
        client,
        "ModifyOTAFirmware",
        FirmwareId=first,
        ProductKey=pk,
        FirmwareName=new_name,
        FirmwareDesc="fixed",
    )
    info = ok(client, "QueryOTAFirmware", FirmwareId=first)["FirmwareInfo"]
    assert (info["FirmwareName"], info["FirmwareDesc"]) == (new_name, "fixed")
    refused(
        client,
        "ModifyOTAFirmware",
        "iot.ota.ProductKeyMismatch",
        FirmwareId=first,
        ProductKey=product(client),
        FirmwareDesc="x",
    )

    ok(client, "DeleteOTAFirmware", FirmwareId=first)
    refused(client, "QueryOTAFirmware", "iot.ota.FirmwareNotFound", FirmwareId=first)
    refused(client, "DeleteOTAFirmware", "iot.ota.FirmwareNotFound", FirmwareId=first)


def test_modules(client: AcsClient) -> None:
    pk = product(client)
    ok(client, "CreateOTAModule", ProductKey=pk, ModuleName="MCU", AliasName="mcu", Desc="main")
    refused(
        client, "CreateOTAModule", "iot.ota.ModuleAlreadyExists", ProductKey=pk, ModuleName="mcu"
    )
    refused(
        client,
        "CreateOTAModule",
        "iot.ota.DefaultModuleImmutable",
        ProductKey=pk,
        ModuleName="default",
    )
    ok(client, "UpdateOTAModule", ProductKey=pk, ModuleName="MCU", AliasName="mcu2", Desc="d")
    listed = ok(client, "ListOTAModuleByProduct", ProductKey=pk)["Data"]
    assert [(m["ModuleName"], m["AliasName"], m["Desc"]) for m in listed] == [("MCU", "mcu2", "d")]
    fid = firmware(client, pk, ModuleName="MCU")
    assert ok(client, "QueryOTAFirmware", FirmwareId=fid)["FirmwareInfo"]["ModuleName"] == "MCU"
    refused(client, "DeleteOTAModule", "iot.ota.ModuleInUse", ProductKey=pk, ModuleName="MCU")
    refused(
        client,
        "CreateOTAFirmware",
        "iot.ota.ModuleNotFound",
        ProductKey=pk,
        FirmwareName=unique("fw"),
        DestVersion="1.0",
        ModuleName="WIFI",
        FirmwareUrl=upload(client, b"w"),
    )
    ok(client, "DeleteOTAFirmware", FirmwareId=fid)
    ok(client, "DeleteOTAModule", ProductKey=pk, ModuleName="MCU")
    assert ok(client, "ListOTAModuleByProduct", ProductKey=pk)["Data"] == []
    refused(
        client,
        "UpdateOTAModule",
        "iot.ota.ModuleNotFound",
        ProductKey=pk,
        ModuleName="MCU",
        Desc="x",
    )

    dev = unique("mdev-")
    ok(client, "RegisterDevice", ProductKey=pk, DeviceName=dev)
    versions = ok(
        client,
        "ListOTAModuleVersionsByDevice",
        ProductKey=pk,
        DeviceName=dev,
        CurrentPage=1,
        PageSize=10,
    )
    assert versions["Data"]["SimpleOTAModuleInfo"] == [] and versions["Total"] == 0

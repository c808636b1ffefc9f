"""The committed parameter table matches the installed SDK, and the hand rules fit it."""

from __future__ import annotations

import json
import pkgutil

import aliyunsdkiot.request.v20180120 as requests_pkg

from otahub.aliyun.protocol import gen_params
from otahub.aliyun.protocol.rules import OTA_RULES, RULES
from otahub.aliyun.protocol.table import load_table


def test_committed_table_is_what_the_sdk_gives() -> None:
    committed = json.loads(gen_params.OUTPUT.read_text())
    assert committed == gen_params.generate(), "rerun gen_params"
    assert gen_params.main(["--check"]) == 0


def test_every_ota_request_class_is_covered() -> None:
    names = {m.name for m in pkgutil.iter_modules(requests_pkg.__path__)}
    ota = {n.removesuffix("Request") for n in names if "OTA" in n and n.endswith("Request")}
    assert ota == set(gen_params.OTA_ACTIONS)
    assert len(ota) == 25


def test_table_shapes() -> None:
    table = load_table()
    assert len(table) == 45
    verify = table["CreateOTAVerifyJob"].params
    assert verify["TargetDeviceName"].kind == "repeat"
    assert verify["Tag"].kind == "struct_list" and verify["Tag"].fields == ("Key", "Value")
    assert table["UpdateOTAJob"].params["Tags"].kind == "struct_list"
    assert table["ListOTAModuleByProduct"].method == "GET"
    check = table["BatchCheckDeviceNames"].params
    assert check["DeviceName"].location == "body"
    assert check["DeviceNameList"].fields == ("DeviceName", "DeviceNickname")
    assert table["CreateOTAFirmware"].params["MultiFiles"].fields == (
        "FileMd5",
        "Name",
        "SignValue",
        "Size",
        "Url",
    )


def test_rules_name_only_known_parameters() -> None:
    table = load_table()
    for action, rules in RULES.items():
        assert action in table, action
        for name, rule in rules.items():
            spec = table[action].params.get(name)
            assert spec is not None, f"{action}.{name}"
            if rule.fields is not None:
                assert spec.kind == "struct_list", f"{action}.{name}"
                assert set(rule.fields) <= set(spec.fields), f"{action}.{name}"
            if rule.max_items is not None or rule.unique:
                assert spec.kind != "scalar", f"{action}.{name}"


def test_every_ota_action_has_rules() -> None:
    assert set(OTA_RULES) == set(gen_params.OTA_ACTIONS)

"""Response envelopes in JSON and XML (specs §1.5, §1.6)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from otahub.aliyun.protocol.envelope import (
    business_error,
    error_response,
    gateway_error,
    new_request_id,
    success,
)
from otahub.aliyun.protocol.errors import BusinessError, gateway, missing
from otahub.aliyun.protocol.formats import (
    from_epoch_ms,
    gmt_plain,
    gmt_rfc,
    paging,
    utc_minute,
    utc_ms,
    wrap,
)
from otahub.aliyun.protocol.xmlser import to_xml

UUID_UPPER = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
WHEN = datetime(2019, 11, 4, 6, 21, 54, 607_123, tzinfo=UTC)

TASKS = {
    "Data": wrap(
        "SimpleOTATaskInfo",
        [
            {"TaskId": "t1", "Progress": "50", "Timeout": None, "UtcCreate": WHEN},
            {"TaskId": "t2", "Progress": "100", "Timeout": "60", "UtcCreate": WHEN},
        ],
    ),
    **paging(total=11, page_size=5, current_page=3),
}


def test_request_id_is_an_upper_case_uuid() -> None:
    assert UUID_UPPER.match(new_request_id())


def test_json_success() -> None:
    response = success("ListOTATaskByJob", TASKS)
    assert response.status == 200
    assert response.content_type.startswith("application/json")
    body = json.loads(response.body)
    assert list(body)[:2] == ["RequestId", "Success"]
    assert UUID_UPPER.match(body["RequestId"]) and body["RequestId"] == response.request_id
    assert body["Success"] is True
    assert body["Data"]["SimpleOTATaskInfo"][0] == {
        "TaskId": "t1",
        "Progress": "50",
        "Timeout": None,
        "UtcCreate": "2019-11-04T06:21:54.607Z",
    }
    assert (body["Total"], body["PageSize"], body["PageCount"], body["CurrentPage"]) == (
        11,
        5,
        3,
        3,
    )


def test_success_without_payload_and_reserved_keys() -> None:
    assert json.loads(success("DeleteOTAFirmware").body)["Success"] is True
    with pytest.raises(ValueError):
        success("DeleteOTAFirmware", {"Success": False})


def test_xml_success_repeats_list_items() -> None:
    response = success("ListOTATaskByJob", TASKS, fmt="XML", request_id="RID")
    assert response.content_type.startswith("text/xml")
    root = ET.fromstring(response.body)
    assert root.tag == "ListOTATaskByJobResponse"
    assert root.findtext("RequestId") == "RID"
    assert root.findtext("Success") == "true"
    items = root.findall("Data/SimpleOTATaskInfo")
    assert [i.findtext("TaskId") for i in items] == ["t1", "t2"]
    assert items[0].find("Timeout") is None  # None is left out
    assert items[1].findtext("UtcCreate") == "2019-11-04T06:21:54.607Z"
    assert root.findtext("PageCount") == "3"


def test_xml_plain_array_and_nested_wrappers() -> None:
    body = to_xml(
        "X",
        {
            "Data": [{"ModuleName": "a"}, {"ModuleName": "b"}],
            "SrcVersions": wrap("SrcVersion", ["1.0", "1.1"]),
            "Flag": False,
            "Text": "<&>\x01",
        },
    )
    root = ET.fromstring(body)
    assert [d.findtext("ModuleName") for d in root.findall("Data")] == ["a", "b"]
    assert [v.text for v in root.findall("SrcVersions/SrcVersion")] == ["1.0", "1.1"]
    assert root.findtext("Flag") == "false"
    assert root.findtext("Text") == "<&>"


def test_business_error_json_and_xml() -> None:
    response = business_error("QueryOTAJob", "iot.ota.JobNotFound", "no such job")
    assert response.status == 200
    assert json.loads(response.body) == {
        "RequestId": response.request_id,
        "Success": False,
        "Code": "iot.ota.JobNotFound",
        "ErrorMessage": "no such job",
    }
    root = ET.fromstring(business_error("QueryOTAJob", "c", "m", fmt="XML").body)
    assert root.tag == "QueryOTAJobResponse"
    assert (root.findtext("Success"), root.findtext("Code"), root.findtext("ErrorMessage")) == (
        "false",
        "c",
        "m",
    )


def test_gateway_error_json_and_xml() -> None:
    response = gateway_error(missing("FirmwareId"), host_id="iot.example")
    assert response.status == 400
    body = json.loads(response.body)
    assert body["Code"] == "MissingFirmwareId"
    assert body["Message"] == body["ErrorMessage"] == "FirmwareId is mandatory for this action."
    assert body["HostId"] == "iot.example" and "Recommend" in body
    assert body["RequestId"] == response.request_id
    xml = gateway_error(gateway("InvalidApi.NotFound"), fmt="XML")
    assert xml.status == 404
    root = ET.fromstring(xml.body)
    assert root.tag == "Error"
    assert root.findtext("Code") == "InvalidApi.NotFound"
    assert root.findtext("RequestId") and root.findtext("HostId") and root.findtext("Message")


def test_error_response_dispatch() -> None:
    assert error_response(BusinessError("c", "m"), "QueryOTAJob").status == 200
    assert error_response(BusinessError("c", "m"), None).status == 400
    assert error_response(gateway("Throttling.User"), "QueryOTAJob").status == 400


def test_time_formats() -> None:
    assert utc_ms(WHEN) == "2019-11-04T06:21:54.607Z"
    assert utc_minute(WHEN) == "2019-11-04T06:21Z"
    assert gmt_plain(WHEN) == "2019-11-04 14:21:54"
    assert gmt_rfc(WHEN) == "Mon, 04-Nov-2019 06:21:54 GMT"
    assert from_epoch_ms(1572848514607) == WHEN.replace(microsecond=607_000)
    with pytest.raises(ValueError):
        utc_ms(datetime(2019, 1, 1))


def test_paging_variants() -> None:
    assert paging(0, 10, 1) == {"Total": 0, "PageSize": 10, "PageCount": 0, "CurrentPage": 1}
    assert paging(10, 10, 1, page_key="Page")["Page"] == 1
    assert paging(10, 10, 1)["PageCount"] == 1

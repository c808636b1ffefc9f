"""The RPC front door as aliyun-python-sdk-iot sees it: unknown and unserved actions,
XML, credentials, instances and per-account throttling."""

from __future__ import annotations

import json

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest

from tests.integration.aliyun.conftest import (
    call,
    make_client,
    ok,
    refused,
    request,
    unique,
)
from tests.integration.server import ServerProcess


def _common(server: ServerProcess, action: str) -> CommonRequest:
    req = CommonRequest(domain=f"127.0.0.1:{server.port}", version="2018-01-20", action_name=action)
    req.set_method("POST")
    return req


def test_unknown_and_unserved_actions_are_gateway_errors(
    client: AcsClient, server: ServerProcess
) -> None:
    with pytest.raises(ServerException) as unknown:
        client.do_action_with_exception(_common(server, "NoSuchAction"))
    assert unknown.value.get_error_code() == "InvalidApi.NotFound"
    assert unknown.value.get_http_status() == 404
    assert unknown.value.get_request_id()

    with pytest.raises(ServerException) as unserved:
        client.do_action_with_exception(_common(server, "QueryDevice"))
    assert unserved.value.get_error_code() == "InvalidApi.NotFound"
    assert "QueryDevice" in unserved.value.get_error_msg()


def test_xml_answers(client: AcsClient) -> None:
    req = request("CreateProduct", ProductName=unique("xml_"), NodeType=0)
    req.set_accept_format("XML")
    # Only the deprecated do_action() sends Format=XML (specs §1.2).
    body = client.do_action(req).decode()
    assert body.startswith("<?xml") or body.startswith("<CreateProductResponse")
    assert "<Success>true</Success>" in body
    assert "<ProductKey>" in body

    bad = request("QueryProduct", ProductKey="a1nosuchprod")
    bad.set_accept_format("XML")
    text = client.do_action(bad).decode()
    assert "<Code>iot.prod.NotExistedProduct</Code>" in text
    assert "<Success>false</Success>" in text


def test_wrong_secret_and_unknown_key(server: ServerProcess) -> None:
    wrong = make_client(server, secret="not-the-secret")
    with pytest.raises(ServerException) as raised:
        call(wrong, "ListOTAModuleByProduct", ProductKey="a1nosuchprod")
    # The SDK recognises its own string to sign and blames the secret.
    assert raised.value.get_error_code() == "InvalidAccessKeySecret"

    stranger = make_client(server, key="LTAInobody")
    with pytest.raises(ServerException) as unknown:
        call(stranger, "QueryProduct", ProductKey="a1nosuchprod")
    assert unknown.value.get_error_code() == "InvalidAccessKeyId.NotFound"


def test_instances_are_separate(client: AcsClient) -> None:
    pk = ok(
        client,
        "CreateProduct",
        ProductName=unique("inst_"),
        NodeType=0,
        IotInstanceId="iot-instance-a",
    )["ProductKey"]
    ok(client, "QueryProduct", ProductKey=pk, IotInstanceId="iot-instance-a")
    refused(client, "QueryProduct", "iot.prod.NotExistedProduct", ProductKey=pk)
    refused(
        client,
        "QueryProduct",
        "iot.prod.NotExistedProduct",
        ProductKey=pk,
        IotInstanceId="iot-instance-b",
    )


def test_throttling_per_account_and_action(limited_server: ServerProcess) -> None:
    client = make_client(limited_server)
    codes = []
    for _ in range(15):
        try:
            result = call(
                client,
                "CreateOTAVerifyJob",
                FirmwareId="nosuchfw",
                ProductKey="a1nosuchprod",
                TargetDeviceNames=["dev-0001"],
            )
            codes.append(result["Code"])
        except ServerException as exc:
            assert exc.get_http_status() == 400
            assert exc.get_error_msg() == "Request was denied due to user flow control."
            codes.append(exc.get_error_code())
    assert "Throttling.User" in codes
    assert codes[:10] == ["iot.ota.FirmwareNotFound"] * 10
    # Another action has its own budget.
    answer = call(client, "QueryOTAJob", JobId="nosuchjob")
    assert json.dumps(answer) and answer["Code"] == "iot.ota.JobNotFound"

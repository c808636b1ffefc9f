"""The real SDK client against the protocol layer on a local HTTP server: success
bodies, gateway errors as ServerException, and the InvalidAccessKeySecret rewrite."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkiot.request.v20180120.CancelOTATaskByJobRequest import CancelOTATaskByJobRequest
from aliyunsdkiot.request.v20180120.ListOTAModuleByProductRequest import (
    ListOTAModuleByProductRequest,
)
from aliyunsdkiot.request.v20180120.QueryOTAJobRequest import QueryOTAJobRequest

from otahub.aliyun.protocol.envelope import RpcResponse, business_error
from otahub.aliyun.protocol.frontdoor import Received

from .sdk import authenticator, client, echo_handler, real_now_clock, serve


def handler(received: Received) -> RpcResponse:
    call = received.call
    if call.params.get("JobId") == "missing-job":
        return business_error(call.action, "iot.ota.JobNotFound", "no job", fmt=call.format)
    return echo_handler(received)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with serve(authenticator(real_now_clock()), handler) as where:
        yield where


def query_job(endpoint: str, job_id: str | None = "j1") -> QueryOTAJobRequest:
    request = QueryOTAJobRequest()
    if job_id is not None:
        request.set_JobId(job_id)
    request.set_endpoint(endpoint)
    return request


def test_success_body(endpoint: str) -> None:
    body = json.loads(client().do_action_with_exception(query_job(endpoint)))
    assert body["Success"] is True
    assert body["Data"]["Params"] == {"JobId": "j1"}


def test_get_action(endpoint: str) -> None:
    request = ListOTAModuleByProductRequest()
    request.set_ProductKey("a1pk")
    request.set_endpoint(endpoint)
    body = json.loads(client().do_action_with_exception(request))
    assert body["Data"]["Params"] == {"ProductKey": "a1pk"}


def test_booleans_arrive_typed(endpoint: str) -> None:
    request = CancelOTATaskByJobRequest()
    request.set_JobId("j1")
    request.set_CancelQueuedTask(True)
    request.set_CancelInProgressTask(False)
    request.set_endpoint(endpoint)
    params = json.loads(client().do_action_with_exception(request))["Data"]["Params"]
    assert params == {"JobId": "j1", "CancelQueuedTask": True, "CancelInProgressTask": False}


def test_business_error_does_not_raise(endpoint: str) -> None:
    body = json.loads(client().do_action_with_exception(query_job(endpoint, "missing-job")))
    assert body["Success"] is False and body["Code"] == "iot.ota.JobNotFound"


def test_gateway_error_becomes_server_exception(endpoint: str) -> None:
    with pytest.raises(ServerException) as info:
        client().do_action_with_exception(query_job(endpoint, None))
    error = info.value
    assert error.get_http_status() == 400
    assert error.get_error_code() == "MissingJobId"
    assert error.get_error_msg() == "JobId is mandatory for this action."
    assert error.get_request_id() and error.get_request_id().isupper()


def test_wrong_secret_is_rewritten_by_the_sdk(endpoint: str) -> None:
    with pytest.raises(ServerException) as info:
        client(secret="WRONG").do_action_with_exception(query_job(endpoint))
    assert info.value.get_error_code() == "InvalidAccessKeySecret"


def test_unknown_key_is_404(endpoint: str) -> None:
    with pytest.raises(ServerException) as info:
        client(ak="NOBODY").do_action_with_exception(query_job(endpoint))
    assert info.value.get_http_status() == 404
    assert info.value.get_error_code() == "InvalidAccessKeyId.NotFound"


def test_deprecated_do_action_sends_format_none(endpoint: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        body = client().do_action(query_job(endpoint))
    assert json.loads(body)["Success"] is True


def test_xml_format(endpoint: str) -> None:
    request = query_job(endpoint)
    request.set_accept_format("XML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        body = client().do_action(request)
    root = ET.fromstring(body)
    assert root.tag == "QueryOTAJobResponse"
    assert root.findtext("Data/Params/JobId") == "j1"

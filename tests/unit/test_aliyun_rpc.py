"""The simulator's Alibaba RPC client: what it sends passes the face's own signature
check (query and form body), lists go out as `Name.N` / `Name.N.Field`, business
errors raise, throttling is retried; and the server states a faulty Alibaba fleet
should end in."""

from __future__ import annotations

import httpx
import pytest

from otahub.agent.aliyun_fleet import expected_server_states
from otahub.agent.aliyun_rpc import AliyunApiError, AsyncAliyunClient, flatten
from otahub.agent.fleet import Faults
from otahub.aliyun.protocol.parser import merge_params
from otahub.aliyun.protocol.signature import check_signature


def test_flatten() -> None:
    assert flatten(
        {
            "A": 1,
            "B": True,
            "C": None,
            "Names": ["x", None, "y"],
            "Tag": [{"Key": "k", "Value": "v"}, {"Key": "k2", "Value": None}],
        }
    ) == {
        "A": "1",
        "B": "True",
        "Names.1": "x",
        "Names.3": "y",
        "Tag.1.Key": "k",
        "Tag.1.Value": "v",
        "Tag.2.Key": "k2",
    }


async def test_requests_pass_the_server_signature_check() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = merge_params(
            request.url.query.decode(), request.content, request.headers.get("content-type")
        )
        check_signature(request.method, params, "s3cret")  # raises on a mismatch
        seen.append(params)
        return httpx.Response(200, json={"RequestId": "R", "Success": True, "Data": {}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        api = AsyncAliyunClient(http, "http://iot.test", access_key="AK", secret_key="s3cret")
        await api.call("QueryOTAJob", JobId="j 1*~/+")
        await api.call(
            "BatchCheckDeviceNames", form={"DeviceName": ["d-1", "d@2"]}, ProductKey="pk"
        )
    assert seen[0]["Action"] == "QueryOTAJob" and seen[0]["JobId"] == "j 1*~/+"
    assert seen[1]["DeviceName.2"] == "d@2" and seen[1]["ProductKey"] == "pk"


async def test_business_errors_raise_and_throttling_is_retried() -> None:
    answers = [
        httpx.Response(400, json={"Code": "Throttling.User", "Message": "slow down"}),
        httpx.Response(200, json={"Success": False, "Code": "iot.ota.X", "ErrorMessage": "no"}),
    ]

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: answers.pop(0))
    ) as http:
        api = AsyncAliyunClient(http, "http://iot.test", access_key="AK", secret_key="s")
        with pytest.raises(AliyunApiError) as caught:
            await api.call("QueryOTAJob", JobId="j")
    assert caught.value.code == "iot.ota.X" and not answers


def test_expected_server_states() -> None:
    faults = Faults(fail=0.05, reject=0.02, hang=0.01)
    assert expected_server_states(1000, faults) == {
        "SUCCEEDED": 920,
        "FAILED": 70,
        "IN_PROGRESS": 10,
    }
    assert expected_server_states(1000, faults, wait_timed_out=True) == {
        "SUCCEEDED": 920,
        "FAILED": 80,
    }

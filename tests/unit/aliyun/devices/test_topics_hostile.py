"""Hostile payloads on the Alibaba device topics (issue 18): dropped with one log
line, or answered in the download frame, never a traceback; nothing is stored and
the device is served normally afterwards. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging

import pytest

from otahub.aliyun.devices.codec import parse_download_reply
from otahub.core.engine import Engine
from otahub.core.services import Services
from otahub.domain.clock import FakeClock
from otahub.domain.entities import Device
from otahub.domain.states import ExecutionStatus
from tests.unit.aliyun.devices.test_topics import PK, World, topic, world

S = ExecutionStatus
DEEP = b'{"id":1,"params":' + b'{"a":' * 5000 + b"1" + b"}" * 5001
BIG = str(2**64).encode()

HOSTILE: list[bytes] = [
    DEEP,
    b"[" * 100_000,
    b'{"id":' + BIG + b',"params":{"version":"2.0.0"}}',
    b'{"id":1,"params":{"version":"2.0.0","module":"default","x":' + BIG + b"}}",
    b'{"id":1,"params":{"version":"2.0.0\\u0000"}}',
    b'{"id":1,"params":{"version":"2.0.0","module":"MC\\u0000U"}}',
    b'{"id":1,"params":{"version":"\\ud800"}}',
    b'{"id":1,"params":{"version":"' + b"v" * 65 + b'"}}',
    b'{"id":1,"params":{"version":"2.0.0","module":"' + b"m" * 65 + b'"}}',
    b'{"id":1,"params":{"version":NaN}}',
    b'{"id":1,"params":{"version":1e400}}',
    b'{"id":1,"params":{"step":' + BIG + b"}}",
    b'{"id":1,"params":{"step":"' + BIG + b'"}}',
    b'{"id":1,"params":{"step":1e300}}',
    b'{"id":1,"params":{"step":"50","desc":"a\\u0000b"}}',
    b'{"id":"' + b"9" * 70_000 + b'","params":{}}',
    b'{"id":1,"params":{"fileToken":"' + b"t" * 65_000 + b'","fileInfo":{"streamId":1,'
    b'"fileId":0},"fileBlock":{"size":256,"offset":0}}}',
    b'{"id":1,"params":{"fileInfo":{"streamId":' + BIG + b',"fileId":0},'
    b'"fileBlock":{"size":256,"offset":0}}}',
    b'{"id":1,"params":{"fileInfo":{"streamId":1,"fileId":0},'
    b'"fileBlock":{"size":256,"offset":"' + BIG + b'"}}}',
    b" " * 70_000 + b"{}",
]
KINDS = ["inform", "progress", "ota/firmware/get", "file/download"]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_payloads_are_dropped_without_a_traceback(
    services: Services,
    engine: Engine,
    clock: FakeClock,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    w = await world(services, engine, clock)
    dev = await w.device("dev-h")
    job = await w.job([dev], await w.package(), data={"download_protocol": "MQTT"})
    await w.step()
    for payload in HOSTILE:
        caplog.clear()
        out = await w.bridge.on_message(dev, topic(kind, "dev-h"), payload)
        if kind == "file/download":  # a download request is always answered
            [reply] = out
            assert reply.topic == topic("file/download_reply", "dev-h")
            assert parse_download_reply(reply.payload).header["code"] == 400
        elif kind == "ota/firmware/get":  # what it does not read may be out of limits
            assert all(o.topic == topic("ota/firmware/get_reply", "dev-h") for o in out)
        else:
            assert out == [], payload[:60]
        no_traceback(caplog)
        assert len(caplog.records) <= 1, [r.getMessage() for r in caplog.records]
    # Nothing was recorded, and the device is served as before.
    assert (await services.registry.get_device(w.tenant, "dev-h", product_key=PK)).modules == {}
    assert (await w.status(job, dev)).status is S.NOTIFIED
    await good_requests_are_answered(w, dev, job)
    no_traceback(caplog)


async def good_requests_are_answered(w: World, dev: Device, job: int) -> None:
    [reply] = await w.bridge.on_message(dev, topic("ota/firmware/get", "dev-h"), b'{"id":7}')
    assert json.loads(reply.payload)["data"]["version"] == "2.0.0"
    package_id = (await w.topics.tasks(dev))[0].package.id
    request = (
        b'{"id":"8","params":{"fileToken":"default","fileInfo":{"streamId":%d,"fileId":0,},'
        b'"fileBlock":{"size":256,"offset":0}}}' % package_id
    )
    [block] = await w.bridge.on_message(dev, topic("file/download", "dev-h"), request)
    assert parse_download_reply(block.payload).header["code"] == 200
    progress = b'{"id":1,"params":{"step":"40"}}'
    await w.bridge.on_message(dev, topic("progress", "dev-h"), progress)
    assert (await w.status(job, dev)).status is S.IN_PROGRESS
    inform = b'{"id":1,"params":{"version":"2.0.0"}}'
    await w.bridge.on_message(dev, topic("inform", "dev-h"), inform)
    assert (await w.status(job, dev)).status is S.SUCCEEDED

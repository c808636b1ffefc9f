"""The Jobs MQTT topics read a device's pending list once per request at most."""

from __future__ import annotations

import json

import pytest

from otahub.aws.devices.jobs_mqtt import JobsTopics
from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Services
from tests.unit.core.pending_reads import count_pending_reads

T = "$aws/things/thing-1/jobs/"


@pytest.mark.parametrize(
    ("topic", "payload", "expected_reads"),
    [
        ("get", b"{}", 1),
        ("start-next", b'{"statusDetails":{"step":"dl"}}', 1),  # two before, or three
        ("$next/get", b"{}", 1),
        ("job-a/get", b"{}", 0),
        ("job-a/update", b'{"status":"IN_PROGRESS","includeJobDocument":true}', 0),
    ],
)
async def test_one_pending_read_per_request(
    services: Services,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    topic: str,
    payload: bytes,
    expected_reads: int,
) -> None:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "thing-1")
    for ref in ("job-a", "job-b"):
        await services.jobs.create_job(
            tenant.id, JobSpec(ref=ref, kind="job", device_ids=[thing.id], document="{}")
        )
    await engine.tick()
    jobs = JobsTopics(services, services.ctx.clock)
    reads = count_pending_reads(monkeypatch)

    [answer] = await jobs.handle(thing, T + topic, payload)

    assert answer.topic == T + topic + "/accepted", json.loads(answer.payload)
    assert reads.take() == expected_reads

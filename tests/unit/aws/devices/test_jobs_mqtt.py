"""The Jobs MQTT API as an AWS device sees it, answered from the real core."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from otahub.aws.devices.jobs_mqtt import JobsTopics
from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Services
from otahub.domain.clock import FakeClock
from otahub.domain.states import ExecutionStatus
from otahub.gateway.messages import Outgoing

DOC = {"operation": "update", "url": "https://example/fw.bin"}


async def setup(services: Services, engine: Engine) -> tuple[Any, JobsTopics]:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "thing-1")
    await services.jobs.create_job(
        tenant.id,
        JobSpec(ref="job-a", kind="job", device_ids=[thing.id], document=json.dumps(DOC)),
    )
    await engine.tick()
    return thing, JobsTopics(services, services.ctx.clock)


def body(out: Outgoing) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(out.payload)
    return parsed


async def test_get_start_next_update_flow(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    thing, jobs = await setup(services, engine)
    t = "$aws/things/thing-1/jobs/"

    [got] = await jobs.handle(thing, t + "get", b'{"clientToken":"c1"}')
    assert got.topic == t + "get/accepted" and got.to_requester
    g = body(got)
    assert g["clientToken"] == "c1" and g["inProgressJobs"] == []
    assert [j["jobId"] for j in g["queuedJobs"]] == ["job-a"]
    assert g["queuedJobs"][0]["versionNumber"] == 1
    assert isinstance(g["timestamp"], int) and isinstance(g["queuedJobs"][0]["queuedAt"], int)

    [nxt] = await jobs.handle(thing, t + "$next/get", b'{"clientToken":"c2"}')
    assert nxt.topic == t + "$next/get/accepted"  # the literal $next, not the job id
    ex = body(nxt)["execution"]
    assert ex["jobDocument"] == DOC and ex["status"] == "QUEUED" and ex["thingName"] == "thing-1"

    clock.advance(3)
    started = await jobs.handle(
        thing, t + "start-next", b'{"clientToken":"c3","statusDetails":{"step":"dl"}}'
    )
    assert started[0].topic == t + "start-next/accepted"
    s = body(started[0])["execution"]
    assert (s["status"], s["versionNumber"], s["statusDetails"]) == (
        "IN_PROGRESS",
        2,
        {"step": "dl"},
    )

    [upd] = await jobs.handle(
        thing,
        t + "job-a/update",
        b'{"status":"SUCCEEDED","expectedVersion":"2","includeJobExecutionState":true,'
        b'"clientToken":"c4"}',
    )
    assert upd.topic == t + "job-a/update/accepted"
    assert body(upd)["executionState"] == {
        "status": "SUCCEEDED",
        "versionNumber": 3,
        "statusDetails": {"step": "dl"},
    }

    [again] = await jobs.handle(thing, t + "job-a/update", b'{"status":"IN_PROGRESS"}')
    assert again.topic == t + "job-a/update/rejected"
    r = body(again)
    assert r["code"] == "InvalidStateTransition"
    assert r["executionState"]["status"] == "SUCCEEDED"


async def test_rejections(services: Services, engine: Engine) -> None:
    thing, jobs = await setup(services, engine)
    t = "$aws/things/thing-1/jobs/"
    [bad] = await jobs.handle(thing, t + "get", b"not json")
    assert bad.topic == t + "get/rejected" and body(bad)["code"] == "InvalidJson"
    [mismatch] = await jobs.handle(
        thing, t + "job-a/update", b'{"status":"IN_PROGRESS","expectedVersion":5,"clientToken":"x"}'
    )
    m = body(mismatch)
    assert (m["code"], m["clientToken"], m["executionState"]["versionNumber"]) == (
        "VersionMismatch",
        "x",
        1,
    )
    [missing] = await jobs.handle(thing, t + "nope/get", b"{}")
    assert body(missing)["code"] == "ResourceNotFound"
    [status] = await jobs.handle(thing, t + "job-a/update", b'{"status":"TIMED_OUT"}')
    assert body(status)["code"] == "InvalidRequest"
    [details] = await jobs.handle(
        thing, t + "job-a/update", b'{"status":"IN_PROGRESS","statusDetails":{"a b":"x"}}'
    )
    assert body(details)["code"] == "InvalidRequest"
    [topic] = await jobs.handle(thing, t + "whatever/else/here", b"{}")
    assert body(topic)["code"] == "InvalidTopic"


async def test_notifications_list_pending_and_the_next(services: Services, engine: Engine) -> None:
    thing, jobs = await setup(services, engine)
    notify, nxt = await jobs.notifications(thing, ["released"])
    assert notify.topic == "$aws/things/thing-1/jobs/notify" and not notify.to_requester
    assert [j["jobId"] for j in body(notify)["jobs"]["QUEUED"]] == ["job-a"]
    assert body(nxt)["execution"]["jobId"] == "job-a"
    job = await services.jobs.get_job(thing.tenant_id, "job-a")
    from otahub.core.services import Report
    from otahub.domain.states import ExecutionStatus

    await services.executions.report(job.id, thing.id, Report(ExecutionStatus.REJECTED))
    notify, nxt = await jobs.notifications(thing, ["changed"])
    assert body(notify)["jobs"] == {}
    assert "execution" not in body(nxt)


async def test_many_devices_updating_at_once_each_get_their_answer(
    services: Services, engine: Engine
) -> None:
    """Concurrent updates (written in shared transactions) are answered one by one:
    accepted with the right version, a stale expectedVersion rejected as
    VersionMismatch, a finished execution as InvalidStateTransition."""
    tenant = await services.accounts.tenant("123456789012")
    things = [await services.registry.create_device(tenant.id, f"t-{i}") for i in range(40)]
    await services.jobs.create_job(
        tenant.id,
        JobSpec(ref="job-b", kind="job", device_ids=[t.id for t in things], document="{}"),
    )
    await engine.tick()
    jobs = JobsTopics(services, services.ctx.clock)

    def update(i: int, payload: bytes) -> Any:
        return jobs.handle(things[i], f"$aws/things/t-{i}/jobs/job-b/update", payload)

    first = await asyncio.gather(
        *(
            update(i, b'{"status":"IN_PROGRESS","expectedVersion":1,"clientToken":"a%d"}' % i)
            for i in range(40)
        ),
        # A second copy for device 0 with the same expected version loses.
        update(0, b'{"status":"IN_PROGRESS","expectedVersion":1,"clientToken":"late"}'),
    )
    answers = [body(out) for [out] in first]
    assert all(out.topic.endswith("/update/accepted") for [out] in first[:40])
    assert [a["clientToken"] for a in answers[:40]] == [f"a{i}" for i in range(40)]
    [late] = first[40]
    assert late.topic.endswith("/update/rejected")
    assert body(late)["code"] == "VersionMismatch"
    assert body(late)["executionState"]["versionNumber"] == 2

    second = await asyncio.gather(
        *(
            update(i, b'{"status":"SUCCEEDED","expectedVersion":2,"includeJobExecutionState":true}')
            for i in range(40)
        ),
        update(1, b'{"status":"FAILED"}'),  # after device 1 succeeded in the same batch
    )
    assert {body(out)["executionState"]["versionNumber"] for [out] in second[:40]} == {3}
    [refused] = second[40]
    assert body(refused)["code"] == "InvalidStateTransition"
    assert await services.jobs.counts((await services.jobs.get_job(tenant.id, "job-b")).id) == {
        ExecutionStatus.SUCCEEDED: 40
    }

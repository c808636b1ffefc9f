"""The Jobs MQTT API (specs/aws.md §4) beyond the main flow: step timeouts and their
expiry, start-next with nothing pending or with an execution already started,
includeJobDocument and executionNumber, direct QUEUED→FAILED, tokens in rejections."""

from __future__ import annotations

import json
from typing import Any

from otahub.aws.devices.jobs_mqtt import JobsTopics
from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Services
from otahub.domain.clock import FakeClock
from otahub.gateway.messages import Outgoing

DOC = {"afr_ota": {"protocols": ["MQTT"], "files": []}}
T = "$aws/things/thing-9/jobs/"


async def setup(services: Services, engine: Engine, jobs: int = 1) -> tuple[Any, JobsTopics]:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "thing-9")
    for i in range(jobs):
        await services.jobs.create_job(
            tenant.id,
            JobSpec(ref=f"j{i}", kind="job", device_ids=[thing.id], document=json.dumps(DOC)),
        )
    await engine.tick()
    return thing, JobsTopics(services, services.ctx.clock)


def body(out: Outgoing) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(out.payload)
    return parsed


async def first(jobs: JobsTopics, thing: Any, topic: str, payload: dict[str, Any]) -> Outgoing:
    out = await jobs.handle(thing, topic, json.dumps(payload).encode())
    return out[0]


async def test_step_timeout_runs_and_expires(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    thing, jobs = await setup(services, engine)
    started = await first(
        jobs, thing, T + "start-next", {"stepTimeoutInMinutes": 2, "clientToken": "s"}
    )
    ex = body(started)["execution"]
    assert body(started)["clientToken"] == "s"
    assert ex["status"] == "IN_PROGRESS" and 0 < ex["approximateSecondsBeforeTimedOut"] <= 120
    # A progress update replaces the step timer.
    upd = await first(
        jobs,
        thing,
        T + "j0/update",
        {
            "status": "IN_PROGRESS",
            "statusDetails": {"receive": "1/4"},
            "stepTimeoutInMinutes": 1,
            "includeJobExecutionState": True,
        },
    )
    assert body(upd)["executionState"]["statusDetails"] == {"receive": "1/4"}
    got = await first(jobs, thing, T + "j0/get", {})
    assert 0 < body(got)["execution"]["approximateSecondsBeforeTimedOut"] <= 60
    clock.advance(61)
    await engine.tick()
    late = await first(jobs, thing, T + "j0/update", {"status": "SUCCEEDED", "clientToken": "z"})
    assert late.topic == T + "j0/update/rejected"
    assert body(late)["code"] == "InvalidStateTransition"
    assert body(late)["executionState"]["status"] == "TIMED_OUT"
    assert body(late)["clientToken"] == "z"


async def test_start_next_with_nothing_pending_and_when_started(
    services: Services, engine: Engine
) -> None:
    thing, jobs = await setup(services, engine)
    a = await first(jobs, thing, T + "start-next", {"statusDetails": {"k": "1"}})
    b = await first(jobs, thing, T + "start-next", {"clientToken": "again"})
    assert body(b)["execution"]["jobId"] == "j0"  # the started head comes back unchanged
    assert body(b)["execution"]["versionNumber"] == body(a)["execution"]["versionNumber"] == 2
    assert body(b)["execution"]["statusDetails"] == {"k": "1"}
    await first(jobs, thing, T + "j0/update", {"status": "SUCCEEDED"})
    empty = await first(jobs, thing, T + "start-next", {"clientToken": "none"})
    assert empty.topic == T + "start-next/accepted"
    assert "execution" not in body(empty) and body(empty)["clientToken"] == "none"
    assert isinstance(body(empty)["timestamp"], int)
    nothing = await first(jobs, thing, T + "$next/get", {"clientToken": "n"})
    assert nothing.topic == T + "$next/get/accepted" and "execution" not in body(nothing)


async def test_describe_options(services: Services, engine: Engine) -> None:
    thing, jobs = await setup(services, engine, jobs=2)
    full = await first(jobs, thing, T + "j1/get", {"executionNumber": 1})
    assert body(full)["execution"]["jobDocument"] == DOC  # an object, not a string
    assert body(full)["execution"]["executionNumber"] == 1
    bare = await first(jobs, thing, T + "j1/get", {"includeJobDocument": False})
    assert "jobDocument" not in body(bare)["execution"]
    missing = await first(jobs, thing, T + "j1/get", {"executionNumber": 9, "clientToken": "e"})
    assert missing.topic == T + "j1/get/rejected"
    assert (body(missing)["code"], body(missing)["clientToken"]) == ("ResourceNotFound", "e")
    # Ordering: the next is the oldest queued one.
    nxt = await first(jobs, thing, T + "$next/get", {})
    assert body(nxt)["execution"]["jobId"] == "j0"
    pending = await first(jobs, thing, T + "get", {})
    assert [j["jobId"] for j in body(pending)["queuedJobs"]] == ["j0", "j1"]


async def test_update_options_and_direct_failure(services: Services, engine: Engine) -> None:
    thing, jobs = await setup(services, engine, jobs=2)
    doc = await first(
        jobs,
        thing,
        T + "j0/update",
        {"status": "IN_PROGRESS", "includeJobDocument": True, "expectedVersion": 1},
    )
    assert body(doc)["jobDocument"] == DOC and "executionState" not in body(doc)
    minimal = await first(jobs, thing, T + "j0/update", {"status": "IN_PROGRESS"})
    assert set(body(minimal)) == {"timestamp"}  # AWS's minimal accepted form
    # An agent that cannot use a job document fails it straight from QUEUED.
    failed = await first(
        jobs,
        thing,
        T + "j1/update",
        {
            "status": "FAILED",
            "statusDetails": {"reason": "0x1: 0x2"},
            "includeJobExecutionState": True,
        },
    )
    assert body(failed)["executionState"]["status"] == "FAILED"
    for payload, code in (
        ({"status": "QUEUED"}, "InvalidRequest"),  # not device-settable
        ({"status": "IN_PROGRESS", "expectedVersion": "x"}, "InvalidRequest"),
        ({"status": "IN_PROGRESS", "statusDetails": {"k": 1}}, "InvalidRequest"),
    ):
        rej = await first(jobs, thing, T + "j0/update", {**payload, "clientToken": "t"})
        assert (body(rej)["code"], body(rej)["clientToken"]) == (code, "t"), payload
    unknown = await first(
        jobs, thing, T + "nope/update", {"status": "SUCCEEDED", "clientToken": "u"}
    )
    assert (body(unknown)["code"], body(unknown)["clientToken"]) == ("ResourceNotFound", "u")
    [bad] = await jobs.handle(thing, T + "j0/update", b"[1,2]")
    assert body(bad)["code"] == "InvalidJson" and "clientToken" not in body(bad)

"""The rest of the Jobs and thing-group surface through boto3: documentSource and
per-device presigned URLs, UpdateJob, CancelJob with and without force, execution
cancel/delete, listing by thing, retries, scheduling, group hierarchies."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.aws.conftest import wait_for
from tests.integration.server import engine_ticks


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def new_things(iot: Any, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        name = uid("jt-")
        out.append((name, iot.create_thing(thingName=name)["thingArn"]))
    return out


def queued(jobs_data: Any, thing: str, job_id: str) -> bool:
    out = jobs_data.get_pending_job_executions(thingName=thing)
    return job_id in [j["jobId"] for j in out["queuedJobs"] + out["inProgressJobs"]]


def test_document_source_and_presigned_urls_per_device(iot: Any, jobs_data: Any, s3: Any) -> None:
    bucket = uid("jobdocs-")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=b"firmware!")
    placeholder = (
        f"${{aws:iot:s3-presigned-url:https://s3.eu-west-1.amazonaws.com/{bucket}/fw.bin}}"
    )
    doc = json.dumps({"operation": "download", "url": placeholder})
    s3.put_object(Bucket=bucket, Key="job.json", Body=doc.encode())
    (a, a_arn), (b, b_arn) = new_things(iot, 2)
    job_id = uid("src-")
    source = f"https://s3.amazonaws.com/{bucket}/job.json"
    iot.create_job(
        jobId=job_id,
        targets=[a_arn, b_arn],
        documentSource=source,
        presignedUrlConfig={"roleArn": "arn:aws:iam::123456789012:role/r", "expiresInSec": 120},
    )
    described = iot.describe_job(jobId=job_id)
    assert described["documentSource"] == source
    assert iot.get_job_document(jobId=job_id)["document"] == doc  # the placeholder form
    urls = []
    for thing in (a, b):
        assert wait_for(lambda t=thing: queued(jobs_data, t, job_id))
        ex = jobs_data.describe_job_execution(
            thingName=thing, jobId=job_id, includeJobDocument=True
        )["execution"]
        url = json.loads(ex["jobDocument"])["url"]
        assert "${" not in url and httpx.get(url).content == b"firmware!"
        urls.append(url)
    assert urls[0] != urls[1]  # signed for each device
    forged = urlsplit(urls[0])._replace(query=urlsplit(urls[1]).query.replace("e", "f", 1))
    assert httpx.get(forged.geturl()).status_code in (400, 403)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.create_job(
            jobId=uid("src-"),
            targets=[a_arn],
            documentSource=f"https://s3.amazonaws.com/{bucket}/missing.json",
        )
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_job(jobId=uid("src-"), targets=[a_arn], document="{}", documentSource=source)


def test_update_cancel_and_executions(iot: Any, jobs_data: Any) -> None:
    (a, a_arn), (b, b_arn), (c, c_arn) = new_things(iot, 3)
    job_id = uid("cj-")
    iot.create_job(jobId=job_id, targets=[a_arn, b_arn, c_arn], document='{"v":1}')
    iot.update_job(
        jobId=job_id,
        description="now with a description",
        jobExecutionsRolloutConfig={"maximumPerMinute": 500},
    )
    job = iot.describe_job(jobId=job_id)["job"]
    assert job["description"] == "now with a description"
    assert job["jobExecutionsRolloutConfig"] == {"maximumPerMinute": 500}
    for t in (a, b, c):
        assert wait_for(lambda t=t: queued(jobs_data, t, job_id))
    jobs_data.start_next_pending_job_execution(thingName=a)
    jobs_data.start_next_pending_job_execution(thingName=b)
    # CancelJobExecution: IN_PROGRESS needs force; a stale expectedVersion conflicts.
    with pytest.raises(iot.exceptions.InvalidStateTransitionException):
        iot.cancel_job_execution(jobId=job_id, thingName=a)
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.cancel_job_execution(jobId=job_id, thingName=a, force=True, expectedVersion=1)
    iot.cancel_job_execution(
        jobId=job_id, thingName=a, force=True, expectedVersion=2, statusDetails={"why": "operator"}
    )
    ex = iot.describe_job_execution(jobId=job_id, thingName=a)["execution"]
    assert (ex["status"], ex["forceCanceled"]) == ("CANCELED", True)
    # ListJobExecutionsForThing, with a status filter.
    for_a = iot.list_job_executions_for_thing(thingName=a)["executionSummaries"]
    assert [(s["jobId"], s["jobExecutionSummary"]["status"]) for s in for_a] == [
        (job_id, "CANCELED")
    ]
    assert (
        iot.list_job_executions_for_thing(thingName=a, status="QUEUED")["executionSummaries"] == []
    )
    # DeleteJobExecution: only terminal ones without force.
    with pytest.raises(iot.exceptions.InvalidStateTransitionException):
        iot.delete_job_execution(jobId=job_id, thingName=b, executionNumber=1)
    iot.delete_job_execution(jobId=job_id, thingName=a, executionNumber=1)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_job_execution(jobId=job_id, thingName=a)
    # DeleteJob of a running job needs force.
    with pytest.raises(iot.exceptions.InvalidStateTransitionException):
        iot.delete_job(jobId=job_id)
    # CancelJob without force: queued executions go, in-progress ones keep running.
    out = iot.cancel_job(jobId=job_id, reasonCode="FW_RECALL", comment="bad build")
    assert out["jobId"] == job_id
    statuses = {
        s["thingArn"]: s["jobExecutionSummary"]["status"]
        for s in iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]
    }
    assert (statuses[b_arn], statuses[c_arn]) == ("IN_PROGRESS", "CANCELED")
    job = iot.describe_job(jobId=job_id)["job"]
    assert (job["status"], job["reasonCode"], job["comment"], job["forceCanceled"]) == (
        "CANCELED",
        "FW_RECALL",
        "bad build",
        False,
    )
    iot.cancel_job(jobId=job_id, force=True)
    assert (
        iot.describe_job_execution(jobId=job_id, thingName=b)["execution"]["status"] == "CANCELED"
    )
    assert iot.describe_job(jobId=job_id)["job"]["forceCanceled"] is True
    iot.delete_job(jobId=job_id)
    assert wait_for(lambda: job_id not in [j["jobId"] for j in iot.list_jobs()["jobs"]])


def test_retry_config_requeues_a_failed_execution(iot: Any, jobs_data: Any) -> None:
    [(a, a_arn)] = new_things(iot, 1)
    job_id = uid("rj-")
    iot.create_job(
        jobId=job_id,
        targets=[a_arn],
        document="{}",
        jobExecutionsRetryConfig={
            "criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]
        },
    )
    assert (
        iot.describe_job(jobId=job_id)["job"]["jobExecutionsRetryConfig"]["criteriaList"][0][
            "numberOfRetries"
        ]
        == 1
    )
    assert wait_for(lambda: queued(jobs_data, a, job_id))
    jobs_data.update_job_execution(thingName=a, jobId=job_id, status="FAILED")
    second = wait_for(
        lambda: (
            (e := jobs_data.describe_job_execution(thingName=a, jobId=job_id)["execution"])[
                "executionNumber"
            ]
            == 2
            and e
        )
    )
    assert second and second["status"] == "QUEUED"
    jobs_data.update_job_execution(thingName=a, jobId=job_id, status="FAILED")
    engine_ticks()
    assert not queued(jobs_data, a, job_id)  # one retry only


def test_scheduled_job_waits_for_its_start(iot: Any, jobs_data: Any) -> None:
    [(a, a_arn)] = new_things(iot, 1)
    job_id = uid("sj-")
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    sched = {
        "startTime": start,
        "endBehavior": "STOP_ROLLOUT",
        "maintenanceWindows": [{"startTime": "cron(0 2 ? * SUN *)", "durationInMinutes": 60}],
    }
    iot.create_job(jobId=job_id, targets=[a_arn], document="{}", schedulingConfig=sched)
    job = iot.describe_job(jobId=job_id)["job"]
    assert job["status"] == "SCHEDULED" and job["schedulingConfig"]["startTime"] == start
    engine_ticks()
    assert not queued(jobs_data, a, job_id)
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_job(
            jobId=uid("sj-"),
            targets=[a_arn],
            document="{}",
            schedulingConfig={"startTime": "tomorrow"},
        )


def test_thing_group_hierarchy(iot: Any) -> None:
    root, mid, leaf = uid("root-"), uid("mid-"), uid("leaf-")
    iot.create_thing_group(thingGroupName=root)
    iot.create_thing_group(thingGroupName=mid, parentGroupName=root)
    iot.create_thing_group(thingGroupName=leaf, parentGroupName=mid)
    meta = iot.describe_thing_group(thingGroupName=leaf)["thingGroupMetadata"]
    assert meta["parentGroupName"] == mid
    assert [g["groupName"] for g in meta["rootToParentThingGroups"]] == [root, mid]
    assert set(iot.describe_thing_group(thingGroupName=root)["thingGroupMetadata"]) == {
        "creationDate"
    }  # absent members are omitted, not null
    direct = iot.list_thing_groups(parentGroup=root)["thingGroups"]
    assert [g["groupName"] for g in direct] == [mid]
    every = iot.list_thing_groups(parentGroup=root, recursive=True)["thingGroups"]
    assert {g["groupName"] for g in every} == {mid, leaf}
    assert [
        g["groupName"] for g in iot.list_thing_groups(namePrefixFilter=leaf)["thingGroups"]
    ] == [leaf]
    [(t, _)] = new_things(iot, 1)
    iot.add_thing_to_thing_group(thingGroupName=leaf, thingName=t)
    assert [
        g["groupName"] for g in iot.list_thing_groups_for_thing(thingName=t)["thingGroups"]
    ] == [leaf]
    page = iot.list_thing_groups(parentGroup=root, recursive=True, maxResults=1)
    assert len(page["thingGroups"]) == 1 and page["nextToken"]
    assert iot.list_things_in_thing_group(thingGroupName=root)["things"] == []
    assert iot.list_things_in_thing_group(thingGroupName=root, recursive=True)["things"] == [t]
    iot.remove_thing_from_thing_group(thingGroupName=leaf, thingName=t)
    assert iot.list_things_in_thing_group(thingGroupName=leaf)["things"] == []
    v = iot.update_thing_group(
        thingGroupName=leaf,
        thingGroupProperties={
            "thingGroupDescription": "the leaves",
            "attributePayload": {"attributes": {"site": "A", "floor": "2"}},
        },
    )["version"]
    assert v == 2
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.update_thing_group(
            thingGroupName=leaf,
            expectedVersion=1,
            thingGroupProperties={"thingGroupDescription": "x"},
        )
    iot.update_thing_group(
        thingGroupName=leaf,
        expectedVersion=2,
        thingGroupProperties={"attributePayload": {"attributes": {"floor": "3"}, "merge": True}},
    )
    described = iot.describe_thing_group(thingGroupName=leaf)
    assert described["version"] == 3
    assert described["thingGroupProperties"] == {
        "thingGroupDescription": "the leaves",
        "attributePayload": {"attributes": {"site": "A", "floor": "3"}},
    }
    iot.delete_thing_group(thingGroupName=leaf)
    iot.delete_thing_group(thingGroupName=leaf)  # a missing group: 200, as AWS
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing_group(thingGroupName=leaf)


def test_revoke_signing_profile(signer: Any) -> None:
    name = uid("rev_")
    put = signer.put_signing_profile(
        profileName=name,
        platformId="AmazonFreeRTOS-Default",
        signingMaterial={"certificateArn": "arn:aws:acm:x"},
    )
    signer.revoke_signing_profile(
        profileName=name,
        profileVersion=put["profileVersion"],
        reason="key leaked",
        effectiveTime=dt.datetime.now(dt.UTC),
    )
    got = signer.get_signing_profile(profileName=name)
    assert got["status"] == "Revoked" and got["statusReason"] == "key leaked"
    record = got["revocationRecord"]
    assert record["revokedBy"].startswith("arn:aws:iam::") and record["revokedAt"]

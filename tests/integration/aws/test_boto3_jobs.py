"""boto3's iot and iot-jobs-data clients, unchanged, against a running otahub."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.aws.conftest import KEY
from tests.integration.server import ServerProcess


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_things_and_groups(iot: Any) -> None:
    t = name("thing")
    out = iot.create_thing(thingName=t, attributePayload={"attributes": {"model": "X1"}})
    assert out["thingArn"] == f"{out['thingArn'].rsplit(':', 1)[0]}:thing/{t}"
    assert ":eu-west-1:" in out["thingArn"]
    again = iot.create_thing(thingName=t, attributePayload={"attributes": {"model": "X1"}})
    assert again["thingId"] == out["thingId"]  # identical config: idempotent
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as err:
        iot.create_thing(thingName=t, attributePayload={"attributes": {"model": "X2"}})
    assert err.value.response["resourceId"] == out["thingId"]
    d = iot.describe_thing(thingName=t)
    assert (d["attributes"], d["version"], d["defaultClientId"]) == ({"model": "X1"}, 1, t)
    iot.update_thing(
        thingName=t, attributePayload={"attributes": {"rev": "2"}, "merge": True}, expectedVersion=1
    )
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.update_thing(thingName=t, attributePayload={"attributes": {}}, expectedVersion=1)
    assert iot.describe_thing(thingName=t)["attributes"] == {"model": "X1", "rev": "2"}
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_thing(thingName="bad name")  # the model's pattern, enforced by the server
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName=name("missing"))
    g = name("group")
    iot.create_thing_group(thingGroupName=g)
    iot.add_thing_to_thing_group(thingGroupName=g, thingName=t)
    assert iot.list_things_in_thing_group(thingGroupName=g)["things"] == [t]
    dyn = name("dyn")
    iot.create_dynamic_thing_group(thingGroupName=dyn, queryString="attributes.model:X1")
    assert iot.describe_thing_group(thingGroupName=dyn)["queryString"] == "attributes.model:X1"
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_dynamic_thing_group(thingGroupName=name("dyn"), queryString="shadow.x:1")
    iot.delete_thing(thingName=t)
    iot.delete_thing(thingName=t)  # deleting a missing thing succeeds
    assert iot.describe_endpoint(endpointType="iot:Jobs")["endpointAddress"] == "127.0.0.1"


def wait_for(fn: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_job_lifecycle_through_both_planes(iot: Any, jobs_data: Any) -> None:
    t = name("dev")
    arn = iot.create_thing(thingName=t)["thingArn"]
    job_id = name("job")
    doc = {"operation": "update", "version": "2"}
    iot.create_job(
        jobId=job_id,
        targets=[arn],
        document=json.dumps(doc),
        jobExecutionsRolloutConfig={"maximumPerMinute": 100},
        abortConfig={
            "criteriaList": [
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 50,
                    "minNumberOfExecutedThings": 1,
                }
            ]
        },
        timeoutConfig={"inProgressTimeoutInMinutes": 30},
    )
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_job(jobId=job_id, targets=[arn], document="{}")
    job = iot.describe_job(jobId=job_id)["job"]
    assert job["status"] == "IN_PROGRESS" and job["timeoutConfig"] == {
        "inProgressTimeoutInMinutes": 30
    }
    # The engine ticks once a second in the server.
    pending = wait_for(lambda: jobs_data.get_pending_job_executions(thingName=t)["queuedJobs"])
    assert [j["jobId"] for j in pending] == [job_id] and pending[0]["versionNumber"] == 1
    nxt = jobs_data.describe_job_execution(thingName=t, jobId="$next")["execution"]
    assert json.loads(nxt["jobDocument"]) == doc and nxt["status"] == "QUEUED"
    started = jobs_data.start_next_pending_job_execution(
        thingName=t, statusDetails={"step": "download"}, stepTimeoutInMinutes=5
    )["execution"]
    assert (started["status"], started["versionNumber"]) == ("IN_PROGRESS", 2)
    assert 0 < started["approximateSecondsBeforeTimedOut"] <= 300
    with pytest.raises(jobs_data.exceptions.InvalidStateTransitionException):
        jobs_data.update_job_execution(
            thingName=t, jobId=job_id, status="SUCCEEDED", expectedVersion=1
        )
    done = jobs_data.update_job_execution(
        thingName=t,
        jobId=job_id,
        status="SUCCEEDED",
        expectedVersion=2,
        includeJobExecutionState=True,
    )
    assert done["executionState"]["status"] == "SUCCEEDED"
    summaries = iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]
    assert summaries[0]["jobExecutionSummary"]["status"] == "SUCCEEDED"
    assert summaries[0]["thingArn"] == arn
    described = iot.describe_job_execution(jobId=job_id, thingName=t)["execution"]
    assert described["statusDetails"] == {"detailsMap": {"step": "download"}}
    assert wait_for(lambda: iot.describe_job(jobId=job_id)["job"]["status"] == "COMPLETED")
    iot.delete_job(jobId=job_id)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_job(jobId=job_id)


def test_errors_in_aws_shape(iot: Any, server: ServerProcess) -> None:
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_job(
            jobId=name("j"),
            targets=["arn:aws:iot:eu-west-1:1:thing/x"],
            document="{}",
            description="x" * 3000,
        )  # max 2028: boto3 sends it
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.cancel_job(jobId=name("j"), reasonCode="not upper")  # the model's pattern
    with pytest.raises(ClientError) as err:
        iot.list_audit_findings()  # in the model, not in otahub
    assert err.value.response["Error"]["Code"] == "NotImplementedException"
    bad = boto3.client(
        "iot",
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=KEY,
        aws_secret_access_key="wrong",
    )
    with pytest.raises(ClientError) as denied:
        bad.list_things()
    assert denied.value.response["Error"]["Code"] == "InvalidSignatureException"
    stranger = boto3.client(
        "iot",
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id="AKIDNOBODY",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as unknown:
        stranger.list_things()
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_tags(iot: Any) -> None:
    g = name("tagged")
    arn = iot.create_thing_group(thingGroupName=g)["thingGroupArn"]
    iot.tag_resource(
        resourceArn=arn, tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "fw"}]
    )
    iot.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "env", "Value": "prod"}]
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.tag_resource(resourceArn=arn, tags=[{"Key": "aws:x", "Value": "y"}])
    with pytest.raises(iot.exceptions.LimitExceededException):
        iot.tag_resource(resourceArn=arn, tags=[{"Key": f"k{i}", "Value": "v"} for i in range(60)])
    thing_arn = iot.create_thing(thingName=name("t"))["thingArn"]
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.tag_resource(resourceArn=thing_arn, tags=[{"Key": "a", "Value": "b"}])

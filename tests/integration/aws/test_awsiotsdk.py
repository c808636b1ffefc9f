"""AWS's own device SDK (awsiotsdk's Jobs client, unchanged) against otahub through
Mosquitto, over plain TCP as specs/aws.md §6 shows."""

from __future__ import annotations

import json
import queue
import uuid
from typing import Any

import pytest
from awscrt import io, mqtt, mqtt_request_response
from awsiot import ServiceStreamOptions, V2ServiceException, iotjobs

from tests.integration.aws.conftest import clients, wait_for

pytestmark = pytest.mark.mosquitto


def connect(thing: str) -> mqtt.Connection:
    client = mqtt.Client(io.ClientBootstrap.get_or_create_static_default(), None)
    conn = mqtt.Connection(
        client=client,
        host_name="127.0.0.1",
        port=1883,
        client_id=thing,
        clean_session=True,
        keep_alive_secs=30,
    )
    conn.connect().result(10)
    return conn


def jobs_client(
    conn: mqtt.Connection, thing: str
) -> tuple[iotjobs.IotJobsClientV2, queue.Queue[Any], Any]:
    """The SDK's Jobs client on a connection, with its notify-next stream open."""
    jobs = iotjobs.IotJobsClientV2(
        conn,
        mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=4,
            max_streaming_subscriptions=2,
            operation_timeout_in_seconds=10,
        ),
    )
    events: queue.Queue[Any] = queue.Queue()
    stream = jobs.create_next_job_execution_changed_stream(
        iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=thing),
        ServiceStreamOptions(incoming_event_listener=events.put),
    )
    stream.open()
    return jobs, events, stream


def test_jobs_client_v2_takes_a_job(mqtt_server: Any) -> None:
    iot = clients(mqtt_server)["iot"]
    thing = f"sdk-{uuid.uuid4().hex[:8]}"
    arn = iot.create_thing(thingName=thing)["thingArn"]
    conn = connect(thing)
    try:
        jobs, events, _stream = jobs_client(conn, thing)  # the stream stays open
        pending = jobs.get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)
        ).result(10)
        assert pending.queued_jobs == [] and pending.in_progress_jobs == []

        job_id = f"sdk-job-{uuid.uuid4().hex[:6]}"
        iot.create_job(jobId=job_id, targets=[arn], document=json.dumps({"v": 3}))
        event = events.get(timeout=15)  # notify-next from the outbox, through Mosquitto
        assert event.execution.job_id == job_id and event.execution.job_document == {"v": 3}

        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(
                thing_name=thing, status_details={"step": "apply"}
            )
        ).result(10)
        assert started.execution.status == "IN_PROGRESS"
        assert started.execution.version_number == 2

        with pytest.raises(V2ServiceException) as err:
            jobs.update_job_execution(
                iotjobs.UpdateJobExecutionRequest(
                    thing_name=thing, job_id=job_id, status="SUCCEEDED", expected_version=1
                )
            ).result(10)
        assert err.value.modeled_error.code == "VersionMismatch"

        done = jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing,
                job_id=job_id,
                status="SUCCEEDED",
                expected_version=2,
                include_job_execution_state=True,
            )
        ).result(10)
        assert done.execution_state.status == "SUCCEEDED"
        described = jobs.describe_job_execution(
            iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id=job_id)
        ).result(10)
        assert described.execution.status == "SUCCEEDED"
    finally:
        conn.disconnect().result(10)
    assert wait_for(lambda: iot.describe_job(jobId=job_id)["job"]["status"] == "COMPLETED")

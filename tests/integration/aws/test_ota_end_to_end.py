"""create_ota_update end to end: boto3 sets it up; reference devices take it over
Mosquitto (an MQTT stream in CBOR, and HTTP with a resumed download), verify the
signature and report; a second update whose device fails is aborted."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from otahub.agent.aws import AwsAgent, AwsAgentConfig
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.core.services.signing import SigningService
from otahub.domain.clock import SystemClock
from otahub.store.db import Database
from tests.integration.aws.conftest import clients, wait_for
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.mosquitto
ROLE = "arn:aws:iam::123456789012:role/ota"
FIRMWARE = os.urandom(200_000)


async def signer_certificate(server: ServerProcess, profile: str) -> str:
    """The code-signing certificate a real device would have been provisioned with."""
    db = Database(f"sqlite:///{server.data_dir / 'otahub.db'}")
    try:
        svc = Services.build(db, SystemClock())
        creds = json.loads((server.data_dir / "credentials.json").read_text())
        tenant = await svc.accounts.tenant(creds["account_id"])
        signing = SigningService(
            svc.ctx, ObjectService(svc.ctx, FilesystemBlobStore(server.data_dir / "blobs"))
        )
        return (await signing.get_profile(tenant.id, profile)).material.certificate_pem
    finally:
        await db.dispose()


async def run_device(thing: str, workdir: Path, cert: str | None, **cfg: Any) -> Any:
    async with (
        aiomqtt.Client("127.0.0.1", 1883, identifier=f"{thing}-dev") as mqtt,
        httpx.AsyncClient() as http,
    ):
        agent = AwsAgent(
            mqtt,
            AwsAgentConfig(thing=thing, workdir=workdir, trusted_certificate=cert, **cfg),
            http,
        )
        await agent.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the engine releases within a tick or two
                outcome = await agent.process_next()
                if outcome is not None:
                    return outcome, agent
                await asyncio.sleep(0.3)
            raise AssertionError(f"{thing} got no job")
        finally:
            await agent.stop()


def sdk_device(thing: str, job_id: str) -> bytes:
    """A device on AWS's own SDK (awsiotsdk's Jobs client v2, unchanged) takes the
    update: notify-next, start-next, the image over HTTP in two ranged requests (a
    resumed download), progress, SUCCEEDED."""
    from awsiot import iotjobs

    from tests.integration.aws.test_awsiotsdk import connect, jobs_client

    conn = connect(thing)
    try:
        jobs, events, _stream = jobs_client(conn, thing)  # the stream stays open
        nxt = jobs.describe_job_execution(
            iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id="$next")
        ).result(10)
        if nxt.execution is None:  # not released yet: wait for notify-next
            assert events.get(timeout=20).execution.job_id == job_id
        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(
                thing_name=thing, status_details={"self_test": "ready"}
            )
        ).result(10)
        assert started.execution.job_id == job_id
        f = started.execution.job_document["afr_ota"]["files"][0]
        url, size = f["update_data_url"], f["filesize"]
        with httpx.Client() as http:
            head = http.get(url, headers={"Range": f"bytes=0-{size // 2 - 1}"})
            assert head.status_code == 206
            jobs.update_job_execution(
                iotjobs.UpdateJobExecutionRequest(
                    thing_name=thing,
                    job_id=job_id,
                    status="IN_PROGRESS",
                    status_details={"receive": f"{len(head.content)}/{size}"},
                )
            ).result(10)
            tail = http.get(url, headers={"Range": f"bytes={size // 2}-"})
            assert tail.status_code == 206
        image = head.content + tail.content
        done = jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing,
                job_id=job_id,
                status="SUCCEEDED",
                status_details={"reason": "accepted v2.0"},
                include_job_execution_state=True,
            )
        ).result(10)
        assert done.execution_state.status == "SUCCEEDED"
        return image
    finally:
        conn.disconnect().result(10)


async def test_ota_update_reaches_devices_over_mqtt_and_http(
    mqtt_server: ServerProcess, tmp_path: Path
) -> None:
    c = clients(mqtt_server)
    iot, s3, signer = c["iot"], c["s3"], c["signer"]
    tag = uuid.uuid4().hex[:6]
    things = [f"ota-{tag}-mqtt", f"ota-{tag}-http", f"ota-{tag}-sdk"]
    group = f"fleet-{tag}"
    iot.create_thing_group(thingGroupName=group)
    for t in things:
        iot.create_thing(thingName=t)
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=t)
    bucket = f"firmware-{tag}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket=bucket, Key="fw-2.0.bin", Body=FIRMWARE)["VersionId"]
    profile = f"fw_{tag}"
    signer.put_signing_profile(
        profileName=profile,
        platformId="AmazonFreeRTOS-Default",
        signingMaterial={"certificateArn": "arn:aws:acm:x"},
        signingParameters={"certname": "/certs/signer.pem"},
    )
    group_arn = iot.describe_thing_group(thingGroupName=group)["thingGroupArn"]
    ota_id = f"upd{tag}"
    resp = iot.create_ota_update(
        otaUpdateId=ota_id,
        targets=[group_arn],
        protocols=["MQTT", "HTTP"],
        targetSelection="SNAPSHOT",
        roleArn=ROLE,
        awsJobExecutionsRolloutConfig={"maximumPerMinute": 100},
        awsJobAbortConfig={
            "abortCriteriaList": [
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 90,
                    "minNumberOfExecutedThings": 5,
                }
            ]
        },
        files=[
            {
                "fileName": "/fw.bin",
                "fileVersion": "2.0",
                "fileLocation": {
                    "s3Location": {"bucket": bucket, "key": "fw-2.0.bin", "version": version}
                },
                "codeSigning": {
                    "startSigningJobParameter": {
                        "signingProfileName": profile,
                        "destination": {"s3Destination": {"bucket": bucket, "prefix": "signed/"}},
                    }
                },
            }
        ],
    )
    assert resp["otaUpdateStatus"] == "CREATE_PENDING" and "awsIotJobId" not in resp
    info = iot.get_ota_update(otaUpdateId=ota_id)["otaUpdateInfo"]
    assert info["otaUpdateStatus"] == "CREATE_COMPLETE", info.get("errorInfo")
    job_id = info["awsIotJobId"]
    assert job_id == f"AFR_OTA-{ota_id}"
    doc = json.loads(iot.get_job_document(jobId=job_id)["document"])["afr_ota"]
    assert doc["streamname"].startswith("AFR_OTA-") and doc["protocols"] == ["MQTT", "HTTP"]
    assert doc["files"][0]["certfile"] == "/certs/signer.pem"
    assert doc["files"][0]["update_data_url"].startswith("${aws:iot:s3-presigned-url:")

    cert = await signer_certificate(mqtt_server, profile)
    (m_out, m_agent), (h_out, h_agent), sdk_image = await asyncio.gather(
        run_device(things[0], tmp_path / "m", cert, prefer=("MQTT",)),
        run_device(things[1], tmp_path / "h", cert, prefer=("HTTP",), interrupt_http_after=50_000),
        asyncio.to_thread(sdk_device, things[2], job_id),
    )
    assert (m_out.status, h_out.status) == ("SUCCEEDED", "SUCCEEDED"), (m_out, h_out)
    assert sdk_image == FIRMWARE
    assert m_agent.slots.image("b").read_bytes() == FIRMWARE
    assert h_agent.slots.image("b").read_bytes() == FIRMWARE
    summaries = iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]
    assert sorted(s["jobExecutionSummary"]["status"] for s in summaries) == ["SUCCEEDED"] * 3
    assert wait_for(lambda: iot.describe_job(jobId=job_id)["job"]["status"] == "COMPLETED")


async def test_failing_update_is_aborted(mqtt_server: ServerProcess, tmp_path: Path) -> None:
    c = clients(mqtt_server)
    iot, s3 = c["iot"], c["s3"]
    tag = uuid.uuid4().hex[:6]
    things = [f"bad-{tag}-{i}" for i in range(3)]
    for t in things:
        iot.create_thing(thingName=t)
    bucket = f"fw-bad-{tag}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=FIRMWARE)
    ota_id = f"bad{tag}"
    arns = [iot.describe_thing(thingName=t)["thingArn"] for t in things]
    iot.create_ota_update(
        otaUpdateId=ota_id,
        targets=arns,
        protocols=["MQTT"],
        roleArn=ROLE,
        awsJobAbortConfig={
            "abortCriteriaList": [
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 50,
                    "minNumberOfExecutedThings": 1,
                }
            ]
        },
        files=[
            {
                "fileName": "/fw.bin",
                "fileLocation": {"s3Location": {"bucket": bucket, "key": "fw.bin"}},
            }
        ],
    )
    job_id = iot.get_ota_update(otaUpdateId=ota_id)["otaUpdateInfo"]["awsIotJobId"]
    outcome, _ = await run_device(things[0], tmp_path / "bad", cert=None, self_test=lambda p: False)
    assert (outcome.status, outcome.reason) == ("FAILED", "self-test failed; rolled back")
    job = wait_for(
        lambda: (j := iot.describe_job(jobId=job_id)["job"])["status"] == "CANCELED" and j
    )
    assert job and job["reasonCode"] == "ABORTED_FAILED"
    statuses = sorted(
        s["jobExecutionSummary"]["status"]
        for s in iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]
    )
    assert statuses == ["CANCELED", "CANCELED", "FAILED"]
    missing = iot.create_ota_update(
        otaUpdateId=f"miss{tag}",
        targets=arns,
        roleArn=ROLE,
        files=[{"fileLocation": {"s3Location": {"bucket": bucket, "key": "nope"}}}],
    )
    assert missing["otaUpdateStatus"] == "CREATE_PENDING"
    failed = iot.get_ota_update(otaUpdateId=f"miss{tag}")["otaUpdateInfo"]
    assert failed["otaUpdateStatus"] == "CREATE_FAILED"
    assert failed["errorInfo"]["code"] == "ResourceNotFoundException"

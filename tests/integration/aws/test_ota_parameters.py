"""Every create_ota_update parameter takes effect, through boto3 against a running
otahub; devices are played by the iot-jobs-data client (the same executions the
MQTT devices of test_ota_end_to_end.py take)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.aws.conftest import wait_for
from tests.integration.aws.test_boto3_streams_signer import self_signed_with_key
from tests.integration.server import engine_ticks

ROLE = "arn:aws:iam::123456789012:role/ota-params"
V1, V2 = b"1" * 3000, b"2" * 5000


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def fw(s3: Any) -> dict[str, str]:
    """A versioned bucket with two versions of fw.bin (of different sizes)."""
    bucket = uid("ota-params-")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="fw.bin", Body=V1)["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="fw.bin", Body=V2)["VersionId"]
    return {"bucket": bucket, "v1": v1, "v2": v2}


def things(iot: Any, n: int, group: str | None = None) -> list[str]:
    names = [uid("dev-") for _ in range(n)]
    for t in names:
        iot.create_thing(thingName=t)
        if group:
            iot.add_thing_to_thing_group(thingGroupName=group, thingName=t)
    return names


def arn_of(iot: Any, thing: str) -> str:
    return str(iot.describe_thing(thingName=thing)["thingArn"])


def s3_file(fw: dict[str, str], version: str | None = None, **extra: Any) -> dict[str, Any]:
    loc: dict[str, Any] = {"bucket": fw["bucket"], "key": "fw.bin"}
    if version:
        loc["version"] = version
    return {"fileName": "/fw.bin", "fileLocation": {"s3Location": loc}, **extra}


def create(iot: Any, targets: list[str], files: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    ota_id = uid("p")
    out = iot.create_ota_update(
        otaUpdateId=ota_id, targets=targets, files=files, roleArn=ROLE, **kw
    )
    assert out["otaUpdateStatus"] == "CREATE_PENDING" and "awsIotJobId" not in out
    info = iot.get_ota_update(otaUpdateId=ota_id)["otaUpdateInfo"]
    return dict(info)


def document(iot: Any, info: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(iot.get_job_document(jobId=info["awsIotJobId"])["document"])["afr_ota"])


def pending(jobs_data: Any, thing: str) -> list[str]:
    out = jobs_data.get_pending_job_executions(thingName=thing)
    return [j["jobId"] for j in out["queuedJobs"] + out["inProgressJobs"]]


def succeed(jobs_data: Any, thing: str, job_id: str) -> None:
    assert wait_for(lambda: job_id in pending(jobs_data, thing)), thing
    jobs_data.update_job_execution(thingName=thing, jobId=job_id, status="SUCCEEDED")


def test_targets_things_and_groups_snapshot_completes(
    iot: Any, jobs_data: Any, fw: dict[str, str]
) -> None:
    group = uid("grp-")
    garn = iot.create_thing_group(thingGroupName=group)["thingGroupArn"]
    in_group = things(iot, 2, group)
    alone = things(iot, 1)
    info = create(iot, [garn, arn_of(iot, alone[0])], [s3_file(fw)], targetSelection="SNAPSHOT")
    assert info["otaUpdateStatus"] == "CREATE_COMPLETE"
    assert info["targets"] == [garn, arn_of(iot, alone[0])]
    job_id = info["awsIotJobId"]
    job = iot.describe_job(jobId=job_id)["job"]
    assert job["targetSelection"] == "SNAPSHOT" and job["targets"] == info["targets"]
    for t in in_group + alone:
        succeed(jobs_data, t, job_id)
    assert wait_for(lambda: iot.describe_job(jobId=job_id)["job"]["status"] == "COMPLETED")
    late = things(iot, 1, group)  # a snapshot does not take devices that join later
    engine_ticks()
    assert job_id not in pending(jobs_data, late[0])


def test_continuous_takes_devices_that_join_later(
    iot: Any, jobs_data: Any, fw: dict[str, str]
) -> None:
    group = uid("cont-")
    garn = iot.create_thing_group(thingGroupName=group)["thingGroupArn"]
    first = things(iot, 1, group)
    info = create(iot, [garn], [s3_file(fw)], targetSelection="CONTINUOUS")
    job_id = info["awsIotJobId"]
    assert info["targetSelection"] == "CONTINUOUS"
    succeed(jobs_data, first[0], job_id)
    later = things(iot, 1, group)
    succeed(jobs_data, later[0], job_id)
    summaries = iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]
    assert len(summaries) == 2
    engine_ticks()
    assert iot.describe_job(jobId=job_id)["job"]["status"] == "IN_PROGRESS"  # never completes


def test_protocols(iot: Any, jobs_data: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 3)
    arns = [arn_of(iot, t) for t in dev]
    mqtt = create(iot, [arns[0]], [s3_file(fw)], protocols=["MQTT"])
    doc = document(iot, mqtt)
    assert doc["protocols"] == ["MQTT"] and doc["streamname"].startswith("AFR_OTA-")
    f = doc["files"][0]
    assert (f["update_data_url"], f["auth_scheme"]) == (None, None)
    stream = iot.describe_stream(streamId=doc["streamname"])["streamInfo"]
    assert stream["roleArn"] == ROLE and stream["files"][0]["fileId"] == f["fileid"] == 0

    http = create(
        iot,
        [arns[1]],
        [s3_file(fw)],
        protocols=["HTTP"],
        awsJobPresignedUrlConfig={"expiresInSec": 300},
    )
    doc = document(iot, http)
    assert doc["protocols"] == ["HTTP"] and "streamname" not in doc
    assert doc["files"][0]["auth_scheme"] == "aws.s3.presigned"
    assert doc["files"][0]["update_data_url"].startswith("${aws:iot:s3-presigned-url:https://")
    assert http["awsJobPresignedUrlConfig"] == {"expiresInSec": 300}
    presigned = iot.describe_job(jobId=http["awsIotJobId"])["job"]["presignedUrlConfig"]
    assert presigned == {"expiresInSec": 300, "roleArn": ROLE}  # roleArn recorded
    # The device gets a download URL valid for expiresInSec (the placeholder, substituted).
    assert wait_for(lambda: pending(jobs_data, dev[1]))
    got = jobs_data.describe_job_execution(
        thingName=dev[1], jobId=http["awsIotJobId"], includeJobDocument=True
    )["execution"]
    url = json.loads(got["jobDocument"])["afr_ota"]["files"][0]["update_data_url"]
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert 290 <= expires - time.time() <= 301
    assert httpx.get(url).content == V2  # the latest version when none is named

    both = create(iot, [arns[2]], [s3_file(fw)], protocols=["MQTT", "HTTP"])
    doc = document(iot, both)
    assert doc["protocols"] == ["MQTT", "HTTP"] and doc["streamname"]
    assert doc["files"][0]["auth_scheme"] == "aws.s3.presigned"
    assert both["awsJobPresignedUrlConfig"] == {"expiresInSec": 1800}  # AWS's OTA default


def test_s3_version_pins_the_file(iot: Any, jobs_data: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 1)
    info = create(iot, [arn_of(iot, dev[0])], [s3_file(fw, fw["v1"])], protocols=["MQTT", "HTTP"])
    doc = document(iot, info)
    assert doc["files"][0]["filesize"] == len(V1)  # not the latest (V2)
    assert (
        iot.describe_stream(streamId=doc["streamname"])["streamInfo"]["files"][0]["s3Location"][
            "version"
        ]
        == fw["v1"]
    )
    assert wait_for(lambda: pending(jobs_data, dev[0]))
    got = jobs_data.describe_job_execution(
        thingName=dev[0], jobId=info["awsIotJobId"], includeJobDocument=True
    )["execution"]
    url = json.loads(got["jobDocument"])["afr_ota"]["files"][0]["update_data_url"]
    assert httpx.get(url).content == V1


def test_existing_stream_is_used_and_kept(iot: Any, fw: dict[str, str]) -> None:
    sid = uid("mystream_")
    iot.create_stream(
        streamId=sid,
        roleArn=ROLE,
        files=[
            {
                "fileId": 7,
                "s3Location": {"bucket": fw["bucket"], "key": "fw.bin", "version": fw["v1"]},
            }
        ],
    )
    before = {s["streamId"] for s in iot.list_streams(maxResults=250)["streams"]}
    dev = things(iot, 1)
    info = create(
        iot,
        [arn_of(iot, dev[0])],
        [{"fileName": "/fw.bin", "fileLocation": {"stream": {"streamId": sid, "fileId": 7}}}],
    )
    doc = document(iot, info)
    assert doc["streamname"] == sid and doc["files"][0]["fileid"] == 7
    assert doc["files"][0]["filesize"] == len(V1)
    after = {s["streamId"] for s in iot.list_streams(maxResults=250)["streams"]}
    assert after == before  # nothing created
    iot.delete_ota_update(
        otaUpdateId=info["otaUpdateId"], deleteStream=True, forceDeleteAWSJob=True
    )
    assert iot.describe_stream(streamId=sid)["streamInfo"]["streamId"] == sid  # not its own


def test_rollout_abort_and_timeout(iot: Any, jobs_data: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 3)
    rollout = {"maximumPerMinute": 1}
    abort = {
        "abortCriteriaList": [
            {
                "failureType": "REJECTED",
                "action": "CANCEL",
                "thresholdPercentage": 50.5,
                "minNumberOfExecutedThings": 2,
            }
        ]
    }
    info = create(
        iot,
        [arn_of(iot, t) for t in dev],
        [s3_file(fw)],
        awsJobExecutionsRolloutConfig=rollout,
        awsJobAbortConfig=abort,
        awsJobTimeoutConfig={"inProgressTimeoutInMinutes": 1},
    )
    assert info["awsJobExecutionsRolloutConfig"] == rollout
    assert "awsJobAbortConfig" not in info and "awsJobTimeoutConfig" not in info  # as AWS
    job_id = info["awsIotJobId"]
    job = iot.describe_job(jobId=job_id)["job"]
    assert job["jobExecutionsRolloutConfig"] == rollout
    assert job["abortConfig"] == {"criteriaList": abort["abortCriteriaList"]}
    assert job["timeoutConfig"] == {"inProgressTimeoutInMinutes": 1}
    # One a minute: a single device is notified in the first minute.
    engine_ticks()
    released = [t for t in dev if job_id in pending(jobs_data, t)]
    assert len(released) == 1
    started = jobs_data.start_next_pending_job_execution(thingName=released[0])["execution"]
    assert 0 < started["approximateSecondsBeforeTimedOut"] <= 60  # the in-progress timeout


def test_exponential_rate(iot: Any, jobs_data: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 4)
    rollout = {
        "exponentialRate": {
            "baseRatePerMinute": 1,
            "incrementFactor": 2.0,
            "rateIncreaseCriteria": {"numberOfSucceededThings": 1},
        }
    }
    info = create(
        iot, [arn_of(iot, t) for t in dev], [s3_file(fw)], awsJobExecutionsRolloutConfig=rollout
    )
    job_id = info["awsIotJobId"]
    assert iot.describe_job(jobId=job_id)["job"]["jobExecutionsRolloutConfig"] == rollout
    engine_ticks()
    assert len([t for t in dev if job_id in pending(jobs_data, t)]) == 1  # the base rate


def ecdsa_signed(data: bytes) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.sign(data, ec.ECDSA(hashes.SHA256())), self_signed_with_key("signer", key)


def test_code_signing(iot: Any, signer: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 1)
    target = [arn_of(iot, dev[0])]
    profile = uid("prof_")
    signer.put_signing_profile(
        profileName=profile,
        platformId="AmazonFreeRTOS-Default",
        signingMaterial={"certificateArn": "arn:aws:acm:x"},
        signingParameters={"certname": "/certs/p.pem"},
    )
    # 1. a signing job done beforehand, named by id
    sj = signer.start_signing_job(
        source={"s3": {"bucketName": fw["bucket"], "key": "fw.bin", "version": fw["v1"]}},
        destination={"s3": {"bucketName": fw["bucket"], "prefix": "signed/"}},
        profileName=profile,
    )["jobId"]
    info = create(iot, target, [s3_file(fw, fw["v1"], codeSigning={"awsSignerJobId": sj})])
    f = document(iot, info)["files"][0]
    assert f["certfile"] == "/certs/p.pem" and f["sig-sha256-ecdsa"]
    assert info["otaUpdateFiles"][0]["codeSigning"]["awsSignerJobId"] == sj
    # 2. startSigningJobParameter with a profile made on the way
    made = uid("made_")
    info = create(
        iot,
        target,
        [
            s3_file(
                fw,
                fw["v1"],
                codeSigning={
                    "startSigningJobParameter": {
                        "signingProfileName": made,
                        "signingProfileParameter": {
                            "platform": "AmazonFreeRTOS-Default",
                            "certificateArn": "arn:aws:acm:y",
                            "certificatePathOnDevice": "/certs/made.pem",
                        },
                        "destination": {
                            "s3Destination": {"bucket": fw["bucket"], "prefix": "signed/"}
                        },
                    }
                },
            )
        ],
    )
    assert info["otaUpdateStatus"] == "CREATE_COMPLETE", info.get("errorInfo")
    f = document(iot, info)["files"][0]
    assert f["certfile"] == "/certs/made.pem" and f["sig-sha256-ecdsa"]
    assert signer.get_signing_profile(profileName=made)["status"] == "Active"
    # 3. customCodeSigning: the caller's signature, checked against its certificate
    sig, cert = ecdsa_signed(V1)
    custom = {
        "signature": {"inlineDocument": sig},
        "certificateChain": {"certificateName": "/certs/custom.pem", "inlineDocument": cert},
        "hashAlgorithm": "SHA256",
        "signatureAlgorithm": "ECDSA",
    }
    info = create(iot, target, [s3_file(fw, fw["v1"], codeSigning={"customCodeSigning": custom})])
    assert info["otaUpdateStatus"] == "CREATE_COMPLETE", info.get("errorInfo")
    f = document(iot, info)["files"][0]
    assert f["certfile"] == "/certs/custom.pem"
    assert base64.b64decode(f["sig-sha256-ecdsa"]) == sig
    bad, _ = ecdsa_signed(V2)  # a signature of something else
    info = create(
        iot,
        target,
        [
            s3_file(
                fw,
                fw["v1"],
                codeSigning={"customCodeSigning": {**custom, "signature": {"inlineDocument": bad}}},
            )
        ],
    )
    assert info["otaUpdateStatus"] == "CREATE_FAILED" and info["errorInfo"]["code"]
    # 4. signing that fails (the profile was canceled) fails the update
    signer.cancel_signing_profile(profileName=profile)
    info = create(
        iot,
        target,
        [
            s3_file(
                fw,
                fw["v1"],
                codeSigning={
                    "startSigningJobParameter": {
                        "signingProfileName": profile,
                        "destination": {"s3Destination": {"bucket": fw["bucket"]}},
                    }
                },
            )
        ],
    )
    assert info["otaUpdateStatus"] == "CREATE_FAILED"
    assert info["errorInfo"]["code"] == "ValidationException"  # the signer's own error


def test_status_and_error_info(iot: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 1)
    missing_thing = "arn:aws:iot:eu-west-1:123456789012:thing/" + uid("ghost-")
    info = create(iot, [missing_thing], [s3_file(fw)])
    assert info["otaUpdateStatus"] == "CREATE_FAILED"
    assert info["errorInfo"]["code"] == "ResourceNotFoundException"
    assert "awsIotJobId" not in info
    info = create(
        iot,
        [arn_of(iot, dev[0])],
        [{"fileLocation": {"s3Location": {"bucket": fw["bucket"], "key": "nope.bin"}}}],
    )
    assert (info["otaUpdateStatus"], info["errorInfo"]["code"]) == (
        "CREATE_FAILED",
        "ResourceNotFoundException",
    )
    failed = iot.list_ota_updates(otaUpdateStatus="CREATE_FAILED", maxResults=250)["otaUpdates"]
    assert info["otaUpdateId"] in {u["otaUpdateId"] for u in failed}


def test_additional_parameters_tags_description(iot: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 1)
    info = create(
        iot,
        [arn_of(iot, dev[0])],
        [s3_file(fw, fileType=3, attributes={"a": "b"})],
        description="spring release",
        additionalParameters={"ticket": "FW-12"},
        tags=[{"Key": "team", "Value": "fw"}],
    )
    assert info["additionalParameters"] == {"ticket": "FW-12"}
    assert info["description"] == "spring release"
    f = document(iot, info)["files"][0]
    assert f["fileType"] == 3 and "attributes" not in f and "attr" not in f
    assert "ticket" not in json.dumps(document(iot, info))  # never sent to devices
    assert iot.list_tags_for_resource(resourceArn=info["otaUpdateArn"])["tags"] == [
        {"Key": "team", "Value": "fw"}
    ]
    job_arn = iot.describe_job(jobId=info["awsIotJobId"])["job"]["jobArn"]
    assert iot.list_tags_for_resource(resourceArn=job_arn)["tags"] == [
        {"Key": "team", "Value": "fw"}
    ]


def test_get_list_delete(iot: Any, jobs_data: Any, fw: dict[str, str]) -> None:
    dev = things(iot, 1)
    info = create(iot, [arn_of(iot, dev[0])], [s3_file(fw)], protocols=["MQTT"])
    ota_id, job_id = info["otaUpdateId"], info["awsIotJobId"]
    stream_id = document(iot, info)["streamname"]
    listed = iot.list_ota_updates(maxResults=250)["otaUpdates"]
    assert ota_id in {u["otaUpdateId"] for u in listed}
    page = iot.list_ota_updates(maxResults=1)
    assert len(page["otaUpdates"]) == 1 and page["nextToken"]
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.delete_ota_update(otaUpdateId=ota_id)  # its job is still in progress
    iot.delete_ota_update(otaUpdateId=ota_id, deleteStream=True, forceDeleteAWSJob=True)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_ota_update(otaUpdateId=ota_id)
    assert wait_for(lambda: _gone(iot.describe_job, jobId=job_id))
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_stream(streamId=stream_id)
    # Without deleteStream the stream stays; a finished job needs no force.
    info = create(iot, [arn_of(iot, dev[0])], [s3_file(fw)], protocols=["MQTT"])
    stream_id = document(iot, info)["streamname"]
    succeed(jobs_data, dev[0], info["awsIotJobId"])
    assert wait_for(
        lambda: iot.describe_job(jobId=info["awsIotJobId"])["job"]["status"] == "COMPLETED"
    )
    iot.delete_ota_update(otaUpdateId=info["otaUpdateId"])
    assert iot.describe_stream(streamId=stream_id)["streamInfo"]["streamId"] == stream_id
    assert iot.describe_job(jobId=info["awsIotJobId"])["job"]["status"] == "COMPLETED"
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.delete_ota_update(otaUpdateId=uid("never"))


def _gone(fn: Any, **kw: Any) -> bool:
    try:
        fn(**kw)
    except Exception as exc:  # ResourceNotFoundException
        return "ResourceNotFound" in type(exc).__name__
    return False

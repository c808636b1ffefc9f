"""The wire layer through boto3: SigV4 in the header and presigned (with AWS's
5-minute skew and expiry), model validation errors in AWS's shape, and operations
of the models that otahub does not implement, for iot, iot-jobs-data, signer, s3."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import httpx
import pytest
from botocore.compat import get_current_datetime
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.aws.conftest import KEY, SECRET
from tests.integration.server import ServerProcess

NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def boto(server: ServerProcess, service: str, **cfg: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=NO_RETRY.merge(Config(**cfg)),
    )


def code_and_status(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    r = err.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def clock_off() -> Iterator[Any]:
    """Sign as if the client's clock were `offset` away from the server's (botocore
    signs with awscrt when it is installed, else in Python: both are shifted)."""
    offset = {"by": dt.timedelta(0)}

    def shifted(*args: Any, **kwargs: Any) -> dt.datetime:
        return get_current_datetime(*args, **kwargs) + offset["by"]

    with contextlib.ExitStack() as stack:
        for module in ("botocore.auth", "botocore.crt.auth"):
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
                stack.enter_context(mock.patch(f"{module}.get_current_datetime", shifted))
        yield offset


# -- SigV4 -------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["iot", "iot-jobs-data", "signer"])
def test_clock_skew_within_five_minutes(
    server: ServerProcess, clock_off: Any, service: str
) -> None:
    client = boto(server, service)
    call = {
        "iot": lambda: client.list_things(),
        "iot-jobs-data": lambda: client.get_pending_job_executions(thingName="none"),
        "signer": lambda: client.list_signing_profiles(),
    }[service]
    for minutes in (-4, 4):
        clock_off["by"] = dt.timedelta(minutes=minutes)
        try:
            call()
        except ClientError as exc:  # a missing thing is fine: the signature held
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
    for minutes in (-6, 6):
        clock_off["by"] = dt.timedelta(minutes=minutes)
        with pytest.raises(ClientError) as err:
            call()
        assert code_and_status(err) == ("InvalidSignatureException", 403)
        assert "Signature expired" in err.value.response["Error"]["Message"]


def test_s3_clock_skew(server: ServerProcess, clock_off: Any) -> None:
    s3 = boto(server, "s3")
    s3.list_buckets()
    clock_off["by"] = dt.timedelta(minutes=-6)
    with pytest.raises(ClientError) as err:
        s3.list_buckets()
    assert code_and_status(err) == ("RequestTimeTooSkewed", 403)


def test_bad_signature_and_unknown_key(server: ServerProcess) -> None:
    for service, call in (
        ("iot", "list_things"),
        ("signer", "list_signing_profiles"),
        ("s3", "list_buckets"),
    ):
        bad = boto3.client(
            service,
            endpoint_url=server.url,
            region_name="eu-west-1",
            aws_access_key_id=KEY,
            aws_secret_access_key="wrong",
            config=NO_RETRY,
        )
        with pytest.raises(ClientError) as err:
            getattr(bad, call)()
        expected = "SignatureDoesNotMatch" if service == "s3" else "InvalidSignatureException"
        assert code_and_status(err) == (expected, 403)


def test_presigned_iot_url(server: ServerProcess, clock_off: Any) -> None:
    iot = boto(server, "iot")
    thing = f"presigned-{uuid.uuid4().hex[:6]}"
    iot.create_thing(thingName=thing)
    url = iot.generate_presigned_url("describe_thing", Params={"thingName": thing}, ExpiresIn=120)
    assert "X-Amz-Signature=" in url and "Authorization" not in url
    got = httpx.get(url)
    assert got.status_code == 200 and got.json()["thingName"] == thing
    tampered = httpx.get(url.replace(thing, thing + "x"))
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    clock_off["by"] = dt.timedelta(minutes=-3)  # signed 3 minutes ago, valid for 2
    old = iot.generate_presigned_url("describe_thing", Params={"thingName": thing}, ExpiresIn=120)
    expired = httpx.get(old)
    assert expired.status_code == 403
    assert expired.json()["__type"] == "InvalidSignatureException"
    assert "expired" in expired.json()["message"]


def test_presigned_s3_url(server: ServerProcess, clock_off: Any) -> None:
    s3 = boto(server, "s3", signature_version="s3v4")
    bucket = f"presign-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=b"0123456789")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "fw.bin"}, ExpiresIn=60
    )
    got = httpx.get(url, headers={"Range": "bytes=2-5"})
    assert got.status_code == 206 and got.content == b"2345"
    clock_off["by"] = dt.timedelta(minutes=-2)
    old = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "fw.bin"}, ExpiresIn=60
    )
    expired = httpx.get(old)
    assert expired.status_code == 403 and b"<Code>AccessDenied</Code>" in expired.content


def test_presigned_s3_url_boto3_default(server: ServerProcess) -> None:
    """Without `signature_version="s3v4"` boto3 presigns S3 URLs with signature v2."""
    s3 = boto(server, "s3")
    bucket = f"presign-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="dir/fw 1.bin", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="dir/fw 1.bin", Body=b"second")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/fw 1.bin"}, ExpiresIn=60
    )
    assert "AWSAccessKeyId=" in url and "X-Amz-Algorithm" not in url
    assert httpx.get(url).content == b"second"
    pinned = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "dir/fw 1.bin", "VersionId": first},
        ExpiresIn=60,
    )
    assert httpx.get(pinned).content == b"first"
    forged = httpx.get(url.replace("fw%201", "fw%202"))
    assert forged.status_code == 403 and b"SignatureDoesNotMatch" in forged.content
    put = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "up.bin"}, ExpiresIn=60
    )
    assert httpx.put(put, content=b"uploaded").status_code == 200
    assert s3.get_object(Bucket=bucket, Key="up.bin")["Body"].read() == b"uploaded"
    old = url.replace("Expires=", "Expires=1").split("Expires=")[0] + "Expires=1000000000"
    expired = httpx.get(old)
    assert expired.status_code == 403 and b"AccessDenied" in expired.content


def test_epoch_seconds_and_no_nulls(server: ServerProcess) -> None:
    """Timestamps are JSON numbers of seconds (jobs-data: integers); absent members
    are left out, never null."""
    iot, jobs = boto(server, "iot"), boto(server, "iot-jobs-data")
    raw: list[Any] = []
    for client in (iot, jobs):
        client.meta.events.register(
            "after-call", lambda http_response, **_: raw.append(json.loads(http_response.content))
        )
    thing = f"ts-{uuid.uuid4().hex[:6]}"
    arn = iot.create_thing(thingName=thing)["thingArn"]
    job_id = f"ts-{uuid.uuid4().hex[:6]}"
    iot.create_job(jobId=job_id, targets=[arn], document="{}")
    raw.clear()
    iot.describe_job(jobId=job_id)
    job = raw[-1]["job"]
    now = dt.datetime.now(dt.UTC).timestamp()
    assert isinstance(job["createdAt"], int | float) and abs(job["createdAt"] - now) < 60
    assert "completedAt" not in job and "comment" not in job

    def walk(value: Any) -> None:
        assert value is not None
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(raw[-1])
    ex = None
    for _ in range(50):
        pending = jobs.get_pending_job_executions(thingName=thing)["queuedJobs"]
        if pending:
            ex = raw[-1]["queuedJobs"][0]
            break
        time.sleep(0.2)
    assert ex is not None and isinstance(ex["queuedAt"], int) and abs(ex["queuedAt"] - now) < 60
    walk(raw[-1])


# -- validation in AWS's shape -------------------------------------------------------


def raw_error(server: ServerProcess, service: str, call: str, **params: Any) -> Any:
    """The HTTP response of a call boto3 sends without validating it."""
    client = boto(server, service, parameter_validation=False)
    seen: dict[str, Any] = {}
    client.meta.events.register(
        "after-call", lambda http_response, **_: seen.setdefault("r", http_response)
    )
    with pytest.raises(ClientError) as err:
        getattr(client, call)(**params)
    r = seen["r"]
    body = json.loads(r.content)
    assert r.headers["x-amzn-ErrorType"] == body["__type"] == err.value.response["Error"]["Code"]
    assert body["message"] == err.value.response["Error"]["Message"]
    assert r.status_code == 400
    return err.value


@pytest.mark.parametrize(
    ("service", "call", "params", "code"),
    [
        ("iot", "list_things", {"maxResults": 251}, "InvalidRequestException"),  # max
        ("iot", "list_things", {"maxResults": 0}, "InvalidRequestException"),  # min
        ("iot", "list_jobs", {"status": "SOMETIMES"}, "InvalidRequestException"),  # enum
        ("iot", "describe_thing", {"thingName": "bad name"}, "InvalidRequestException"),
        ("iot", "create_thing_group", {"thingGroupName": "g" * 129}, "InvalidRequestException"),
        (
            "iot",
            "cancel_job",
            {"jobId": "j", "reasonCode": "ÜBER"},  # [\p{Upper}\p{Digit}_]+ is ASCII
            "InvalidRequestException",
        ),
        (
            "iot",
            "create_thing",
            {"thingName": "t", "attributePayload": {"attributes": {"bad key!": "v"}}},
            "InvalidRequestException",
        ),
        (
            "iot-jobs-data",
            "update_job_execution",
            {"thingName": "t", "jobId": "j", "status": "DONE"},
            "InvalidRequestException",
        ),
        (
            "iot-jobs-data",
            "start_next_pending_job_execution",
            {"thingName": "t", "stepTimeoutInMinutes": "x"},
            "InvalidRequestException",
        ),
        (
            "signer",
            "put_signing_profile",
            {"profileName": "bad-name", "platformId": "p"},
            "ValidationException",
        ),
    ],
)
def test_validation_errors(
    server: ServerProcess, service: str, call: str, params: dict[str, Any], code: str
) -> None:
    err = raw_error(server, service, call, **params)
    assert err.response["Error"]["Code"] == code
    client = boto(server, service)
    assert type(err).__name__ == code and hasattr(client.exceptions, code)


# -- operations of the model that otahub does not implement --------------------------


@pytest.mark.parametrize(
    ("service", "call", "params"),
    [
        ("iot", "list_audit_findings", {}),
        (
            "iot-jobs-data",
            "start_command_execution",
            {
                "targetArn": "arn:aws:iot:eu-west-1:1:thing/t",
                "commandArn": "arn:aws:iot:eu-west-1:1:command/c",
            },
        ),
        ("signer", "list_signing_platforms", {}),
        ("s3", "get_bucket_tagging", {"Bucket": "tagging-target"}),
        ("s3", "list_object_versions", {"Bucket": "tagging-target"}),
        (
            "s3",
            "put_object_tagging",
            {"Bucket": "tagging-target", "Key": "k", "Tagging": {"TagSet": []}},
        ),
    ],
)
def test_unimplemented_operation_is_an_aws_error(
    server: ServerProcess, service: str, call: str, params: dict[str, Any]
) -> None:
    client = boto(server, service)
    if service == "s3":
        with contextlib.suppress(ClientError):
            client.create_bucket(Bucket=params["Bucket"])
    with pytest.raises(ClientError) as err:
        getattr(client, call)(**params)
    code, status = code_and_status(err)
    assert code in ("NotImplementedException", "NotImplemented") and status == 501
    assert err.value.response["Error"]["Message"]

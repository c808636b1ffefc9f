"""Issue 18, the AWS control plane and the jobs data plane: what the model does not
allow is refused by the wire layer with the operation's modelled 400 (never a 5xx),
and a refused request stores nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from otahub.core.engine import Engine
from otahub.core.services import Services
from otahub.domain.clock import FakeClock
from tests.unit.aws.harness import ACCOUNT, REGION, AwsConsole, aws_console, error_of

INVALID = (400, "InvalidRequestException")
SIGNER_INVALID = (400, "ValidationException")
NOT_FINITE = ("NaN", "Infinity", "1e309")
PAST_INT64 = "9223372036854775808"
THING_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/t1"


@pytest.fixture
async def aws(services: Services, clock: FakeClock, tmp_path: Path) -> AsyncIterator[AwsConsole]:
    async with aws_console(services, clock, tmp_path) as console:
        await console.ok("iot", "CreateThing", thingName="t1")
        yield console


def job_body(**members: str) -> str:
    """A CreateJob body of t1 with `members` as raw JSON text (NaN and 1e309 stay)."""
    parts = [f'"targets": ["{THING_ARN}"]', '"document": "{}"']
    parts += [f'"{k}": {v}' for k, v in members.items()]
    return "{" + ", ".join(parts) + "}"


async def create_job(aws: AwsConsole, job_id: str, **members: str) -> Any:
    return await aws.raw("iot", "PUT", f"/jobs/{job_id}", body=job_body(**members))


async def job_ids(aws: AwsConsole) -> list[str]:
    return [j["jobId"] for j in (await aws.ok("iot", "ListJobs"))["jobs"]]


# -- numbers the engine cannot compute --------------------------------------------


@pytest.mark.parametrize("number", NOT_FINITE)
async def test_create_job_refuses_non_finite_policy_numbers(aws: AwsConsole, number: str) -> None:
    rollout = (
        '{"exponentialRate": {"baseRatePerMinute": 1, "incrementFactor": 2,'
        f' "rateIncreaseCriteria": {{"numberOfNotifiedThings": {number}}}}}}}'
    )
    abort = (
        '{"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",'
        f' "thresholdPercentage": {number}, "minNumberOfExecutedThings": 1}}]}}'
    )
    for members in (
        {"jobExecutionsRolloutConfig": rollout},
        {"abortConfig": abort},
        {"timeoutConfig": f'{{"inProgressTimeoutInMinutes": {number}}}'},
    ):
        assert error_of(await create_job(aws, "j1", **members)) == INVALID, members
    assert await job_ids(aws) == []


@pytest.mark.parametrize("number", NOT_FINITE)
async def test_update_job_refuses_non_finite_rate(aws: AwsConsole, number: str) -> None:
    assert (await create_job(aws, "j1")).status_code == 200
    body = f'{{"jobExecutionsRolloutConfig": {{"maximumPerMinute": {number}}}}}'
    reply = await aws.raw("iot", "PATCH", "/jobs/j1", body=body)
    assert error_of(reply) == INVALID
    job = (await aws.ok("iot", "DescribeJob", jobId="j1"))["job"]
    assert "jobExecutionsRolloutConfig" not in job


# The core refuses most of these too (its range is 1 to 10080); a fraction got past.
@pytest.mark.parametrize("number", ["NaN", PAST_INT64, "1.5"])
async def test_jobs_data_refuses_bad_step_timeouts(
    aws: AwsConsole, engine: Engine, number: str
) -> None:
    assert (await create_job(aws, "j1")).status_code == 200
    await engine.tick()
    start = await aws.raw(
        "iot-jobs-data",
        "PUT",
        "/things/t1/jobs/$next",
        body=f'{{"stepTimeoutInMinutes": {number}}}',
    )
    assert error_of(start) == INVALID
    update = await aws.raw(
        "iot-jobs-data",
        "POST",
        "/things/t1/jobs/j1",
        body=f'{{"status": "IN_PROGRESS", "stepTimeoutInMinutes": {number}}}',
    )
    assert error_of(update) == INVALID
    pending = await aws.ok("iot-jobs-data", "GetPendingJobExecutions", thingName="t1")
    assert pending["inProgressJobs"] == [] and len(pending["queuedJobs"]) == 1


async def test_integers_past_their_type(aws: AwsConsole) -> None:
    past_int32 = {"jobExecutionsRolloutConfig": '{"maximumPerMinute": 2147483648}'}  # integer
    past_int64 = {"timeoutConfig": f'{{"inProgressTimeoutInMinutes": {PAST_INT64}}}'}  # long
    for members in (past_int32, past_int64):
        assert error_of(await create_job(aws, "j1", **members)) == INVALID
    assert await job_ids(aws) == []
    assert (await create_job(aws, "j1")).status_code == 200
    for query in (f"executionNumber={PAST_INT64}", "executionNumber=" + "1" * 5000):
        reply = await aws.raw("iot-jobs-data", "GET", "/things/t1/jobs/j1", query=query)
        assert error_of(reply) == INVALID, query
    body = f'{{"status": "IN_PROGRESS", "executionNumber": {PAST_INT64}}}'
    reply = await aws.raw("iot-jobs-data", "POST", "/things/t1/jobs/j1", body=body)
    assert error_of(reply) == INVALID


async def test_querystring_floats_and_timestamps(aws: AwsConsole) -> None:
    for value in ("nan", "inf", "1e309", "-1e400", "9999-12-31T23:59:59-23:59", "x"):
        reply = await aws.raw(
            "signer",
            "GET",
            "/signing-jobs",
            query={"signatureExpiresAfter": value},
        )
        assert error_of(reply) == SIGNER_INVALID, value
    for value in ("1e309", "1e18", '"99999-01-01"', '"2026-13-01"', "NaN"):
        body = f'{{"profileVersion": "abcdefghij", "reason": "r", "effectiveTime": {value}}}'
        reply = await aws.raw("signer", "PUT", "/signing-profiles/p1/revoke", body=body)
        assert error_of(reply) == SIGNER_INVALID, value


# -- strings the store cannot hold ---------------------------------------------------


async def test_nul_and_lone_surrogates_in_strings(aws: AwsConsole) -> None:
    arn = f"arn:aws:iot:{REGION}:{ACCOUNT}:job/j1"
    assert (await create_job(aws, "j1")).status_code == 200
    for value in ("a\\u0000b", "\\ud800"):
        body = f'{{"tags": [{{"Key": "k", "Value": "{value}"}}]}}'
        reply = await aws.raw("iot", "POST", f"/tags?resourceArn={arn}", body=body)
        assert error_of(reply) == INVALID, value
        reply = await aws.raw(
            "iot",
            "POST",
            "/things/t2",
            body=f'{{"attributePayload": {{"attributes": {{"k{value}": "v"}}}}}}',
        )
        assert error_of(reply) == INVALID, value
    assert (await aws.ok("iot", "ListTagsForResource", resourceArn=arn))["tags"] == []
    # in the URI and the query string; ListSigningProfiles declares no client error
    # but AccessDeniedException
    for service, path, query, expected in (
        ("signer", "/signing-jobs/a%00b", "", (404, "ResourceNotFoundException")),
        ("iot", "/jobs", "nextToken=%00", INVALID),
        ("iot", "/things/t1/jobs", "status=%00", INVALID),
        ("signer", "/signing-jobs", "platformId=a%00b", SIGNER_INVALID),
        ("signer", "/signing-profiles", "platformId=a%00b", (403, "AccessDeniedException")),
    ):
        reply = await aws.raw(service, "GET", path, query=query)
        assert error_of(reply) == expected, (path, reply.text)


# -- nesting and documents -----------------------------------------------------------


async def test_deep_json_body_is_refused(aws: AwsConsole) -> None:
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    reply = await aws.raw("iot", "PUT", "/jobs/j1", body=job_body(documentParameters=deep))
    assert error_of(reply) == INVALID
    reply = await aws.raw("iot", "POST", "/things/t2", body="[" * 5000 + "]" * 5000)
    assert error_of(reply) == INVALID
    assert await job_ids(aws) == []


@pytest.mark.parametrize(
    "document",
    [
        '{"a":' * 5000 + "1" + "}" * 5000,  # deeper than any real document
        '{"x": "' + "y" * 32_768 + '"}',  # past AWS's 32 KB
        '{"x": "' + "é" * 16_380 + '"}',  # 32,768 characters at most, but 2 bytes each
        "[1, 2]",  # not an object
        "not json",
        '{"a": NaN}',
    ],
    ids=["deep", "large", "multibyte", "array", "text", "nan"],
)
async def test_job_documents_are_checked(aws: AwsConsole, document: str) -> None:
    reply = await aws.raw(
        "iot", "PUT", "/jobs/j1", body=json.dumps({"targets": [THING_ARN], "document": document})
    )
    assert error_of(reply) == INVALID
    assert await job_ids(aws) == []


async def test_a_job_document_from_s3_is_checked(aws: AwsConsole) -> None:
    s3 = await aws.raw("s3", "PUT", "/docs")
    assert s3.status_code == 200, s3.text
    deep = ('{"a":' * 5000 + "1" + "}" * 5000).encode()
    put = await aws.raw("s3", "PUT", "/docs/deep.json", body=deep)
    assert put.status_code == 200, put.text
    source = "https://s3.amazonaws.com/docs/deep.json"
    reply = await aws.raw(
        "iot",
        "PUT",
        "/jobs/j1",
        body=json.dumps({"targets": [THING_ARN], "documentSource": source}),
    )
    assert error_of(reply) == INVALID
    assert await job_ids(aws) == []


# -- list tokens ---------------------------------------------------------------------

LISTS = [
    ("iot", "/things", {}),
    ("iot", "/thing-groups", {}),
    ("iot", "/thing-groups/g1/things", {}),
    ("iot", "/things/t1/thing-groups", {}),
    ("iot", "/things/t1/principals", {}),
    ("iot", "/otaUpdates", {}),
    ("iot", "/jobs", {}),
    ("iot", "/jobs/j1/things", {}),
    ("iot", "/things/t1/jobs", {}),
    ("iot", "/streams", {}),
    ("iot", "/tags", {"resourceArn": f"arn:aws:iot:{REGION}:{ACCOUNT}:job/j1"}),
    ("signer", "/signing-jobs", {}),
    ("signer", "/signing-profiles", {}),
]


@pytest.mark.parametrize(
    "token",
    ["abc", "-1", "1" * 5000, "9" * 19, "1e3", "١٢"],
    ids=["letters", "negative", "5000-digits", "past-int64", "exponent", "arabic-digits"],
)
async def test_malformed_next_tokens(aws: AwsConsole, token: str) -> None:
    await aws.ok("iot", "CreateThingGroup", thingGroupName="g1")
    assert (await create_job(aws, "j1")).status_code == 200
    for service, path, query in LISTS:
        reply = await aws.raw(service, "GET", path, query={**query, "nextToken": token})
        expected = {
            "/signing-jobs": SIGNER_INVALID,
            "/signing-profiles": (403, "AccessDeniedException"),  # its only client error
        }.get(path, INVALID)
        assert error_of(reply) == expected, (path, reply.text)


async def test_issued_tokens_still_page(aws: AwsConsole) -> None:
    for i in range(3):
        await aws.ok("iot", "CreateThing", thingName=f"more{i}")
    first = await aws.ok("iot", "ListThings", maxResults=2)
    second = await aws.ok("iot", "ListThings", maxResults=2, nextToken=first["nextToken"])
    names = [t["thingName"] for t in first["things"] + second["things"]]
    assert sorted(names) == ["more0", "more1", "more2", "t1"]


# -- members that reached a handler as they were -------------------------------------


async def test_stream_files_with_null(aws: AwsConsole) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/r"
    create = await aws.raw(
        "iot", "POST", "/streams/s1", body=json.dumps({"files": [None], "roleArn": role})
    )
    assert error_of(create) == INVALID
    update = await aws.raw("iot", "PUT", "/streams/s1", body='{"files": [null]}')
    assert error_of(update) == INVALID
    assert (await aws.ok("iot", "ListStreams"))["streams"] == []


async def test_null_map_values_and_list_items(aws: AwsConsole) -> None:
    reply = await aws.raw(
        "iot", "POST", "/things/t2", body='{"attributePayload": {"attributes": {"a": null}}}'
    )
    assert error_of(reply) == INVALID
    reply = await aws.raw(
        "iot", "PUT", "/jobs/j1", body=f'{{"targets": ["{THING_ARN}", null], "document": "{{}}"}}'
    )
    assert error_of(reply) == INVALID
    assert await job_ids(aws) == []


@pytest.mark.parametrize("signature", ["!!!notbase64", "abc", "YQ==YQ=="])
async def test_custom_signature_that_is_not_base64(aws: AwsConsole, signature: str) -> None:
    body = {
        "targets": [THING_ARN],
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
        "files": [
            {
                "fileName": "fw.bin",
                "fileLocation": {"s3Location": {"bucket": "b", "key": "k"}},
                "codeSigning": {
                    "customCodeSigning": {
                        "signature": {"inlineDocument": signature},
                        "hashAlgorithm": "SHA256",
                        "signatureAlgorithm": "ECDSA",
                    }
                },
            }
        ],
    }
    reply = await aws.raw("iot", "POST", "/otaUpdates/u1", body=json.dumps(body))
    assert error_of(reply) == INVALID
    assert (await aws.ok("iot", "ListOTAUpdates"))["otaUpdates"] == []


async def test_dynamic_group_query_nesting(aws: AwsConsole) -> None:
    for query in (
        "(" * 5000 + "thingName:a" + ")" * 5000,
        "NOT " * 5000 + "thingName:a",
        "attributes.v>nan",
    ):
        body = json.dumps({"queryString": query})
        reply = await aws.raw("iot", "POST", "/dynamic-thing-groups/d1", body=body)
        assert reply.status_code == 400, reply.text


async def test_undeclared_codes_become_declared_ones(aws: AwsConsole) -> None:
    # GetSigningProfile declares no ValidationException: a name its pattern refuses
    # names no profile there can be
    reply = await aws.raw("signer", "GET", "/signing-profiles/bad%00name")
    assert error_of(reply) == (404, "ResourceNotFoundException")


async def test_expected_version_past_the_version_column(aws: AwsConsole) -> None:
    await aws.ok("iot", "CreateThingGroup", thingGroupName="g1")
    body = json.dumps(
        {"thingGroupProperties": {"thingGroupDescription": "d"}, "expectedVersion": 2**40}
    )
    reply = await aws.raw("iot", "PATCH", "/thing-groups/g1", body=body)
    assert error_of(reply) == (409, "VersionConflictException")
    group = await aws.ok("iot", "DescribeThingGroup", thingGroupName="g1")
    assert group["version"] == 1 and "thingGroupDescription" not in group["thingGroupProperties"]


def ota_update(file: dict[str, Any]) -> dict[str, Any]:
    location = {"s3Location": {"bucket": "firmware", "key": "a.bin"}}
    return {
        "otaUpdateId": "u1",
        "targets": [THING_ARN],
        "protocols": ["HTTP"],
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
        "files": [{"fileName": "a.bin", "fileLocation": location, **file}],
    }


async def put_firmware(aws: AwsConsole) -> None:
    assert (await aws.raw("s3", "PUT", "/firmware")).status_code == 200
    assert (await aws.raw("s3", "PUT", "/firmware/a.bin", body=b"firmware")).status_code == 200


async def test_an_ota_document_past_the_limit_fails_the_update(aws: AwsConsole) -> None:
    await put_firmware(aws)
    signing = {
        "customCodeSigning": {
            "signature": {"inlineDocument": "c2lnbmF0dXJl"},
            "certificateChain": {"certificateName": "/" + "c" * 40_000},  # in the document
        }
    }
    await aws.ok("iot", "CreateOTAUpdate", **ota_update({"codeSigning": signing}))
    info = (await aws.ok("iot", "GetOTAUpdate", otaUpdateId="u1"))["otaUpdateInfo"]
    assert info["otaUpdateStatus"] == "CREATE_FAILED"
    assert info["errorInfo"]["code"] == "InvalidRequestException"
    assert "32768 bytes" in info["errorInfo"]["message"]
    assert await job_ids(aws) == []


@pytest.mark.parametrize(
    "file",
    [
        {"fileName": "/" + "a" * 40_000},
        {"fileVersion": "1" * 65},
        {
            "codeSigning": {
                "startSigningJobParameter": {
                    "signingProfileName": "p" * 65,
                    "signingProfileParameter": {"platform": "AmazonFreeRTOS-Default"},
                }
            }
        },
    ],
    ids=["fileName", "fileVersion", "signingProfileName"],
)
async def test_ota_members_past_what_the_store_keeps(aws: AwsConsole, file: dict[str, Any]) -> None:
    await put_firmware(aws)
    reply = await aws.call("iot", "CreateOTAUpdate", **ota_update(file))
    assert error_of(reply) == INVALID
    assert (await aws.ok("iot", "ListOTAUpdates"))["otaUpdates"] == []
    assert await job_ids(aws) == []


async def test_signer_members_past_what_the_store_keeps(aws: AwsConsole) -> None:
    profile = {
        "platformId": "p" * 65,
        "overrides": {"signingConfiguration": {"encryptionAlgorithm": "ECDSA"}},
    }
    reply = await aws.call("signer", "PutSigningProfile", profileName="prof", **profile)
    assert error_of(reply) == SIGNER_INVALID
    assert (await aws.ok("signer", "ListSigningProfiles"))["profiles"] == []
    await aws.ok(
        "signer", "PutSigningProfile", profileName="prof", platformId="AmazonFreeRTOS-Default"
    )
    await put_firmware(aws)
    reply = await aws.call(
        "signer",
        "StartSigningJob",
        profileName="prof",
        clientRequestToken="t" * 65,
        source={"s3": {"bucketName": "firmware", "key": "a.bin", "version": "null"}},
        destination={"s3": {"bucketName": "firmware"}},
    )
    assert error_of(reply) == SIGNER_INVALID
    assert (await aws.ok("signer", "ListSigningJobs"))["jobs"] == []


async def test_a_resource_arn_past_what_the_store_keeps(aws: AwsConsole) -> None:
    arn = f"arn:aws:iot:{REGION}:{ACCOUNT}:job/" + "j" * 3000
    reply = await aws.call("iot", "TagResource", resourceArn=arn, tags=[{"Key": "k", "Value": "v"}])
    assert error_of(reply) == INVALID

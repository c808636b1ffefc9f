"""What a fleet simulation needs on the server, set up with the AWS API as a user
would: the things and their group, a signed firmware image in S3, the OTA update
that sends it to the group; and afterwards, the server's own count per state."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from otahub.agent.aws_http import AsyncAwsClient, AwsError
from otahub.signing import (
    certificate_to_pem,
    create_code_signing_certificate,
    generate_private_key,
    sign_digest,
)

ROLE = "arn:aws:iam::123456789012:role/otahub-simulator"


@dataclass(frozen=True)
class Account:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, http: httpx.AsyncClient, service: str) -> AsyncAwsClient:
        return AsyncAwsClient(
            http,
            self.endpoint,
            service,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )


@dataclass(frozen=True)
class Firmware:
    data: bytes
    signature: bytes
    certificate_pem: str  # what the simulated devices trust

    @classmethod
    def random(cls, size: int) -> Firmware:
        key = generate_private_key("ECDSA")
        data = os.urandom(size)
        return cls(
            data,
            sign_digest(key, hashlib.sha256(data).digest()),
            certificate_to_pem(create_code_signing_certificate(key, "otahub simulator")),
        )


async def register_things(
    iot: AsyncAwsClient,
    names: list[str],
    group: str,
    *,
    concurrency: int = 64,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Create the things (those that exist are kept) and put them in `group`."""
    try:
        await iot.call("CreateThingGroup", thingGroupName=group)
    except AwsError as exc:
        if exc.code != "ResourceAlreadyExistsException":
            raise
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(name: str) -> None:
        nonlocal done
        async with gate:
            try:
                await iot.call("CreateThing", thingName=name)
            except AwsError as exc:
                if exc.code != "ResourceAlreadyExistsException":
                    raise
            await iot.call("AddThingToThingGroup", thingGroupName=group, thingName=name)
        done += 1
        if progress is not None:
            progress(done)

    await asyncio.gather(*(one(n) for n in names))


async def create_rollout(
    iot: AsyncAwsClient,
    s3: Any,
    group: str,
    firmware: Firmware,
    *,
    protocols: list[str],
    max_per_minute: int | None = None,
    in_progress_timeout_minutes: int | None = None,
) -> str:
    """Upload and send `firmware` to `group` with CreateOTAUpdate; returns the job id.

    `s3` is a boto3 S3 client (one upload: a thread is fine)."""
    tag = uuid.uuid4().hex[:10]
    bucket = f"otahub-sim-{tag}"
    await asyncio.to_thread(s3.create_bucket, Bucket=bucket)
    await asyncio.to_thread(s3.put_object, Bucket=bucket, Key="firmware.bin", Body=firmware.data)
    group_arn = (await iot.call("DescribeThingGroup", thingGroupName=group))["thingGroupArn"]
    extra: dict[str, Any] = {}
    if max_per_minute:
        extra["awsJobExecutionsRolloutConfig"] = {"maximumPerMinute": max_per_minute}
    if in_progress_timeout_minutes:
        extra["awsJobTimeoutConfig"] = {"inProgressTimeoutInMinutes": in_progress_timeout_minutes}
    ota_id = f"sim-{tag}"
    await iot.call(
        "CreateOTAUpdate",
        otaUpdateId=ota_id,
        targets=[group_arn],
        protocols=protocols,
        roleArn=ROLE,
        files=[
            {
                "fileName": "/firmware.bin",
                "fileVersion": tag,
                "fileLocation": {"s3Location": {"bucket": bucket, "key": "firmware.bin"}},
                "codeSigning": {
                    "customCodeSigning": {
                        "signature": {"inlineDocument": firmware.signature},
                        "certificateChain": {
                            "certificateName": "/certs/otahub-simulator.pem",
                            "inlineDocument": firmware.certificate_pem,
                        },
                        "hashAlgorithm": "SHA256",
                        "signatureAlgorithm": "ECDSA",
                    }
                },
            }
        ],
        **extra,
    )
    for _ in range(100):
        info = (await iot.call("GetOTAUpdate", otaUpdateId=ota_id))["otaUpdateInfo"]
        status = info["otaUpdateStatus"]
        if status == "CREATE_COMPLETE":
            return str(info["awsIotJobId"])
        if status == "CREATE_FAILED":
            raise RuntimeError(f"CreateOTAUpdate failed: {info.get('errorInfo')}")
        await asyncio.sleep(0.1)
    raise TimeoutError("the OTA update was not created in time")


async def server_counts(iot: AsyncAwsClient, job_id: str) -> dict[str, int]:
    """Execution states as the server records them."""
    counts: Counter[str] = Counter()
    token: str | None = None
    while True:
        page = await iot.call(
            "ListJobExecutionsForJob",
            jobId=job_id,
            maxResults=250,
            **({"nextToken": token} if token else {}),
        )
        for s in page.get("executionSummaries", []):
            counts[s["jobExecutionSummary"]["status"]] += 1
        token = page.get("nextToken")
        if not token:
            return dict(counts)

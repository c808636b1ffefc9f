"""The code-signing service (`signer`): profiles and signing jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from otahub.aws.handlers import handles
from otahub.aws.handlers.common import check_length, single_page
from otahub.aws.wire.app import AwsContext
from otahub.core.services.signing import SigningJob, SigningProfile
from otahub.domain.errors import InvalidRequest
from otahub.signing import SignatureAlgorithm

SIGNER = "signer"
MAX_PLATFORM_ID, MAX_CLIENT_TOKEN = 64, 64  # what a profile and a signing job keep
# The FreeRTOS platforms AWS signer knows, with the key type each one signs with.
PLATFORMS = {
    "AmazonFreeRTOS-Default": ("Amazon FreeRTOS", SignatureAlgorithm.ECDSA),
    "AmazonFreeRTOS-TI-CC3220SF": ("Amazon FreeRTOS TI CC3220SF", SignatureAlgorithm.RSA),
}


def _arn(ctx: AwsContext, name: str) -> str:
    return f"arn:aws:signer:{ctx.region}:{ctx.account_id}:/signing-profiles/{name}"


def _revocation(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    return {
        "revocationEffectiveFrom": datetime.fromtimestamp(record["revocationEffectiveFrom"], UTC),
        "revokedAt": datetime.fromtimestamp(record["revokedAt"], UTC),
        "revokedBy": record["revokedBy"],
    }


def _profile_out(ctx: AwsContext, prof: SigningProfile) -> dict[str, Any]:
    data = prof.data
    algorithm = prof.material.algorithm.value
    return {
        "profileName": prof.name,
        "profileVersion": prof.version,
        "profileVersionArn": f"{_arn(ctx, prof.name)}/{prof.version}",
        "arn": _arn(ctx, prof.name),
        "status": prof.status,
        "statusReason": data.get("revocation_reason"),
        "revocationRecord": _revocation(data.get("revocation")),
        "platformId": prof.platform_id,
        "platformDisplayName": PLATFORMS.get(prof.platform_id or "", (prof.platform_id, None))[0],
        "signingMaterial": data.get("signingMaterial") or {"certificateArn": "otahub-generated"},
        "signingParameters": data.get("signingParameters"),
        "signatureValidityPeriod": data.get("signatureValidityPeriod"),
        "overrides": {
            "signingConfiguration": {"encryptionAlgorithm": algorithm, "hashAlgorithm": "SHA256"}
        },
        "tags": data.get("tags"),
    }


@handles(SIGNER, "PutSigningProfile")
async def put_profile(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    platform = p["platformId"]
    check_length(platform, MAX_PLATFORM_ID, "platformId")
    wanted = ((p.get("overrides") or {}).get("signingConfiguration") or {}).get(
        "encryptionAlgorithm"
    )
    if wanted:
        algorithm = SignatureAlgorithm.parse(wanted)
    elif platform in PLATFORMS:
        algorithm = PLATFORMS[platform][1]
    else:
        raise InvalidRequest(f"unknown platform {platform}")
    data: dict[str, Any] = {
        k: p[k]
        for k in ("signingMaterial", "signingParameters", "signatureValidityPeriod", "tags")
        if k in p
    }
    prof = await ctx.deps.signing.put_profile(
        ctx.tenant_id, p["profileName"], platform_id=platform, algorithm=algorithm, data=data
    )
    return {
        "arn": _arn(ctx, prof.name),
        "profileVersion": prof.version,
        "profileVersionArn": f"{_arn(ctx, prof.name)}/{prof.version}",
    }


@handles(SIGNER, "GetSigningProfile")
async def get_profile(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    return _profile_out(ctx, await ctx.deps.signing.get_profile(ctx.tenant_id, p["profileName"]))


@handles(SIGNER, "ListSigningProfiles")
async def list_profiles(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    single_page(p)
    found = await ctx.deps.signing.list_profiles(
        ctx.tenant_id,
        include_canceled=p.get("includeCanceled", False),
        platform_id=p.get("platformId"),
    )
    return {"profiles": [_profile_out(ctx, x) for x in found]}


@handles(SIGNER, "CancelSigningProfile")
async def cancel_profile(ctx: AwsContext, p: dict[str, Any]) -> None:
    await ctx.deps.signing.cancel_profile(ctx.tenant_id, p["profileName"])


@handles(SIGNER, "RevokeSigningProfile")
async def revoke_profile(ctx: AwsContext, p: dict[str, Any]) -> None:
    now = ctx.clock.now()
    effective = p.get("effectiveTime") or now
    record = {
        "revocationEffectiveFrom": effective.timestamp(),
        "revokedAt": now.timestamp(),
        "revokedBy": f"arn:aws:iam::{ctx.account_id}:root",
    }
    await ctx.deps.signing.revoke_profile(
        ctx.tenant_id, p["profileName"], p["profileVersion"], p["reason"], record
    )


@handles(SIGNER, "StartSigningJob")
async def start_job(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    check_length(p.get("clientRequestToken"), MAX_CLIENT_TOKEN, "clientRequestToken")
    src = p["source"].get("s3") or {}
    dst = p["destination"].get("s3") or {}
    if not src or not dst.get("bucketName"):
        raise InvalidRequest("source.s3 and destination.s3.bucketName are required")
    job = await ctx.deps.signing.start_job(
        ctx.tenant_id,
        p["profileName"],
        bucket=src["bucketName"],
        key=src["key"],
        version=src.get("version"),
        dest_bucket=dst["bucketName"],
        dest_prefix=dst.get("prefix", ""),
        client_token=p.get("clientRequestToken"),
    )
    return {"jobId": job.id, "jobOwner": ctx.account_id}


def _job_out(ctx: AwsContext, job: SigningJob) -> dict[str, Any]:
    signed = job.signed_object or {}
    return {
        "jobId": job.id,
        "status": job.status,
        "statusReason": job.status_reason,
        "profileName": job.profile_name,
        "profileVersion": job.profile_version,
        "platformId": job.platform_id,
        "createdAt": job.created_at,
        "completedAt": job.completed_at,
        "requestedBy": ctx.account_id,
        "jobOwner": ctx.account_id,
        "jobInvoker": ctx.account_id,
        "source": {
            "s3": {
                "bucketName": job.source["bucket"],
                "key": job.source["key"],
                "version": job.source["version"],
            }
        },
        "signedObject": {"s3": {"bucketName": signed.get("bucket"), "key": signed.get("key")}},
    }


@handles(SIGNER, "DescribeSigningJob")
async def describe_job(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    job = await ctx.deps.signing.get_job(ctx.tenant_id, p["jobId"])
    return _job_out(ctx, job)


@handles(SIGNER, "ListSigningJobs")
async def list_jobs(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    single_page(p)
    found = await ctx.deps.signing.list_jobs(ctx.tenant_id, limit=p.get("maxResults") or 100)
    if p.get("status"):
        found = [j for j in found if j.status == p["status"]]
    return {"jobs": [{**_job_out(ctx, j), "isRevoked": False} for j in found]}

"""OTA updates: the AWS face of core.services.ota_updates. CreateOTAUpdate answers
CREATE_PENDING once the update is stored; GetOTAUpdate shows how its build went."""

from __future__ import annotations

import json
import re
from typing import Any

from otahub.aws.handlers import handles
from otahub.aws.handlers.common import check_length, page_token
from otahub.aws.handlers.jobs import checked_document, policies_from
from otahub.aws.wire.app import AwsContext
from otahub.aws.wire.errors import from_core
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.core.services.ota_updates import NewOtaUpdate, OtaUpdate, OtaUpdateService
from otahub.core.services.signing import SigningService
from otahub.domain.errors import InvalidRequest, LimitExceeded, OtahubError
from otahub.signing import signature_to_base64

DEFAULT_PRESIGN_S = 1800  # what AWS uses for OTA updates (jobs default to 3600)
MAX_FILES = 10  # AWS's job-document parser reads files[0..9]
MAX_FILE_NAME, MAX_VERSION, MAX_NAME = 255, 64, 64  # a package file's, a package's, signer's
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}")
TARGET_ARN = re.compile(r"arn:aws[a-z-]*:iot:[a-z0-9-]*:\d*:(thing|thinggroup)/[a-zA-Z0-9:_-]+")


@handles("iot", "CreateOTAUpdate")
async def create_ota_update(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    ota_id = p["otaUpdateId"]
    if len(f"AFR_OTA-{ota_id}") > 64:
        raise InvalidRequest(
            "otaUpdateId must be at most 56 characters: the job id "
            "AFR_OTA-<otaUpdateId> is limited to 64"
        )
    protocols = p.get("protocols") or ["MQTT"]
    if len(set(protocols)) != len(protocols):
        raise InvalidRequest("protocols must not repeat")
    for target in p["targets"]:
        if not TARGET_ARN.fullmatch(target):
            raise InvalidRequest(f"target {target} is not a thing or thing group ARN")
    if len(p["files"]) > MAX_FILES:
        raise LimitExceeded(f"an OTA update has at most {MAX_FILES} files")
    role = ROLE_ARN.fullmatch(p["roleArn"])
    if role is None:
        raise InvalidRequest(f"roleArn {p['roleArn']} is not an IAM role ARN")
    _check_lengths(p["files"])
    presign = (p.get("awsJobPresignedUrlConfig") or {}).get("expiresInSec", DEFAULT_PRESIGN_S)
    if not 60 <= presign <= 3600:
        raise InvalidRequest("awsJobPresignedUrlConfig.expiresInSec must be 60 to 3600")
    policies = policies_from(
        {
            "jobExecutionsRolloutConfig": p.get("awsJobExecutionsRolloutConfig"),
            "abortConfig": p.get("awsJobAbortConfig"),
            "timeoutConfig": p.get("awsJobTimeoutConfig"),
        },
        abort_key="abortCriteriaList",
    )
    policies.validate()
    request = {k: v for k, v in p.items() if k != "otaUpdateId"}
    new = NewOtaUpdate(
        ref=ota_id,
        request=json.loads(json.dumps(request, default=_jsonable)),
        protocols=protocols,
        presign_seconds=presign,
        policies=policies,
        role_account=role.group("account"),
        job_data=json.loads(json.dumps(_job_data(p, presign), default=_jsonable)),
        update_arn=ctx.arn(f"otaupdate/{ota_id}"),
        job_arn=ctx.arn(f"job/AFR_OTA-{ota_id}"),
        s3_endpoint=f"https://s3.{ctx.region}.amazonaws.com",
        tags=p.get("tags") or [],
    )
    await _service(ctx).create(ctx.tenant_id, new, ctx.account_id)
    # The answer says CREATE_PENDING and carries no job id, as AWS's does: clients
    # read the outcome with GetOTAUpdate.
    return {
        "otaUpdateId": ota_id,
        "otaUpdateArn": ctx.arn(f"otaupdate/{ota_id}"),
        "otaUpdateStatus": "CREATE_PENDING",
    }


def ota_update_service(
    services: Services, objects: ObjectService, signing: SigningService
) -> OtaUpdateService:
    """The OTA update use cases in AWS's words: what the server's engine resumes."""
    return OtaUpdateService(services, objects, signing, error_code, checked_document)


def _service(ctx: AwsContext) -> OtaUpdateService:
    return ota_update_service(ctx.services, ctx.objects, ctx.deps.signing)


def error_code(service: str, exc: OtahubError) -> str:
    """The AWS error code a core error stands for in an update's errorInfo."""
    return from_core(service, exc).code


def _job_data(p: dict[str, Any], presign: int) -> dict[str, Any]:
    """What DescribeJob shows: the job AWS would have made with CreateJob."""
    return {
        "targets": p["targets"],
        "presignedUrlConfig": {"expiresInSec": presign, "roleArn": p["roleArn"]},
        **{
            job_key: p[ota_key]
            for ota_key, job_key in (
                ("awsJobExecutionsRolloutConfig", "jobExecutionsRolloutConfig"),
                ("awsJobTimeoutConfig", "timeoutConfig"),
            )
            if p.get(ota_key)
        },
        **(
            {"abortConfig": {"criteriaList": p["awsJobAbortConfig"]["abortCriteriaList"]}}
            if p.get("awsJobAbortConfig")
            else {}
        ),
        "tags": p.get("tags") or [],
    }


def _check_lengths(files: list[dict[str, Any]]) -> None:
    """What the model leaves unbounded but the package and signing profile keep."""
    for i, f in enumerate(files):
        check_length(f.get("fileName"), MAX_FILE_NAME, f"files[{i}].fileName")
        check_length(f.get("fileVersion"), MAX_VERSION, f"files[{i}].fileVersion")
        start = (f.get("codeSigning") or {}).get("startSigningJobParameter") or {}
        where = f"files[{i}].codeSigning.startSigningJobParameter"
        check_length(start.get("signingProfileName"), MAX_NAME, f"{where}.signingProfileName")
        platform = (start.get("signingProfileParameter") or {}).get("platform")
        check_length(platform, MAX_NAME, f"{where}.signingProfileParameter.platform")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return signature_to_base64(bytes(value))
    return str(value)


def _info(ctx: AwsContext, found: OtaUpdate) -> dict[str, Any]:
    req = found.request
    out: dict[str, Any] = {
        "otaUpdateId": found.ref,
        "otaUpdateArn": ctx.arn(f"otaupdate/{found.ref}"),
        "creationDate": found.created_at,
        "lastModifiedDate": found.updated_at,
        "description": req.get("description"),
        "targets": req.get("targets"),
        "protocols": req.get("protocols") or ["MQTT"],
        "targetSelection": req.get("targetSelection", "SNAPSHOT"),
        "awsJobExecutionsRolloutConfig": req.get("awsJobExecutionsRolloutConfig"),
        "awsJobPresignedUrlConfig": req.get("awsJobPresignedUrlConfig")
        or {"expiresInSec": DEFAULT_PRESIGN_S},
        "otaUpdateFiles": req.get("files"),
        "otaUpdateStatus": found.status,
        "additionalParameters": req.get("additionalParameters"),
    }
    if found.job_id:
        out["awsIotJobId"] = found.job_ref
        out["awsIotJobArn"] = ctx.arn(f"job/{found.job_ref}")
    if found.error:
        out["errorInfo"] = found.error
    return out


@handles("iot", "GetOTAUpdate")
async def get_ota_update(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    found = await _service(ctx).get(ctx.tenant_id, p["otaUpdateId"])
    return {"otaUpdateInfo": _info(ctx, found)}


@handles("iot", "ListOTAUpdates")
async def list_ota_updates(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    limit = p.get("maxResults") or 50
    rows = await _service(ctx).page(
        ctx.tenant_id, status=p.get("otaUpdateStatus"), after_id=page_token(p), limit=limit + 1
    )
    out: dict[str, Any] = {
        "otaUpdates": [
            {
                "otaUpdateId": r.ref,
                "otaUpdateArn": ctx.arn(f"otaupdate/{r.ref}"),
                "creationDate": r.created_at,
            }
            for r in rows[:limit]
        ]
    }
    if len(rows) > limit:
        out["nextToken"] = str(rows[limit - 1].id)
    return out


@handles("iot", "DeleteOTAUpdate")
async def delete_ota_update(ctx: AwsContext, p: dict[str, Any]) -> None:
    ota_id = p["otaUpdateId"]
    await _service(ctx).delete(
        ctx.tenant_id,
        ota_id,
        ctx.arn(f"otaupdate/{ota_id}"),
        force_job=bool(p.get("forceDeleteAWSJob")),
        delete_stream=bool(p.get("deleteStream")),
    )

"""OTA updates: CreateOTAUpdate composes signing, a stream, a package, the
`afr_ota` job document and job `AFR_OTA-<id>`, as AWS's OTA Update Manager does."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from sqlalchemy import delete, insert, select, update

from otahub.aws.handlers import handles
from otahub.aws.handlers.common import check_length, page_token
from otahub.aws.handlers.jobs import checked_document, policies_from, targets_of
from otahub.aws.handlers.tags import MAX_TAGS, put_tags
from otahub.aws.wire.app import AwsContext
from otahub.aws.wire.errors import from_core
from otahub.core.services import JobSpec
from otahub.core.services.objects import NULL_VERSION
from otahub.core.services.streams import StreamFile
from otahub.domain.entities import PackageFile
from otahub.domain.errors import (
    AlreadyExists,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    OtahubError,
    Unauthorized,
)
from otahub.domain.states import ACTIVE_JOB, TargetSelection
from otahub.signing import (
    HashAlgorithm,
    SignatureAlgorithm,
    afr_signature_key,
    signature_to_base64,
    verify_custom_signature,
)
from otahub.store.tables import ota_updates, streams, tags, tenants

DEFAULT_PRESIGN_S = 1800  # what AWS uses for OTA updates (jobs default to 3600)
MAX_FILES = 10  # AWS's job-document parser reads files[0..9]
MAX_FILE_NAME, MAX_VERSION, MAX_NAME = 255, 64, 64  # a package file's, a package's, signer's
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}")
TARGET_ARN = re.compile(r"arn:aws[a-z-]*:iot:[a-z0-9-]*:\d*:(thing|thinggroup)/[a-zA-Z0-9:_-]+")


class CreateFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
    if len(p.get("tags") or []) > MAX_TAGS:
        raise LimitExceeded(f"a resource has at most {MAX_TAGS} tags")
    if any(t["Key"].startswith("aws:") for t in p.get("tags") or []):
        raise InvalidRequest("tag keys starting with aws: are reserved")
    await _check_role(ctx, p["roleArn"])
    _check_lengths(p["files"])
    await _check_references(ctx, p["files"])
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
    now = ctx.clock.now()
    request = {k: v for k, v in p.items() if k != "otaUpdateId"}
    async with ctx.services.ctx.db.transaction() as conn:
        exists = (
            await conn.execute(
                select(ota_updates.c.id).where(
                    ota_updates.c.tenant_id == ctx.tenant_id, ota_updates.c.ref == ota_id
                )
            )
        ).first()
        if exists is not None:
            raise AlreadyExists(
                f"OTA update {ota_id} already exists",
                resource_id=ota_id,
                resource_arn=ctx.arn(f"otaupdate/{ota_id}"),
            )
        await conn.execute(
            insert(ota_updates).values(
                tenant_id=ctx.tenant_id,
                ref=ota_id,
                status="CREATE_IN_PROGRESS",
                request=json.loads(json.dumps(request, default=_jsonable)),
                created_at=now,
                updated_at=now,
            )
        )
    try:
        job_id, stream_id = await _build(ctx, ota_id, p, protocols, presign, policies)
        values: dict[str, Any] = {
            "status": "CREATE_COMPLETE",
            "job_id": job_id,
            "stream_id": stream_id,
        }
    except CreateFailed as exc:
        values = {"status": "CREATE_FAILED", "error": {"code": exc.code, "message": exc.message}}
    except OtahubError as exc:
        values = {
            "status": "CREATE_FAILED",
            "error": {"code": from_core("iot", exc).code, "message": exc.message},
        }
    async with ctx.services.ctx.db.transaction() as conn:
        await conn.execute(
            update(ota_updates)
            .where(ota_updates.c.tenant_id == ctx.tenant_id, ota_updates.c.ref == ota_id)
            .values(updated_at=ctx.clock.now(), **values)
        )
    if p.get("tags"):
        await put_tags(ctx, ctx.arn(f"otaupdate/{ota_id}"), p["tags"])
    # Creation runs before this answer; the answer says CREATE_PENDING and carries no
    # job id, as AWS's does: clients read the outcome with GetOTAUpdate.
    return {
        "otaUpdateId": ota_id,
        "otaUpdateArn": ctx.arn(f"otaupdate/{ota_id}"),
        "otaUpdateStatus": "CREATE_PENDING",
    }


async def _check_role(ctx: AwsContext, role_arn: str) -> None:
    """The role must be an IAM role ARN, and not one of another account on this
    server: a caller cannot pass another account's role (iam:PassRole)."""
    m = ROLE_ARN.fullmatch(role_arn)
    if m is None:
        raise InvalidRequest(f"roleArn {role_arn} is not an IAM role ARN")
    account = m.group("account")
    if account == ctx.account_id:
        return
    async with ctx.services.ctx.db.read() as conn:
        other = (
            await conn.execute(select(tenants.c.id).where(tenants.c.account_id == account))
        ).first()
    if other is not None:
        raise Unauthorized(
            f"account {ctx.account_id} is not authorized to pass role {role_arn} "
            f"of account {account}"
        )


async def _check_references(ctx: AwsContext, files: list[dict[str, Any]]) -> None:
    """Streams and signing jobs named by id must exist before anything is created."""
    for i, f in enumerate(files):
        stream = ((f.get("fileLocation") or {}).get("stream")) or {}
        if stream:
            if not stream.get("streamId"):
                raise InvalidRequest(f"files[{i}].fileLocation.stream.streamId is required")
            found = await ctx.services.streams.get(ctx.tenant_id, stream["streamId"])
            found.file(int(stream.get("fileId", 0)))
        elif not (f.get("fileLocation") or {}).get("s3Location"):
            raise InvalidRequest(f"files[{i}].fileLocation needs stream or s3Location")
        job_id = (f.get("codeSigning") or {}).get("awsSignerJobId")
        if job_id:
            await ctx.deps.signing.get_job(ctx.tenant_id, job_id)


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


async def _build(
    ctx: AwsContext,
    ota_id: str,
    p: dict[str, Any],
    protocols: list[str],
    presign: int,
    policies: Any,
) -> tuple[int, int | None]:
    try:
        devices, groups = await targets_of(ctx, p["targets"])
    except NotFound as exc:
        raise CreateFailed("ResourceNotFoundException", exc.message) from exc
    files: list[PackageFile] = []
    doc_files: list[dict[str, Any]] = []
    stream_files: list[StreamFile] = []
    stream_name: str | None = None
    for i, f in enumerate(p["files"]):
        loc = f.get("fileLocation") or {}
        s3: dict[str, Any]
        blob_key: str | None
        sha256: str | None = None
        obj = None
        if "stream" in loc:
            stream = await ctx.services.streams.get(ctx.tenant_id, loc["stream"]["streamId"])
            sfile = stream.file(int(loc["stream"].get("fileId", 0)))
            stream_name, file_id = stream.ref, sfile.file_id
            size, blob_key, s3 = sfile.size, sfile.blob_key, dict(sfile.source)
        else:
            s3 = loc.get("s3Location") or {}
            try:
                obj = await ctx.objects.get(
                    ctx.tenant_id, s3["bucket"], s3["key"], s3.get("version")
                )
            except (NotFound, KeyError) as exc:
                raise CreateFailed(
                    "ResourceNotFoundException", f"file {i}: the S3 object does not exist"
                ) from exc
            size, blob_key, sha256, file_id = obj.size, obj.blob_key, obj.sha256, i
            s3 = {**s3, "version": obj.version_id}
            stream_files.append(StreamFile(file_id, blob_key or "", size, s3))
        signature, cert, hash_alg, sig_alg, certname = await _sign(ctx, f, s3, sha256)
        entry: dict[str, Any] = {
            "filepath": f.get("fileName"),
            "filesize": size,
            "fileid": file_id,
            "certfile": certname,
            "update_data_url": _presign_placeholder(ctx, s3) if "HTTP" in protocols else None,
            "auth_scheme": "aws.s3.presigned" if "HTTP" in protocols else None,
        }
        if f.get("fileType") is not None:
            entry["fileType"] = f["fileType"]
        key = afr_signature_key(
            hash_alg or HashAlgorithm.SHA256, sig_alg or SignatureAlgorithm.ECDSA
        )
        entry[key] = signature_to_base64(signature) if signature else None
        doc_files.append(entry)
        files.append(
            PackageFile(
                ordinal=i,
                name=f.get("fileName"),
                blob_key=blob_key,
                size=size,
                sha256=sha256,
                md5=obj.md5 if obj else None,
                signature=signature,
                hash_algorithm=hash_alg.value if hash_alg else None,
                signature_algorithm=sig_alg.value if sig_alg else None,
                certificate=cert,
                file_type=f.get("fileType"),
                attributes=f.get("attributes") or {},
            )
        )
    stream_id = None
    if "MQTT" in protocols and stream_name is None:
        stream = await ctx.services.streams.create(
            ctx.tenant_id,
            f"AFR_OTA-{uuid.uuid4()}",
            stream_files,
            data={"roleArn": p["roleArn"], "ota_update": ota_id},
        )
        stream_name, stream_id = stream.ref, stream.id
    package = await ctx.services.packages.create_package(
        ctx.tenant_id,
        name=ota_id,
        version=str(p["files"][0].get("fileVersion") or "1"),
        files=files,
        ref=f"ota/{ota_id}",
    )
    ota_doc: dict[str, Any] = {"protocols": protocols, "files": doc_files}
    if "MQTT" in protocols:
        ota_doc["streamname"] = stream_name
    job = await ctx.services.jobs.create_job(
        ctx.tenant_id,
        JobSpec(
            ref=f"AFR_OTA-{ota_id}",
            kind="ota",
            device_ids=devices,
            group_ids=groups,
            package_id=package.id,
            document=checked_document(json.dumps({"afr_ota": ota_doc}), "the OTA job document"),
            description=p.get("description"),
            target_selection=TargetSelection(p.get("targetSelection", "SNAPSHOT")),
            policies=policies,
            # What DescribeJob shows: the job AWS would have made with CreateJob.
            data={
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
            },
        ),
    )
    if p.get("tags"):
        await put_tags(ctx, ctx.arn(f"job/{job.ref}"), p["tags"])
    return job.id, stream_id


def _presign_placeholder(ctx: AwsContext, s3: dict[str, Any]) -> str:
    """What AWS puts in the document for HTTP: substituted per device on delivery,
    pinned to the object version the update was built from."""
    url = f"https://s3.{ctx.region}.amazonaws.com/{s3.get('bucket')}/{s3.get('key')}"
    version = s3.get("version")
    if version and version != NULL_VERSION:
        url += f"?versionId={version}"
    return f"${{aws:iot:s3-presigned-url:{url}}}"


async def _sign(
    ctx: AwsContext, f: dict[str, Any], s3: dict[str, Any], sha256: str | None
) -> tuple[bytes | None, str | None, HashAlgorithm | None, SignatureAlgorithm | None, str | None]:
    code = f.get("codeSigning") or {}
    signing = ctx.deps.signing
    if code.get("awsSignerJobId"):
        try:
            job = await signing.get_job(ctx.tenant_id, code["awsSignerJobId"])
        except NotFound as exc:
            raise CreateFailed("ResourceNotFoundException", exc.message) from exc
        if job.status != "Succeeded" or job.signature is None:
            raise CreateFailed(
                "SigningJobFailed",
                f"signing job {job.id} is {job.status}: {job.status_reason or 'no signature'}",
            )
        prof = await signing.get_profile(ctx.tenant_id, job.profile_name)
        certname = (prof.data.get("signingParameters") or {}).get("certname")
        return (
            job.signature,
            job.certificate,
            HashAlgorithm.SHA256,
            prof.material.algorithm,
            certname,
        )
    start = code.get("startSigningJobParameter")
    if start:
        name = start.get("signingProfileName")
        params = start.get("signingProfileParameter") or {}
        dest = (start.get("destination") or {}).get("s3Destination") or {}
        if not name:
            raise CreateFailed("InvalidRequestException", "signingProfileName is required")
        try:
            if params.get("platform"):
                await signing.put_profile(
                    ctx.tenant_id,
                    name,
                    platform_id=params["platform"],
                    algorithm=SignatureAlgorithm.RSA
                    if "CC3220" in params["platform"]
                    else SignatureAlgorithm.ECDSA,
                    data={"signingParameters": {"certname": params.get("certificatePathOnDevice")}}
                    if params.get("certificatePathOnDevice")
                    else None,
                )
            job = await signing.start_job(
                ctx.tenant_id,
                name,
                bucket=s3["bucket"],
                key=s3["key"],
                version=s3.get("version"),
                dest_bucket=dest.get("bucket") or s3["bucket"],
                dest_prefix=dest.get("prefix", ""),
            )
            prof = await signing.get_profile(ctx.tenant_id, name)
        except OtahubError as exc:
            # errorInfo carries the signer's own error, as AWS's does
            raise CreateFailed(from_core("signer", exc).code, exc.message) from exc
        certname = params.get("certificatePathOnDevice") or (
            prof.data.get("signingParameters") or {}
        ).get("certname")
        return (
            job.signature,
            job.certificate,
            HashAlgorithm.SHA256,
            prof.material.algorithm,
            certname,
        )
    custom = code.get("customCodeSigning")
    if custom:
        signature = (custom.get("signature") or {}).get("inlineDocument")
        chain = custom.get("certificateChain") or {}
        hash_alg = HashAlgorithm.parse(custom.get("hashAlgorithm") or "SHA256")
        sig_alg = SignatureAlgorithm.parse(custom.get("signatureAlgorithm") or "ECDSA")
        if not signature:
            raise CreateFailed("InvalidRequestException", "customCodeSigning has no signature")
        if chain.get("inlineDocument") and sha256:
            check = verify_custom_signature(
                bytes(signature),
                sha256,
                chain["inlineDocument"],
                hash_algorithm=hash_alg,
                signature_algorithm=sig_alg,
            )
            if not check:
                raise CreateFailed(
                    "SignatureVerificationFailed",
                    f"the custom signature does not verify: {check.reason}",
                )
        return (
            bytes(signature),
            chain.get("inlineDocument"),
            hash_alg,
            sig_alg,
            chain.get("certificateName"),
        )
    return None, None, None, None, None


def _info(ctx: AwsContext, row: Any, job_ref: str | None) -> dict[str, Any]:
    req = row.request
    out: dict[str, Any] = {
        "otaUpdateId": row.ref,
        "otaUpdateArn": ctx.arn(f"otaupdate/{row.ref}"),
        "creationDate": row.created_at,
        "lastModifiedDate": row.updated_at,
        "description": req.get("description"),
        "targets": req.get("targets"),
        "protocols": req.get("protocols") or ["MQTT"],
        "targetSelection": req.get("targetSelection", "SNAPSHOT"),
        "awsJobExecutionsRolloutConfig": req.get("awsJobExecutionsRolloutConfig"),
        "awsJobPresignedUrlConfig": req.get("awsJobPresignedUrlConfig")
        or {"expiresInSec": DEFAULT_PRESIGN_S},
        "otaUpdateFiles": req.get("files"),
        "otaUpdateStatus": row.status,
        "additionalParameters": req.get("additionalParameters"),
    }
    if job_ref:
        out["awsIotJobId"] = job_ref
        out["awsIotJobArn"] = ctx.arn(f"job/{job_ref}")
    if row.error:
        out["errorInfo"] = row.error
    return out


async def _row(ctx: AwsContext, ota_id: str) -> Any:
    async with ctx.services.ctx.db.read() as conn:
        row = (
            await conn.execute(
                select(ota_updates).where(
                    ota_updates.c.tenant_id == ctx.tenant_id, ota_updates.c.ref == ota_id
                )
            )
        ).first()
    if row is None:
        raise NotFound(f"OTA update {ota_id} not found")
    return row


@handles("iot", "GetOTAUpdate")
async def get_ota_update(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    row = await _row(ctx, p["otaUpdateId"])
    job_ref = f"AFR_OTA-{row.ref}" if row.job_id else None
    return {"otaUpdateInfo": _info(ctx, row, job_ref)}


@handles("iot", "ListOTAUpdates")
async def list_ota_updates(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    q = select(ota_updates).where(ota_updates.c.tenant_id == ctx.tenant_id)
    if p.get("otaUpdateStatus"):
        q = q.where(ota_updates.c.status == p["otaUpdateStatus"])
    q = q.where(ota_updates.c.id > page_token(p)).order_by(ota_updates.c.id)
    limit = p.get("maxResults") or 50
    async with ctx.services.ctx.db.read() as conn:
        rows = (await conn.execute(q.limit(limit + 1))).all()
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
    row = await _row(ctx, p["otaUpdateId"])
    if row.job_id is not None:
        job = await ctx.services.jobs.get_job_by_id(row.job_id)
        if job.status in ACTIVE_JOB and not p.get("forceDeleteAWSJob"):
            raise InvalidRequest(
                f"job {job.ref} is {job.status.value}; delete it with forceDeleteAWSJob"
            )
        if p.get("forceDeleteAWSJob"):
            await ctx.services.jobs.delete_job(ctx.tenant_id, job.ref, force=True)
    async with ctx.services.ctx.db.transaction() as conn:
        await conn.execute(
            delete(tags).where(
                tags.c.tenant_id == ctx.tenant_id,
                tags.c.resource == ctx.arn(f"otaupdate/{row.ref}"),
            )
        )
        if p.get("deleteStream") and row.stream_id is not None:
            await conn.execute(delete(streams).where(streams.c.id == row.stream_id))
        await conn.execute(delete(ota_updates).where(ota_updates.c.id == row.id))

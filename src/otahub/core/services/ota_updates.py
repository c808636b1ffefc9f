"""OTA updates: CreateOTAUpdate stores the request in one transaction and answers
CREATE_PENDING; a builder then composes signing, a stream, a package, the `afr_ota`
job document and job `AFR_OTA-<id>`, as AWS's OTA Update Manager does.

The build is a state machine over the update's row. Each step finds what an earlier
attempt made by a name fixed when the update was stored (`build`), so a build resumed
after a crash at any instant carries on and never makes a second stream or job; a
failure removes what the build made before recording CREATE_FAILED and its errorInfo.
The caller that stores the update builds it at once; the engine resumes a build whose
claim has lapsed (`resume`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from otahub.core.services import JobSpec, Services
from otahub.core.services.objects import NULL_VERSION, ObjectService
from otahub.core.services.signing import SigningService
from otahub.core.services.streams import StreamFile
from otahub.core.services.tags import drop_tags, write_tags
from otahub.domain.entities import Package, PackageFile
from otahub.domain.errors import (
    AlreadyExists,
    InvalidRequest,
    NotFound,
    OtahubError,
    Unauthorized,
)
from otahub.domain.policies import JobPolicies
from otahub.domain.states import ACTIVE_JOB, TargetSelection
from otahub.domain.tags import Tag
from otahub.signing import (
    HashAlgorithm,
    SignatureAlgorithm,
    afr_signature_key,
    signature_from_base64,
    signature_to_base64,
    verify_custom_signature,
)
from otahub.store.tables import ota_updates, streams, tenants

log = logging.getLogger("otahub.ota_updates")

PENDING, IN_PROGRESS = "CREATE_PENDING", "CREATE_IN_PROGRESS"
COMPLETE, FAILED = "CREATE_COMPLETE", "CREATE_FAILED"
UNFINISHED = (PENDING, IN_PROGRESS)
# A builder that has not finished by then is taken for dead and the engine resumes it.
CLAIM = timedelta(seconds=60)

# The AWS error code a core error stands for in errorInfo: (service, error) -> code.
ErrorCode = Callable[[str, OtahubError], str]
DocumentCheck = Callable[[str, str], str]


class BuildFailed(Exception):
    """The update cannot be built: recorded as its errorInfo."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Deleted(Exception):
    """The update was deleted while it was being built."""


@dataclass(frozen=True)
class OtaUpdate:
    id: int
    tenant_id: int
    ref: str
    status: str
    request: dict[str, Any]
    error: dict[str, Any] | None
    job_id: int | None
    stream_id: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def job_ref(self) -> str:
        return f"AFR_OTA-{self.ref}"


@dataclass(frozen=True)
class NewOtaUpdate:
    """A request the face has parsed and checked for shape."""

    ref: str
    request: dict[str, Any]  # the wire request without its id, echoed by GetOTAUpdate
    protocols: list[str]
    presign_seconds: int
    policies: JobPolicies
    role_account: str
    job_data: dict[str, Any]  # what DescribeJob shows of the job
    update_arn: str
    job_arn: str
    s3_endpoint: str  # where the document's HTTP URLs point, before presigning
    tags: list[dict[str, str]]


@dataclass
class _Files:
    package: list[PackageFile]
    document: list[dict[str, Any]]
    stream: list[StreamFile]
    stream_name: str | None  # a stream the request names


def _update(row: Any) -> OtaUpdate:
    return OtaUpdate(
        id=row.id,
        tenant_id=row.tenant_id,
        ref=row.ref,
        status=row.status,
        request=row.request,
        error=row.error,
        job_id=row.job_id,
        stream_id=row.stream_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class OtaUpdateService:
    def __init__(
        self,
        services: Services,
        objects: ObjectService,
        signing: SigningService,
        error_code: ErrorCode,
        check_document: DocumentCheck,
    ) -> None:
        self.services = services
        self.db = services.ctx.db
        self.clock = services.ctx.clock
        self.objects = objects
        self.signing = signing
        self.error_code = error_code
        self.check_document = check_document

    # -- the use cases ------------------------------------------------------------

    async def create(self, tenant_id: int, new: NewOtaUpdate, account_id: str) -> OtaUpdate:
        """Store the update and its tags in one transaction, then build it."""
        await self._check_role(new.request["roleArn"], new.role_account, account_id)
        await self._check_references(tenant_id, new.request["files"])
        now = self.clock.now()
        build = {
            "stream_ref": f"AFR_OTA-{uuid.uuid4()}",
            "package_ref": f"ota/{new.ref}/{uuid.uuid4().hex[:12]}",
            "protocols": new.protocols,
            "presign_seconds": new.presign_seconds,
            "policies": new.policies.to_json(),
            "job_data": new.job_data,
            "job_arn": new.job_arn,
            "s3_endpoint": new.s3_endpoint,
            "tags": new.tags,
        }
        async with self.db.transaction() as conn:
            try:
                update_id = (
                    await conn.execute(
                        insert(ota_updates)
                        .values(
                            tenant_id=tenant_id,
                            ref=new.ref,
                            status=PENDING,
                            request=new.request,
                            build=build,
                            claimed_until=now + CLAIM,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(ota_updates.c.id)
                    )
                ).scalar_one()
            except IntegrityError as exc:
                raise AlreadyExists(
                    f"OTA update {new.ref} already exists",
                    resource_id=new.ref,
                    resource_arn=new.update_arn,
                ) from exc
            await write_tags(conn, tenant_id, new.update_arn, _tags(new.tags))
        created = await self.get(tenant_id, new.ref)
        try:
            await self.build(update_id)
        except Exception:
            # Stored is answered: the engine resumes the build once the claim lapses.
            log.exception("OTA update %s: its build stopped; the engine resumes it", new.ref)
        return created

    async def get(self, tenant_id: int, ref: str) -> OtaUpdate:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(ota_updates).where(
                        ota_updates.c.tenant_id == tenant_id, ota_updates.c.ref == ref
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"OTA update {ref} not found")
        return _update(row)

    async def page(
        self, tenant_id: int, *, status: str | None, after_id: int, limit: int
    ) -> list[OtaUpdate]:
        q = select(ota_updates).where(
            ota_updates.c.tenant_id == tenant_id, ota_updates.c.id > after_id
        )
        if status:
            q = q.where(ota_updates.c.status == status)
        async with self.db.read() as conn:
            rows = (await conn.execute(q.order_by(ota_updates.c.id).limit(limit))).all()
        return [_update(r) for r in rows]

    async def delete(
        self, tenant_id: int, ref: str, update_arn: str, *, force_job: bool, delete_stream: bool
    ) -> None:
        found = await self.get(tenant_id, ref)
        if found.job_id is not None:
            job = await self.services.jobs.get_job_by_id(found.job_id)
            if job.status in ACTIVE_JOB and not force_job:
                raise InvalidRequest(
                    f"job {job.ref} is {job.status.value}; delete it with forceDeleteAWSJob"
                )
            if force_job:
                await self.services.jobs.delete_job(tenant_id, job.ref, force=True)
        async with self.db.transaction() as conn:
            await drop_tags(conn, tenant_id, update_arn)
            if delete_stream and found.stream_id is not None:
                await conn.execute(delete(streams).where(streams.c.id == found.stream_id))
            await conn.execute(delete(ota_updates).where(ota_updates.c.id == found.id))

    # -- the build ----------------------------------------------------------------

    async def resume(self) -> None:
        """Build every unfinished update whose builder's claim has lapsed (a crash)."""
        now = self.clock.now()
        async with self.db.read() as conn:
            lapsed = (
                await conn.execute(
                    select(ota_updates.c.id, ota_updates.c.claimed_until)
                    .where(
                        ota_updates.c.status.in_(UNFINISHED),
                        or_(
                            ota_updates.c.claimed_until.is_(None),
                            ota_updates.c.claimed_until <= now,
                        ),
                    )
                    .order_by(ota_updates.c.id)
                )
            ).all()
        for update_id, claimed_until in lapsed:
            async with self.db.transaction() as conn:
                claimed = await conn.execute(
                    update(ota_updates)
                    .where(
                        ota_updates.c.id == update_id,
                        ota_updates.c.status.in_(UNFINISHED),
                        ota_updates.c.claimed_until.is_(None)
                        if claimed_until is None
                        else ota_updates.c.claimed_until == claimed_until,
                    )
                    .values(claimed_until=now + CLAIM)
                )
            if claimed.rowcount == 1:
                await self.build(update_id)

    async def build(self, update_id: int) -> None:
        """Build a claimed update to CREATE_COMPLETE or CREATE_FAILED. A failure that
        is not the update's (the database out of reach) leaves it for a resume."""
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(select(ota_updates).where(ota_updates.c.id == update_id))
            ).first()
            if row is None or row.status not in UNFINISHED:
                return
            await conn.execute(
                update(ota_updates)
                .where(ota_updates.c.id == update_id)
                .values(status=IN_PROGRESS, updated_at=self.clock.now())
            )
        try:
            await self._build(row)
        except BuildFailed as exc:
            await self._fail(row, exc.code, exc.message)
        except OtahubError as exc:
            await self._fail(row, self.error_code("iot", exc), exc.message)

    async def _build(self, row: Any) -> None:
        tenant_id, request, build = row.tenant_id, row.request, row.build
        protocols: list[str] = build["protocols"]
        try:
            devices, groups = await self._targets(tenant_id, request["targets"])
        except NotFound as exc:
            raise BuildFailed("ResourceNotFoundException", exc.message) from exc
        files = await self._files(tenant_id, request["files"], protocols, build["s3_endpoint"])
        stream_name, stream_id = files.stream_name, None
        if "MQTT" in protocols and stream_name is None:
            stream_name = build["stream_ref"]
            stream_id = (await self._stream(tenant_id, stream_name, files.stream, row)).id
        package = await self._package(tenant_id, build["package_ref"], row.ref, request, files)
        ota_doc: dict[str, Any] = {"protocols": protocols, "files": files.document}
        if "MQTT" in protocols:
            ota_doc["streamname"] = stream_name
        document = self.check_document(json.dumps({"afr_ota": ota_doc}), "the OTA job document")
        job_id = await self._job(tenant_id, row, package, devices, groups, document)
        try:
            async with self.db.transaction() as conn:
                done = await conn.execute(
                    update(ota_updates)
                    .where(ota_updates.c.id == row.id)
                    .values(
                        status=COMPLETE,
                        job_id=job_id,
                        stream_id=stream_id,
                        claimed_until=None,
                        updated_at=self.clock.now(),
                    )
                )
                if done.rowcount == 0:
                    raise _Deleted
                await write_tags(conn, tenant_id, build["job_arn"], _tags(build["tags"]))
        except _Deleted:
            await self._remove_made(row)  # DeleteOTAUpdate came first

    async def _remove_made(self, row: Any) -> None:
        """Remove what the build made: its job, package and stream."""
        tenant_id, build = row.tenant_id, row.build
        job = await self._find_job(tenant_id, row.ref)
        package = await self._find_package(tenant_id, build["package_ref"])
        if job is not None and package is not None and job.package_id == package.id:
            await self.services.jobs.delete_job(tenant_id, job.ref, force=True)
        if package is not None:
            await self.services.packages.delete_package(tenant_id, package.ref)
        async with self.db.transaction() as conn:
            await conn.execute(
                delete(streams).where(
                    streams.c.tenant_id == tenant_id, streams.c.ref == build["stream_ref"]
                )
            )

    async def _fail(self, row: Any, code: str, message: str) -> None:
        """Remove what the build made, then record why it failed."""
        await self._remove_made(row)
        async with self.db.transaction() as conn:
            await conn.execute(
                update(ota_updates)
                .where(ota_updates.c.id == row.id)
                .values(
                    status=FAILED,
                    error={"code": code, "message": message},
                    claimed_until=None,
                    updated_at=self.clock.now(),
                )
            )

    # -- the steps, each finding what an earlier attempt made ------------------------

    async def _stream(self, tenant_id: int, ref: str, files: Sequence[StreamFile], row: Any) -> Any:
        try:
            return await self.services.streams.get(tenant_id, ref)
        except NotFound:
            pass
        return await self.services.streams.create(
            tenant_id,
            ref,
            files,
            data={"roleArn": row.request["roleArn"], "ota_update": row.ref},
        )

    async def _find_package(self, tenant_id: int, ref: str) -> Package | None:
        try:
            return await self.services.packages.get_package(tenant_id, ref)
        except NotFound:
            return None

    async def _package(
        self, tenant_id: int, ref: str, name: str, request: dict[str, Any], files: _Files
    ) -> Package:
        found = await self._find_package(tenant_id, ref)
        if found is not None:
            return found
        return await self.services.packages.create_package(
            tenant_id,
            name=name,
            version=str(request["files"][0].get("fileVersion") or "1"),
            files=files.package,
            ref=ref,
        )

    async def _find_job(self, tenant_id: int, ref: str) -> Any:
        try:
            return await self.services.jobs.get_job(tenant_id, f"AFR_OTA-{ref}")
        except NotFound:
            return None

    async def _job(
        self,
        tenant_id: int,
        row: Any,
        package: Package,
        devices: list[int],
        groups: list[int],
        document: str,
    ) -> int:
        found = await self._find_job(tenant_id, row.ref)
        if found is not None and found.package_id == package.id:
            return int(found.id)
        build = row.build
        job = await self.services.jobs.create_job(
            tenant_id,
            JobSpec(
                ref=f"AFR_OTA-{row.ref}",
                kind="ota",
                device_ids=devices,
                group_ids=groups,
                package_id=package.id,
                document=document,
                description=row.request.get("description"),
                target_selection=TargetSelection(row.request.get("targetSelection", "SNAPSHOT")),
                policies=JobPolicies.from_json(build["policies"]),
                data=build["job_data"],
            ),
        )
        return job.id

    async def _targets(self, tenant_id: int, arns: list[str]) -> tuple[list[int], list[int]]:
        registry = self.services.registry
        devices, groups = [], []
        for arn in arns:
            kind, _, name = arn.split(":", 5)[-1].partition("/")
            if kind == "thing":
                device = await registry.find_device(tenant_id, name)
                if device is None:
                    raise NotFound(f"Thing {name} cannot be found.")
                devices.append(device.id)
            else:
                groups.append((await registry.get_group(tenant_id, name)).id)
        return devices, groups

    async def _files(
        self,
        tenant_id: int,
        requested: list[dict[str, Any]],
        protocols: list[str],
        s3_endpoint: str,
    ) -> _Files:
        out = _Files([], [], [], None)
        for i, f in enumerate(requested):
            loc = f.get("fileLocation") or {}
            s3: dict[str, Any]
            blob_key: str | None
            sha256: str | None = None
            obj = None
            if "stream" in loc:
                stream = await self.services.streams.get(tenant_id, loc["stream"]["streamId"])
                sfile = stream.file(int(loc["stream"].get("fileId", 0)))
                out.stream_name, file_id = stream.ref, sfile.file_id
                size, blob_key, s3 = sfile.size, sfile.blob_key, dict(sfile.source)
            else:
                s3 = loc.get("s3Location") or {}
                try:
                    obj = await self.objects.get(
                        tenant_id, s3["bucket"], s3["key"], s3.get("version")
                    )
                except (NotFound, KeyError) as exc:
                    raise BuildFailed(
                        "ResourceNotFoundException", f"file {i}: the S3 object does not exist"
                    ) from exc
                size, blob_key, sha256, file_id = obj.size, obj.blob_key, obj.sha256, i
                s3 = {**s3, "version": obj.version_id}
                out.stream.append(StreamFile(file_id, blob_key or "", size, s3))
            signed = await self._sign(tenant_id, f, s3, sha256)
            http = "HTTP" in protocols
            entry: dict[str, Any] = {
                "filepath": f.get("fileName"),
                "filesize": size,
                "fileid": file_id,
                "certfile": signed.certname,
                "update_data_url": _presign_placeholder(s3_endpoint, s3) if http else None,
                "auth_scheme": "aws.s3.presigned" if http else None,
            }
            if f.get("fileType") is not None:
                entry["fileType"] = f["fileType"]
            key = afr_signature_key(
                signed.hash_algorithm or HashAlgorithm.SHA256,
                signed.signature_algorithm or SignatureAlgorithm.ECDSA,
            )
            entry[key] = signature_to_base64(signed.signature) if signed.signature else None
            out.document.append(entry)
            out.package.append(
                PackageFile(
                    ordinal=i,
                    name=f.get("fileName"),
                    blob_key=blob_key,
                    size=size,
                    sha256=sha256,
                    md5=obj.md5 if obj else None,
                    signature=signed.signature,
                    hash_algorithm=signed.hash_algorithm.value if signed.hash_algorithm else None,
                    signature_algorithm=signed.signature_algorithm.value
                    if signed.signature_algorithm
                    else None,
                    certificate=signed.certificate,
                    file_type=f.get("fileType"),
                    attributes=f.get("attributes") or {},
                )
            )
        return out

    async def _sign(
        self, tenant_id: int, f: dict[str, Any], s3: dict[str, Any], sha256: str | None
    ) -> _Signed:
        code = f.get("codeSigning") or {}
        if code.get("awsSignerJobId"):
            return await self._signed_by_job(tenant_id, code["awsSignerJobId"])
        if code.get("startSigningJobParameter"):
            return await self._start_signing(tenant_id, code["startSigningJobParameter"], s3)
        if code.get("customCodeSigning"):
            return _custom(code["customCodeSigning"], sha256)
        return _Signed(None, None, None, None, None)

    async def _signed_by_job(self, tenant_id: int, job_id: str) -> _Signed:
        try:
            job = await self.signing.get_job(tenant_id, job_id)
        except NotFound as exc:
            raise BuildFailed("ResourceNotFoundException", exc.message) from exc
        if job.status != "Succeeded" or job.signature is None:
            raise BuildFailed(
                "SigningJobFailed",
                f"signing job {job.id} is {job.status}: {job.status_reason or 'no signature'}",
            )
        prof = await self.signing.get_profile(tenant_id, job.profile_name)
        certname = (prof.data.get("signingParameters") or {}).get("certname")
        return _Signed(
            job.signature, job.certificate, HashAlgorithm.SHA256, prof.material.algorithm, certname
        )

    async def _start_signing(
        self, tenant_id: int, start: dict[str, Any], s3: dict[str, Any]
    ) -> _Signed:
        name = start.get("signingProfileName")
        params = start.get("signingProfileParameter") or {}
        dest = (start.get("destination") or {}).get("s3Destination") or {}
        if not name:
            raise BuildFailed("InvalidRequestException", "signingProfileName is required")
        try:
            if params.get("platform"):
                await self.signing.put_profile(
                    tenant_id,
                    name,
                    platform_id=params["platform"],
                    algorithm=SignatureAlgorithm.RSA
                    if "CC3220" in params["platform"]
                    else SignatureAlgorithm.ECDSA,
                    data={"signingParameters": {"certname": params.get("certificatePathOnDevice")}}
                    if params.get("certificatePathOnDevice")
                    else None,
                )
            job = await self.signing.start_job(
                tenant_id,
                name,
                bucket=s3["bucket"],
                key=s3["key"],
                version=s3.get("version"),
                dest_bucket=dest.get("bucket") or s3["bucket"],
                dest_prefix=dest.get("prefix", ""),
            )
            prof = await self.signing.get_profile(tenant_id, name)
        except OtahubError as exc:
            # errorInfo carries the signer's own error, as AWS's does
            raise BuildFailed(self.error_code("signer", exc), exc.message) from exc
        certname = params.get("certificatePathOnDevice") or (
            prof.data.get("signingParameters") or {}
        ).get("certname")
        return _Signed(
            job.signature, job.certificate, HashAlgorithm.SHA256, prof.material.algorithm, certname
        )

    # -- checks at create -----------------------------------------------------------

    async def _check_role(self, role_arn: str, role_account: str, account_id: str) -> None:
        """A caller cannot pass another account's role on this server (iam:PassRole)."""
        if role_account == account_id:
            return
        async with self.db.read() as conn:
            other = (
                await conn.execute(select(tenants.c.id).where(tenants.c.account_id == role_account))
            ).first()
        if other is not None:
            raise Unauthorized(
                f"account {account_id} is not authorized to pass role {role_arn} "
                f"of account {role_account}"
            )

    async def _check_references(self, tenant_id: int, files: list[dict[str, Any]]) -> None:
        """Streams and signing jobs named by id must exist before anything is created."""
        for i, f in enumerate(files):
            stream = ((f.get("fileLocation") or {}).get("stream")) or {}
            if stream:
                if not stream.get("streamId"):
                    raise InvalidRequest(f"files[{i}].fileLocation.stream.streamId is required")
                found = await self.services.streams.get(tenant_id, stream["streamId"])
                found.file(int(stream.get("fileId", 0)))
            elif not (f.get("fileLocation") or {}).get("s3Location"):
                raise InvalidRequest(f"files[{i}].fileLocation needs stream or s3Location")
            job_id = (f.get("codeSigning") or {}).get("awsSignerJobId")
            if job_id:
                await self.signing.get_job(tenant_id, job_id)


@dataclass(frozen=True)
class _Signed:
    signature: bytes | None
    certificate: str | None
    hash_algorithm: HashAlgorithm | None
    signature_algorithm: SignatureAlgorithm | None
    certname: str | None


def _custom(custom: Mapping[str, Any], sha256: str | None) -> _Signed:
    signature = (custom.get("signature") or {}).get("inlineDocument")
    chain = custom.get("certificateChain") or {}
    hash_alg = HashAlgorithm.parse(custom.get("hashAlgorithm") or "SHA256")
    sig_alg = SignatureAlgorithm.parse(custom.get("signatureAlgorithm") or "ECDSA")
    if not signature:
        raise BuildFailed("InvalidRequestException", "customCodeSigning has no signature")
    raw = _signature_bytes(signature)
    if chain.get("inlineDocument") and sha256:
        check = verify_custom_signature(
            raw,
            sha256,
            chain["inlineDocument"],
            hash_algorithm=hash_alg,
            signature_algorithm=sig_alg,
        )
        if not check:
            raise BuildFailed(
                "SignatureVerificationFailed",
                f"the custom signature does not verify: {check.reason}",
            )
    certname = chain.get("certificateName")
    return _Signed(raw, chain.get("inlineDocument"), hash_alg, sig_alg, certname)


def _signature_bytes(signature: Any) -> bytes:
    """The request stored as JSON holds the signature's bytes as base64."""
    if isinstance(signature, bytes | bytearray):
        return bytes(signature)
    return signature_from_base64(signature)


def _presign_placeholder(s3_endpoint: str, s3: dict[str, Any]) -> str:
    """What AWS puts in the document for HTTP: substituted per device on delivery,
    pinned to the object version the update was built from."""
    url = f"{s3_endpoint}/{s3.get('bucket')}/{s3.get('key')}"
    version = s3.get("version")
    if version and version != NULL_VERSION:
        url += f"?versionId={version}"
    return f"${{aws:iot:s3-presigned-url:{url}}}"


def _tags(wire: Sequence[Mapping[str, str]]) -> list[Tag]:
    return [Tag(t["Key"], t["Value"]) for t in wire]

"""Jobs: a package or document sent to targets under a rollout policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.core.engine import CLEAR_FAILURE, cancel_job_in
from otahub.core.services.base import IN_CHUNK, ServiceContext
from otahub.core.services.batching import Coalescer
from otahub.core.services.tags import drop_tags, write_tags
from otahub.domain import selectors as sel
from otahub.domain.entities import Job, row_to
from otahub.domain.errors import (
    AlreadyExists,
    Conflict,
    InvalidRequest,
    InvalidStateTransition,
    NotFound,
)
from otahub.domain.policies import JobPolicies
from otahub.domain.states import (
    ACTIVE_JOB,
    PENDING,
    UNSTARTED,
    ExecutionStatus,
    JobStatus,
    ReleaseMode,
    TargetSelection,
    VerifyState,
)
from otahub.domain.tags import Tag
from otahub.store import rollout
from otahub.store.job_rules import one_active_job_per_package, violates
from otahub.store.tables import device_modules, executions, job_targets, jobs, packages

S = ExecutionStatus
UNFINISHED = UNSTARTED | {S.IN_PROGRESS}


class OtherJobs(Enum):
    """What a new job does to its targets' unfinished executions in other jobs."""

    KEEP = "keep"
    # A listed device with one refuses the job.
    REFUSE = "refuse"
    # Unstarted ones are canceled; a listed device with one in progress refuses the job.
    REPLACE = "replace"


class DeviceBusy(Conflict):
    """A listed device has an unfinished execution in another job; `details['device_id']`."""


class DeviceOffSourceVersion(InvalidRequest):
    """A listed device runs another version of the module than the differential
    package's source version; `details['device_id']`."""


class ActiveJobExists(Conflict):
    """The package already has an active job of a kind that allows one
    (store/job_rules.py); `details['package_id']`."""


@dataclass(frozen=True)
class JobSpec:
    """Everything a face says when it creates a job."""

    ref: str
    kind: str
    device_ids: Sequence[int] = ()
    group_ids: Sequence[int] = ()
    selector: sel.Selector | None = None
    product_id: int | None = None
    package_id: int | None = None
    document: str | None = None
    description: str | None = None
    target_selection: TargetSelection = TargetSelection.SNAPSHOT
    release_mode: ReleaseMode = ReleaseMode.CREATE
    only_later_matches: bool = False
    policies: JobPolicies = field(default_factory=JobPolicies)
    need_push: bool = True
    need_confirm: bool = False
    is_verify: bool = False
    other_jobs: OtherJobs = OtherJobs.KEEP
    data: Mapping[str, Any] = field(default_factory=dict)
    # Written with the job, in its transaction, under the name the face gives it.
    tags: Sequence[Tag] = ()
    tagged_as: str | None = None


class JobService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._by_id: Coalescer[int, Job] = Coalescer(self._jobs_by_id)
        self._jobs_in = ctx.db.prepare_in(lambda ids: select(jobs).where(jobs.c.id.in_(ids)), "job")

    async def create_job(self, tenant_id: int, spec: JobSpec) -> Job:
        spec.policies.validate()
        if not (spec.device_ids or spec.group_ids or spec.selector):
            raise InvalidRequest("a job needs at least one target")
        if spec.need_confirm and spec.release_mode is not ReleaseMode.NOTIFY:
            raise InvalidRequest("confirmation applies to jobs that create executions up front")
        if spec.only_later_matches and spec.target_selection is not TargetSelection.CONTINUOUS:
            raise InvalidRequest("only continuous jobs can wait for later matches")
        now = self.ctx.clock.now()
        start_at = spec.policies.schedule.start_at
        scheduled = start_at is not None and start_at > now
        async with self.ctx.db.transaction() as conn:
            if spec.package_id is not None:
                await self._check_package(conn, tenant_id, spec)
            await _refuse_busy_devices(conn, spec)
            values: dict[str, Any] = {
                "tenant_id": tenant_id,
                "ref": spec.ref,
                "kind": spec.kind,
                "status": (JobStatus.SCHEDULED if scheduled else JobStatus.IN_PROGRESS).value,
                "package_id": spec.package_id,
                "product_id": spec.product_id,
                "document": spec.document,
                "description": spec.description,
                "target_selection": spec.target_selection.value,
                "release_mode": spec.release_mode.value,
                "selector": sel.to_json(spec.selector) if spec.selector is not None else None,
                "only_later_matches": spec.only_later_matches,
                "policies": spec.policies.to_json(),
                "need_push": spec.need_push,
                "need_confirm": spec.need_confirm,
                "is_verify": spec.is_verify,
                "data": dict(spec.data),
                "created_at": now,
                "updated_at": now,
                "started_at": None if scheduled else now,
            }
            if spec.only_later_matches:
                values.update(initial_done=True, scan_from=now)
            try:
                job_id = (
                    await conn.execute(insert(jobs).values(**values).returning(jobs.c.id))
                ).scalar_one()
            except IntegrityError as exc:
                if violates(exc, one_active_job_per_package):
                    raise ActiveJobExists(
                        f"the package already has an active {spec.kind} job",
                        package_id=spec.package_id,
                    ) from exc
                raise AlreadyExists(f"job {spec.ref} already exists", ref=spec.ref) from exc
            targets = [
                {"job_id": job_id, "device_id": d, "group_id": None}
                for d in dict.fromkeys(spec.device_ids)
            ]
            targets += [
                {"job_id": job_id, "device_id": None, "group_id": g}
                for g in dict.fromkeys(spec.group_ids)
            ]
            if targets:
                await conn.execute(insert(job_targets), targets)
            if spec.tags and spec.tagged_as is not None:
                await write_tags(conn, tenant_id, spec.tagged_as, spec.tags)
            if spec.is_verify and spec.package_id is not None:
                await conn.execute(
                    update(packages)
                    .where(packages.c.id == spec.package_id)
                    .values(verify_state=VerifyState.VERIFYING.value, updated_at=now)
                )
            if spec.other_jobs is OtherJobs.REPLACE:
                await _cancel_unstarted_elsewhere(conn, job_id, now, reason="overwritten")
            return await load_job(conn, job_id)

    async def _check_package(self, conn: AsyncConnection, tenant_id: int, spec: JobSpec) -> None:
        row = (
            await conn.execute(
                select(
                    packages.c.verify_state,
                    packages.c.tenant_id,
                    packages.c.module,
                    packages.c.source_version,
                ).where(packages.c.id == spec.package_id)
            )
        ).first()
        if row is None or row.tenant_id != tenant_id:
            raise NotFound("package not found")
        state = VerifyState(row.verify_state)
        if spec.is_verify:
            if state not in (VerifyState.UNVERIFIED, VerifyState.FAILED):
                raise InvalidStateTransition(
                    f"the package cannot be verified while it is {state.value}", state=state.value
                )
        elif state in (VerifyState.UNVERIFIED, VerifyState.VERIFYING, VerifyState.FAILED):
            raise InvalidStateTransition(
                f"the package must be verified first (it is {state.value})", state=state.value
            )
        if row.source_version:
            await _refuse_off_source_version(conn, row.module, row.source_version, spec.device_ids)

    async def get_job(self, tenant_id: int, ref: str) -> Job:
        async with self.ctx.db.read() as conn:
            return await job_by_ref(conn, tenant_id, ref)

    async def get_job_by_id(self, job_id: int) -> Job:
        """The job; lookups that arrive together (devices asking for their job
        document) share one query."""
        job = await self._by_id.get(job_id)
        if job is None:
            raise NotFound("job not found")
        return job

    async def _jobs_by_id(self, ids: list[int]) -> dict[int, Job]:
        keys = self._jobs_in.keys
        found = (row_to(Job, dict(zip(keys, r, strict=True))) for r in await self._jobs_in.all(ids))
        return {j.id: j for j in found}

    async def list_jobs(
        self,
        tenant_id: int,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        package_id: int | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[Job]:
        q = select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.id > after_id)
        if status is not None:
            q = q.where(jobs.c.status == status.value)
        if kind is not None:
            q = q.where(jobs.c.kind == kind)
        if package_id is not None:
            q = q.where(jobs.c.package_id == package_id)
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(q.order_by(jobs.c.id).limit(limit))
            return [row_to(Job, r) for r in rows]

    async def page_jobs(
        self,
        tenant_id: int,
        *,
        package_id: int | None = None,
        device_id: int | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[Job], int]:
        """A page of the tenant's jobs, newest first (of a package; that have an
        execution on a device), and the total."""
        cond = [jobs.c.tenant_id == tenant_id]
        if package_id is not None:
            cond.append(jobs.c.package_id == package_id)
        if device_id is not None:
            cond.append(
                jobs.c.id.in_(
                    select(executions.c.job_id).where(executions.c.device_id == device_id)
                )
            )
        async with self.ctx.db.read() as conn:
            total = (await conn.execute(select(func.count()).where(*cond))).scalar_one()
            rows = await conn.execute(
                select(jobs).where(*cond).order_by(jobs.c.id.desc()).offset(offset).limit(limit)
            )
            return [row_to(Job, r) for r in rows], int(total)

    async def counts(self, job_id: int) -> dict[ExecutionStatus, int]:
        """Executions of the job per status (latest execution of each device)."""
        async with self.ctx.db.read() as conn:
            return await rollout.status_counts(conn, job_id)

    async def update_job(
        self,
        tenant_id: int,
        ref: str,
        *,
        policies: JobPolicies | None = None,
        description: str | None = None,
        data: Mapping[str, Any] | None = None,
        selector: sel.Selector | None = None,
    ) -> Job:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            job = await job_by_ref(conn, tenant_id, ref, lock=self.ctx.db.is_postgres)
            # A job the engine failed on gets its next pass now.
            values: dict[str, Any] = {"updated_at": now, "version": job.version + 1}
            values.update(CLEAR_FAILURE)
            if policies is not None:
                policies.validate()
                values["policies"] = policies.to_json()
            if description is not None:
                values["description"] = description
            if data is not None:
                values["data"] = {**job.data, **data}
            if selector is not None:
                values["selector"] = sel.to_json(selector)
            await conn.execute(update(jobs).where(jobs.c.id == job.id).values(**values))
            return await load_job(conn, job.id)

    async def cancel_job(
        self,
        tenant_id: int,
        ref: str,
        *,
        force: bool = False,
        reason_code: str | None = None,
        comment: str | None = None,
    ) -> Job:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            job = await job_by_ref(conn, tenant_id, ref, lock=self.ctx.db.is_postgres)
            if job.status is JobStatus.CANCELED and force and not job.force_canceled:
                pass  # upgrading a cancel to a forced one cancels the in-progress too
            elif job.status not in ACTIVE_JOB:
                raise InvalidStateTransition(
                    f"job {ref} is {job.status.value} and cannot be canceled", state=job.status
                )
            row = (await conn.execute(select(jobs).where(jobs.c.id == job.id))).one()
            await cancel_job_in(
                conn, row, now, force=force, reason_code=reason_code, comment=comment
            )
            return await load_job(conn, job.id)

    async def delete_job(
        self, tenant_id: int, ref: str, *, force: bool = False, tagged_as: str | None = None
    ) -> None:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            job = await job_by_ref(conn, tenant_id, ref, lock=self.ctx.db.is_postgres)
            if job.status in ACTIVE_JOB and not force:
                raise InvalidStateTransition(
                    f"job {ref} is {job.status.value}; delete it with force", state=job.status
                )
            # Devices with pending work in it hear that it is gone.
            pending = (
                await conn.execute(
                    select(executions.c.device_id, executions.c.execution_number).where(
                        executions.c.job_id == job.id,
                        executions.c.status.in_([s.value for s in PENDING]),
                    )
                )
            ).all()
            await rollout.add_outbox(conn, job.id, pending, "deleted", now)
            await conn.execute(delete(executions).where(executions.c.job_id == job.id))
            await conn.execute(delete(jobs).where(jobs.c.id == job.id))
            if tagged_as is not None:
                await drop_tags(conn, tenant_id, tagged_as)

    async def confirm(self, job_id: int, device_ids: Sequence[int] | None = None) -> int:
        """Release executions waiting in CONFIRM (all of the job's, or these devices')."""
        now = self.ctx.clock.now()
        cond = [executions.c.job_id == job_id, executions.c.status == S.CONFIRM.value]
        if device_ids is not None:
            cond.append(executions.c.device_id.in_(device_ids))
        async with self.ctx.db.transaction() as conn:
            result = await conn.execute(
                update(executions)
                .where(*cond)
                .values(status=S.QUEUED.value, updated_at=now, version=executions.c.version + 1)
            )
            return int(result.rowcount or 0)

    async def cancel_unstarted_elsewhere(self, job_id: int, *, reason: str) -> int:
        """Cancel the unstarted executions that the job's targets have in other jobs
        (the new job overrides them). Returns how many."""
        async with self.ctx.db.transaction() as conn:
            return await _cancel_unstarted_elsewhere(
                conn, job_id, self.ctx.clock.now(), reason=reason
            )

    async def count_jobs_in(self, tenant_id: int, status: JobStatus) -> int:
        async with self.ctx.db.read() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).where(
                            jobs.c.tenant_id == tenant_id, jobs.c.status == status.value
                        )
                    )
                ).scalar_one()
            )


async def load_job(conn: AsyncConnection, job_id: int) -> Job:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    if row is None:
        raise NotFound("job not found")
    return row_to(Job, row)


async def job_by_ref(conn: AsyncConnection, tenant_id: int, ref: str, *, lock: bool = False) -> Job:
    q = select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.ref == ref)
    if lock:
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound(f"job {ref} not found", ref=ref)
    return row_to(Job, row)


async def _refuse_off_source_version(
    conn: AsyncConnection, module: str, source_version: str, device_ids: Sequence[int]
) -> None:
    """A differential package fits only devices on its source version (or that never
    reported the module): the first listed device on another raises
    DeviceOffSourceVersion."""

    def off_source(chunk: list[int]) -> Select[Any]:
        m = device_modules
        return select(m.c.device_id).where(
            m.c.device_id.in_(chunk), m.c.module == module, m.c.version != source_version
        )

    found = await _first_selected(conn, device_ids, off_source)
    if found is not None:
        raise DeviceOffSourceVersion(
            f"the device is not on the package's source version {source_version}",
            device_id=found,
        )


async def _refuse_busy_devices(conn: AsyncConnection, spec: JobSpec) -> None:
    """The first listed device with an unfinished execution that `spec.other_jobs`
    forbids raises DeviceBusy."""
    if spec.other_jobs is OtherJobs.KEEP:
        return
    forbidden = UNFINISHED if spec.other_jobs is OtherJobs.REFUSE else {S.IN_PROGRESS}

    def busy(chunk: list[int]) -> Select[Any]:
        e = executions
        return select(e.c.device_id).where(
            e.c.device_id.in_(chunk),
            e.c.superseded.is_(False),
            e.c.status.in_([s.value for s in forbidden]),
        )

    found = await _first_selected(conn, spec.device_ids, busy)
    if found is not None:
        raise DeviceBusy("the device has an unfinished execution in another job", device_id=found)


async def _first_selected(
    conn: AsyncConnection,
    device_ids: Sequence[int],
    matching: Callable[[list[int]], Select[Any]],
) -> int | None:
    """The first of `device_ids`, in their order, that `matching` selects: one query
    per IN_CHUNK ids."""
    wanted = list(dict.fromkeys(device_ids))
    selected: set[int] = set()
    for start in range(0, len(wanted), IN_CHUNK):
        selected.update((await conn.execute(matching(wanted[start : start + IN_CHUNK]))).scalars())
    return next((d for d in wanted if d in selected), None)


async def _cancel_unstarted_elsewhere(
    conn: AsyncConnection, job_id: int, now: datetime, *, reason: str
) -> int:
    e = executions
    job = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).one()
    targets = await rollout.target_set(conn, job)
    if targets is None:
        return 0
    rows = (
        await conn.execute(
            update(e)
            .where(
                e.c.job_id != job_id,
                e.c.superseded.is_(False),
                e.c.status.in_([s.value for s in UNSTARTED]),
                e.c.device_id.in_(targets.scalar_subquery()),
            )
            .values(
                status=S.CANCELED.value,
                reason=reason,
                finished_at=now,
                updated_at=now,
                deadline_at=None,
                version=e.c.version + 1,
            )
            .returning(e.c.job_id, e.c.device_id, e.c.execution_number)
        )
    ).all()
    for other in {r.job_id for r in rows}:
        mine = [r for r in rows if r.job_id == other]
        await rollout.add_outbox(conn, other, mine, "changed", now)
    return len(rows)

"""Executions: one job on one device. The device side and the operator's controls.

Every change goes through `check_transition` and bumps the version with an
optimistic-concurrency guard; a change that leaves the pending set writes an
outbox row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.core.services.accounts import DEFAULT_PRODUCT_KEY
from otahub.core.services.base import ServiceContext
from otahub.core.services.batching import Coalescer, ReportWriter
from otahub.domain import limits
from otahub.domain.entities import Execution, row_to
from otahub.domain.errors import InvalidRequest, InvalidStateTransition, NotFound, VersionConflict
from otahub.domain.policies import JobPolicies
from otahub.domain.states import (
    PENDING,
    TERMINAL,
    ExecutionStatus,
    JobStatus,
    can_transition,
    check_transition,
)
from otahub.store import rollout
from otahub.store.tables import devices, executions, jobs, packages, products
from otahub.store.types import UTCDateTime

S = ExecutionStatus
_EXEC_COLS = [*executions.c, jobs.c.ref.label("job_ref")]
RERUNNABLE = frozenset({S.FAILED, S.TIMED_OUT, S.REJECTED, S.CANCELED})

# The device check-in: a device known by (tenant, product key, name) and its released
# pending executions, one row per execution (one row of NULLs when it has none, no
# row when there is no such device). Ordered in Python, as pending_for_device is.
PENDING_FOR_THING = (
    select(devices.c.id.label("thing_id"), *_EXEC_COLS)
    .select_from(
        devices.join(products, products.c.id == devices.c.product_id).outerjoin(
            executions.join(jobs, jobs.c.id == executions.c.job_id),
            and_(
                executions.c.device_id == devices.c.id,
                executions.c.status.in_([literal(s.value) for s in sorted(PENDING)]),
                executions.c.released_at.is_not(None),
            ),
        )
    )
    .where(
        products.c.tenant_id == bindparam("tenant_id", None),
        products.c.key == bindparam("product_key", None),
        devices.c.name == bindparam("name", None),
    )
    .limit(bindparam("limit", None))
)


def pending_for_ids(device_ids: list[Any]) -> Any:
    """The released pending executions of these devices (`pending_for_devices`)."""
    return (
        select(*_EXEC_COLS)
        .join(jobs, jobs.c.id == executions.c.job_id)
        .where(
            executions.c.device_id.in_(device_ids),
            executions.c.status.in_([literal(s.value) for s in sorted(PENDING)]),
            executions.c.released_at.is_not(None),
        )
    )


_EXECUTION_FIELDS = [
    f.name for f in fields(Execution) if f.name in PENDING_FOR_THING.selected_columns
]


@dataclass(frozen=True)
class Report:
    """What a device says about one of its executions."""

    status: ExecutionStatus
    status_details: Mapping[str, str] | None = None  # None: unchanged
    expected_version: int | None = None
    execution_number: int | None = None
    step_timeout_minutes: int | None = None
    progress: int | None = None
    reason: str | None = None


class ExecutionService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._pending_for_thing = ctx.db.prepare(PENDING_FOR_THING)
        keys = self._pending_for_thing.keys
        self._pending_job_id = keys.index("job_id")
        self._pending_fields = itemgetter(*(keys.index(f) for f in _EXECUTION_FIELDS))
        self._pending_for_ids = ctx.db.prepare_in(pending_for_ids, "device")
        ids_keys = self._pending_for_ids.keys
        self._ids_fields = itemgetter(*(ids_keys.index(f) for f in _EXECUTION_FIELDS))
        self._writer = ReportWriter(self._write_reports)
        self._pending: Coalescer[int, list[Execution]] = Coalescer(self.pending_for_devices)

    # -- reading --------------------------------------------------------------------

    async def pending_for_device(
        self, device_id: int, *, include_unreleased: bool = False, limit: int = 100
    ) -> list[Execution]:
        """The device's pending executions: IN_PROGRESS first, then by queue time.
        Released ones only unless asked: those lookups, the devices' hot path, share
        one query when they arrive together."""
        if not include_unreleased:
            return (await self._pending.get(device_id) or [])[:limit]
        q = (
            select(*_EXEC_COLS)
            .join(jobs, jobs.c.id == executions.c.job_id)
            .where(
                executions.c.device_id == device_id,
                executions.c.status.in_([s.value for s in PENDING]),
            )
        )
        async with self.ctx.db.read() as conn:
            rows = (await conn.execute(q.limit(limit))).all()
        found = [row_to(Execution, r) for r in rows]
        found.sort(key=_pending_order)
        return found

    async def pending_for_thing(
        self, tenant_id: int, name: str, product_key: str = DEFAULT_PRODUCT_KEY, *, limit: int = 100
    ) -> list[Execution] | None:
        """pending_for_device of a device known by name, in one indexed query: the
        device check-in's hot path, prepared once. None when there is no such device."""
        rows = await self._pending_for_thing.all(
            tenant_id=tenant_id, product_key=product_key, name=name, limit=limit
        )
        if not rows:
            return None
        found = [self._pending_row(r) for r in rows if r[self._pending_job_id] is not None]
        found.sort(key=_pending_order)
        return found

    def _pending_row(self, row: tuple[Any, ...], fields: Any = None) -> Execution:
        values = dict(zip(_EXECUTION_FIELDS, (fields or self._pending_fields)(row), strict=True))
        values["status"] = ExecutionStatus(values["status"])
        return Execution(**values)

    async def pending_for_devices(self, device_ids: Sequence[int]) -> dict[int, list[Execution]]:
        """pending_for_device for many devices in one query (notification rendering),
        prepared once per list size."""
        found: dict[int, list[Execution]] = {d: [] for d in device_ids}
        for r in await self._pending_for_ids.all(list(found)):
            ex = self._pending_row(r, self._ids_fields)
            found[ex.device_id].append(ex)
        for items in found.values():
            items.sort(key=_pending_order)
        return found

    async def get(
        self, job_id: int, device_id: int, execution_number: int | None = None
    ) -> Execution:
        async with self.ctx.db.read() as conn:
            return await _latest(conn, job_id, device_id, execution_number)

    async def list_for_job(
        self,
        job_id: int,
        *,
        status: ExecutionStatus | None = None,
        after_device_id: int = 0,
        limit: int = 100,
    ) -> list[Execution]:
        """The latest execution of each device in the job, by device id."""
        return await self._list(
            and_(executions.c.job_id == job_id, executions.c.device_id > after_device_id),
            executions.c.device_id,
            status,
            limit,
        )

    async def list_for_device(
        self,
        device_id: int,
        *,
        status: ExecutionStatus | None = None,
        after_job_id: int = 0,
        limit: int = 100,
    ) -> list[Execution]:
        """The device's latest execution of each job, by job id."""
        return await self._list(
            and_(executions.c.device_id == device_id, executions.c.job_id > after_job_id),
            executions.c.job_id,
            status,
            limit,
        )

    async def _list(
        self, where: Any, order: Any, status: ExecutionStatus | None, limit: int
    ) -> list[Execution]:
        q = (
            select(*_EXEC_COLS, devices.c.name.label("device_name"))
            .join(jobs, jobs.c.id == executions.c.job_id)
            .join(devices, devices.c.id == executions.c.device_id)
            .where(where, executions.c.superseded.is_(False))
        )
        if status is not None:
            q = q.where(executions.c.status == status.value)
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(q.order_by(order).limit(limit))
            return [row_to(Execution, r) for r in rows]

    async def page_for_job(
        self,
        job_id: int,
        *,
        statuses: Sequence[ExecutionStatus] | None = None,
        device_ids: Sequence[int] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[Execution], int]:
        """A page of the job's latest executions by device id, and the total."""
        cond = [executions.c.job_id == job_id, executions.c.superseded.is_(False)]
        if statuses is not None:
            cond.append(executions.c.status.in_([s.value for s in statuses]))
        if device_ids is not None:
            cond.append(executions.c.device_id.in_(list(device_ids)))
        q = (
            select(*_EXEC_COLS, devices.c.name.label("device_name"))
            .join(jobs, jobs.c.id == executions.c.job_id)
            .join(devices, devices.c.id == executions.c.device_id)
            .where(*cond)
            .order_by(executions.c.device_id)
            .offset(offset)
            .limit(limit)
        )
        async with self.ctx.db.read() as conn:
            total = (await conn.execute(select(func.count()).where(*cond))).scalar_one()
            rows = await conn.execute(q)
            return [row_to(Execution, r) for r in rows], int(total)

    async def unfinished_for_device(self, device_id: int) -> list[Execution]:
        """Every execution of the device not yet terminal, CONFIRM and unreleased ones
        included, oldest first."""
        q = (
            select(*_EXEC_COLS, devices.c.name.label("device_name"))
            .join(jobs, jobs.c.id == executions.c.job_id)
            .join(devices, devices.c.id == executions.c.device_id)
            .where(
                executions.c.device_id == device_id,
                executions.c.superseded.is_(False),
                executions.c.status.not_in([s.value for s in TERMINAL]),
            )
            .order_by(executions.c.queued_at, executions.c.job_id)
        )
        async with self.ctx.db.read() as conn:
            return [row_to(Execution, r) for r in await conn.execute(q)]

    # -- device side ----------------------------------------------------------------

    async def start_next(
        self,
        device_id: int,
        *,
        status_details: Mapping[str, str] | None = None,
        step_timeout_minutes: int | None = None,
    ) -> Execution | None:
        """Start the head of the device's queue; an IN_PROGRESS head is returned as is."""
        pending = await self.pending_for_device(device_id, limit=1)
        if not pending:
            return None
        return await self.start(
            pending[0], status_details=status_details, step_timeout_minutes=step_timeout_minutes
        )

    async def start(
        self,
        head: Execution,
        *,
        status_details: Mapping[str, str] | None = None,
        step_timeout_minutes: int | None = None,
    ) -> Execution:
        """Start `head`, the head of its device's queue as the caller read it; an
        IN_PROGRESS head is returned as is."""
        if head.status is S.IN_PROGRESS:
            return head
        return await self.report(
            head.job_id,
            head.device_id,
            Report(
                S.IN_PROGRESS,
                status_details=status_details,
                step_timeout_minutes=step_timeout_minutes,
            ),
        )

    async def report(self, job_id: int, device_id: int, report: Report) -> Execution:
        """Apply a device's status report to its execution of a job.

        Reports that arrive while another batch is being written are written together,
        in one transaction (see `ReportWriter`); each is checked on its own, in arrival
        order, exactly as if it had been applied alone."""
        _check_storable(report)
        done: Execution = await self._writer.submit(_Item(device_id, report, job_id=job_id))
        return done

    async def report_by_ref(
        self, tenant_id: int, job_ref: str, device_id: int, report: Report
    ) -> Execution:
        """`report` for a job known by its reference (the device APIs): the job is
        looked up in the same statement as the execution."""
        _check_storable(report)
        done: Execution = await self._writer.submit(
            _Item(device_id, report, tenant_id=tenant_id, job_ref=job_ref)
        )
        return done

    async def _write_reports(self, batch: list[_Item]) -> None:
        """One transaction for a batch of reports: one SELECT (row-locked on
        PostgreSQL) of the executions, the checks and new values in Python in arrival
        order, one UPDATE per set of changed columns (executemany, guarded by the
        version read), one INSERT of the outbox rows."""
        now = self.ctx.clock.now()
        db = self.ctx.db
        async with db.transaction() as conn:
            rows = await _lock_for_reports(conn, batch, lock=db.is_postgres)
            by_pair: dict[tuple[int, int], list[Any]] = {}
            ref_ids: dict[tuple[int, str], int] = {}
            for r in rows:
                by_pair.setdefault((r.job_id, r.device_id), []).append(r)
                ref_ids[(r.job_tenant_id, r.job_ref)] = r.job_id
            current: dict[tuple[int, int, int], Execution] = {}
            read_version: dict[tuple[int, int, int], int] = {}
            changes: dict[tuple[int, int, int], dict[str, Any]] = {}
            finished: list[Execution] = []
            policies: dict[int, JobPolicies] = {}
            for item in batch:
                job_id = item.job_id
                if job_id is None:
                    job_id = ref_ids.get((item.tenant_id or 0, item.job_ref or ""))
                candidates = by_pair.get((job_id, item.device_id), []) if job_id else []
                if item.report.execution_number is not None:
                    candidates = [
                        r for r in candidates if r.execution_number == item.report.execution_number
                    ]
                if not candidates:
                    item.error = NotFound("no such job execution")
                    continue
                row = max(candidates, key=lambda r: r.execution_number)
                key = (row.job_id, row.device_id, row.execution_number)
                ex = current.get(key)
                if ex is None:
                    ex = current[key] = row_to(Execution, row)
                    read_version[key] = ex.version
                if row.job_id not in policies:
                    policies[row.job_id] = JobPolicies.from_json(row.job_policies)
                job = _JobView(policies[row.job_id], row.job_status)
                try:
                    after, values = _apply_report(ex, item.report, job, now)
                except (VersionConflict, InvalidStateTransition, InvalidRequest) as exc:
                    item.error = exc
                    continue
                changes.setdefault(key, {}).update(values)
                current[key] = item.result = after
                if item.report.status in TERMINAL:
                    finished.append(after)
            await _write_changes(conn, changes, read_version)
            await _name_missing_jobs(conn, [i for i in batch if isinstance(i.error, NotFound)])
            for job_id, group in _by_job(finished).items():
                await rollout.add_outbox(conn, job_id, group, "changed", now)

    async def settle_by_version(self, device_id: int, module: str, version: str) -> list[Execution]:
        """A device reported running `version` of `module`: its pending executions of
        jobs whose package is that version of that module have succeeded (Alibaba
        decides success by the version report, not by a status update)."""
        if not (_is_text(module) and _is_text(version)):
            return []  # no package's module or version holds what the store cannot
        q = (
            select(executions.c.job_id, executions.c.execution_number)
            .join(jobs, jobs.c.id == executions.c.job_id)
            .join(packages, packages.c.id == jobs.c.package_id)
            .where(
                executions.c.device_id == device_id,
                executions.c.status.in_([s.value for s in PENDING]),
                packages.c.module == module,
                packages.c.version == version,
            )
        )
        async with self.ctx.db.read() as conn:
            found = (await conn.execute(q)).all()
        settled = []
        for row in found:
            try:
                settled.append(
                    await self.report(
                        row.job_id,
                        device_id,
                        Report(S.SUCCEEDED, execution_number=row.execution_number, progress=100),
                    )
                )
            except (VersionConflict, InvalidStateTransition):
                continue  # it changed meanwhile; that change stands
        return settled

    async def mark_notified(self, key: tuple[int, int, int]) -> Execution:
        """The device was handed this execution on request (pull): QUEUED -> NOTIFIED."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            ex = await _by_key(conn, key)
            if ex.status is S.QUEUED:
                await conn.execute(
                    update(executions)
                    .where(_is(ex), executions.c.status == S.QUEUED.value)
                    .values(
                        status=S.NOTIFIED.value,
                        version=executions.c.version + 1,
                        updated_at=now,
                        released_at=func.coalesce(
                            executions.c.released_at, literal(now, UTCDateTime())
                        ),
                    )
                )
                ex = await _by_key(conn, key)
            return ex

    # -- operator side --------------------------------------------------------------

    async def cancel(
        self,
        job_id: int,
        device_id: int,
        *,
        force: bool = False,
        expected_version: int | None = None,
        status_details: Mapping[str, str] | None = None,
    ) -> Execution:
        if status_details is not None:
            _check_details(status_details)
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            ex = await _latest(conn, job_id, device_id)
            if expected_version is not None and expected_version != ex.version:
                raise VersionConflict(
                    f"expected version {expected_version}, current is {ex.version}",
                    current=ex.state(),
                )
            if ex.status is S.IN_PROGRESS and not force:
                raise InvalidStateTransition(
                    "an IN_PROGRESS execution is canceled only with force", current=ex.state()
                )
            check_transition(ex.status, S.CANCELED, state=ex.state())
            values: dict[str, Any] = {
                "status": S.CANCELED.value,
                "version": ex.version + 1,
                "updated_at": now,
                "finished_at": now,
                "deadline_at": None,
            }
            if status_details is not None:
                values["status_details"] = dict(status_details)
            await conn.execute(update(executions).where(_is(ex)).values(**values))
            await rollout.add_outbox(conn, job_id, [ex], "changed", now)
            return await _by_key(conn, ex.key)

    async def cancel_in_job(
        self,
        job_id: int,
        statuses: Sequence[ExecutionStatus],
        *,
        device_ids: Sequence[int] | None = None,
        reason: str | None = None,
    ) -> int:
        """Cancel, in one statement, the job's latest executions in `statuses` (of
        these devices); each gets an outbox row. Returns how many."""
        allowed = [s for s in statuses if can_transition(s, S.CANCELED)]
        if not allowed:
            return 0
        extra = executions.c.device_id.in_(list(device_ids)) if device_ids is not None else None
        async with self.ctx.db.transaction() as conn:
            return await rollout.finish_executions(
                conn,
                job_id,
                from_statuses=allowed,
                to=S.CANCELED,
                now=self.ctx.clock.now(),
                reason=reason,
                extra_where=extra,
            )

    async def rerun(self, job_id: int, device_id: int) -> Execution:
        """Queue a new execution for a device whose latest one in the job ended without
        success; a finished job becomes active again to roll it out."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            ex = await _latest(conn, job_id, device_id)
            if ex.status not in RERUNNABLE:
                raise InvalidStateTransition(
                    f"an execution that is {ex.status} cannot be run again", current=ex.state()
                )
            job = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).one()
            if JobStatus(job.status) is JobStatus.CANCELED:
                raise InvalidStateTransition("the job is canceled", current=ex.state())
            await conn.execute(
                update(executions).where(_is(ex)).values(superseded=True, retry_pending=False)
            )
            await conn.execute(
                insert(executions).values(
                    job_id=job_id,
                    device_id=device_id,
                    execution_number=ex.execution_number + 1,
                    status=S.QUEUED.value,
                    queued_at=now,
                    updated_at=now,
                    retry_attempt=ex.retry_attempt,
                )
            )
            if JobStatus(job.status) is JobStatus.COMPLETED:
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(status=JobStatus.IN_PROGRESS.value, completed_at=None, updated_at=now)
                )
            return await _by_key(conn, (job_id, device_id, ex.execution_number + 1))

    async def delete(
        self, job_id: int, device_id: int, execution_number: int, *, force: bool = False
    ) -> None:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            ex = await _latest(conn, job_id, device_id, execution_number)
            if ex.status not in TERMINAL and not force:
                raise InvalidStateTransition(
                    "only a terminal execution can be deleted without force", current=ex.state()
                )
            await conn.execute(delete(executions).where(_is(ex)))
            if ex.status not in TERMINAL:
                await rollout.add_outbox(conn, job_id, [ex], "deleted", now)


@dataclass(frozen=True)
class _JobView:
    """What a report needs of its job: the policies and the status."""

    policies: JobPolicies
    status: str


@dataclass
class _Item:
    """One report waiting in a batch, and what became of it."""

    device_id: int
    report: Report
    job_id: int | None = None
    tenant_id: int | None = None
    job_ref: str | None = None
    result: Execution | None = None
    error: BaseException | None = None


def _check_storable(report: Report) -> None:
    """What the decoders already refuse, checked again where it reaches the store:
    text the database cannot hold (NUL) and numbers past its columns."""
    try:
        if report.status_details is not None:
            _check_details(report.status_details)
        if report.reason is not None:
            limits.check_text(report.reason, "reason")
        if report.progress is not None:
            limits.check_int(report.progress, "progress", limits.INT32_MIN, limits.INT32_MAX)
        for name in ("expected_version", "execution_number", "step_timeout_minutes"):
            value = getattr(report, name)
            if value is not None:
                limits.check_int(value, name)
    except limits.Refused as exc:
        raise InvalidRequest(str(exc)) from None


def _check_details(details: Mapping[str, str]) -> None:
    for key, value in details.items():
        if not (_is_text(key) and _is_text(value)):
            raise InvalidRequest("statusDetails must map text to text, without NUL")


def _is_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        limits.check_text(value)
    except limits.Refused:
        return False
    return True


def _apply_report(
    ex: Execution, report: Report, job: _JobView, now: datetime
) -> tuple[Execution, dict[str, Any]]:
    """The execution after `report` and the columns to write, or the domain error
    that refuses it."""
    if report.expected_version is not None and report.expected_version != ex.version:
        raise VersionConflict(
            f"expected version {report.expected_version}, current is {ex.version}",
            current=ex.state(),
        )
    check_transition(ex.status, report.status, state=ex.state())
    values = _report_values(ex, report, job, now)
    fields = {k: v for k, v in values.items() if k != "retry_pending"}  # not in the entity
    fields["status"] = report.status
    return replace(ex, **fields), values


def _report_values(ex: Execution, report: Report, job: _JobView, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": report.status.value,
        "version": ex.version + 1,
        "updated_at": now,
    }
    if report.status_details is not None:
        # Given details replace the old ones (AWS: "if not specified, unchanged").
        values["status_details"] = dict(report.status_details)
    if report.progress is not None:
        values["progress"] = report.progress
    if report.reason is not None:
        values["reason"] = report.reason
    if ex.released_at is None:
        values["released_at"] = now
    if report.status is S.IN_PROGRESS:
        timeout_at = ex.timeout_at
        if ex.status is not S.IN_PROGRESS:
            values["started_at"] = now
            minutes = job.policies.timeout.in_progress_minutes
            timeout_at = now + timedelta(minutes=minutes) if minutes else None
            values["timeout_at"] = timeout_at
        deadline = ex.deadline_at if ex.status is S.IN_PROGRESS else timeout_at
        if report.step_timeout_minutes is not None:
            if not 1 <= report.step_timeout_minutes <= 10080:
                raise InvalidRequest("stepTimeoutInMinutes must be between 1 and 10080")
            step = now + timedelta(minutes=report.step_timeout_minutes)
            deadline = min(step, timeout_at) if timeout_at else step
        values["deadline_at"] = deadline
    elif report.status in TERMINAL:
        values["finished_at"] = now
        values["deadline_at"] = None
        allowed = job.policies.retry.allowed_retries(report.status)
        values["retry_pending"] = (
            ex.retry_attempt < allowed and JobStatus(job.status) is JobStatus.IN_PROGRESS
        )
    return values


async def _lock_for_reports(
    conn: AsyncConnection, batch: Sequence[_Item], *, lock: bool
) -> list[Any]:
    """Every execution (all numbers) of the (job, device) pairs a batch reports on,
    with what the reports need of the job; locked, in key order, when `lock`."""
    by_id = sorted({(i.job_id, i.device_id) for i in batch if i.job_id is not None})
    by_ref = sorted(
        {(i.tenant_id, i.job_ref, i.device_id) for i in batch if i.job_id is None},
        key=lambda t: (t[0] or 0, t[1] or "", t[2]),
    )
    # Each row-value IN comes with an IN per column: SQLite answers a bare
    # `(a, b) IN (VALUES …)` by scanning the whole table, and with the per-column
    # lists it searches the key for them instead (PostgreSQL uses the key either way).
    conds = []
    if by_id:
        conds.append(
            and_(
                executions.c.job_id.in_(sorted({j for j, _ in by_id})),
                executions.c.device_id.in_(sorted({d for _, d in by_id})),
                tuple_(executions.c.job_id, executions.c.device_id).in_(by_id),
            )
        )
    if by_ref:
        conds.append(
            and_(
                jobs.c.tenant_id.in_(sorted({t for t, _, _ in by_ref}, key=lambda t: t or 0)),
                jobs.c.ref.in_(sorted({r for _, r, _ in by_ref}, key=lambda r: r or "")),
                executions.c.device_id.in_(sorted({d for _, _, d in by_ref})),
                tuple_(jobs.c.tenant_id, jobs.c.ref, executions.c.device_id).in_(by_ref),
            )
        )
    q = (
        select(
            *_EXEC_COLS,
            executions.c.retry_pending,
            jobs.c.tenant_id.label("job_tenant_id"),
            jobs.c.policies.label("job_policies"),
            jobs.c.status.label("job_status"),
        )
        .join(jobs, jobs.c.id == executions.c.job_id)
        .where(or_(*conds))
        .order_by(executions.c.job_id, executions.c.device_id, executions.c.execution_number)
    )
    if lock:
        q = q.with_for_update(of=executions)
    return list((await conn.execute(q)).all())


async def _write_changes(
    conn: AsyncConnection,
    changes: dict[tuple[int, int, int], dict[str, Any]],
    read_version: dict[tuple[int, int, int], int],
) -> None:
    """One executemany UPDATE per set of changed columns, each row guarded by the
    version it was read at."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, values in sorted(changes.items()):
        cols = tuple(sorted(values))
        params = {f"v_{c}": v for c, v in values.items()}
        params.update(k_job=key[0], k_device=key[1], k_number=key[2], k_version=read_version[key])
        groups.setdefault(cols, []).append(params)
    for cols, rows in groups.items():
        stmt = (
            update(executions)
            .where(
                executions.c.job_id == bindparam("k_job"),
                executions.c.device_id == bindparam("k_device"),
                executions.c.execution_number == bindparam("k_number"),
                executions.c.version == bindparam("k_version"),
            )
            .values({c: bindparam(f"v_{c}", type_=executions.c[c].type) for c in cols})
        )
        await conn.execute(stmt, rows)


async def _name_missing_jobs(conn: AsyncConnection, items: Sequence[_Item]) -> None:
    """A report by reference on a job that does not exist says so (not "no such
    execution"): one query, only when some report found nothing."""
    refs = {(i.tenant_id, i.job_ref) for i in items if i.job_ref is not None}
    if not refs:
        return
    known = {
        (r.tenant_id, r.ref)
        for r in await conn.execute(
            select(jobs.c.tenant_id, jobs.c.ref).where(
                jobs.c.tenant_id.in_(sorted({t or 0 for t, _ in refs})),  # the key (see above)
                jobs.c.ref.in_(sorted({r for _, r in refs})),
                tuple_(jobs.c.tenant_id, jobs.c.ref).in_(sorted(refs, key=str)),
            )
        )
    }
    for i in items:
        if i.job_ref is not None and (i.tenant_id, i.job_ref) not in known:
            i.error = NotFound(f"job {i.job_ref} not found", ref=i.job_ref)


def _by_job(found: Sequence[Execution]) -> dict[int, list[Execution]]:
    out: dict[int, list[Execution]] = {}
    for ex in found:
        out.setdefault(ex.job_id, []).append(ex)
    return out


def _pending_order(ex: Execution) -> tuple[bool, datetime, int]:
    """AWS's "next": IN_PROGRESS first, then by queue time."""
    return (ex.status is not S.IN_PROGRESS, ex.queued_at, ex.job_id)


def _is(ex: Execution) -> Any:
    return and_(
        executions.c.job_id == ex.job_id,
        executions.c.device_id == ex.device_id,
        executions.c.execution_number == ex.execution_number,
    )


async def _by_key(conn: AsyncConnection, key: tuple[int, int, int]) -> Execution:
    job_id, device_id, number = key
    return await _latest(conn, job_id, device_id, number)


async def _latest(
    conn: AsyncConnection, job_id: int, device_id: int, execution_number: int | None = None
) -> Execution:
    cond = and_(executions.c.job_id == job_id, executions.c.device_id == device_id)
    if execution_number is not None:
        if not limits.INT32_MIN <= execution_number <= limits.INT32_MAX:
            raise NotFound("no such job execution")  # past what the column holds
        cond = and_(cond, executions.c.execution_number == execution_number)
    row = (
        await conn.execute(
            select(*_EXEC_COLS)
            .join(jobs, jobs.c.id == executions.c.job_id)
            .where(cond)
            .order_by(executions.c.execution_number.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise NotFound("no such job execution")
    return row_to(Execution, row)

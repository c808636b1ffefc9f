"""The set-based SQL of the rollout engine: target sets, release, cancel, timeouts.

Every statement here touches many executions at once; none loops over devices in
Python. Each runs inside the caller's transaction, with the job row locked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    exists,
    func,
    insert,
    literal,
    select,
    union,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.domain import selectors as sel
from otahub.domain.states import ExecutionStatus
from otahub.store.selectors import compile_selector, group_descendants
from otahub.store.tables import (
    device_groups,
    devices,
    executions,
    group_members,
    job_targets,
    jobs,
    outbox,
)
from otahub.store.types import UTCDateTime

S = ExecutionStatus


async def target_set(conn: AsyncConnection, job: Any) -> Select[tuple[int]] | None:
    """SELECT of the device ids a job targets now (unordered, distinct), or None."""
    parts: list[Select[tuple[int]]] = []
    rows = (
        await conn.execute(
            select(job_targets.c.device_id, job_targets.c.group_id).where(
                job_targets.c.job_id == job.id
            )
        )
    ).all()
    device_ids = [r.device_id for r in rows if r.device_id is not None]
    group_ids = [r.group_id for r in rows if r.group_id is not None]
    if device_ids:
        parts.append(select(devices.c.id).where(devices.c.id.in_(device_ids)))
    if group_ids:
        groups = (
            await conn.execute(
                select(device_groups.c.id, device_groups.c.dynamic, device_groups.c.selector).where(
                    device_groups.c.id.in_(group_ids)
                )
            )
        ).all()
        static = [g.id for g in groups if not g.dynamic]
        for g in groups:
            if g.dynamic and g.selector:
                parts.append(_matching(job, sel.from_json(g.selector)))
        for gid in static:
            tree = group_descendants(gid)
            has_children = (
                await conn.execute(select(exists().where(device_groups.c.parent_id == gid)))
            ).scalar()
            if has_children:
                parts.append(
                    select(group_members.c.device_id.label("id")).where(
                        group_members.c.group_id.in_(select(tree.c.id))
                    )
                )
            else:
                parts.append(
                    select(group_members.c.device_id.label("id")).where(
                        group_members.c.group_id == gid
                    )
                )
    if job.selector:
        parts.append(_matching(job, sel.from_json(job.selector)))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    u = union(*parts).subquery()
    return select(u.c.id)


def _matching(job: Any, selector: sel.Selector) -> Select[tuple[int]]:
    q = select(devices.c.id).where(
        devices.c.tenant_id == job.tenant_id, compile_selector(selector, job.tenant_id)
    )
    if job.product_id is not None:
        q = q.where(devices.c.product_id == job.product_id)
    return q


async def count_targets(conn: AsyncConnection, job: Any) -> int:
    ts = await target_set(conn, job)
    if ts is None:
        return 0
    sub = ts.subquery()
    return int((await conn.execute(select(func.count()).select_from(sub))).scalar_one())


async def targets_page(
    conn: AsyncConnection, job: Any, cursor: int, limit: int
) -> Select[tuple[int]] | None:
    """The next `limit` target ids above `cursor`, in id order (None: no targets)."""
    ts = await target_set(conn, job)
    if ts is None:
        return None
    sub = ts.subquery()
    return (
        select(sub.c.id)
        .where(sub.c.id > cursor, *_not_busy(job, sub.c.id))
        .order_by(sub.c.id)
        .limit(limit)
    )


def _not_busy(job: Any, device_id: Any) -> list[Any]:
    """With the rollout's `skip_busy`: no unfinished execution in another job."""
    if not (job.policies or {}).get("rollout", {}).get("skip_busy"):
        return []
    other = executions.alias("other")
    return [
        ~exists().where(
            other.c.device_id == device_id,
            other.c.job_id != job.id,
            other.c.superseded.is_(False),
            other.c.status.in_([s.value for s in (S.CONFIRM, S.QUEUED, S.NOTIFIED, S.IN_PROGRESS)]),
        )
    ]


async def changed_targets(
    conn: AsyncConnection, job: Any, since: datetime, limit: int
) -> Select[tuple[int]] | None:
    """Targets changed since `since` that have no execution of this job yet; for a job
    that waits for later matches, only changes after the job was created count."""
    ts = await target_set(conn, job)
    if ts is None:
        return None
    sub = ts.subquery()
    changed = select(devices.c.id).where(
        devices.c.tenant_id == job.tenant_id, devices.c.changed_at >= since
    )
    if job.only_later_matches:
        changed = changed.where(devices.c.changed_at > job.created_at)
    return (
        select(sub.c.id)
        .where(
            sub.c.id.in_(changed),
            ~exists().where(executions.c.job_id == job.id, executions.c.device_id == sub.c.id),
            *_not_busy(job, sub.c.id),
        )
        .order_by(sub.c.id)
        .limit(limit)
    )


async def remove_departed(conn: AsyncConnection, job: Any, since: datetime, now: datetime) -> int:
    """Unstarted executions of devices that changed since `since` and are no longer
    targets become REMOVED (continuous jobs)."""
    ts = await target_set(conn, job)
    if ts is None:
        return 0
    changed = select(devices.c.id).where(
        devices.c.tenant_id == job.tenant_id, devices.c.changed_at >= since
    )
    return await finish_executions(
        conn,
        job.id,
        from_statuses=(S.CONFIRM, S.QUEUED, S.NOTIFIED),
        to=S.REMOVED,
        now=now,
        extra_where=and_(
            executions.c.device_id.in_(changed),
            executions.c.device_id.not_in(ts.scalar_subquery()),
        ),
    )


async def materialize(
    conn: AsyncConnection,
    job: Any,
    ids_query: Select[tuple[int]],
    *,
    status: S,
    released: bool,
    now: datetime,
    notify: bool,
    fresh_above: int | None = None,
) -> tuple[int, int]:
    """Create the first execution for each device of `ids_query` and, when `notify`,
    the outbox rows that announce them. Returns (executions created, highest device
    id among them, or 0).

    `fresh_above`: the initial pass, where `ids_query` yields only ids above this
    cursor and none of them has an execution of the job yet. The rows then go in
    with one plain INSERT … SELECT and are announced by one outbox row for the id
    range (cursor, highest]: exactly the rows just made. Otherwise devices that
    have an execution are skipped and each new one gets its own outbox row."""
    page = ids_query.subquery()
    fresh = select(
        literal(job.id, Integer).label("job_id"),
        page.c.id.label("device_id"),
        literal(status.value, String).label("status"),
        literal(now, UTCDateTime()).label("queued_at"),
        literal(now if released else None, UTCDateTime()).label("released_at"),
        literal(now, UTCDateTime()).label("updated_at"),
    )
    columns = ["job_id", "device_id", "status", "queued_at", "released_at", "updated_at"]
    if fresh_above is not None:
        result = await conn.execute(insert(executions).from_select(columns, fresh))
        created = int(result.rowcount or 0)
        if not created:
            return 0, 0
        # The job's highest device id now is the highest just inserted (an index lookup).
        high = int(
            (
                await conn.execute(
                    select(func.max(executions.c.device_id)).where(executions.c.job_id == job.id)
                )
            ).scalar_one()
        )
        if notify:
            await conn.execute(
                insert(outbox).values(
                    job_id=job.id,
                    execution_number=1,
                    first_device_id=fresh_above,
                    last_device_id=high,
                    kind="released",
                    created_at=now,
                )
            )
        return created, high
    fresh = fresh.where(
        ~exists().where(executions.c.job_id == job.id, executions.c.device_id == page.c.id)
    )
    rows = (
        await conn.execute(
            insert(executions)
            .from_select(columns, fresh)
            .returning(executions.c.device_id, executions.c.execution_number)
        )
    ).all()
    if notify:
        await add_outbox(conn, job.id, rows, "released", now)
    return len(rows), max((r.device_id for r in rows), default=0)


async def release_queued(
    conn: AsyncConnection, job: Any, limit: int, now: datetime, *, online_only: bool
) -> int:
    """NOTIFY mode: move up to `limit` QUEUED executions to NOTIFIED, with outbox rows."""
    e = executions
    pick = select(e.c.device_id).where(
        e.c.job_id == job.id, e.c.status == S.QUEUED.value, e.c.released_at.is_(None)
    )
    if online_only:
        pick = pick.where(
            exists().where(devices.c.id == e.c.device_id, devices.c.connected.is_(True))
        )
    pick = pick.order_by(e.c.device_id).limit(limit)
    rows = (
        await conn.execute(
            update(e)
            .where(
                e.c.job_id == job.id,
                e.c.status == S.QUEUED.value,
                e.c.released_at.is_(None),
                e.c.device_id.in_(pick.scalar_subquery()),
            )
            .values(
                status=S.NOTIFIED.value, released_at=now, updated_at=now, version=e.c.version + 1
            )
            .returning(e.c.device_id, e.c.execution_number)
        )
    ).all()
    await add_outbox(conn, job.id, rows, "released", now)
    return len(rows)


async def add_outbox(
    conn: AsyncConnection, job_id: int, rows: Iterable[Any], kind: str, now: datetime
) -> None:
    """One outbox row per execution in `rows` (each with device_id, execution_number)."""
    values = [
        {
            "job_id": job_id,
            "device_id": r.device_id,
            "execution_number": r.execution_number,
            "kind": kind,
            "created_at": now,
        }
        for r in rows
    ]
    if values:
        await conn.execute(insert(outbox), values)


async def finish_executions(
    conn: AsyncConnection,
    job_id: int,
    *,
    from_statuses: Iterable[S],
    to: S,
    now: datetime,
    reason: str | None = None,
    extra_where: Any = None,
    retry_allowed: int = 0,
    kind: str = "changed",
) -> int:
    """Move every latest execution of a job in `from_statuses` to the terminal `to`,
    with one outbox row each; mark them for retry when the policy allows."""
    e = executions
    cond = and_(
        e.c.job_id == job_id,
        e.c.status.in_([s.value for s in from_statuses]),
        e.c.superseded.is_(False),
    )
    if extra_where is not None:
        cond = and_(cond, extra_where)
    values: dict[str, Any] = {
        "status": to.value,
        "finished_at": now,
        "updated_at": now,
        "deadline_at": None,
        "version": e.c.version + 1,
    }
    if reason is not None:
        values["reason"] = reason
    if retry_allowed:
        values["retry_pending"] = e.c.retry_attempt < retry_allowed
    rows = (
        await conn.execute(
            update(e).where(cond).values(**values).returning(e.c.device_id, e.c.execution_number)
        )
    ).all()
    await add_outbox(conn, job_id, rows, kind, now)
    return len(rows)


async def create_retries(
    conn: AsyncConnection,
    job: Any,
    now: datetime,
    ready_before: datetime,
    *,
    status: S,
    released: bool,
) -> int:
    """Queue the next execution for every failed execution marked for retry whose
    wait is over; the old one is superseded."""
    e = executions
    due = and_(
        e.c.job_id == job.id,
        e.c.retry_pending.is_(True),
        e.c.superseded.is_(False),
        e.c.finished_at <= ready_before,
    )
    src = select(
        e.c.job_id,
        e.c.device_id,
        e.c.execution_number + 1,
        literal(status.value, String),
        literal(now, UTCDateTime()),
        literal(now if released else None, UTCDateTime()),
        literal(now, UTCDateTime()),
        e.c.retry_attempt + 1,
    ).where(due)
    columns = [
        "job_id",
        "device_id",
        "execution_number",
        "status",
        "queued_at",
        "released_at",
        "updated_at",
        "retry_attempt",
    ]
    new = (
        await conn.execute(
            insert(e).from_select(columns, src).returning(e.c.device_id, e.c.execution_number)
        )
    ).all()
    if not new:
        return 0
    # The new rows have no retry pending, so `due` now matches the old ones only.
    await conn.execute(update(e).where(due).values(superseded=True, retry_pending=False))
    if released:
        await add_outbox(conn, job.id, new, "released", now)
    return len(new)


async def status_counts(conn: AsyncConnection, job_id: int) -> dict[S, int]:
    rows = await conn.execute(
        select(executions.c.status, func.count())
        .where(executions.c.job_id == job_id, executions.c.superseded.is_(False))
        .group_by(executions.c.status)
    )
    return {S(r[0]): int(r[1]) for r in rows}


async def has_retry_pending(conn: AsyncConnection, job_id: int) -> bool:
    q = select(
        exists().where(
            executions.c.job_id == job_id,
            executions.c.retry_pending.is_(True),
            executions.c.superseded.is_(False),
        )
    )
    return bool((await conn.execute(q)).scalar())


async def lock_job(conn: AsyncConnection, job_id: int, *, postgres: bool, skip_locked: bool) -> Any:
    q = select(jobs).where(jobs.c.id == job_id)
    if postgres:
        q = q.with_for_update(skip_locked=skip_locked)
    return (await conn.execute(q)).first()

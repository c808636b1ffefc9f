"""The rollout engine: a loop of idempotent ticks over the database.

A tick walks every active job and, in short transactions that each lock the job
row, (1) starts or ends it by its schedule, times out and retries executions,
applies abort criteria; (2) releases what the rollout policy allows now, chunk by
chunk; (3) completes it when nothing is left. A crash at any instant loses
nothing: each chunk commits the executions, their outbox rows and the job's cursor
together, and the next tick resumes from what was committed.

One job cannot stop the others: a pass that raises on a job is rolled back, the
error is recorded on the job (`engine_error`, shown by the faces) and the job is
left alone for a while that doubles with each failure in a row, up to an hour,
while every other job goes on. Backing off rather than parking the job for good
lets a passing failure (a lock, a dropped connection) heal by itself; the error is
logged once, when it is new, so a lasting one costs a retry an hour and no log
flood. A successful pass, an update or a cancel clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.domain.clock import Clock
from otahub.domain.policies import EndBehavior, JobPolicies
from otahub.domain.states import (
    ACTIVE_JOB,
    TERMINAL,
    UNSTARTED,
    ExecutionStatus,
    FailureType,
    JobStatus,
    ReleaseMode,
    TargetSelection,
    VerifyState,
)
from otahub.store import rollout
from otahub.store.db import Database
from otahub.store.tables import executions, jobs, packages

log = logging.getLogger("otahub.engine")
S = ExecutionStatus

# A device whose change commits later than a scan that started after the change was
# stamped would be missed; scanning this far back covers any transaction's length.
SCAN_MARGIN = timedelta(seconds=60)


CHUNK = 50_000
# SQLite runs on the loop's thread (otahub.store.sqlite_inline): a chunk holds the
# loop while it is written, ~20 ms per 10,000 executions.
SQLITE_CHUNK = 10_000

FAILURE_BACKOFF_FIRST = timedelta(seconds=30)
FAILURE_BACKOFF_MAX = timedelta(hours=1)
ERROR_TEXT_MAX = 500  # AWS's `comment` holds 2028 characters


@dataclass
class EngineSettings:
    chunk: int | None = None  # executions released per transaction; None: by database
    interval: float = 1.0  # seconds between ticks when running as a loop


class Engine:
    def __init__(self, db: Database, clock: Clock, settings: EngineSettings | None = None) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings or EngineSettings()
        self.chunk = self.settings.chunk or (SQLITE_CHUNK if db.is_sqlite else CHUNK)
        self.released_total = 0  # executions this engine released, for metrics
        # State machines the engine resumes after a crash (an OTA update's build), each
        # called once a tick before the jobs, whose new jobs this tick then rolls out.
        self.resumers: list[Callable[[], Awaitable[None]]] = []

    async def tick(self) -> None:
        """One pass over every active job that is not backing off after a failure."""
        for resume in self.resumers:
            try:
                await resume()
            except Exception:
                log.exception("engine resume step failed")
        now = self.clock.now()
        async with self.db.read() as conn:
            due = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.engine_error)
                    .where(
                        jobs.c.status.in_([s.value for s in ACTIVE_JOB]),
                        or_(jobs.c.next_tick_at.is_(None), jobs.c.next_tick_at <= now),
                    )
                    .order_by(jobs.c.id)
                )
            ).all()
        for job_id, error in due:
            try:
                await self.tick_job(job_id)
            except Exception as exc:
                await self._record_failure(job_id, exc)
            else:
                if error is not None:
                    await self._clear_failure(job_id)

    async def tick_job(self, job_id: int) -> None:
        if not await self._maintain(job_id):
            return
        while await self._release_chunk(job_id):
            pass
        await self._maybe_complete(job_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; a failing tick is logged and retried."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("engine tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.interval)

    # -- failures -----------------------------------------------------------------

    async def _record_failure(self, job_id: int, exc: Exception) -> None:
        now = self.clock.now()
        text = failure_text(exc)
        try:
            async with self.db.transaction() as conn:
                row = (
                    await conn.execute(
                        select(jobs.c.ref, jobs.c.engine_error, jobs.c.engine_failures).where(
                            jobs.c.id == job_id
                        )
                    )
                ).first()
                if row is None:
                    return
                failures = row.engine_failures + 1
                values: dict[str, Any] = {
                    "engine_error": text,
                    "engine_failures": failures,
                    "next_tick_at": now + failure_backoff(failures),
                }
                if row.engine_error != text:
                    values["engine_error_at"] = now
                await conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
        except Exception:
            log.warning("could not record the engine's failure on job %s", job_id, exc_info=True)
            return
        if row.engine_error != text:
            log.error(
                "job %s: the engine failed on it and retries later: %s", row.ref, text, exc_info=exc
            )
        else:
            log.debug("job %s: the engine failed on it again: %s", row.ref, text)

    async def _clear_failure(self, job_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(**CLEAR_FAILURE))
        log.info("job %s: the engine's pass succeeds again", job_id)

    # -- steps --------------------------------------------------------------------

    async def _locked(self, conn: AsyncConnection, job_id: int) -> Any:
        return await rollout.lock_job(conn, job_id, postgres=self.db.is_postgres, skip_locked=True)

    async def _maintain(self, job_id: int) -> bool:
        """Schedule, timeouts, retries, abort. True when the job should roll out."""
        async with self.db.transaction() as conn:
            job = await self._locked(conn, job_id)
            if job is None or JobStatus(job.status) not in ACTIVE_JOB:
                return False
            now = self.clock.now()
            pol = JobPolicies.from_json(job.policies)
            sched = pol.schedule
            if JobStatus(job.status) is JobStatus.SCHEDULED:
                if sched.start_at is not None and now < sched.start_at:
                    return False
                await _set_job(
                    conn, job_id, now, status=JobStatus.IN_PROGRESS.value, started_at=now
                )
            if sched.end_at is not None and now >= sched.end_at and not job.rollout_stopped:
                if sched.end_behavior is EndBehavior.STOP_ROLLOUT:
                    await _set_job(conn, job_id, now, rollout_stopped=True)
                else:
                    force = sched.end_behavior is EndBehavior.FORCE_CANCEL
                    await cancel_job_in(
                        conn, job, now, force=force, reason_code="SCHEDULE_END", comment=None
                    )
                    return False
            retry = pol.retry
            await rollout.finish_executions(
                conn,
                job_id,
                from_statuses=(S.IN_PROGRESS,),
                to=S.TIMED_OUT,
                now=now,
                reason="timed out",
                extra_where=executions.c.deadline_at <= now,
                retry_allowed=retry.allowed_retries(S.TIMED_OUT),
            )
            ready = now - retry.wait()
            create_mode = ReleaseMode(job.release_mode) is ReleaseMode.CREATE
            await rollout.create_retries(
                conn, job, now, ready, status=S.QUEUED, released=create_mode
            )
            if pol.abort:
                counts = await rollout.status_counts(conn, job_id)
                for crit in pol.abort:
                    if crit.is_met(counts):
                        log.info(
                            "job %s aborted by its %s criterion", job.ref, crit.failure_type.value
                        )
                        await cancel_job_in(
                            conn,
                            job,
                            now,
                            force=False,
                            reason_code=_abort_reason(crit.failure_type),
                            comment=None,
                        )
                        return False
            return True

    async def _release_chunk(self, job_id: int) -> bool:
        """Release one chunk; True when there may be more to release right now."""
        async with self.db.transaction() as conn:
            job = await self._locked(conn, job_id)
            if job is None or JobStatus(job.status) is not JobStatus.IN_PROGRESS:
                return False
            now = self.clock.now()
            pol = JobPolicies.from_json(job.policies)
            mode = ReleaseMode(job.release_mode)
            allowance = await self._allowance(conn, job, pol, now)
            chunk = self.chunk
            changes: dict[str, Any] = {}
            more = False
            released = 0

            if not job.initial_done and not job.rollout_stopped:
                cap = job.target_cap
                if cap is None and pol.rollout.gray_percent is not None:
                    cap = pol.rollout.target_cap(await rollout.count_targets(conn, job))
                    changes["target_cap"] = cap
                room = chunk if cap is None else min(chunk, cap - job.materialized)
                want = min(room, allowance) if mode is ReleaseMode.CREATE else room
                if want > 0:
                    page = await rollout.targets_page(conn, job, job.release_cursor, want)
                    created = last = 0
                    if page is not None:
                        # The cursor commits with each chunk and later matches are
                        # scanned only once this pass is done, so no device above the
                        # cursor has an execution of this job yet.
                        created, last = await rollout.materialize(
                            conn,
                            job,
                            page,
                            now=now,
                            fresh_above=job.release_cursor,
                            **_fresh(job, mode),
                        )
                    if last:
                        changes["release_cursor"] = last
                    changes["materialized"] = job.materialized + created
                    if mode is ReleaseMode.CREATE:
                        released += created
                    exhausted = created < want
                    capped = cap is not None and job.materialized + created >= cap
                    if exhausted or capped:
                        changes["initial_done"] = True
                        changes["scan_from"] = now
                    more = not (exhausted or capped)
                elif cap is not None and job.materialized >= cap:
                    changes["initial_done"] = True
                    changes["scan_from"] = now
            elif (
                job.initial_done
                and not job.rollout_stopped
                and TargetSelection(job.target_selection) is TargetSelection.CONTINUOUS
            ):
                since = (job.scan_from or now) - SCAN_MARGIN
                want = min(chunk, allowance) if mode is ReleaseMode.CREATE else chunk
                if want > 0:
                    page = await rollout.changed_targets(conn, job, since, want)
                    if page is not None:
                        seen, _ = await rollout.materialize(
                            conn, job, page, now=now, **_fresh(job, mode)
                        )
                        changes["materialized"] = job.materialized + seen
                        if mode is ReleaseMode.CREATE:
                            released += seen
                        if seen < want:
                            await rollout.remove_departed(conn, job, since, now)
                            changes["scan_from"] = now
                        else:
                            more = True

            if mode is ReleaseMode.NOTIFY and job.need_push and not job.rollout_stopped:
                left = allowance - released
                if left > 0:
                    n = await rollout.release_queued(
                        conn, job, min(left, chunk), now, online_only=True
                    )
                    released += n
                    more = more or n == min(left, chunk)

            self.released_total += released
            if released:
                window = _window(job, now)
                used = job.rate_window_count if job.rate_window == window else 0
                changes.update(
                    released=job.released + released,
                    rate_window=window,
                    rate_window_count=used + released,
                )
            if changes:
                await _set_job(conn, job_id, now, **changes)
            return more

    async def _allowance(
        self, conn: AsyncConnection, job: Any, pol: JobPolicies, now: datetime
    ) -> int:
        """How many executions the rollout policy lets this job release right now."""
        if job.rollout_stopped or not pol.schedule.in_window(now):
            return 0
        succeeded = 0
        exp = pol.rollout.exponential
        if exp is not None and exp.every_succeeded:
            counts = await rollout.status_counts(conn, job.id)
            succeeded = counts.get(S.SUCCEEDED, 0)
        window = _window(job, now)
        used = job.rate_window_count if job.rate_window == window else 0
        # The ramp sets each minute's rate from what was notified before it began,
        # so one minute's releases cannot compound within that minute.
        rate = pol.rollout.rate_per_minute(job.released - used, succeeded)
        if rate is None:
            return self.chunk
        return max(0, rate - used)

    async def _maybe_complete(self, job_id: int) -> None:
        async with self.db.transaction() as conn:
            job = await self._locked(conn, job_id)
            if job is None or JobStatus(job.status) is not JobStatus.IN_PROGRESS:
                return
            if TargetSelection(job.target_selection) is TargetSelection.CONTINUOUS:
                return
            if not (job.initial_done or job.rollout_stopped):
                return
            unfinished = await conn.execute(
                select(
                    exists().where(
                        executions.c.job_id == job_id,
                        executions.c.superseded.is_(False),
                        executions.c.status.not_in([s.value for s in TERMINAL]),
                    )
                )
            )
            if unfinished.scalar() or await rollout.has_retry_pending(conn, job_id):
                return
            now = self.clock.now()
            await _set_job(conn, job_id, now, status=JobStatus.COMPLETED.value, completed_at=now)
            if job.is_verify and job.package_id is not None:
                await settle_verification(conn, job, now)


# What a successful pass, an update or a cancel writes over a recorded failure.
CLEAR_FAILURE: dict[str, Any] = {
    "engine_error": None,
    "engine_error_at": None,
    "engine_failures": 0,
    "next_tick_at": None,
}


def failure_text(exc: BaseException) -> str:
    """The exception as one printable line, safe to show through any face: its first
    line only (a database error's later lines hold the statement and parameters)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return "".join(ch if ch.isprintable() else " " for ch in text)[:ERROR_TEXT_MAX]


def failure_backoff(failures: int) -> timedelta:
    """How long a job waits after its `failures`-th failed pass in a row."""
    doubled: timedelta = FAILURE_BACKOFF_FIRST * 2 ** min(failures - 1, 16)
    return min(doubled, FAILURE_BACKOFF_MAX)


def _fresh(job: Any, mode: ReleaseMode) -> dict[str, Any]:
    """How new executions of this job start."""
    if mode is ReleaseMode.CREATE:
        return {"status": S.QUEUED, "released": True, "notify": True}
    status = S.CONFIRM if job.need_confirm else S.QUEUED
    return {"status": status, "released": False, "notify": False}


def _window(job: Any, now: datetime) -> int:
    start = job.started_at or job.created_at
    return int((now - start).total_seconds() // 60)


def _abort_reason(failure_type: FailureType) -> str:
    return f"ABORTED_{failure_type.value}"


async def _set_job(conn: AsyncConnection, job_id: int, now: datetime, **values: Any) -> None:
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(updated_at=now, version=jobs.c.version + 1, **values)
    )


async def cancel_job_in(
    conn: AsyncConnection,
    job: Any,
    now: datetime,
    *,
    force: bool,
    reason_code: str | None,
    comment: str | None,
) -> None:
    """Cancel a (locked) job: it stops, its unstarted executions are canceled, and
    with `force` its in-progress ones too."""
    statuses = set(UNSTARTED)
    if force:
        statuses.add(S.IN_PROGRESS)
    await rollout.finish_executions(
        conn, job.id, from_statuses=statuses, to=S.CANCELED, now=now, reason=reason_code
    )
    await _set_job(
        conn,
        job.id,
        now,
        status=JobStatus.CANCELED.value,
        force_canceled=force,
        reason_code=reason_code,
        comment=comment,
        completed_at=now,
        **CLEAR_FAILURE,
    )
    if job.is_verify and job.package_id is not None:
        await settle_verification(conn, job, now)


async def settle_verification(conn: AsyncConnection, job: Any, now: datetime) -> None:
    """A finished verify job decides its package: verified only when every target
    succeeded."""
    counts = await rollout.status_counts(conn, job.id)
    total = sum(counts.values())
    ok = total > 0 and counts.get(S.SUCCEEDED, 0) == total
    state = VerifyState.VERIFIED if ok else VerifyState.FAILED
    await conn.execute(
        update(packages)
        .where(packages.c.id == job.package_id)
        .values(verify_state=state.value, updated_at=now)
    )

"""The engine is killed mid-release and restarted; two engines share a database.

Each release must happen exactly once, none may be lost, and every released
execution must have exactly one outbox notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys

import pytest
from sqlalchemy import and_, distinct, func, or_, select

from otahub.core.services import JobSpec, Services
from otahub.domain.clock import SystemClock
from otahub.store.db import Database
from otahub.store.tables import executions, outbox
from tests.unit.core.fleet import make_fleet

pytestmark = pytest.mark.slow


def spawn_engine(url: str, chunk: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.core.engine_child", url, str(chunk)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ticking"
    return proc


class EngineForks:
    """Engines forked from one child that imported everything once (engine_child
    serve): a kill costs milliseconds of start-up instead of a second."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.unit.core.engine_child", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )

    def __enter__(self) -> EngineForks:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the engine forker exited"
        return line.strip()

    def start(self, url: str, chunk: int) -> int:
        """Fork an engine; returns its pid once it is ticking."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{url} {chunk}\n")
        self.proc.stdin.flush()
        pid, ticking = None, False
        while pid is None or not ticking:
            line = self._line()
            if line.startswith("pid "):
                pid = int(line.split()[1])
            ticking = ticking or line == "ticking"
        return pid

    def wait(self) -> int:
        """The running engine's exit code, once it has exited."""
        while not (line := self._line()).startswith("exit "):
            pass
        return int(line.split()[1])

    def kill(self, pid: int) -> None:
        """SIGKILL the running engine, unless it has already finished."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        assert self.wait() in (0, -signal.SIGKILL)


async def release_facts(db: Database, job_id: int) -> dict[str, int]:
    """How many executions the job has, on how many devices, and how many outbox
    rows cover each of them (a row names one execution or a released id range)."""
    e, o = executions, outbox
    async with db.read() as conn:
        total, pairs = (
            await conn.execute(
                select(func.count(), func.count(distinct(e.c.device_id))).where(
                    e.c.job_id == job_id
                )
            )
        ).one()
        covers = or_(
            and_(o.c.device_id == e.c.device_id, o.c.execution_number == e.c.execution_number),
            and_(
                o.c.device_id.is_(None),
                o.c.execution_number == e.c.execution_number,
                e.c.device_id > o.c.first_device_id,
                e.c.device_id <= o.c.last_device_id,
            ),
        )
        per_exec = (
            select(e.c.device_id, func.count(o.c.id).label("n"))
            .select_from(e.outerjoin(o, and_(o.c.job_id == e.c.job_id, covers)))
            .where(e.c.job_id == job_id)
            .group_by(e.c.device_id)
            .subquery()
        )
        notified, max_n, min_n = (
            await conn.execute(
                select(func.count(), func.max(per_exec.c.n), func.min(per_exec.c.n)).where(
                    per_exec.c.n > 0
                )
            )
        ).one()
        unnotified = (
            await conn.execute(select(func.count()).select_from(per_exec).where(per_exec.c.n == 0))
        ).scalar_one()
    return {
        "executions": total,
        "devices": pairs,
        "notified": notified,
        "max_per_execution": max_n or 0,
        "min_per_execution": min_n or 0,
        "unnotified": unnotified,
    }


def check_exactly_once(facts: dict[str, int]) -> None:
    assert facts["executions"] == facts["devices"], "a device was released twice"
    assert facts["notified"] == facts["executions"], "an execution has no notification"
    if facts["executions"]:
        assert facts["max_per_execution"] == 1 == facts["min_per_execution"]
    assert facts["unnotified"] == 0


async def test_sigkill_during_release_loses_and_duplicates_nothing(db_url: str) -> None:
    db = Database(db_url)
    if db.is_postgres:
        from tests.conftest import truncate_all

        await truncate_all(db)
    svc = Services.build(db, SystemClock())
    # 10,000 devices in chunks of 250: as many chunk commits a kill can land between
    # as 20,000 in chunks of 500, in half the time.
    n, chunk = 10_000, 250
    tenant, _ = await make_fleet(svc, n)
    group = await svc.registry.get_group(tenant, "fleet")
    rng = random.Random(7)
    interrupted = 0
    with EngineForks() as engines:
        for trial in range(10):
            job = await svc.jobs.create_job(
                tenant, JobSpec(ref=f"crash{trial}", kind="test", group_ids=[group.id])
            )
            for _ in range(2):  # two kills per trial, then a clean run
                pid = engines.start(db_url, chunk)
                await asyncio.sleep(rng.uniform(0.02, 0.3))  # a release takes ~0.3 s
                engines.kill(pid)
                facts = await release_facts(db, job.id)
                check_exactly_once(facts)
                if 0 < facts["executions"] < n:
                    interrupted += 1
            engines.start(db_url, chunk)
            assert engines.wait() == 0
            facts = await release_facts(db, job.id)
            check_exactly_once(facts)
            assert facts["executions"] == n, "releases were lost"
    # The kills must really have landed in the middle of releases.
    assert interrupted >= 5, f"only {interrupted} kills hit a release in progress"
    await db.dispose()


async def test_two_engines_release_a_50k_job_exactly_once(pg_url: str) -> None:
    db = Database(pg_url)
    from tests.conftest import truncate_all

    await truncate_all(db)
    svc = Services.build(db, SystemClock())
    n = 50_000
    tenant, _ = await make_fleet(svc, n)
    group = await svc.registry.get_group(tenant, "fleet")
    jobs = [
        await svc.jobs.create_job(
            tenant, JobSpec(ref=f"pair{i}", kind="test", group_ids=[group.id])
        )
        for i in range(2)
    ]
    procs = [spawn_engine(pg_url, chunk=1000) for _ in range(2)]
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        outputs.append(int(out.strip().split()[-1]))
    for job in jobs:
        facts = await release_facts(db, job.id)
        check_exactly_once(facts)
        assert facts["executions"] == n
    assert sum(outputs) == 2 * n  # together they released each execution once
    await db.dispose()

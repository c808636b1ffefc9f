"""Fan-out benchmark: release a job to a 1,000,000-device group, beside a raw
INSERT … SELECT of the same rows into an equivalent table, on PostgreSQL and SQLite.
Then a job capped at 1000/min, stepped through simulated minutes.

    .venv/bin/python bench/fanout.py [--devices N] [--skip-postgres] [--skip-sqlite]

Prints figures; asserts nothing. PostgreSQL is the one at 127.0.0.1:5432 (a
scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from common import Row, add_json_arg, report
from otahub.core.engine import Engine, EngineSettings
from otahub.core.services import JobSpec, Services
from otahub.domain.clock import FakeClock
from otahub.domain.policies import JobPolicies, RolloutPolicy
from otahub.store.db import Database
from otahub.store.migrate import migrate

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def seed(db: Database, svc: Services, n: int) -> tuple[int, int]:
    """A tenant with n devices, all in one group; set-based, not timed."""
    tenant = await svc.accounts.tenant("000000000001")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.transaction() as conn:
        product = (
            await conn.execute(text("SELECT id FROM products WHERE tenant_id=:t"), {"t": tenant.id})
        ).scalar_one()
        if db.is_postgres:
            series = "SELECT g AS i FROM generate_series(1, :n) g"
        else:
            series = (
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < :n) "
                "SELECT i FROM s"
            )
        await conn.execute(
            text(
                "INSERT INTO devices (tenant_id, product_id, name, uid, attributes, version, "
                "enabled, connected, created_at, changed_at) "
                f"SELECT :t, :p, 'dev' || i, 'uid-' || i, '{{}}', 1, true, false, :now, :now "
                f"FROM ({series}) AS seq"
            ),
            {"t": tenant.id, "p": product, "n": n, "now": now.replace(tzinfo=None)},
        )
    group = await svc.registry.create_group(tenant.id, "fleet")
    await svc.registry.add_group_members_from_query(tenant.id, "fleet")
    if db.is_postgres:
        async with db.transaction() as conn:
            await conn.execute(text("ANALYZE"))
    return tenant.id, group.id


async def raw_baseline(db: Database, group_id: int) -> float:
    """The same rows, one plain INSERT … SELECT into an equivalent table."""
    async with db.transaction() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS raw_exec"))
        await conn.execute(
            text(
                "CREATE TABLE raw_exec (job_id INTEGER NOT NULL, device_id BIGINT NOT NULL, "
                "status VARCHAR(16) NOT NULL, version INTEGER NOT NULL, "
                "PRIMARY KEY (job_id, device_id))"
            )
        )
    t0 = time.perf_counter()
    async with db.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO raw_exec SELECT 1, device_id, 'QUEUED', 1 FROM group_members "
                "WHERE group_id = :g"
            ),
            {"g": group_id},
        )
    return time.perf_counter() - t0


async def same_schema_baseline(db: Database, group_id: int) -> float:
    """The same rows into a copy of the executions table with all its indexes: what
    the schema alone costs, without the engine."""
    async with db.transaction() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS raw_exec_full"))
        if db.is_postgres:
            await conn.execute(text("CREATE TABLE raw_exec_full (LIKE executions INCLUDING ALL)"))
        else:
            ddl = (
                await conn.execute(
                    text(
                        "SELECT sql FROM sqlite_master WHERE tbl_name='executions' "
                        "AND sql IS NOT NULL ORDER BY type DESC"
                    )
                )
            ).scalars()
            for stmt in ddl:
                stmt = stmt.replace("executions", "raw_exec_full")
                await conn.execute(text(stmt.replace("ix_raw_exec_full", "ix_copy")))
    t0 = time.perf_counter()
    async with db.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO raw_exec_full (job_id, device_id, status, queued_at, released_at, "
                "updated_at) SELECT 1, device_id, 'QUEUED', :now, :now, :now FROM group_members "
                "WHERE group_id = :g"
            ),
            {
                "g": group_id,
                "now": datetime(2026, 1, 1)
                if db.is_postgres
                else datetime(2026, 1, 1).isoformat(" "),
            },
        )
    return time.perf_counter() - t0


async def otahub_release(
    db: Database, svc: Services, clock: FakeClock, tenant: int, group_id: int, ref: str
) -> tuple[float, int]:
    job = await svc.jobs.create_job(tenant, JobSpec(ref=ref, kind="bench", group_ids=[group_id]))
    engine = Engine(db, clock, EngineSettings())
    t0 = time.perf_counter()
    await engine.tick_job(job.id)
    elapsed = time.perf_counter() - t0
    return elapsed, engine.released_total


async def rate_capped(
    db: Database, svc: Services, clock: FakeClock, tenant: int, group_id: int, minutes: int = 5
) -> list[int]:
    pol = JobPolicies(RolloutPolicy(max_per_minute=1000))
    job = await svc.jobs.create_job(
        tenant, JobSpec(ref="capped", kind="bench", group_ids=[group_id], policies=pol)
    )
    engine = Engine(db, clock, EngineSettings())
    per_minute = []
    for _ in range(minutes):
        before = engine.released_total
        for _ in range(6):  # a tick every 10 simulated seconds
            await engine.tick_job(job.id)
            clock.advance(10)
        per_minute.append(engine.released_total - before)
    return per_minute


async def run_on(name: str, url: str, n: int) -> dict[str, object]:
    db = Database(url)
    await migrate(db)
    clock = FakeClock()
    svc = Services.build(db, clock)
    t0 = time.perf_counter()
    tenant, group = await seed(db, svc, n)
    seeded = time.perf_counter() - t0
    raw = await raw_baseline(db, group)
    same = await same_schema_baseline(db, group)
    ours, released = await otahub_release(db, svc, clock, tenant, group, "fanout")
    capped = await rate_capped(db, svc, clock, tenant, group)
    await db.dispose()
    return {
        "db": name,
        "devices": n,
        "seed_s": seeded,
        "raw_s": raw,
        "same_s": same,
        "otahub_s": ours,
        "released": released,
        "capped": capped,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true")
    add_json_arg(ap)
    args = ap.parse_args()
    results = []
    if not args.skip_postgres:
        import asyncpg

        name = f"otahub_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            results.append(
                await run_on(
                    "PostgreSQL", f"postgresql://postgres@127.0.0.1:5432/{name}", args.devices
                )
            )
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as d:
            results.append(
                await run_on("SQLite", f"sqlite:///{Path(d) / 'bench.db'}", args.devices)
            )

    print()
    print(f"Fan-out of one job to a group of {args.devices:,} devices (no rate cap)")
    print("  raw: INSERT … SELECT into a minimal (job_id, device_id, status, version) table")
    print("  same schema: INSERT … SELECT into a copy of the executions table and its indexes")
    print(
        f"{'database':<12}{'raw':>9}{'same schema':>13}{'otahub':>9}{'÷ raw':>8}"
        f"{'÷ same':>8}{'released':>11}"
    )
    for r in results:
        ours, raw, same = (float(r[k]) for k in ("otahub_s", "raw_s", "same_s"))  # type: ignore[arg-type]
        print(
            f"{r['db']:<12}{raw:>8.2f}s{same:>12.2f}s{ours:>8.2f}s{ours / raw:>7.2f}x"
            f"{ours / same:>7.2f}x{r['released']:>11,}"
        )
    print()
    print("Job capped at 1000/min: executions released per simulated minute")
    for r in results:
        print(f"{r['db']:<12}{r['capped']}")
    rows = []
    for r in results:
        ours, raw, same = (float(r[k]) for k in ("otahub_s", "raw_s", "same_s"))  # type: ignore[arg-type]
        n = f"{args.devices:,}"
        rows += [
            Row("fanout", f"release to {n} devices ({r['db']})", ours, "s", baseline=raw,
                baseline_name="raw INSERT … SELECT", higher_is_better=False,
                note=f"{r['released']:,} released; same-schema copy {same:.2f} s"),
            Row("fanout", f"capped 1000/min, most per minute ({r['db']})",
                float(max(r["capped"])), "execs/min", max_value=1000,  # type: ignore[call-overload]
                note=f"per simulated minute: {r['capped']}"),
        ]  # fmt: skip
    report(rows, args.json)


if __name__ == "__main__":
    asyncio.run(main())

"""Check-in benchmark: iot-jobs-data GetPendingJobExecutions for random devices of a
100,000-device fleet, against `otahub serve` on PostgreSQL, beside a minimal ASGI
endpoint doing one indexed SELECT on the same server stack (granian, embedded, one
process, uvloop) and the same database, in the same run.

    python bench/checkin.py [--devices 100000] [--duration 10] [--connections 32]
                            [--profile] [--json PATH]

Every device has one released job, so each check-in answers one queued job. wrk
replays SigV4-signed requests from a Lua script that cycles through pre-signed
(path, Authorization, X-Amz-Date) triples; they stay valid within the server's
±5 minute skew, so a run must start within 5 minutes of signing. --profile runs
otahub under cProfile for a second pass and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH_ACCOUNT,
    BENCH_KEY,
    BENCH_SECRET,
    Row,
    add_json_arg,
    child_env,
    cpu_seconds,
    ensure_tools,
    free_port,
    otahub_serve,
    report,
    run_wrk,
    running,
    scratch_database,
    wait_outbox_drained,
)

LUA = """
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local reqs = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    local path, auth, date = line:match("([^\\t]+)\\t([^\\t]+)\\t([^\\t]+)")
    reqs[#reqs + 1] = wrk.format("GET", path,
      {["Authorization"] = auth, ["X-Amz-Date"] = date})
  end
  i = (tid * 7919) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
"""


async def seed(url: str, n: int) -> None:
    """n devices through the core's bulk registration, all in one group, and one job
    released to them by the engine (set-based SQL, not n API calls)."""
    from otahub.core.engine import Engine
    from otahub.core.services import JobSpec, Services
    from otahub.domain.clock import SystemClock
    from otahub.store.db import Database
    from otahub.store.migrate import migrate

    db = Database(url)
    await migrate(db)
    svc = Services.build(db, SystemClock())
    await svc.accounts.ensure_access_key(BENCH_KEY, BENCH_SECRET, BENCH_ACCOUNT)
    tenant = await svc.accounts.tenant(BENCH_ACCOUNT)
    for start in range(0, n, 20_000):
        names = [f"thing-{i}" for i in range(start, min(n, start + 20_000))]
        await svc.registry.create_devices_bulk(tenant.id, names)
    group = await svc.registry.create_group(tenant.id, "fleet")
    await svc.registry.add_group_members_from_query(tenant.id, "fleet")
    await svc.jobs.create_job(
        tenant.id,
        JobSpec(ref="checkin", kind="job", group_ids=[group.id], document='{"op":"update"}'),
    )
    await Engine(db, svc.ctx.clock).tick()
    if db.is_postgres:
        async with db.transaction() as conn:
            from sqlalchemy import text

            await conn.execute(text("ANALYZE"))
    await db.dispose()


def sign_requests(port: int, n_devices: int, count: int, path: Path) -> None:
    """`count` signed GetPendingJobExecutions requests for random devices, one per
    line: path, Authorization, X-Amz-Date, as botocore signs them."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = SigV4Auth(Credentials(BENCH_KEY, BENCH_SECRET), "iot-jobs-data", "us-east-1")
    lines = []
    for _ in range(count):
        p = f"/things/thing-{random.randrange(n_devices)}/jobs"
        req = AWSRequest(method="GET", url=f"http://127.0.0.1:{port}{p}")
        auth.add_auth(req)
        lines.append(f"{p}\t{req.headers['Authorization']}\t{req.headers['X-Amz-Date']}")
    path.write_text("\n".join(lines) + "\n")


def check_one(port: int, signed: Path, *, otahub: bool) -> None:
    import httpx

    p, authz, date = signed.read_text().splitlines()[0].split("\t")
    r = httpx.get(
        f"http://127.0.0.1:{port}{p}", headers={"Authorization": authz, "X-Amz-Date": date}
    )
    if r.status_code != 200:
        sys.exit(f"check-in answered {r.status_code}: {r.text}")
    body = r.json()
    if otahub and len(body.get("queuedJobs", [])) != 1:
        sys.exit(f"expected one queued job, got {body}")


# The baseline server: run as `checkin.py --serve-baseline PORT DATABASE_URL`.


async def serve_baseline(port: int, url: str) -> None:
    import signal

    import asyncpg
    from granian.constants import Interfaces
    from granian.server.embed import Server

    pool = await asyncpg.create_pool(url.replace("+asyncpg", ""), min_size=4, max_size=10)
    product = await pool.fetchval("SELECT id FROM products ORDER BY id LIMIT 1")
    query = "SELECT id, name, version, connected FROM devices WHERE product_id = $1 AND name = $2"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        name = scope["path"].split("/")[2]
        async with pool.acquire() as conn:
            row = await conn.fetchrow(query, product, name)
        body = json.dumps({"queuedJobs": [dict(row)] if row else []}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if row else 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    server = Server(
        app,  # type: ignore[arg-type]
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGINL,
        log_enabled=False,
        backlog=2048,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()
    await pool.close()


def profile_summary(prof: Path, top: int = 25) -> str:
    import io

    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--signed", type=int, default=50_000, help="distinct signed requests")
    ap.add_argument("--profile", action="store_true", help="a cProfile pass of otahub too")
    ap.add_argument("--serve-baseline", nargs=2, metavar=("PORT", "URL"), help=argparse.SUPPRESS)
    add_json_arg(ap)
    args = ap.parse_args()
    if args.serve_baseline:
        import uvloop

        uvloop.install()
        asyncio.run(serve_baseline(int(args.serve_baseline[0]), args.serve_baseline[1]))
        return
    wrk = ensure_tools("wrk")["wrk"]
    with scratch_database("otahub_checkin") as url, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        asyncio.run(seed(url, args.devices))
        print(f"seeded {args.devices:,} devices with one released job in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
        script = tmp / "checkin.lua"
        script.write_text(LUA)
        results: dict[str, dict[str, float]] = {}

        def load(port: int, pid: int, name: str, *, otahub: bool) -> dict[str, float]:
            signed = tmp / f"{name}.tsv"
            sign_requests(port, args.devices, args.signed, signed)
            check_one(port, signed, otahub=otahub)
            run_wrk(wrk, f"http://127.0.0.1:{port}", connections=args.connections, duration=2,
                    script=script, script_args=(str(signed),))  # fmt: skip
            print(f"wrk against {name} ...", flush=True)
            cpu = cpu_seconds(pid)
            result = run_wrk(
                wrk, f"http://127.0.0.1:{port}", connections=args.connections,
                duration=args.duration, script=script, script_args=(str(signed),), latency=True,
            )  # fmt: skip
            # The server's own CPU time per request: what wall-clock rates on a busy
            # machine blur.
            result["cpu_us"] = (cpu_seconds(pid) - cpu) / max(result["requests"], 1) * 1e6
            return result

        (tmp / "data").mkdir()
        with otahub_serve(tmp / "data", database_url=url) as server:
            waited = wait_outbox_drained(url)
            print(f"the release's notifications went out in {waited:.1f} s", flush=True)
            results["otahub"] = load(server.port, server.proc.pid, "otahub", otahub=True)
        port = free_port()
        cmd = [sys.executable, __file__, "--serve-baseline", str(port), url]
        with running(cmd, port, env=child_env()) as proc:
            results["baseline"] = load(port, proc.pid, "baseline", otahub=False)
        profile = None
        if args.profile:
            prof = tmp / "otahub.prof"
            (tmp / "prof").mkdir()
            prefix = [sys.executable, "-m", "cProfile", "-o", str(prof)]
            with otahub_serve(tmp / "prof", database_url=url, prefix=prefix) as server:
                wait_outbox_drained(url)
                results["profiled"] = load(
                    server.port, server.proc.pid, "otahub under cProfile", otahub=True
                )
            profile = profile_summary(prof)

    o, b = results["otahub"], results["baseline"]
    for name, r in results.items():
        print(f"{name:<10} {r['rps']:>9,.0f} req/s  p50 {r.get('p50', 0):.2f} ms  "
              f"p99 {r.get('p99', 0):.2f} ms  server CPU {r['cpu_us']:.0f} µs/request  "
              f"non-2xx {r['non2xx']:.0f}  "
              f"errors {r['errors']:.0f}")  # fmt: skip
    if profile:
        print(profile)
    bad = o["non2xx"] + o["errors"] + b["non2xx"] + b["errors"]
    note = f"wrk -c{args.connections} -d{args.duration}s, {args.devices:,} devices"
    if bad:
        note += f"; {bad:.0f} non-2xx or socket errors"
    report(
        [
            Row(
                "checkin", "GetPendingJobExecutions (PG)", o["rps"], "req/s",
                baseline=b["rps"], baseline_name="raw ASGI + 1 SELECT",
                min_ratio=0.5, min_value=3333, note=note,
            ),
            Row(
                "checkin", "server CPU per check-in (PG)", o["cpu_us"], "µs",
                baseline=b["cpu_us"], baseline_name="raw ASGI + 1 SELECT",
                higher_is_better=False, note="process CPU time / requests, same wrk run",
            ),
            Row(
                "checkin", "check-in p99 latency (PG)", o.get("p99", 0), "ms",
                baseline=b.get("p99"), baseline_name="raw ASGI + 1 SELECT",
                higher_is_better=False, note=f"{args.connections} connections at full load",
            ),
        ],
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()

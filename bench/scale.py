"""Registry scale benchmark: `otahub serve` on PostgreSQL over a 10,000-device and
a 1,000,000-device registry (each device with one released job): the server's RSS
and check-in (GetPendingJobExecutions) latency p50/p99 at a fixed moderate load,
the small registry as the baseline of the large one, in the same run.

    python bench/scale.py [--sizes 10000,1000000] [--connections 2] [--duration 10]
                          [--json PATH]

Each size gets a fresh database, seeded as bench/checkin.py does (the core's bulk
registration, a group, a job released by the engine). The release's outbox rows
are stamped sent before the server starts: this measures a registry at rest, not
a million notifications (bench/notify.py measures those). Needs wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg

from checkin import LUA, check_one, seed, sign_requests
from common import (
    MiB,
    Row,
    add_json_arg,
    ensure_tools,
    otahub_serve,
    report,
    run_wrk,
    scratch_database,
    tree_rss,
)


async def mark_outbox_sent(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL")
    finally:
        await conn.close()


def measure(wrk: str, n: int, args: argparse.Namespace) -> dict[str, float]:
    with scratch_database("otahub_scale") as url, tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        asyncio.run(seed(url, n))
        asyncio.run(mark_outbox_sent(url))
        print(f"{n:,} devices seeded in {time.perf_counter() - t0:.1f} s", flush=True)
        script = tmp / "checkin.lua"
        script.write_text(LUA)
        (tmp / "data").mkdir()
        with otahub_serve(tmp / "data", database_url=url) as server:
            idle = tree_rss(server.proc.pid)
            signed = tmp / "signed.tsv"
            sign_requests(server.port, n, args.signed, signed)
            check_one(server.port, signed, otahub=True)
            run_wrk(wrk, server.url, connections=args.connections, duration=2,
                    script=script, script_args=(str(signed),))  # fmt: skip
            r = run_wrk(
                wrk, server.url, connections=args.connections, duration=args.duration,
                script=script, script_args=(str(signed),), latency=True,
            )  # fmt: skip
            r["rss_idle"] = idle
            r["rss"] = tree_rss(server.proc.pid)
    print(f"{n:,} devices: RSS idle {r['rss_idle'] / MiB:.0f} MiB, after load "
          f"{r['rss'] / MiB:.0f} MiB; {r['rps']:,.0f} req/s, p50 {r.get('p50', 0):.2f} ms, "
          f"p99 {r.get('p99', 0):.2f} ms, non-2xx {r['non2xx']:.0f}", flush=True)  # fmt: skip
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,1000000", help="small,large")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--signed", type=int, default=20_000)
    add_json_arg(ap)
    args = ap.parse_args()
    small, large = (int(x) for x in args.sizes.split(","))
    wrk = ensure_tools("wrk")["wrk"]
    s = measure(wrk, small, args)
    g = measure(wrk, large, args)
    base = f"{small:,} devices"
    load = f"wrk -c{args.connections} -d{args.duration}s"
    report(
        [
            Row("scale", f"server RSS, {large:,} devices", g["rss"] / MiB, "MiB",
                baseline=s["rss"] / MiB, baseline_name=base, higher_is_better=False,
                note=f"after {load}; idle {g['rss_idle'] / MiB:.0f} MiB"),
            Row("scale", f"check-in p50, {large:,} devices", g.get("p50", 0), "ms",
                baseline=s.get("p50"), baseline_name=base, higher_is_better=False,
                note=f"{load}, {g['rps']:,.0f} req/s (small: {s['rps']:,.0f})"),
            Row("scale", f"check-in p99, {large:,} devices", g.get("p99", 0), "ms",
                baseline=s.get("p99"), baseline_name=base, higher_is_better=False,
                note=load),
        ],
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()

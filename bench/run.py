"""Run every benchmark and print one table: figure, baseline measured in the same
run, ratio, target, pass or miss. Also writes it to docs/benchmarks.md with the
machine it ran on.

    python bench/run.py [--full] [--only checkin,streams] [--output docs/benchmarks.md]
                        [--note TEXT]

Each benchmark runs as its own process (`bench/<name>.py … --json FILE`), one after
another, so none shares the machine with another. Default sizes finish in about
twelve minutes on two cores; --full uses the sizes the targets are stated for
(the fan-out at 1,000,000 devices, longer download, check-in and control runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from common import HEADER, ROOT, Row, child_env, markdown, row_cells, rows_from_json, table

# name -> (arguments at the default size, arguments at the full size)
BENCHES: dict[str, tuple[list[list[str]], list[list[str]]]] = {
    "fanout": ([["--devices", "200000"]], [["--devices", "1000000"]]),
    "download": ([["--duration", "5"]], [["--duration", "10"]]),
    "notify": ([[], ["--embedded"]], [[], ["--embedded"]]),
    "checkin": ([["--duration", "10"]], [["--duration", "30"]]),
    "streams": ([[]], [[]]),
    "control": ([["--calls", "1000"]], [["--calls", "3000"]]),
    "scale": ([["--sizes", "10000,1000000"]], [["--sizes", "10000,1000000"]]),
    "e2e": ([["--devices", "10000"]], [["--devices", "10000"]]),
}


def machine() -> list[tuple[str, str]]:
    os_name = platform.platform()
    with_release = Path("/etc/os-release")
    if with_release.exists():
        for line in with_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    cpu = platform.processor() or platform.machine()
    model = Path("/proc/cpuinfo")
    if model.exists():
        for line in model.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("cores", f"{os.cpu_count()} ({cpu})"),
        ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("OS", os_name),
        ("Python", platform.python_version()),
        ("commit", commit or "?"),
    ]


def run_one(name: str, args: list[str], tmp: Path, timeout: float) -> tuple[list[Row], str]:
    out = tmp / f"{name}-{len(list(tmp.iterdir()))}.json"
    cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args, "--json", str(out)]
    print(f"\n=== {' '.join(['bench/' + name + '.py', *args])}", flush=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=child_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    took = time.monotonic() - t0
    if proc.returncode != 0:
        return [], f"exited with {proc.returncode} after {took:.0f} s"
    if not out.exists():
        return [], "wrote no results"
    rows = rows_from_json(out)
    return rows, "" if rows else "skipped (see its output)"


DOC_HEAD = (Path(__file__).parent / "page_head.md").read_text()  # the page's fixed part


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the sizes the targets are stated for")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--note", default="", help="a line on the conditions, for the page")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = set(names) - set(BENCHES)
    if unknown:
        sys.exit(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    info = machine()
    load_before = os.getloadavg()
    rows: list[Row] = []
    problems: list[tuple[str, str]] = []
    commands: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            for bench_args in BENCHES[name][1 if args.full else 0]:
                commands.append(" ".join([f"bench/{name}.py", *bench_args]))
                got, problem = run_one(name, bench_args, Path(d), args.timeout)
                rows += got
                if problem:
                    problems.append((" ".join([name, *bench_args]), problem))
    load_after = os.getloadavg()
    info.append(("load average", f"{load_before[0]:.1f} before, {load_after[0]:.1f} after"))

    print("\n" + table(HEADER, [row_cells(r) for r in rows]))
    for what, problem in problems:
        print(f"  {what}: {problem}")

    lines = [DOC_HEAD, "## Last run", ""]
    lines += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in info)]
    lines += ["", f"Sizes: {'full' if args.full else 'default'} (`make bench"
              f"{'-full' if args.full else ''}`)."]  # fmt: skip
    if args.note:
        lines += ["", f"**Conditions:** {args.note}"]
    lines += ["", markdown(rows), ""]
    if problems:
        lines += ["Not measured:", ""] + [f"- `{w}`: {p}" for w, p in problems] + [""]
    lines += ["Commands:", ""] + [f"- `python {c}`" for c in commands] + [""]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = (Path(__file__).parent / "findings.md").read_text()  # written by hand
    out.write_text("\n".join(lines) + ("\n" + kept if kept else ""))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()

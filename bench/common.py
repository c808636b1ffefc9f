"""What the benchmarks share: result rows (printed, or written as JSON for
bench/run.py), tools from Debian, ports, a scratch PostgreSQL database, a private
Mosquitto, `otahub serve` as a child process, and wrk."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MiB = 1024 * 1024


@dataclass
class Row:
    """One figure beside the baseline measured in the same run.

    `ratio` is always otahub's speed relative to the baseline (higher is better):
    value/baseline for rates, baseline/value for durations.
    """

    bench: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = True
    min_ratio: float | None = None
    min_value: float | None = None
    max_value: float | None = None
    note: str = ""
    ratio: float | None = field(default=None, init=False)
    passed: bool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.baseline and self.value:
            self.ratio = (
                self.value / self.baseline if self.higher_is_better else self.baseline / self.value
            )
        checks: list[bool] = []
        if self.min_ratio is not None:
            checks.append(self.ratio is not None and self.ratio >= self.min_ratio)
        if self.min_value is not None:
            checks.append(self.value >= self.min_value)
        if self.max_value is not None:
            checks.append(0 < self.value <= self.max_value)
        self.passed = all(checks) if checks else None

    @property
    def target(self) -> str:
        parts = []
        if self.min_ratio is not None:
            parts.append(f"≥ {self.min_ratio:g}x")
        if self.min_value is not None:
            parts.append(f"≥ {fmt_num(self.min_value)} {self.unit}")
        if self.max_value is not None:
            parts.append(f"≤ {fmt_num(self.max_value)} {self.unit}")
        return " and ".join(parts) or "—"


def fmt_num(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def row_cells(r: Row) -> list[str]:
    base = f"{fmt_num(r.baseline)} ({r.baseline_name})" if r.baseline is not None else "—"
    verdict = {True: "pass", False: "MISS", None: "—"}[r.passed]
    return [
        r.bench,
        r.figure,
        f"{fmt_num(r.value)} {r.unit}",
        base,
        f"{r.ratio:.2f}x" if r.ratio is not None else "—",
        r.target,
        verdict,
    ]


HEADER = ["bench", "figure", "otahub", "baseline (same run)", "ratio", "target", "result"]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if 1 < i < 5 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def markdown(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = row_cells(r)
        if r.note:
            cells[1] += f" ({r.note})"
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the result rows as JSON here")


def report(rows: list[Row], json_path: str | None) -> None:
    """Print the rows; write them as JSON for bench/run.py when asked."""
    print()
    print(table(HEADER, [row_cells(r) for r in rows]))
    for r in rows:
        if r.note:
            print(f"  {r.bench} / {r.figure}: {r.note}")
    if json_path:
        Path(json_path).write_text(
            json.dumps([{**asdict(r), "target": r.target} for r in rows], indent=1)
        )


def rows_from_json(path: Path) -> list[Row]:
    rows = []
    for d in json.loads(path.read_text()):
        for k in ("ratio", "passed", "target"):
            d.pop(k, None)
        rows.append(Row(**d))
    return rows


# Tools and processes


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )


def ensure_tools(*packages: str) -> dict[str, str]:
    """Paths of the tools, installing their Debian packages when any is missing."""
    found = {p: find_tool(p) for p in packages}
    missing = [p for p, path in found.items() if path is None]
    if missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit(f"{' '.join(missing)} needed: run `apt-get install -y {' '.join(missing)}`")
        print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", *missing],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        found = {p: find_tool(p) for p in packages}
    if any(v is None for v in found.values()):
        sys.exit(f"apt-get ran but one of {packages} is still missing")
    return {k: v for k, v in found.items() if v is not None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the process for port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port} after {timeout}s")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this checkout's source first."""
    paths = [str(SRC), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}


def stop(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running(
    cmd: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if log else None)
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def tree_rss(pid: int) -> int:
    """RSS of a process and its children, in bytes."""
    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


@contextlib.contextmanager
def scratch_database(prefix: str = "otahub_bench") -> Iterator[str]:
    """A fresh database on the PostgreSQL at 127.0.0.1:5432, dropped afterwards."""
    import asyncio

    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def private_mosquitto() -> Iterator[str]:
    """A Mosquitto of our own on a free port, with the queue limits raised (the
    packaged default of 1000 queued messages drops most of a QoS 1 burst to a
    Python subscriber, specs/infra.md) and TCP_NODELAY on its sockets."""
    mosquitto = ensure_tools("mosquitto")["mosquitto"]
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            "max_queued_messages 1000000\nmax_inflight_messages 0\npersistence false\n"
            # Nagle off: the last packets of a stream window would otherwise wait
            # up to 40 ms for the device's delayed ACK, window after window
            "set_tcp_nodelay true\n"
        )
        proc = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, proc)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            stop(proc)


@dataclass
class Otahub:
    proc: subprocess.Popen[bytes]
    port: int
    mqtt_port: int
    data_dir: Path
    access_key: str
    secret: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


BENCH_ACCOUNT = "123456789012"
BENCH_KEY = "AKOHBENCH0000000001"
BENCH_SECRET = "bench-secret-key-0123456789abcdefghijklmn"


@contextlib.contextmanager
def otahub_serve(
    data_dir: Path,
    *,
    database_url: str | None = None,
    broker_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 60,
) -> Iterator[Otahub]:
    """`otahub serve` from this checkout as a child process, with known root
    credentials (BENCH_KEY / BENCH_SECRET), ready when /healthz answers."""
    import httpx

    port, mqtt_port, mqtts_port = free_port(), free_port(), free_port()
    cmd = [
        *(prefix or [sys.executable]),
        "-m", "otahub.cli.main", "serve",
        "--port", str(port), "--mqtt-port", str(mqtt_port), "--mqtts-port", str(mqtts_port),
        "--data-dir", str(data_dir), "--log-level", "warning",
    ]  # fmt: skip
    if database_url:
        cmd += ["--database-url", database_url]
    if broker_url:
        cmd += ["--broker-url", broker_url]
    env = child_env(
        OTAHUB_ACCESS_KEY_ID=BENCH_KEY, OTAHUB_SECRET_ACCESS_KEY=BENCH_SECRET, **(extra_env or {})
    )
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.flush()
                sys.exit(
                    f"otahub exited with {proc.returncode}:\n"
                    + (data_dir / "server.log").read_text()[-3000:]
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("otahub did not become healthy in time")
            time.sleep(0.1)
        yield Otahub(proc, port, mqtt_port, data_dir, BENCH_KEY, BENCH_SECRET)
    finally:
        stop(proc, timeout=30)
        log.close()


UNITS = {"B": 1, "KB": 1024, "MB": MiB, "GB": 1024 * MiB, "TB": 1024 * 1024 * MiB}


def run_wrk(
    wrk_bin: str,
    url: str,
    *,
    connections: int,
    duration: int,
    threads: int = 2,
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
    headers: tuple[str, ...] = (),
    latency: bool = False,
) -> dict[str, float]:
    """wrk's figures: rps, requests, mib_s, non2xx, errors and, with latency, p50/p99
    in ms."""
    cmd = [wrk_bin, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s"]
    if latency:
        cmd.append("--latency")
    if script:
        cmd += ["-s", str(script)]
    for header in headers:
        cmd += ["-H", header]
    tail = ["--", *script_args] if script_args else []
    out = subprocess.run([*cmd, url, *tail], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    if not rps or not transfer:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    result = {
        "rps": float(rps.group(1)),
        "requests": float(count.group(1)) if count else 0.0,
        "mib_s": float(transfer.group(1)) * UNITS[transfer.group(2).upper()] / MiB,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "errors": 0.0 if not errors else float(sum(map(int, re.findall(r"\d+", errors.group(1))))),
    }
    if latency:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        for pct in ("50", "99"):
            m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            if m:
                result[f"p{pct}"] = float(m.group(1)) * scale[m.group(2)]
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def wait_outbox_drained(database_url: str, timeout: float = 600) -> float:
    """Wait until the server has sent every outbox row (the release's notifications),
    so that a measurement does not share the process with that burst; returns the
    seconds waited."""
    import asyncio

    import asyncpg

    async def go() -> float:
        conn = await asyncpg.connect(database_url)
        t0 = time.monotonic()
        try:
            while await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"):
                if time.monotonic() - t0 > timeout:
                    sys.exit(f"the outbox did not drain in {timeout:.0f} s")
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        return time.monotonic() - t0

    return asyncio.run(go())

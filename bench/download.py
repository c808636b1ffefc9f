"""Download benchmark: otahub's download app under granian beside nginx, serving the
same 100 MB file from the same disk; then 200 concurrent downloads while sampling
the granian processes' RSS.

    .venv/bin/python bench/download.py [--size-mb 100] [--duration 10]

Prints figures; asserts nothing. Needs nginx and wrk (installed with apt-get when
missing and running as root). Ports: otahub 18101, nginx 18102.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlencode

import psutil
from starlette.types import ASGIApp

from common import Row, add_json_arg, child_env, report, wait_for_port
from otahub.blobs.download import make_download_app
from otahub.blobs.fs import FilesystemBlobStore
from otahub.blobs.presign import PresignVerifier
from otahub.domain.clock import SystemClock

OTAHUB_PORT = 18101
NGINX_PORT = 18102
KEY = "fw/firmware.bin"
SECRET = "bench-download-secret-0123456789"
MiB = 1024 * 1024
GRANIAN = Path(sys.executable).parent / "granian"


def build_app() -> ASGIApp:
    """The granian factory: the download app over the benchmark's filesystem store."""
    store = FilesystemBlobStore(os.environ["BENCH_BLOB_ROOT"])
    return make_download_app(store, PresignVerifier(SECRET.encode(), SystemClock()))


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )


def ensure_tools() -> tuple[str, str]:
    nginx, wrk = find_tool("nginx"), find_tool("wrk")
    if nginx and wrk:
        return nginx, wrk
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("nginx and wrk are needed: run `apt-get install -y nginx wrk` as root")
    print("installing nginx and wrk with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "nginx", "wrk"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    nginx, wrk = find_tool("nginx"), find_tool("wrk")
    if not (nginx and wrk):
        sys.exit("apt-get ran but nginx or wrk is still missing")
    return nginx, wrk


async def random_chunks(total: int) -> AsyncIterator[bytes]:
    left = total
    while left:
        piece = os.urandom(min(MiB, left))
        left -= len(piece)
        yield piece


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def running(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[int]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, timeout=15)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


NGINX_CONF = """
worker_processes 2;
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""

UNITS = {"B": 1, "KB": 1024, "MB": MiB, "GB": 1024 * MiB, "TB": 1024 * 1024 * MiB}


def wrk(wrk_bin: str, url: str, connections: int, duration: int, *headers: str) -> dict[str, float]:
    cmd = [wrk_bin, "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "30s"]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    if not rps or not transfer:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "mib_s": float(transfer.group(1)) * UNITS[transfer.group(2).upper()] / MiB,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "errors": 0.0 if not errors else float(sum(map(int, re.findall(r"\d+", errors.group(1))))),
    }


def check_download(url: str, size: int, headers: dict[str, str] | None = None) -> None:
    request = urllib.request.Request(url, method="HEAD", headers=headers or {})
    with urllib.request.urlopen(request) as response:
        length = int(response.headers["content-length"])
    if length != size:
        sys.exit(f"{url} answers {length} bytes, expected {size}")


class RssSampler:
    """Peak RSS of a process tree, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def workers_rss(self) -> int:
        total = 0
        # granian's main process only supervises; the app runs in its workers
        for proc in self.root.children(recursive=True) or [self.root]:
            with suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.workers_rss())
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for row in rows:
        print(fmt_row(row, widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--duration", type=int, default=10)
    add_json_arg(parser)
    args = parser.parse_args()
    nginx_bin, wrk_bin = ensure_tools()
    for port in (OTAHUB_PORT, NGINX_PORT):
        if not port_free(port):
            sys.exit(f"port {port} is in use")
    size = args.size_mb * MiB
    d = args.duration
    with tempfile.TemporaryDirectory(prefix="otahub-bench-", dir="/var/tmp") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "blobs"
        store = FilesystemBlobStore(root)
        t0 = time.perf_counter()
        info = asyncio.run(store.put_stream(KEY, random_chunks(size)))
        put_s = time.perf_counter() - t0
        print(f"stored {size / MiB:.0f} MiB in {put_s:.2f} s ({size / MiB / put_s:.0f} MiB/s, "
              f"sha256+md5+fsync) at {root / KEY}")  # fmt: skip
        query = urlencode(
            PresignVerifier(SECRET.encode(), SystemClock()).sign(
                KEY, device_id="bench", expires_in=3600
            )
        )
        otahub_url = f"http://127.0.0.1:{OTAHUB_PORT}/{KEY}?{query}"
        nginx_url = f"http://127.0.0.1:{NGINX_PORT}/{KEY}"
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=tmp, port=NGINX_PORT, root=root,
                user="user root;" if os.geteuid() == 0 else "",
            )
        )  # fmt: skip
        granian_cmd = [
            str(GRANIAN), "--interface", "asgi", "--workers", "1", "--http", "1",
            "--host", "127.0.0.1", "--port", str(OTAHUB_PORT), "--no-ws",
            "--log-level", "warning", "--working-dir", str(Path(__file__).parent),
            "--factory", "download:build_app",
        ]  # fmt: skip
        env = child_env(BENCH_BLOB_ROOT=str(root))
        nginx_cmd = [nginx_bin, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")]
        small = "Range: bytes=4096-8191"
        streamed = "Range: bytes=1-"
        results: dict[str, dict[str, dict[str, float]]] = {}
        rss_rows: list[list[str]] = []
        rss_json: list[Row] = []
        with running(granian_cmd, OTAHUB_PORT, env) as granian_pid, running(nginx_cmd, NGINX_PORT):
            check_download(otahub_url, info.size)
            check_download(nginx_url, info.size)
            for name, url in (("otahub", otahub_url), ("nginx", nginx_url)):
                print(f"wrk against {name} ...", flush=True)
                results[name] = {
                    "full": wrk(wrk_bin, url, 16, d),
                    "small": wrk(wrk_bin, url, 16, d, small),
                    "streamed": wrk(wrk_bin, url, 16, d, streamed),
                }
            sampler_probe = RssSampler(granian_pid)
            for label, headers in (
                ("full GET (pathsend)", ()),
                ("Range bytes=1- (streamed)", (streamed,)),
            ):
                print(f"200 concurrent downloads, {label} ...", flush=True)
                base = sampler_probe.workers_rss()
                with RssSampler(granian_pid) as sampler:
                    run = wrk(wrk_bin, otahub_url, 200, d, *headers)
                after = sampler_probe.workers_rss()
                rss_json.append(
                    Row("download", f"peak RSS, 200 downloads, {label}", sampler.peak / MiB, "MiB",
                        baseline=base / MiB, baseline_name="RSS before", higher_is_better=False,
                        note=f"{run['mib_s']:.0f} MiB/s; {int(run['non2xx'] + run['errors'])} "
                        "errors")
                )  # fmt: skip
                rss_rows.append([
                    label, f"{run['mib_s']:.0f}", f"{run['rps']:.1f}",
                    f"{int(run['non2xx'] + run['errors'])}",
                    f"{base / MiB:.1f}", f"{sampler.peak / MiB:.1f}",
                    f"{(sampler.peak - base) / MiB:+.1f}", f"{(after - base) / MiB:+.1f}",
                ])  # fmt: skip
        print()
        print(f"wrk -t2 -c16 -d{d}s --timeout 30s, {size / MiB:.0f} MiB file; granian 1 worker "
              "--http 1 vs nginx 2 workers sendfile; both on these cores")  # fmt: skip
        rows = []
        json_rows: list[Row] = []
        for scenario, label, unit in (
            ("full", "100 MB GET", "mib_s"),
            ("small", "4 KiB Range GET", "rps"),
            ("streamed", "Range bytes=1- (otahub streams)", "mib_s"),
        ):
            o, n = results["otahub"][scenario], results["nginx"][scenario]
            suffix = "MiB/s" if unit == "mib_s" else "req/s"
            bad = int(o["non2xx"] + o["errors"] + n["non2xx"] + n["errors"])
            rows.append([
                label.replace("100 MB", f"{size / MiB:.0f} MiB"),
                f"{o[unit]:.0f} {suffix}", f"{n[unit]:.0f} {suffix}",
                f"{o[unit] / n[unit]:.2f}x", str(bad),
            ])  # fmt: skip
            json_rows.append(
                Row("download", label.replace("100 MB", f"{size / MiB:.0f} MiB"), o[unit],
                    suffix, baseline=n[unit], baseline_name="nginx",
                    note=f"wrk -c16 -d{d}s" + (f"; {bad} errors" if bad else ""))
            )  # fmt: skip
        table(["scenario", "otahub", "nginx", "otahub/nginx", "errors"], rows)
        print()
        print(f"wrk -t2 -c200 -d{d}s against otahub; RSS of granian's worker processes")
        table(
            ["200 connections", "MiB/s", "req/s", "errors", "RSS before MiB", "peak MiB",
             "growth MiB", "after MiB"],
            rss_rows,
        )  # fmt: skip
        report(json_rows + rss_json, args.json)


if __name__ == "__main__":
    main()

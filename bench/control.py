"""Control-plane benchmark: boto3 `describe_thing` calls per second from one client
against `otahub serve` (embedded defaults), beside moto's server (`moto_server`)
answering the same call in the same run.

    python bench/control.py [--calls 1000] [--json PATH]

One thread, one boto3 client, calls one after another: what a script or console
driving the API sees. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from common import (
    Row,
    add_json_arg,
    child_env,
    cpu_seconds,
    free_port,
    otahub_serve,
    report,
    running,
)


def client(endpoint: str, key: str, secret: str) -> Any:
    return boto3.client(
        "iot",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def rate(iot: Any, calls: int, server_pid: int | None = None) -> tuple[float, float]:
    """Calls a second, and the server's CPU time per call (µs) when its pid is given."""
    iot.create_thing(thingName="bench-thing", attributePayload={"attributes": {"k": "v"}})
    for _ in range(20):
        iot.describe_thing(thingName="bench-thing")
    cpu = cpu_seconds(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    for _ in range(calls):
        iot.describe_thing(thingName="bench-thing")
    elapsed = time.perf_counter() - t0
    cpu_us = (cpu_seconds(server_pid) - cpu) / calls * 1e6 if server_pid else 0.0
    return calls / elapsed, cpu_us


CANNED = (
    b'{"thingName":"bench-thing","thingId":"0","thingArn":"arn:aws:iot:us-east-1:1:thing/'
    b'bench-thing","attributes":{"k":"v"},"version":1}'
)


class Canned(BaseHTTPRequestHandler):
    """Answers every call at once with a fixed describe_thing body: what one boto3
    client can do against a server that costs nothing."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        self.wfile.write(head % len(CANNED) + CANNED)  # one write: no Nagle stall

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def client_ceiling(calls: int) -> float:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return rate(client(f"http://127.0.0.1:{server.server_port}", "k", "s"), calls)[0]
    finally:
        server.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000)
    add_json_arg(ap)
    args = ap.parse_args()
    moto = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(moto).exists():
        sys.exit("moto_server is missing: install the test extras (pip install -e '.[test]')")
    with tempfile.TemporaryDirectory() as tmp:
        with otahub_serve(Path(tmp)) as server:
            iot = client(server.url, server.access_key, server.secret)
            ours, ours_cpu = rate(iot, args.calls, server.proc.pid)
        port = free_port()
        moto_cmd = [moto, "-H", "127.0.0.1", "-p", str(port)]
        with running(moto_cmd, port, env=child_env(), log=Path(tmp) / "moto.log") as moto_proc:
            moto_iot = client(f"http://127.0.0.1:{port}", "testing", "testing")
            theirs, theirs_cpu = rate(moto_iot, args.calls, moto_proc.pid)
    ceiling = client_ceiling(args.calls)
    print(
        f"otahub {ours:,.0f} calls/s ({ours_cpu:,.0f} µs server CPU a call), moto_server "
        f"{theirs:,.0f} calls/s ({theirs_cpu:,.0f} µs), boto3 against a canned answer "
        f"{ceiling:,.0f} calls/s"
    )
    report(
        [
            Row(
                "control", "boto3 describe_thing, one client", ours, "calls/s",
                baseline=theirs, baseline_name="moto_server", min_ratio=5,
                note=f"{args.calls:,} sequential calls; otahub on SQLite (embedded defaults)",
            ),
            Row(
                "control", "same, against the client's ceiling", ours, "calls/s",
                baseline=ceiling, baseline_name="a canned answer (server costs nothing)",
                note="one boto3 client's own cost bounds any server: 5x moto is above it",
            ),
            Row(
                "control", "server CPU per describe_thing", ours_cpu, "µs",
                baseline=theirs_cpu, baseline_name="moto_server", higher_is_better=False,
                note="server process CPU time / calls, same run",
            ),
        ],
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()

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

from common import Row, add_json_arg, child_env, free_port, otahub_serve, report, running


def client(endpoint: str, key: str, secret: str) -> Any:
    return boto3.client(
        "iot",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def rate(iot: Any, calls: int) -> float:
    iot.create_thing(thingName="bench-thing", attributePayload={"attributes": {"k": "v"}})
    for _ in range(20):
        iot.describe_thing(thingName="bench-thing")
    t0 = time.perf_counter()
    for _ in range(calls):
        iot.describe_thing(thingName="bench-thing")
    return calls / (time.perf_counter() - t0)


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
        return rate(client(f"http://127.0.0.1:{server.server_port}", "k", "s"), calls)
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
            ours = rate(client(server.url, server.access_key, server.secret), args.calls)
        port = free_port()
        moto_cmd = [moto, "-H", "127.0.0.1", "-p", str(port)]
        with running(moto_cmd, port, env=child_env(), log=Path(tmp) / "moto.log"):
            theirs = rate(client(f"http://127.0.0.1:{port}", "testing", "testing"), args.calls)
    ceiling = client_ceiling(args.calls)
    print(
        f"otahub {ours:,.0f} calls/s, moto_server {theirs:,.0f} calls/s, "
        f"boto3 against a canned answer {ceiling:,.0f} calls/s"
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
        ],
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()

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
import time
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
    print(f"otahub {ours:,.0f} calls/s, moto_server {theirs:,.0f} calls/s")
    report(
        [
            Row(
                "control", "boto3 describe_thing, one client", ours, "calls/s",
                baseline=theirs, baseline_name="moto_server", min_ratio=5,
                note=f"{args.calls:,} sequential calls; otahub on SQLite (embedded defaults)",
            )
        ],
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()

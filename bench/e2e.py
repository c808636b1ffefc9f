"""End-to-end benchmark: a fleet of simulated devices (otahub's fleet simulator,
`otahub.agent.fleet`) updates a 1 MB signed firmware through an OTA update with no
rate cap; seconds from the rollout's creation until every device reported
SUCCEEDED. Two setups:

  (a) embedded defaults: `otahub serve` with no options (SQLite, embedded broker);
      devices use the iot-jobs-data HTTP plane and HTTP downloads, since the
      embedded broker admits AWS devices one certificate-authenticated connection
      each and the simulator multiplexes devices over shared connections. A device
      polls until StartNextPendingJobExecution hands it the job (IN_PROGRESS), then
      reports IN_PROGRESS (self-test) and SUCCEEDED;
  (b) PostgreSQL + Mosquitto: `otahub serve --database-url … --broker-url …`;
      devices on the Jobs MQTT topics, 100 per connection, and files over HTTP (the
      job document's presigned URL). Files over the MQTT stream would be 10,000 x 256
      blocks = 2.5 million messages for a 1 MB image: out of reach in a minute on two
      cores, so that path has its own benchmark (bench/streams.py) and this one
      measures the Jobs request path. A device takes the execution notify-next
      carries (as the FreeRTOS OTA agent does) and sends three updates: IN_PROGRESS
      (download), IN_PROGRESS (self-test), SUCCEEDED.

The simulator shares the machine with the server; the note gives the CPU seconds of
both during the rollout (the server's per device updated is the figure to compare
across runs on a busy machine, where wall-clock time is noisy).

    python bench/e2e.py [--devices 10000] [--firmware-kb 1024] [--setup a|b|both]
                        [--poll-interval 5] [--json PATH]

There is no baseline to run beside it; the note also gives the time the simulator
took to register the fleet through the API, and update-time percentiles. Skips, with a message,
when the simulator is not in this checkout yet.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import uvloop

from common import Row, add_json_arg, otahub_serve, private_mosquitto, report, scratch_database

TARGET_S = 60.0


def simulator() -> Any:
    try:
        from otahub.agent import fleet
    except ImportError as exc:
        return str(exc)
    return fleet


@contextmanager
def setup(kind: str, tmp: Path) -> Iterator[tuple[Any, str | None]]:
    """otahub for setup a or b, and the broker URL devices use (None: HTTP)."""
    if kind == "a":
        with otahub_serve(tmp) as server:
            yield server, None
        return
    with (
        scratch_database("otahub_e2e") as url,
        private_mosquitto() as broker,
        otahub_serve(tmp, database_url=url, broker_url=broker) as server,
    ):
        yield server, broker


class ServerCpu:
    """CPU seconds of the server process and of this one (the simulator) from the
    rollout's start to the end."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start: float | None = None
        self.own_start = 0.0
        self.seconds = 0.0
        self.own_seconds = 0.0

    def _now(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def observe(self, snap: Any) -> None:
        if self.start is None and snap.phase == "rolling out":
            self.start = self._now()
            self.own_start = time.process_time()
            print("rolling out", flush=True)

    def finish(self) -> None:
        if self.start is not None:
            self.seconds = self._now() - self.start
            self.own_seconds = time.process_time() - self.own_start


def run(fleet: Any, kind: str, args: argparse.Namespace) -> Row:
    label = {
        "a": "embedded defaults, HTTP",
        "b": "PostgreSQL + Mosquitto, jobs over MQTT, files over HTTP",
    }[kind]
    with tempfile.TemporaryDirectory() as d, setup(kind, Path(d)) as (server, broker):
        config = fleet.FleetConfig(
            devices=args.devices,
            access_key=server.access_key,
            secret_key=server.secret,
            endpoint=server.url,
            transport="mqtt" if broker else "http",
            files="http",
            broker=broker or "mqtt://127.0.0.1:1",
            poll_interval=args.poll_interval,
            firmware_size=args.firmware_kb * 1024,
            max_per_minute=None,
            deadline=args.deadline,
        )
        print(
            f"({kind}) {label}: {args.devices:,} devices (server pid {server.proc.pid}) ...",
            flush=True,
        )
        cpu = ServerCpu(server.proc.pid)
        result = uvloop.run(fleet.run_fleet(config, cpu.observe))
        cpu.finish()
    succeeded = result.states.get("SUCCEEDED", 0)
    server_ok = result.server_states.get("SUCCEEDED", succeeded)
    note = (
        f"{args.devices:,} devices, {args.firmware_kb} KiB, registered through the API in "
        f"{result.register_seconds:.1f} s; {succeeded:,} SUCCEEDED "
        f"(server: {server_ok:,}); update p50 {result.percentile(50) or 0:.1f} s, "
        f"p99 {result.percentile(99) or 0:.1f} s; server CPU {cpu.seconds:.1f} s during the "
        f"rollout ({1000 * cpu.seconds / args.devices:.1f} ms per device updated), "
        f"simulator CPU {cpu.own_seconds:.1f} s during the rollout"
    )
    if result.errors:
        note += f"; {len(result.errors)} errors, first: {result.errors[0][:120]}"
    done = succeeded == args.devices and server_ok == args.devices
    return Row(
        "e2e",
        f"fleet update ({kind}: {label})",
        result.seconds_to_done if done else float("inf"),
        "s",
        higher_is_better=False,
        max_value=TARGET_S,
        note=note if done else "NOT ALL SUCCEEDED: " + note,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--firmware-kb", type=int, default=1024)
    ap.add_argument("--setup", choices=["a", "b", "both"], default="both")
    ap.add_argument("--poll-interval", type=float, default=5.0, help="HTTP devices' job polls")
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds for one whole run")
    add_json_arg(ap)
    args = ap.parse_args()
    fleet = simulator()
    if isinstance(fleet, str):
        print(f"e2e skipped: the fleet simulator (otahub.agent.fleet) is missing ({fleet})")
        report([], args.json)
        return
    rows = [run(fleet, k, args) for k in ("a", "b") if args.setup in (k, "both")]
    report(rows, args.json)


if __name__ == "__main__":
    main()

"""The fleet simulator against a real server process: a small fleet with seeded
faults ends in exactly the expected states, on the device side and on the server's,
over the Jobs MQTT topics (through Mosquitto) and over the HTTP jobs plane."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from otahub.agent.fleet import Faults, Fleet, FleetConfig, expected_states, run_fleet
from otahub.agent.fleet_setup import Account, server_counts
from tests.conftest import need_service
from tests.integration.agent.timeouts import time_out_the_hung
from tests.integration.aws.conftest import KEY, SECRET
from tests.integration.server import ServerProcess

pytestmark = pytest.mark.mosquitto

FAULTS = Faults(fail=0.1, reject=0.05, hang=0.03, disconnect=0.05, throttle=0.03, throttle_kbps=400)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    need_service("Mosquitto", "127.0.0.1", 1883)
    data = Path(tmp_path_factory.mktemp("simulator"))
    proc = ServerProcess(
        data,
        env={"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET},
        # The harness reads the server's output only when it stops: keep it short, or
        # a full pipe stalls the server mid-run.
        args=["--broker-url", "mqtt://127.0.0.1:1883", "--log-level", "warning"],
        movable_clock=True,  # test_hung_devices_time_out, the module's last test, moves it
    ).start()
    yield proc
    proc.stop()


def config(server: ServerProcess, devices: int, **kw: object) -> FleetConfig:
    return FleetConfig(
        devices=devices,
        access_key=KEY,
        secret_key=SECRET,
        endpoint=server.url,
        region="eu-west-1",
        faults=FAULTS,
        seed=7,
        firmware_size=40_000,
        devices_per_connection=25,
        deadline=90,
        **kw,
    )  # type: ignore[arg-type]


def server_view(states: dict[str, int]) -> dict[str, int]:
    """What the server records for the device-side states: a hung device is still
    IN_PROGRESS there (nothing times it out without a timeout config)."""
    return {("IN_PROGRESS" if s == "HUNG" else s): n for s, n in states.items()}


@pytest.mark.parametrize(
    ("transport", "files", "devices"),
    [("mqtt", "mqtt", 200), ("http", "http", 100), ("http", "mqtt", 60), ("mqtt", "http", 60)],
)
async def test_fleet_ends_in_the_expected_states(
    server: ServerProcess, transport: str, files: str, devices: int
) -> None:
    report = await run_fleet(
        config(server, devices, transport=transport, files=files, poll_interval=0.5)
    )
    assert (report.transport, report.files) == (transport, files)
    expected = expected_states(devices, FAULTS, wait_timed_out=False)
    assert report.states == expected, report.errors
    assert report.server_states == server_view(expected)
    assert report.resumed == FAULTS.counts(devices)["disconnect"]
    assert report.complete
    assert report.seconds_to_done < 60
    p50, p99 = report.percentile(50), report.percentile(99)
    assert p50 is not None and p99 is not None and 0 < p50 <= p99


def test_simulate_command(server: ServerProcess) -> None:
    cmd = [
        sys.executable,
        "-m",
        "otahub.cli.main",
        "simulate",
        "--devices",
        "30",
        "--endpoint",
        server.url,
        "--region",
        "eu-west-1",
        "--access-key",
        KEY,
        "--secret-key",
        SECRET,
        "--fail",
        "0.1",
        "--reject",
        "0.1",
        "--seed",
        "3",
        "--devices-per-connection",
        "10",
        "--deadline",
        "60",
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["states"] == {"SUCCEEDED": 24, "FAILED": 3, "REJECTED": 3}
    assert report["server_states"] == report["states"]
    assert report["update_seconds"]["p50"] > 0
    assert "SUCCEEDED" in done.stderr  # the live bars


async def test_hung_devices_time_out(server: ServerProcess) -> None:
    """A hung device is timed out by the server (the shortest timeout is a minute:
    the server's clock is moved past it rather than waited for)."""
    faults = Faults(hang=0.25)
    cfg = config(
        server,
        8,
        transport="mqtt",
        in_progress_timeout_minutes=1,
        wait_timed_out=True,
        poll_interval=0.5,
    )
    cfg.faults = faults
    fleet = Fleet(cfg)
    async with httpx.AsyncClient() as http:
        iot = Account(server.url, KEY, SECRET, cfg.region).client(http, "iot")
        mover = asyncio.create_task(
            time_out_the_hung(
                server,
                fleet,
                lambda job_id: server_counts(iot, job_id),
                done={"SUCCEEDED": 6},
                hung=2,
                timeout_minutes=1,
            )
        )
        report = await fleet.run(None)
        mover.cancel()
    assert report.states == {"SUCCEEDED": 6, "TIMED_OUT": 2}, report.errors
    assert report.server_states == {"SUCCEEDED": 6, "TIMED_OUT": 2}

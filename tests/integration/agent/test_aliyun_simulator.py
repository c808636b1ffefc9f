"""The Alibaba fleet simulator against a real server process: devices log in to the
embedded broker with their linkkit HMAC (or to Mosquitto, with otahub reading it),
take a static upgrade job set up through the Alibaba API, and end in exactly the
injected states, on the devices and on the server (read back with
aliyun-python-sdk-iot: ListOTATaskByJob, QueryOTAJob, BatchQueryDeviceDetail)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aliyunsdkcore.client import AcsClient
from click.testing import CliRunner

from otahub.agent.aliyun_fleet import (
    DECLINED,
    AliyunFleet,
    AliyunFleetConfig,
    expected_server_states,
    run_aliyun_fleet,
)
from otahub.agent.aliyun_fleet_setup import server_counts
from otahub.agent.aliyun_rpc import AsyncAliyunClient
from otahub.agent.fleet import Faults, FleetReport, expected_states
from otahub.cli.simulate import simulate
from tests.conftest import need_service
from tests.integration.agent.timeouts import time_out_the_hung
from tests.integration.aliyun.conftest import call, make_client
from tests.integration.server import ServerProcess

KEY, SECRET = "LTAIotahubFleetSim", "otahub-fleet-sim-secret"
FAULTS = Faults(fail=0.1, reject=0.06, hang=0.04, disconnect=0.1, throttle=0.04, throttle_kbps=400)


def _start(data: Path, *args: str, movable_clock: bool = False) -> ServerProcess:
    # Alibaba's per-second API limits stay on: the simulator copes with Throttling.User.
    return ServerProcess(
        data,
        env={"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET},
        args=["--log-level", "warning", *args],
        movable_clock=movable_clock,
    ).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """With its embedded broker, which checks each device's login, and a clock that
    test_hung_devices_time_out, the module's last test, moves."""
    proc = _start(Path(tmp_path_factory.mktemp("aliyun-sim")), movable_clock=True)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output, proc.output[-4000:]


@pytest.fixture(scope="module")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    need_service("Mosquitto", "127.0.0.1", 1883)
    proc = _start(
        Path(tmp_path_factory.mktemp("aliyun-sim-mosq")), "--broker-url", "mqtt://127.0.0.1:1883"
    )
    yield proc
    proc.stop()


def config(
    server: ServerProcess, devices: int, broker: str | None = None, **kw: Any
) -> AliyunFleetConfig:
    return AliyunFleetConfig(
        devices=devices,
        access_key=KEY,
        secret_key=SECRET,
        endpoint=server.url,
        broker=broker or f"mqtt://127.0.0.1:{server.mqtt_port}",
        seed=7,
        firmware_size=40_000,
        deadline=90,
        **kw,
    )


def sdk(server: ServerProcess) -> AcsClient:
    return make_client(server, KEY, SECRET)


def ok(client: AcsClient, action: str, **params: Any) -> dict[str, Any]:
    """One SDK call, retried while Alibaba's per-second limits refuse it."""
    for _ in range(50):
        try:
            found = call(client, action, **params)
        except Exception as exc:  # ServerException(Throttling.User)
            if "Throttling" not in str(exc):
                raise
            continue
        assert found["Success"] is True, found
        return found
    raise AssertionError(f"{action} stayed throttled")


def server_tasks(client: AcsClient, job_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        found = ok(client, "ListOTATaskByJob", JobId=job_id, PageSize=100, CurrentPage=page)
        out += found["Data"]["SimpleOTATaskInfo"]
        if page >= found["PageCount"]:
            return out
        page += 1


def check_server(server: ServerProcess, report: FleetReport, expected: dict[str, int]) -> None:
    """The server's own view, through the SDK: the task states, the declines, and the
    version every succeeded device now reports."""
    assert report.job_id
    client = sdk(server)
    job = ok(client, "QueryOTAJob", JobId=report.job_id)["Data"]
    assert job["JobType"] == "UPGRADE_FIRMWARE" and job["SelectionType"] == "STATIC", job
    tasks = server_tasks(client, report.job_id)
    assert dict(Counter(t["TaskStatus"] for t in tasks)) == expected
    declined = [t for t in tasks if t["TaskDesc"] == DECLINED]
    assert len(declined) == report.faults.get("reject", 0)
    assert all(t["TaskStatus"] == "FAILED" for t in declined)
    succeeded = [t["DeviceName"] for t in tasks if t["TaskStatus"] == "SUCCEEDED"]
    versions: dict[str, str] = {}
    for at in range(0, len(succeeded), 50):
        found = ok(
            client,
            "BatchQueryDeviceDetail",
            ProductKey=job["ProductKey"],
            DeviceNames=succeeded[at : at + 50],
        )
        versions |= {d["DeviceName"]: d["FirmwareVersion"] for d in found["Data"]["Data"]}
    assert set(versions.values()) == {job["DestVersion"]}, versions
    assert len(versions) == len(succeeded)


async def test_every_device_reaches_the_new_version(server: ServerProcess) -> None:
    report = await run_aliyun_fleet(config(server, 50))
    assert report.dialect == "aliyun" and (report.transport, report.files) == ("mqtt", "http")
    assert report.states == {"SUCCEEDED": 50}, report.errors
    assert report.server_states == {"SUCCEEDED": 50}
    assert report.complete
    await asyncio.to_thread(check_server, server, report, {"SUCCEEDED": 50})
    p50, p99 = report.percentile(50), report.percentile(99)
    assert p50 is not None and p99 is not None and 0 < p50 <= p99


@pytest.mark.parametrize("files", ["http", "mqtt"])
async def test_faults_end_in_exactly_the_injected_states(server: ServerProcess, files: str) -> None:
    report = await run_aliyun_fleet(config(server, 50, files=files, faults=FAULTS))
    assert report.files == files
    assert report.states == expected_states(50, FAULTS, wait_timed_out=False), report.errors
    expected = expected_server_states(50, FAULTS)
    assert expected == {"SUCCEEDED": 40, "FAILED": 8, "IN_PROGRESS": 2}
    assert report.server_states == expected
    assert report.resumed == FAULTS.counts(50)["disconnect"]
    assert report.complete
    assert report.settle_seconds is not None
    await asyncio.to_thread(check_server, server, report, expected)


@pytest.mark.mosquitto
async def test_through_mosquitto(mosquitto_server: ServerProcess) -> None:
    """Devices on Mosquitto, which otahub reads as an external broker."""
    faults = Faults(fail=0.1, reject=0.1, disconnect=0.1)
    report = await run_aliyun_fleet(
        config(mosquitto_server, 30, broker="mqtt://127.0.0.1:1883", files="mqtt", faults=faults)
    )
    assert report.states == {"SUCCEEDED": 24, "FAILED": 3, "REJECTED": 3}, report.errors
    assert report.server_states == {"SUCCEEDED": 24, "FAILED": 6}
    assert report.resumed == 3


def test_simulate_command(server: ServerProcess) -> None:
    cmd = [
        sys.executable,
        "-m",
        "otahub.cli.main",
        "simulate",
        "--dialect",
        "aliyun",
        "--devices",
        "30",
        "--endpoint",
        server.url,
        "--broker",
        f"mqtt://127.0.0.1:{server.mqtt_port}",
        "--fail",
        "0.1",
        "--reject",
        "0.1",
        "--files",
        "mqtt",
        "--max-per-minute",
        "1000",
        "--seed",
        "3",
        "--deadline",
        "60",
        "--json",
    ]
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env={**_env(), **env})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["dialect"] == "aliyun" and report["files"] == "mqtt"
    assert report["states"] == {"SUCCEEDED": 24, "FAILED": 3, "REJECTED": 3}
    assert report["server_states"] == {"SUCCEEDED": 24, "FAILED": 6}
    assert report["update_seconds"]["p50"] > 0
    assert "SUCCEEDED" in done.stderr  # the progress lines


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTAHUB_", "AWS_"))}


def test_transport_http_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        simulate,
        ["--dialect", "aliyun", "--transport", "http", "--access-key", "k", "--secret-key", "s"],
    )
    assert result.exit_code == 2, result.output
    assert "--transport http is AWS only" in result.output
    assert "MQTT" in result.output


async def test_hung_devices_time_out(server: ServerProcess) -> None:
    """A hung device's task fails when the job's timeout (counted from its first
    progress) runs out; Alibaba's shortest is a minute: the server's clock is moved
    past it rather than waited for."""
    cfg = config(
        server,
        8,
        faults=Faults(hang=0.25),
        in_progress_timeout_minutes=1,
        wait_timed_out=True,
        poll_interval=0.5,
    )
    fleet = AliyunFleet(cfg)
    async with httpx.AsyncClient() as http:
        api = AsyncAliyunClient(
            http, server.url, access_key=KEY, secret_key=SECRET, region=cfg.region
        )
        mover = asyncio.create_task(
            time_out_the_hung(
                server,
                fleet,
                lambda job_id: server_counts(api, job_id),
                done={"SUCCEEDED": 6},
                hung=2,
                timeout_minutes=1,
            )
        )
        report = await fleet.run(None)
        mover.cancel()
    assert report.states == {"SUCCEEDED": 6, "TIMED_OUT": 2}, report.errors
    assert report.server_states == {"SUCCEEDED": 6, "FAILED": 2}

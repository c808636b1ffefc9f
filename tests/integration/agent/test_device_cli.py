"""`otahub device run` as a real process against a real server: boto3 creates the OTA
update; one device takes it over the embedded broker with mutual TLS (an MQTT
stream), another over the HTTP jobs plane with a failing self-test, which rolls
back and reports FAILED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.agent.ota_setup import Signer, create_update
from tests.integration.aws.conftest import KEY, SECRET, clients
from tests.integration.server import ServerProcess

FIRMWARE = os.urandom(150_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = Path(tmp_path_factory.mktemp("device-cli"))
    proc = ServerProcess(
        data,
        env={"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET},
        args=["--log-level", "warning"],
    ).start()
    yield proc
    proc.stop()


def device(server: ServerProcess, thing: str, workdir: Path, *args: str) -> Any:
    cmd = [
        sys.executable,
        "-m",
        "otahub.cli.main",
        "device",
        "run",
        "--thing",
        thing,
        "--slot-dir",
        str(workdir),
        "--once",
        "--wait",
        "30",
        *args,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: Any) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=60)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, (lines[0] if lines else {}), err


def test_device_updates_and_rolls_back(server: ServerProcess, tmp_path: Path) -> None:
    c = clients(server)
    iot = c["iot"]
    tag = uuid.uuid4().hex[:6]
    good, bad = f"cli-{tag}-good", f"cli-{tag}-bad"
    for t in (good, bad):
        iot.create_thing(thingName=t)
    made = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=good, principal=made["certificateArn"])
    (tmp_path / "ca.pem").write_text(httpx.get(f"{server.url}/ca.pem").text)
    (tmp_path / "dev.pem").write_text(made["certificatePem"])
    (tmp_path / "dev.key").write_text(made["keyPair"]["PrivateKey"])
    signer = Signer.new()
    (tmp_path / "signer.pem").write_text(signer.certificate_pem)
    arns = [iot.describe_thing(thingName=t)["thingArn"] for t in (good, bad)]
    job_id = create_update(c, signer, FIRMWARE, arns)

    trust = ["--trust", str(tmp_path / "signer.pem")]
    over_tls = device(
        server,
        good,
        tmp_path / good,
        *trust,
        "--broker",
        f"mqtts://127.0.0.1:{server.mqtts_port}",
        "--cert",
        str(tmp_path / "dev.pem"),
        "--key",
        str(tmp_path / "dev.key"),
        "--ca",
        str(tmp_path / "ca.pem"),
        "--files",
        "mqtt",
    )
    over_http = device(
        server,
        bad,
        tmp_path / bad,
        *trust,
        "--jobs",
        "http",
        "--files",
        "http",
        "--endpoint",
        server.url,
        "--region",
        "eu-west-1",
        "--access-key",
        KEY,
        "--secret-key",
        SECRET,
        "--poll-interval",
        "0.5",
        "--fail-self-test",
    )
    rc, outcome, err = finish(over_tls)
    assert (rc, outcome.get("status")) == (0, "SUCCEEDED"), err
    slots = json.loads((tmp_path / good / "slots" / "slots.json").read_text())
    assert slots == {"active": "b", "version": job_id, "pending": None}
    assert (tmp_path / good / "slots" / "slot_b.bin").read_bytes() == FIRMWARE

    rc, outcome, err = finish(over_http)
    assert rc == 1 and outcome == {
        "job_id": job_id,
        "status": "FAILED",
        "reason": "self-test failed; rolled back",
    }, err
    slots = json.loads((tmp_path / bad / "slots" / "slots.json").read_text())
    assert slots["active"] == "a" and slots["pending"] is None

    got = {
        s["thingArn"].rsplit("/", 1)[1]: s["jobExecutionSummary"]["status"]
        for s in iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]
    }
    assert got == {good: "SUCCEEDED", bad: "FAILED"}
    ex = iot.describe_job_execution(jobId=job_id, thingName=bad)["execution"]
    assert ex["statusDetails"]["detailsMap"] == {"reason": "self-test failed; rolled back"}

"""A running otahub process and boto3 clients pointed at it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import need_service
from tests.integration.server import ServerProcess

KEY, SECRET = "AKIDOTAHUBTEST", "otahub-test-secret"


# One server for the whole run (a start costs seconds): tests name what they make
# with ids of their own and look only at those.
@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("aws-server")
    proc = ServerProcess(
        Path(data), env={"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET}
    ).start()
    yield proc
    proc.stop()


def client(server: ServerProcess, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture(scope="session")
def iot(server: ServerProcess) -> Any:
    return client(server, "iot")


@pytest.fixture(scope="session")
def jobs_data(server: ServerProcess) -> Any:
    return client(server, "iot-jobs-data")


@pytest.fixture(scope="session")
def s3(server: ServerProcess) -> Any:
    return client(server, "s3")


@pytest.fixture(scope="session")
def signer(server: ServerProcess) -> Any:
    return client(server, "signer")


@pytest.fixture(scope="session")
def mqtt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that reaches devices through the real Mosquitto."""
    need_service("Mosquitto", "127.0.0.1", 1883)
    data = Path(tmp_path_factory.mktemp("mqtt-server"))
    proc = ServerProcess(
        data,
        env={"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET},
        args=["--broker-url", "mqtt://127.0.0.1:1883"],
    ).start()
    yield proc
    proc.stop()


def clients(server: ServerProcess) -> dict[str, Any]:
    return {s: client(server, s) for s in ("iot", "s3", "signer", "iot-jobs-data")}


def wait_for(fn: Any, timeout: float = 15) -> Any:
    """Poll `fn` until it returns something true (the engine ticks ten times a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)

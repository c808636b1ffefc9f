"""A running otahub process and boto3 clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.server import ServerProcess

KEY, SECRET = "AKIDOTAHUBTEST", "otahub-test-secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("aws-server")
    proc = ServerProcess(Path(data), env={"OTAHUB_ACCESS_KEY_ID": KEY,
                                          "OTAHUB_SECRET_ACCESS_KEY": SECRET}).start()
    yield proc
    proc.stop()


def client(server: ServerProcess, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=server.url, region_name="eu-west-1",
        aws_access_key_id=KEY, aws_secret_access_key=SECRET,
    )


@pytest.fixture(scope="module")
def iot(server: ServerProcess) -> Any:
    return client(server, "iot")


@pytest.fixture(scope="module")
def jobs_data(server: ServerProcess) -> Any:
    return client(server, "iot-jobs-data")


@pytest.fixture(scope="module")
def s3(server: ServerProcess) -> Any:
    return client(server, "s3")


@pytest.fixture(scope="module")
def signer(server: ServerProcess) -> Any:
    return client(server, "signer")

"""create_ota_update's eight modeled exceptions, each where AWS raises it, through
boto3 against a running otahub: InvalidRequest, LimitExceeded, ResourceNotFound,
ResourceAlreadyExists, Throttling (an account over its configured request rate),
Unauthorized, InternalFailure and ServiceUnavailable (the database out of reach)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
from botocore.config import Config

from otahub.core.services import Services
from otahub.domain.clock import SystemClock
from otahub.store.db import Database
from tests.conftest import PG_ADMIN_URL, PG_HOST, PG_PORT, need_service
from tests.integration.aws.conftest import KEY, SECRET
from tests.integration.server import ServerProcess, free_port

ROLE = "arn:aws:iam::123456789012:role/ota"
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def boto(server: ServerProcess, service: str, key: str = KEY, secret: str = SECRET) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=NO_RETRY,
    )


def modeled_errors() -> set[str]:
    op = boto3.client("iot", region_name="eu-west-1").meta.service_model.operation_model(
        "CreateOTAUpdate"
    )
    return {shape.name for shape in op.error_shapes}


def test_the_model_lists_eight_errors() -> None:
    assert modeled_errors() == {
        "InvalidRequestException",
        "LimitExceededException",
        "ResourceNotFoundException",
        "ResourceAlreadyExistsException",
        "ThrottlingException",
        "UnauthorizedException",
        "InternalFailureException",
        "ServiceUnavailableException",
    }


def a_file(bucket: str = "b", key: str = "fw.bin") -> dict[str, Any]:
    return {"fileName": "fw.bin", "fileLocation": {"s3Location": {"bucket": bucket, "key": key}}}


def ota(iot: Any, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "otaUpdateId": uid("u"),
        "targets": ["arn:aws:iot:eu-west-1:123456789012:thing/x"],
        "roleArn": ROLE,
        "files": [a_file()],
    }
    args.update(kw)
    return iot.create_ota_update(**args)


def status_of(err: Any) -> int:
    return int(err.value.response["ResponseMetadata"]["HTTPStatusCode"])


# -- on the shared server ------------------------------------------------------------


def test_invalid_request(server: ServerProcess) -> None:
    iot = boto(server, "iot")
    bad: list[dict[str, Any]] = [
        {"protocols": ["MQTT", "MQTT"]},  # repeated
        {"protocols": ["FTP"]},  # enum (boto3 sends it)
        {"otaUpdateId": "x" * 57},  # AFR_OTA-<id> > 64
        {"otaUpdateId": "bad id"},  # pattern
        {"description": "bell\u0007"},  # [^\p{C}]+
        {"description": "x" * 2029},  # max 2028
        {"roleArn": "arn:aws:s3:::not-a-role-arn"},  # not an IAM role ARN
        {"targets": ["arn:aws:iot:eu-west-1:123456789012:job/j"]},  # not a thing/group
        {"awsJobPresignedUrlConfig": {"expiresInSec": 30}},  # 60..3600
        {"awsJobExecutionsRolloutConfig": {"maximumPerMinute": 1001}},  # max 1000
        {"awsJobTimeoutConfig": {"inProgressTimeoutInMinutes": 20000}},  # 1..10080
        {
            "awsJobAbortConfig": {
                "abortCriteriaList": [
                    {
                        "failureType": "FAILED",
                        "action": "CANCEL",
                        "thresholdPercentage": 101,
                        "minNumberOfExecutedThings": 1,
                    }
                ]
            }
        },  # ≤ 100
        {"targetSelection": "SOMETIMES"},  # enum
        {"tags": [{"Key": "aws:reserved", "Value": "v"}]},  # reserved prefix
        {"files": [{"fileName": "f"}]},  # no location
    ]
    for kw in bad:
        with pytest.raises(iot.exceptions.InvalidRequestException) as err:
            ota(iot, **kw)
        assert status_of(err) == 400, kw
        assert err.value.response["Error"]["Message"], kw


def test_limit_exceeded(server: ServerProcess) -> None:
    iot = boto(server, "iot")
    with pytest.raises(iot.exceptions.LimitExceededException) as err:
        ota(iot, files=[a_file(key=f"f{i}") for i in range(11)])  # the parser reads 10
    assert status_of(err) == 410
    with pytest.raises(iot.exceptions.LimitExceededException):
        ota(iot, tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])


def test_resource_not_found(server: ServerProcess) -> None:
    iot = boto(server, "iot")
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as err:
        ota(iot, files=[{"fileLocation": {"stream": {"streamId": uid("nostream"), "fileId": 0}}}])
    assert status_of(err) == 404
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        ota(iot, files=[{**a_file(), "codeSigning": {"awsSignerJobId": str(uuid.uuid4())}}])
    # What is only found missing while the update is built fails it instead (errorInfo).
    ota_id = uid("late")
    ota(iot, otaUpdateId=ota_id)  # neither the thing nor the object exists
    info = iot.get_ota_update(otaUpdateId=ota_id)["otaUpdateInfo"]
    assert info["otaUpdateStatus"] == "CREATE_FAILED"
    assert info["errorInfo"]["code"] == "ResourceNotFoundException"


def test_resource_already_exists(server: ServerProcess) -> None:
    iot = boto(server, "iot")
    ota_id = uid("dup")
    ota(iot, otaUpdateId=ota_id)
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as err:
        ota(iot, otaUpdateId=ota_id)
    assert status_of(err) == 409
    assert err.value.response["resourceId"] == ota_id
    assert err.value.response["resourceArn"].endswith(f":otaupdate/{ota_id}")


async def _second_account(data_dir: Path, key: str, secret: str, account: str) -> None:
    db = Database(f"sqlite:///{data_dir / 'otahub.db'}")
    try:
        accounts = Services.build(db, SystemClock()).accounts
        await accounts.ensure_access_key(key, secret, account)
        await accounts.tenant(account)
    finally:
        await db.dispose()


def test_unauthorized(server: ServerProcess) -> None:
    """Passing a role of another account on this server (iam:PassRole)."""
    other = "210987654321"
    asyncio.run(_second_account(server.data_dir, "AKIDOTHER", "other-secret", other))
    iot = boto(server, "iot")
    with pytest.raises(iot.exceptions.UnauthorizedException) as err:
        ota(iot, roleArn=f"arn:aws:iam::{other}:role/theirs")
    assert status_of(err) == 401
    # The other account may pass its own role (its update fails later: no such thing).
    theirs = boto(server, "iot", "AKIDOTHER", "other-secret")
    out = ota(theirs, roleArn=f"arn:aws:iam::{other}:role/theirs")
    assert out["otaUpdateStatus"] == "CREATE_PENDING"
    assert f":{other}:otaupdate/" in out["otaUpdateArn"]


# -- an account over its configured request rate -------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("limited")),
        env={
            "OTAHUB_ACCESS_KEY_ID": KEY,
            "OTAHUB_SECRET_ACCESS_KEY": SECRET,
            "OTAHUB_AWS_REQUEST_RATE": "1",
            "OTAHUB_AWS_REQUEST_BURST": "2",
        },
        movable_clock=True,  # the bucket refills as the server's clock moves
    ).start()
    yield proc
    proc.stop()


def test_throttling_when_an_account_exceeds_its_rate(limited: ServerProcess) -> None:
    iot = boto(limited, "iot")
    codes = []
    for _ in range(8):
        try:
            ota(iot)
            codes.append("ok")
        except iot.exceptions.ThrottlingException as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400  # iot's status
            codes.append("throttled")
    assert codes[:2] == ["ok"] * 2 and "throttled" in codes[2:]
    limited.advance_clock(2.2)  # 1 a second refills the bucket
    assert ota(iot)["otaUpdateStatus"] == "CREATE_PENDING"
    # The budget is the account's, across its APIs; each names it its own way.
    signer, jobs = boto(limited, "signer"), boto(limited, "iot-jobs-data")
    limited.advance_clock(2.2)
    with pytest.raises(signer.exceptions.TooManyRequestsException) as err:
        for _ in range(8):
            signer.list_signing_profiles()
    assert status_of(err) == 429
    limited.advance_clock(2.2)
    with pytest.raises(jobs.exceptions.ThrottlingException) as err2:
        for _ in range(8):
            # let through, there is no such thing
            with contextlib.suppress(jobs.exceptions.ResourceNotFoundException):
                jobs.get_pending_job_executions(thingName="t")
    assert status_of(err2) == 429


# -- the database out of reach, or failing ------------------------------------------


class Proxy:
    """A TCP forwarder to PostgreSQL that the test can cut, as a network fault would."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.conns.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


async def _admin(sql: str, database: str | None = None) -> None:
    url = PG_ADMIN_URL if database is None else PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def on_postgres(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, Proxy, str]]:
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"otahub_faults_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    proxy = Proxy((PG_HOST, PG_PORT))
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("faults")),
        env={"OTAHUB_ACCESS_KEY_ID": KEY, "OTAHUB_SECRET_ACCESS_KEY": SECRET},
        args=["--database-url", f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"],
    ).start()
    try:
        yield proc, proxy, name
    finally:
        proc.stop()
        proxy.close()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_internal_failure(on_postgres: tuple[ServerProcess, Proxy, str]) -> None:
    """A store that answers but fails the statement (here: its table is gone)."""
    proc, _, name = on_postgres
    iot = boto(proc, "iot")
    assert ota(iot)["otaUpdateStatus"] == "CREATE_PENDING"
    asyncio.run(_admin("ALTER TABLE ota_updates RENAME TO ota_updates_away", name))
    try:
        with pytest.raises(iot.exceptions.InternalFailureException) as err:
            ota(iot)
        assert status_of(err) == 500
        assert err.value.response["Error"]["Message"]
    finally:
        asyncio.run(_admin("ALTER TABLE ota_updates_away RENAME TO ota_updates", name))
    assert ota(iot)["otaUpdateStatus"] == "CREATE_PENDING"


def test_service_unavailable(on_postgres: tuple[ServerProcess, Proxy, str]) -> None:
    """The database out of reach: 503, which boto3 retries; and back when it returns."""
    proc, proxy, _ = on_postgres
    iot = boto(proc, "iot")
    assert ota(iot)["otaUpdateStatus"] == "CREATE_PENDING"
    proxy.cut()
    try:
        with pytest.raises(iot.exceptions.ServiceUnavailableException) as err:
            ota(iot)
        assert status_of(err) == 503
    finally:
        proxy.up = True
    retrying = boto3.client(
        "iot",
        endpoint_url=proc.url,
        region_name="eu-west-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )
    assert ota(retrying)["otaUpdateStatus"] == "CREATE_PENDING"

"""`otahub serve` on a private PostgreSQL database, with its embedded broker or with
Mosquitto; the tests set up products, devices, firmware and jobs with
aliyun-python-sdk-iot, and run linkkit devices from their own environment
(paho-mqtt 1.6.1)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    PG_HOST,
    PG_PORT,
    REQUIRE_SERVICES,
    _create_pg_database,
    _drop_pg_database,
    need_service,
)
from tests.integration.aliyun_device.control import AliyunControl
from tests.integration.server import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
# `make test` builds it beside .venv; OTAHUB_LINKKIT_PYTHON points elsewhere.
LINKKIT_PYTHON = Path(
    os.environ.get("OTAHUB_LINKKIT_PYTHON") or ROOT / ".venv-linkkit" / "bin" / "python"
)
DEVICE_PROGRAM = Path(__file__).with_name("linkkit_device.py")
KEY, SECRET = "AKIDALIYUNDEVICE", "aliyun-device-secret"


def _server(tmp: pytest.TempPathFactory, name: str, *args: str) -> Iterator[ServerProcess]:
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    db = f"otahub_aliyun_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_pg_database(db))
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}"
    proc = ServerProcess(
        Path(tmp.mktemp(name)),
        env={
            "OTAHUB_ACCESS_KEY_ID": KEY,
            "OTAHUB_SECRET_ACCESS_KEY": SECRET,
            # The tests poll ListOTATaskByJob; Alibaba's per-second limits are tested
            # in tests/integration/aliyun.
            "OTAHUB_ALIYUN_RATE_LIMITS": "off",
            "OTAHUB_DATABASE_URL": url,
            # Mosquitto is shared: old sessions in the default group would take a share.
            "OTAHUB_SHARE_GROUP": f"g{db[-10:]}",
        },
        args=list(args),
        movable_clock=True,  # a retry interval passes without being waited for
    )
    proc.database_url = url  # type: ignore[attr-defined]
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        asyncio.run(_drop_pg_database(db))
    assert "Traceback" not in proc.output, proc.output[-4000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """With its embedded broker."""
    yield from _server(tmp_path_factory, "aliyun-embedded")


@pytest.fixture(scope="module")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    need_service("Mosquitto", "127.0.0.1", 1883)
    yield from _server(
        tmp_path_factory, "aliyun-mosquitto", "--broker-url", "mqtt://127.0.0.1:1883"
    )


async def open_control(server: ServerProcess) -> AliyunControl:
    return AliyunControl(server, KEY, SECRET)


@pytest.fixture
async def control(server: ServerProcess) -> AsyncIterator[AliyunControl]:
    c = await open_control(server)
    yield c
    await c.close()


class LinkkitDevice:
    """One linkkit device program in a subprocess; its events arrive as dicts."""

    def __init__(self, *args: str, query: bool = False) -> None:
        if not LINKKIT_PYTHON.exists():
            message = f"no linkkit environment at {LINKKIT_PYTHON} (make test creates it)"
            if REQUIRE_SERVICES:
                pytest.fail(message)
            pytest.skip(message)
        self.proc = subprocess.Popen(
            [str(LINKKIT_PYTHON), str(DEVICE_PROGRAM), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                **({"LK_QUERY": "1"} if query else {}),
            },
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue

    async def expect(self, event: str, seconds: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got = self.events.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.1)
                continue
            self.seen.append(got)
            if got["event"] == event:
                return got
        raise AssertionError(f"no {event} from the device; saw {self.seen}: {self.stderr()}")

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

"""Two otahub processes on one Mosquitto and one PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiomqtt
import pytest

from otahub.core.services import Services
from otahub.domain.clock import SystemClock
from otahub.store.db import Database
from tests.conftest import need_service, truncate_all
from tests.integration.server import ServerProcess

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]


async def answers(
    device: aiomqtt.Client, base: str, tokens: list[str], *, within: float = 10
) -> list[str]:
    """Ask once per token; the answers to them, collected until each has one and a
    moment more (a duplicate comes with the original), or for `within` seconds.
    Late answers to earlier probes are not these tokens' and are left out."""
    for token in tokens:
        await device.publish(base + "get", json.dumps({"clientToken": token}), qos=1)
    wanted, got = set(tokens), []
    try:
        async with asyncio.timeout(within) as window:
            async for message in device.messages:
                assert isinstance(message.payload, bytes)
                token = json.loads(message.payload)["clientToken"]
                if token not in wanted:
                    continue
                got.append(token)
                if len(got) == len(wanted):
                    window.reschedule(asyncio.get_running_loop().time() + 1.0)
    except TimeoutError:
        pass
    return got


async def until_answered(device: aiomqtt.Client, base: str, prefix: str) -> None:
    """Ask until a server answers: one holds the role and subscribes the $aws topics."""
    for k in range(120):
        if await answers(device, base, [f"{prefix}{k}"], within=0.25):
            return
    raise AssertionError("no server took the $aws topics")


async def test_each_device_message_is_handled_once_and_the_role_fails_over(
    pg_url: str, tmp_path: Path
) -> None:
    need_service("Mosquitto", "127.0.0.1", 1883)
    db = Database(pg_url)
    await truncate_all(db)
    env = {"OTAHUB_ACCESS_KEY_ID": "AKIDTWO", "OTAHUB_SECRET_ACCESS_KEY": "secret"}
    args = ["--database-url", pg_url, "--broker-url", "mqtt://127.0.0.1:1883"]
    servers = [ServerProcess(tmp_path / f"d{i}", env=env, args=args).start() for i in range(2)]
    try:
        creds = json.loads((tmp_path / "d0" / "credentials.json").read_text())
        svc = Services.build(db, SystemClock())
        tenant = await svc.accounts.tenant(creds["account_id"])
        name = f"twin-{uuid.uuid4().hex[:6]}"
        await svc.registry.create_device(tenant.id, name)
        base = f"$aws/things/{name}/jobs/"
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=name) as device:
            await device.subscribe(base + "get/accepted", qos=1)
            await until_answered(device, base, "probe")
            tokens = [f"t{i}" for i in range(20)]
            assert sorted(await answers(device, base, tokens)) == sorted(tokens)

            # Kill whichever holds the role: the other takes the $aws topics over.
            for s in servers:
                assert s.proc is not None
                s.proc.kill()
                break
            await until_answered(device, base, "failover")
            again = [f"u{i}" for i in range(5)]
            got = await answers(device, base, again)
            assert sorted(set(got)) == sorted(again)
            assert len(got) == len(again)
    finally:
        for s in servers:
            s.stop()
        await db.dispose()

"""The reference Alibaba device's pure parts: its login is the one the broker
checks, and it reads the push and get_reply shapes the dialect writes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from otahub.agent.aliyun import AliyunAgent, AliyunAgentConfig, Offer, linkkit_login
from otahub.aliyun.devices.codec import (
    UpgradeInfo,
    build_download_reply,
    parse_download_request,
    upgrade_data,
)
from otahub.gateway.embedded.identity import aliyun_password_ok, parse_aliyun_login


def test_login_is_accepted_by_the_broker_rules() -> None:
    for tls in (False, True):
        client_id, user, password = linkkit_login("a1PK", "dev1", "secret", tls=tls, timestamp=7)
        assert f"securemode={2 if tls else 3}" in client_id
        login = parse_aliyun_login(client_id, user)
        assert login is not None and (login.product_key, login.device_name) == ("a1PK", "dev1")
        assert aliyun_password_ok(login, "secret", password)
        assert not aliyun_password_ok(login, "other", password)


def test_offer_reads_the_push_data() -> None:
    md5 = "0123456789abcdef" * 2
    http = upgrade_data(
        UpgradeInfo(
            "2.0.0", "MD5", module="MCU", url="http://x/fw", size=10, sign=md5, tags={"k": "v"}
        )
    )
    offer = Offer.parse(http)
    assert offer is not None
    assert (offer.version, offer.module, offer.sign_method, offer.url) == (
        "2.0.0",
        "MCU",
        "Md5",
        "http://x/fw",
    )
    assert offer.ext == {"k": "v"} and offer.stream_id is None
    mqtt = Offer.parse(
        upgrade_data(
            UpgradeInfo("2.0.0", "SHA256", size=10, sign="ab" * 32, stream_id=4, stream_file_id=0)
        )
    )
    assert mqtt is not None and (mqtt.stream_id, mqtt.stream_file_id, mqtt.url) == (4, 0, None)
    assert Offer.parse({}) is None  # get_reply without a task
    assert Offer.parse({"version": "2", "files": []}) is None  # multi-file: not this device
    assert Offer.parse({"version": "2", "size": "x"}) is None


class FakeMqtt:
    """Answers the device's block requests like the dialect, corrupting the CRC of
    the first answer to each offset in `corrupt`."""

    def __init__(self, image: bytes, corrupt: set[int]) -> None:
        self.image = image
        self.corrupt = corrupt
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        pass

    async def publish(self, topic: str, payload: str, qos: int = 0) -> None:
        body = json.loads(payload)
        self.published.append((topic, body))
        if not topic.endswith("/thing/file/download"):
            return
        request = parse_download_request(payload)
        block = self.image[request.offset : request.offset + request.size]
        frame = build_download_reply(request, file_length=len(self.image), block=block)
        if request.offset in self.corrupt:
            self.corrupt.discard(request.offset)
            frame = frame[:-2] + bytes([frame[-2] ^ 0xFF, frame[-1]])
        message = SimpleNamespace(topic=topic + "_reply", payload=frame)
        self.inbox.put_nowait(message)

    @property
    def messages(self) -> AsyncIterator[Any]:
        async def read() -> AsyncIterator[Any]:
            while True:
                yield await self.inbox.get()

        return read()


async def test_mqtt_download_asks_again_after_a_bad_crc(tmp_path: Path) -> None:
    image = os.urandom(12_000)
    fake = FakeMqtt(image, corrupt={5120})
    cfg = AliyunAgentConfig("a1PK", "dev1", tmp_path, timeout=1)
    agent = AliyunAgent(fake, cfg)  # type: ignore[arg-type]
    await agent.start()
    try:
        offer = Offer(
            "2.0.0",
            len(image),
            hashlib.sha256(image).hexdigest(),
            "SHA256",
            stream_id=1,
            stream_file_id=0,
        )
        outcome = await agent.apply(offer)
    finally:
        await agent.stop()
    assert outcome.succeeded, outcome
    offsets = [
        b["params"]["fileBlock"]["offset"]
        for t, b in fake.published
        if t.endswith("/file/download")
    ]
    assert offsets == [0, 5120, 5120, 10240]
    steps = [b["params"]["step"] for t, b in fake.published if "/progress/" in t]
    assert steps[0] == "1" and steps[-1] == "100"
    assert agent.slots.image(agent.slots.state().active).read_bytes() == image

"""The device topics fuzzed through the device bridge, as the broker feeds it: the AWS
Jobs and Streams topics (JSON and CBOR) and the Alibaba OTA topics, with requests
mixing valid fields and hostile ones, and payloads that are not what they claim."""

from __future__ import annotations

import json
import math
from typing import Any

import cbor2
import pytest

from otahub.domain.entities import Device
from tests.fuzz.harness import Campaign, LogWatch, Server, examples_per_case, seed_world
from tests.fuzz.strategies import (
    GARBAGE_PAYLOADS,
    Raw,
    aliyun_device_message,
    aliyun_device_violation,
    examples,
    fill,
    jobs_request,
    jobs_violation,
    stream_request,
    stream_violation,
    to_json,
)

pytestmark = pytest.mark.fuzz
EXAMPLES = examples_per_case(4) * 3  # per topic
JOBS = "$aws/things/fz-thing/jobs/"
STREAMS = "$aws/things/fz-thing/streams/fz-stream/"


def to_cbor(value: Any) -> bytes:
    """CBOR of a generated value; JSON-only tokens become what CBOR can carry of them."""

    def plain(item: Any) -> Any:
        if isinstance(item, Raw):
            text = str(item)
            if text.startswith(("[", "{")):
                return "deep"
            number = float(text) if text not in ("NaN",) else math.nan
            return number
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item

    return bytes(cbor2.dumps(plain(value)))


def as_json(value: Any) -> bytes:
    return to_json(value).encode("utf-8", "surrogatepass")


async def fuzz_topics(
    campaign: Campaign,
    device: Device,
    topics: list[str],
    requests: list[Any],
    judge: Any,
    encode: Any = as_json,
    accepts: Any = None,
) -> None:
    extra = {"accepts": accepts} if accepts else {}
    for topic in topics:
        coder = to_cbor if topic.endswith("/cbor") else encode
        for request in requests:
            await campaign.device(device, topic, coder(request), judge(topic, request), **extra)
        for label, payload in GARBAGE_PAYLOADS:
            await campaign.device(device, topic, payload, label, **extra)


async def test_mqtt_aws_jobs(fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    await seed_world(server)
    campaign = Campaign(server, "MQTT AWS jobs", watch)
    device = await server.thing("fz-thing")
    topics = [
        JOBS + "get",
        JOBS + "start-next",
        JOBS + "$next/get",
        JOBS + "fz-job/get",
        JOBS + "fz-job/update",
        JOBS + "nope/update",
        JOBS + "\x00/update",
    ]
    requests = examples(jobs_request(), EXAMPLES)
    await fuzz_topics(campaign, device, topics, requests, jobs_violation)
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()


async def test_mqtt_streams(fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    await seed_world(server)
    campaign = Campaign(server, "MQTT streams", watch)
    device = await server.thing("fz-thing")
    topics = [STREAMS + "get/json", STREAMS + "get/cbor", STREAMS + "describe/json"]
    topics += [STREAMS + "describe/cbor", "$aws/things/fz-thing/streams/nope/get/cbor"]
    requests = examples(stream_request(), EXAMPLES)
    await fuzz_topics(campaign, device, topics, requests, stream_violation)
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()


def aliyun_accepts(message: Any) -> bool:
    """An Alibaba reply accepts when its code is 200 (a file block's too: its frame
    starts with its JSON header's length); a push accepts."""
    payload: bytes = message.payload
    if message.topic.endswith("/download_reply") and len(payload) >= 2:
        payload = payload[2 : 2 + int.from_bytes(payload[:2], "big")]
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return True
    return not isinstance(body, dict) or body.get("code", 200) in (200, "1000")


async def test_mqtt_aliyun(fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    names = await seed_world(server)
    campaign = Campaign(server, "MQTT Alibaba", watch)
    pk = names["@PK@"]
    registry = server.runtime.services.registry
    device = await registry.find_by_product_key(await server.tenant_id(), pk, "fzdevice01")
    assert device is not None
    topics = [
        f"/ota/device/inform/{pk}/fzdevice01",
        f"/ota/device/progress/{pk}/fzdevice01",
        f"/sys/{pk}/fzdevice01/thing/ota/firmware/get",
        f"/sys/{pk}/fzdevice01/thing/file/download",
    ]
    requests = [fill(r, names) for r in examples(aliyun_device_message(), EXAMPLES)]
    await fuzz_topics(
        campaign, device, topics, requests, aliyun_device_violation, accepts=aliyun_accepts
    )
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()

"""The Alibaba device dialect as a device sees it, answered from the real core:
pushes, progress, version reports, firmware/get, MQTT download, retries and
timeouts, on SQLite and PostgreSQL with a fake clock."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from otahub.aliyun.devices.codec import crc16_arc, parse_download_reply
from otahub.aliyun.devices.topics import AliyunTopics
from otahub.core.engine import Engine
from otahub.core.outbox import Notification, OutboxPublisher
from otahub.core.services import JobSpec, Services
from otahub.domain.clock import FakeClock
from otahub.domain.entities import Device, PackageFile
from otahub.domain.policies import JobPolicies, RetryCriterion, RetryPolicy, TimeoutPolicy
from otahub.domain.states import ExecutionStatus, FailureType, ReleaseMode, VerifyState
from otahub.gateway.bridge import DeviceBridge
from otahub.gateway.messages import Outgoing
from otahub.runtime import device_bridge

S = ExecutionStatus
PK = "a1TestPK"
FIRMWARE = os.urandom(20_000)
BLOBS = {"fw/2.0.0": FIRMWARE, "fw/extra": b"extra file"}


async def read_range(key: str, start: int, length: int) -> bytes:
    return BLOBS[key][start : start + length]


def presign(device: Device, blob_key: str) -> str:
    return f"http://otahub.test/dl/{blob_key}?device={device.id}"


@dataclass
class World:
    services: Services
    engine: Engine
    clock: FakeClock
    tenant: int
    topics: AliyunTopics
    bridge: DeviceBridge
    sent: list[tuple[Device, Outgoing]] = field(default_factory=list)

    async def device(self, name: str, *, online: bool = True) -> Device:
        made = await self.services.registry.create_device(
            self.tenant, name, product_key=PK, secret="s"
        )
        if online:
            await self.services.registry.set_connected(made.id, True)
        return await self.reload(made)

    async def reload(self, device: Device) -> Device:
        [found] = await self.services.registry.get_devices([device.id])
        return found

    async def package(self, *, verify: bool = False, **data: Any) -> int:
        files = [
            PackageFile(
                0,
                "fw.bin",
                blob_key="fw/2.0.0",
                size=len(FIRMWARE),
                sha256=hashlib.sha256(FIRMWARE).hexdigest(),
                md5=hashlib.md5(FIRMWARE).hexdigest(),
            )
        ]
        if data.pop("multi", False):
            files.append(
                PackageFile(
                    1,
                    "extra.bin",
                    blob_key="fw/extra",
                    size=10,
                    sha256=hashlib.sha256(b"extra file").hexdigest(),
                    md5=hashlib.md5(b"extra file").hexdigest(),
                )
            )
        pkg = await self.services.packages.create_package(
            self.tenant,
            name="fw",
            version="2.0.0",
            files=files,
            module=data.pop("module", "default"),
            need_verify=verify,
            data=data,
        )
        return pkg.id

    async def job(self, devices: Sequence[Device], package_id: int, **spec: Any) -> int:
        job = await self.services.jobs.create_job(
            self.tenant,
            JobSpec(
                ref=spec.pop("ref", "job-1"),
                kind="ota",
                device_ids=[d.id for d in devices],
                package_id=package_id,
                release_mode=ReleaseMode.NOTIFY,
                **spec,
            ),
        )
        return job.id

    async def step(self) -> list[tuple[Device, Outgoing]]:
        """One engine tick and one outbox drain: the messages that went out."""
        await self.engine.tick()
        before = len(self.sent)
        await OutboxPublisher(self.services.ctx.db, self.clock, self._sink).drain()
        return self.sent[before:]

    async def _sink(self, batch: Sequence[Notification]) -> None:
        self.sent.extend(await self.bridge.render(batch))

    async def status(self, job_id: int, device: Device) -> Any:
        return await self.services.executions.get(job_id, device.id)


async def world(services: Services, engine: Engine, clock: FakeClock) -> World:
    tenant = (await services.accounts.tenant("123456789012")).id
    await services.registry.create_product(tenant, PK, "product")
    topics = AliyunTopics(services, clock, read_range, presign)
    bridge = device_bridge(services, clock, read_range, default_tenant=tenant, aliyun=topics)
    return World(services, engine, clock, tenant, topics, bridge)


def body(out: Outgoing) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(out.payload)
    return parsed


def topic(kind: str, dn: str) -> str:
    if kind in ("inform", "progress", "upgrade"):
        return f"/ota/device/{kind}/{PK}/{dn}"
    return f"/sys/{PK}/{dn}/thing/{kind}"


async def test_push_to_online_devices_then_progress_and_version_settle(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    on, off = await w.device("dev-on"), await w.device("dev-off", online=False)
    pkg = await w.package(udi="udi-text", sign_method="MD5")
    job = await w.job([on, off], pkg, data={"tags": [{"Key": "k1", "Value": "v1"}]})

    [(to, push)] = await w.step()
    assert to.id == on.id and push.topic == topic("upgrade", "dev-on")
    msg = body(push)
    assert msg["code"] == "1000" and msg["message"] == "success"
    data = msg["data"]
    assert data["version"] == "2.0.0" and data["size"] == len(FIRMWARE)
    assert data["signMethod"] == "Md5" and data["sign"] == hashlib.md5(FIRMWARE).hexdigest()
    assert data["url"] == f"http://otahub.test/dl/fw/2.0.0?device={on.id}"
    assert data["extData"] == {"k1": "v1", "_package_udi": "udi-text"}
    assert "module" not in data
    assert (await w.status(job, on)).status is S.NOTIFIED
    assert (await w.status(job, off)).status is S.QUEUED

    # The offline device is pushed once it connects.
    await services.registry.set_connected(off.id, True)
    [(to2, _)] = await w.step()
    assert to2.id == off.id

    clock.advance(5)
    assert (
        await w.bridge.on_message(
            on, topic("progress", "dev-on"), b'{"id":1,"params":{"step":"30"}}'
        )
        == []
    )
    ex = await w.status(job, on)
    assert (ex.status, ex.progress, ex.started_at) == (S.IN_PROGRESS, 30, clock.now())
    await w.bridge.on_message(on, topic("progress", "dev-on"), b'{"id":2,"params":{"step":100}}')
    assert (await w.status(job, on)).status is S.IN_PROGRESS  # success is the version

    await w.bridge.on_message(
        on, topic("inform", "dev-on"), b'{"id":1,"params":{"version":"2.0.0"}}'
    )
    ex = await w.status(job, on)
    assert (ex.status, ex.progress) == (S.SUCCEEDED, 100)
    installed = await services.registry.get_device(w.tenant, "dev-on", product_key=PK)
    assert installed.modules == {"default": "2.0.0"}


async def test_verify_job_verifies_its_firmware(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-v")
    pkg = await w.package(verify=True)
    await w.job([dev], pkg, is_verify=True)
    assert len(await w.step()) == 1
    await w.bridge.on_message(
        dev, topic("inform", "dev-v"), b'{"id":1,"params":{"version":"2.0.0"}}'
    )
    await w.step()
    assert (await services.packages.get_package_by_id(pkg)).verify_state is VerifyState.VERIFIED


async def test_failure_is_retried_after_the_interval(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-r")
    pkg = await w.package()
    retry = RetryPolicy((RetryCriterion(FailureType.FAILED, 1),), interval_minutes=10)
    job = await w.job([dev], pkg, policies=JobPolicies(retry=retry))
    assert len(await w.step()) == 1
    await w.bridge.on_message(
        dev, topic("progress", "dev-r"), b'{"id":"3","params":{"step":"-3","desc":"md5 bad"}}'
    )
    ex = await w.status(job, dev)
    assert ex.status is S.FAILED and ex.reason == "verification failed: md5 bad"
    assert await w.step() == []  # the interval has not passed
    clock.advance(minutes=11)
    [(_, push)] = await w.step()
    assert body(push)["data"]["version"] == "2.0.0"
    ex = await w.status(job, dev)
    assert (ex.status, ex.execution_number) == (S.NOTIFIED, 2)
    # The single retry fails too: no more.
    await w.bridge.on_message(dev, topic("progress", "dev-r"), b'{"id":4,"params":{"step":-1}}')
    clock.advance(minutes=11)
    assert await w.step() == []
    assert (await w.status(job, dev)).status is S.FAILED


async def test_timeout_counts_from_the_first_progress_and_is_not_retried(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-t")
    pkg = await w.package()
    pol = JobPolicies(
        timeout=TimeoutPolicy(in_progress_minutes=30),
        retry=RetryPolicy((RetryCriterion(FailureType.FAILED, 2),), interval_minutes=0),
    )
    job = await w.job([dev], pkg, policies=pol)
    await w.step()
    clock.advance(minutes=60)  # notified long ago: no timeout yet
    await w.step()
    assert (await w.status(job, dev)).status is S.NOTIFIED
    await w.bridge.on_message(dev, topic("progress", "dev-t"), b'{"id":1,"params":{"step":"5"}}')
    clock.advance(minutes=20)
    await w.bridge.on_message(dev, topic("progress", "dev-t"), b'{"id":1,"params":{"step":"50"}}')
    clock.advance(minutes=11)  # 31 minutes after the first progress
    assert await w.step() == []
    ex = await w.status(job, dev)
    assert ex.status is S.TIMED_OUT and ex.execution_number == 1


async def test_need_confirm_waits_for_confirmation(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-c")
    job = await w.job([dev], await w.package(), need_confirm=True)
    assert await w.step() == []
    assert (await w.status(job, dev)).status is S.CONFIRM
    [get] = await w.bridge.on_message(
        dev, topic("ota/firmware/get", "dev-c"), b'{"id":7,"params":{}}'
    )
    assert body(get) == {"id": 7, "code": 200, "data": {}}
    await services.jobs.confirm(job, [dev.id])
    [(_, push)] = await w.step()
    assert body(push)["data"]["version"] == "2.0.0"


async def test_need_push_false_devices_ask_with_firmware_get(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev, other = await w.device("dev-p"), await w.device("dev-q")
    pkg = await w.package(module="MCU", sign_method="SHA256")
    job = await w.job([dev], pkg, need_push=False)
    assert await w.step() == []
    assert (await w.status(job, dev)).status is S.QUEUED

    [reply] = await w.bridge.on_message(
        dev, topic("ota/firmware/get", "dev-p"), b'{"id":12,"params":{"module":"MCU"}}'
    )
    assert reply.topic == topic("ota/firmware/get_reply", "dev-p") and reply.to_requester
    got = body(reply)
    assert got["id"] == 12 and got["code"] == 200
    assert got["data"]["module"] == "MCU" and got["data"]["signMethod"] == "SHA256"
    assert got["data"]["sign"] == hashlib.sha256(FIRMWARE).hexdigest()
    assert got["data"]["md5"] == hashlib.md5(FIRMWARE).hexdigest()
    assert (await w.status(job, dev)).status is S.NOTIFIED
    # linkkit's bare request (default module) finds the MCU task too.
    [again] = await w.bridge.on_message(
        dev, topic("ota/firmware/get", "dev-p"), b'{"id":13,"params":{}}'
    )
    assert body(again)["data"]["version"] == "2.0.0"
    [none] = await w.bridge.on_message(
        other, topic("ota/firmware/get", "dev-q"), b'{"id":"x","params":{}}'
    )
    assert body(none) == {"id": "x", "code": 200, "data": {}}
    await w.bridge.on_message(
        dev, topic("inform", "dev-p"), b'{"id":1,"params":{"version":"2.0.0","module":"MCU"}}'
    )
    assert (await w.status(job, dev)).status is S.SUCCEEDED


async def test_mqtt_download_serves_crc_checked_blocks(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev, other = await w.device("dev-m"), await w.device("dev-n")
    pkg = await w.package()
    await w.job([dev], pkg, data={"download_protocol": "MQTT"})
    [(_, push)] = await w.step()
    data = body(push)["data"]
    assert data["dProtocol"] == "mqtt" and "url" not in data
    sid, fid = data["streamId"], data["streamFileId"]

    got = b""
    while len(got) < len(FIRMWARE):
        # The C SDK's trailing comma inside fileInfo.
        n = len(got)
        req = (
            f'{{"id":"{n}","version":"1.0","params":{{"fileToken":"default","fileInfo":'
            f'{{"streamId":{sid},"fileId":{fid},}},"fileBlock":{{"size":5120,"offset":{n}}}}}}}'
        )
        [out] = await w.bridge.on_message(dev, topic("file/download", "dev-m"), req.encode())
        assert out.topic == topic("file/download_reply", "dev-m")
        reply = parse_download_reply(out.payload)
        assert reply.header["code"] == 200 and reply.header["data"]["bOffset"] == len(got)
        assert reply.header["data"]["fileLength"] == len(FIRMWARE)
        assert int.from_bytes(out.payload[-2:], "little") == crc16_arc(reply.block)
        got += reply.block
    assert got == FIRMWARE

    # Another device has no task for this package; a past-the-end offset is refused.
    req = (
        b'{"id":1,"params":{"fileInfo":{"streamId":%d,"fileId":0},"fileBlock":{"size":256,"offset":0}}}'
        % sid
    )
    [denied] = await w.bridge.on_message(other, topic("file/download", "dev-n"), req)
    assert parse_download_reply(denied.payload).header["code"] == 404
    past = req.replace(b'"offset":0', b'"offset":%d' % len(FIRMWARE))
    [late] = await w.bridge.on_message(dev, topic("file/download", "dev-m"), past)
    assert parse_download_reply(late.payload).header["code"] == 400
    [bad] = await w.bridge.on_message(dev, topic("file/download", "dev-m"), b'{"id":9}')
    assert parse_download_reply(bad.payload).header == {
        "id": 9,
        "code": 400,
        "msg": "params.fileInfo and params.fileBlock are required",
    }


async def test_multi_file_push_and_re_push_on_version_report(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-f")
    await w.job([dev], await w.package(multi=True))
    [(_, push)] = await w.step()
    data = body(push)["data"]
    assert "url" not in data and "size" not in data
    assert [f["fileName"] for f in data["files"]] == ["fw.bin", "extra.bin"]
    assert data["files"][1]["fileSign"] == hashlib.md5(b"extra file").hexdigest()
    # A device that reconnects and reports its old version hears of the task again.
    [again] = await w.bridge.on_message(
        dev, topic("inform", "dev-f"), b'{"id":1,"params":{"version":"1.0.0"}}'
    )
    assert again.topic == topic("upgrade", "dev-f") and body(again)["data"]["files"]


async def test_malformed_and_foreign_messages_are_dropped(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-x", online=False)
    job = await w.job([dev], await w.package())
    assert await w.step() == []
    for t, payload in [
        (topic("inform", "dev-x"), b"not json"),
        (topic("inform", "dev-x"), b'{"params":{}}'),
        (topic("progress", "dev-x"), b'{"params":{"step":"-9"}}'),
        (topic("progress", "dev-x"), b'{"params":{"step":"abc"}}'),
        (topic("progress", "dev-x"), b"\xff\xfe"),
        (topic("ota/firmware/get", "dev-x"), b"[1,2]"),
        (topic("progress", "someone-else"), b'{"params":{"step":"50"}}'),
        ("/ota/device/unknown/x/y", b"{}"),
    ]:
        assert await w.bridge.on_message(dev, t, payload) == []
    assert (await w.status(job, dev)).status is S.QUEUED
    # Any message from a device marks it online (external brokers tell no presence).
    assert (await w.reload(dev)).connected


async def test_an_unexpected_version_fails_the_task_in_progress(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-u")
    job = await w.job([dev], await w.package())
    await w.step()
    inform = topic("inform", "dev-u")
    await w.bridge.on_message(dev, inform, b'{"id":1,"params":{"version":"1.0.0"}}')
    await w.bridge.on_message(dev, topic("progress", "dev-u"), b'{"id":1,"params":{"step":"40"}}')
    # Reconnecting on the old version changes nothing.
    [repush] = await w.bridge.on_message(dev, inform, b'{"id":1,"params":{"version":"1.0.0"}}')
    assert repush.topic == topic("upgrade", "dev-u")
    assert (await w.status(job, dev)).status is S.IN_PROGRESS
    assert await w.bridge.on_message(dev, inform, b'{"id":1,"params":{"version":"1.5.0"}}') == []
    ex = await w.status(job, dev)
    assert ex.status is S.FAILED
    assert ex.reason == "the device reported version 1.5.0, not 2.0.0"


async def test_package_data_of_the_control_plane(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    """`firmware_type`, and a file's own digest in `attributes["sign"]`."""
    w = await world(services, engine, clock)
    dev = await w.device("dev-d")
    pkg = await services.packages.create_package(
        w.tenant,
        name="diff",
        version="2.0.1",
        files=[
            PackageFile(
                0,
                "d.bin",
                blob_key="fw/2.0.0",
                size=len(FIRMWARE),
                md5=hashlib.md5(FIRMWARE).hexdigest(),
                attributes={"sign": "ab" * 16},
            )
        ],
        data={"firmware_type": 1, "sign_method": "MD5"},
    )
    await w.job([dev], pkg.id, data={"tags": {"a": "b"}})
    [(_, push)] = await w.step()
    data = body(push)["data"]
    assert (data["isDiff"], data["sign"], data["extData"]) == (1, "ab" * 16, {"a": "b"})


GARBAGE: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"42",
    b"{",
    b"\xff\xfe\x00",
    b'{"id":true,"params":{"version":"2.0.0"}}',
    b'{"id":1.5,"params":{"step":"50"}}',
    b'{"params":[1,2]}',
    b'{"params":{"version":{"a":1},"module":5}}',
    b'{"params":{"step":null}}',
    b'{"params":{"step":"100","module":["x"]}}',
    b'{"params":{"step":"1e9"}}',
    b'{"params":{"fileInfo":{"streamId":"x","fileId":0},"fileBlock":{"size":1,"offset":0}}}',
    b'{"params":{"fileInfo":{"streamId":1,"fileId":0},"fileBlock":{"size":999999,"offset":-5}}}',
    b'{"params":{"fileInfo":[],"fileBlock":{}}}',
    b"x" * 300_000,
]


async def test_garbage_never_escapes_the_dialect(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    dev = await w.device("dev-g")
    await w.job([dev], await w.package(), data={"download_protocol": "MQTT"})
    await w.step()
    kinds = ["inform", "progress", "ota/firmware/get", "file/download"]
    for kind in kinds:
        for payload in GARBAGE:
            out = await w.topics.handle(dev, topic(kind, "dev-g"), payload)
            for message in out:  # only the protocol's answers
                assert message.topic.endswith(("_reply", "/upgrade/a1TestPK/dev-g")), message
    ex = (await w.topics.tasks(dev))[0].execution
    assert ex.status in (S.NOTIFIED, S.IN_PROGRESS)


async def test_a_failed_verify_task_fails_the_verification(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    w = await world(services, engine, clock)
    ok, bad = await w.device("dev-ok"), await w.device("dev-bad")
    pkg = await w.package(verify=True)
    await w.job([ok, bad], pkg, is_verify=True)
    assert len(await w.step()) == 2
    await w.bridge.on_message(
        ok, topic("inform", "dev-ok"), b'{"id":1,"params":{"version":"2.0.0"}}'
    )
    await w.bridge.on_message(bad, topic("progress", "dev-bad"), b'{"id":1,"params":{"step":"-2"}}')
    await w.step()
    assert (await services.packages.get_package_by_id(pkg)).verify_state is VerifyState.FAILED

"""MQTT stream benchmark: 4 KiB blocks per second that devices receive from an AFR
stream through a broker, asking for them as FreeRTOS's OTA agent does (a `get`
for a window of blocks, the next once they all arrived), to one device and to
100 devices at once; beside a raw publish loop of same-size payloads through the
same broker to the same subscribers, in the same run.

    python bench/streams.py [--devices 100] [--blocks 1024] [--blocks-each 256]
                            [--broker mosquitto|embedded|both] [--json PATH]

Mosquitto is a private one on a free port (queue limits raised, as specs/infra.md
advises); the embedded broker is otahub's, devices on its TLS listener with
certificates from otahub's CA. otahub's side runs in this process, as
bench/notify.py does: the gateway (ExternalBroker or EmbeddedTransport) over a
SQLite registry and a filesystem blob store. The devices run in a second process
(asyncio, aiomqtt), for otahub and the raw loop alike. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import cbor2

from common import Row, add_json_arg, child_env, free_port, private_mosquitto, report
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.clock import SystemClock
from otahub.core.services import Services
from otahub.core.services.streams import StreamFile
from otahub.gateway.aws.streams_mqtt import StreamTopics
from otahub.gateway.bridge import DeviceBridge
from otahub.gateway.embedded.pki import CertificateAuthority
from otahub.gateway.embedded.transport import EmbeddedTransport
from otahub.gateway.external import IN_FLIGHT, ExternalBroker
from otahub.gateway.logins import SERVICE_USER
from otahub.store.db import Database
from otahub.store.migrate import migrate

BLOCK = 4096
WINDOW = 32  # blocks per request: 128 KiB, the most one request may return
STREAM = "fw-stream"
KEY = "streams/fw.bin"
SERVICE_PASSWORD = "bench-service"


@dataclass
class Broker:
    """Where devices connect (TLS files for the embedded broker) and how the raw
    loop's publisher logs in (on `service_port` when it differs)."""

    host: str
    port: int
    tls_dir: str | None = None
    service_login: dict[str, Any] = field(default_factory=dict)
    service_port: int | None = None


def device_login(broker: Broker) -> dict[str, Any]:
    if broker.tls_dir is None:
        return {}
    d = Path(broker.tls_dir)
    tls = ssl.create_default_context(cafile=str(d / "ca.pem"))
    tls.check_hostname = False
    tls.load_cert_chain(str(d / "dev.pem"), str(d / "dev.key"))
    return {"tls_context": tls}


async def fetch(
    broker: Broker, name: str, blocks: int, ready: asyncio.Event, go: asyncio.Event
) -> int:
    """One device: request `blocks` blocks window by window; returns blocks received."""
    prefix = f"$aws/things/{name}/streams/{STREAM}"
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=name, max_queued_incoming_messages=0,
        **device_login(broker),
    ) as client:  # fmt: skip
        await client.subscribe(f"{prefix}/data/cbor", qos=1)
        await client.subscribe(f"{prefix}/rejected/cbor", qos=1)
        ready.set()
        await go.wait()
        messages = aiomqtt_iter(client)
        got = 0
        for offset in range(0, blocks, WINDOW):
            n = min(WINDOW, blocks - offset)
            request = {"s": 1, "f": 0, "l": BLOCK, "o": offset, "n": n}
            await client.publish(f"{prefix}/get/cbor", cbor2.dumps(request), qos=1)
            wanted = set(range(offset, offset + n))
            while wanted:
                message = await asyncio.wait_for(anext(messages), 60)
                body = cbor2.loads(message.payload)
                if "o" in body:
                    raise RuntimeError(f"{name}: stream request rejected: {body}")
                wanted.discard(body["i"])
                got += 1
        return got


def aiomqtt_iter(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    return client.messages.__aiter__()


async def count(
    broker: Broker, name: str, expected: int, ready: asyncio.Event
) -> int:  # the raw loop's receiving device
    prefix = f"$aws/things/{name}/streams/{STREAM}"
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=name, max_queued_incoming_messages=0,
        **device_login(broker),
    ) as client:  # fmt: skip
        await client.subscribe(f"{prefix}/data/cbor", qos=1)
        ready.set()
        got = 0
        messages = aiomqtt_iter(client)
        while got < expected:
            await asyncio.wait_for(anext(messages), 60)
            got += 1
        return got


async def device_process(broker: Broker, mode: str, names: list[str], blocks: int) -> Any:
    """The devices, in a process of their own: `fetch` asks for blocks as the OTA
    agent does, `count` only receives (the raw loop's receivers). Returns once they
    are connected and subscribed."""
    spec = {"broker": asdict(broker), "mode": mode, "names": names, "blocks": blocks}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--device-side", json.dumps(spec),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=child_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise RuntimeError(f"the device process did not start: {line!r}")
    return proc


async def device_result(proc: Any) -> int:
    line = await asyncio.wait_for(proc.stdout.readline(), 600)
    await proc.wait()
    if not line:
        raise RuntimeError("the device process died")
    return int(json.loads(line)["got"])


async def device_side(spec: dict[str, Any]) -> None:
    broker = Broker(**spec["broker"])
    names, blocks = spec["names"], spec["blocks"]
    readies = [asyncio.Event() for _ in names]
    go = asyncio.Event()
    pairs = list(zip(names, readies, strict=True))
    if spec["mode"] == "fetch":
        tasks = [asyncio.create_task(fetch(broker, n, blocks, r, go)) for n, r in pairs]
    else:
        tasks = [asyncio.create_task(count(broker, n, blocks, r)) for n, r in pairs]
    await asyncio.gather(*(r.wait() for r in readies))
    print("ready", flush=True)
    if spec["mode"] == "fetch":
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        go.set()
    got = await asyncio.gather(*tasks)
    print(json.dumps({"got": sum(got)}), flush=True)


async def otahub_fetch(broker: Broker, names: list[str], blocks: int) -> float:
    proc = await device_process(broker, "fetch", names, blocks)
    t0 = time.perf_counter()
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    got = await device_result(proc)
    elapsed = time.perf_counter() - t0
    if got != blocks * len(names):
        raise RuntimeError(f"received {got} blocks, expected {blocks * len(names)}")
    return elapsed


async def raw_loop(broker: Broker, names: list[str], blocks: int, payload: bytes) -> float:
    """Seconds for the same number of same-size messages, published by one client to
    the devices' data topics (pipelined IN_FLIGHT at a time, as otahub's publisher
    does), until the last one arrived. On the embedded broker the publisher logs in
    on the plain listener as otahub's service identity; the devices stay on TLS."""
    proc = await device_process(broker, "count", names, blocks)
    topics = [f"$aws/things/{n}/streams/{STREAM}/data/cbor" for n in names]
    order = [t for _ in range(blocks) for t in topics]  # interleaved, as devices ask at once
    async with aiomqtt.Client(
        broker.host, broker.service_port or broker.port,
        identifier=f"bench-raw-{uuid.uuid4().hex[:6]}", max_inflight_messages=IN_FLIGHT,
        **broker.service_login,
    ) as pub:  # fmt: skip
        pub.pending_calls_threshold = 2 * IN_FLIGHT
        t0 = time.perf_counter()
        for start in range(0, len(order), IN_FLIGHT):
            await asyncio.gather(
                *(pub.publish(t, payload, qos=1) for t in order[start : start + IN_FLIGHT])
            )
        got = await device_result(proc)
        elapsed = time.perf_counter() - t0
    if got != len(order):
        raise RuntimeError(f"received {got} messages, expected {len(order)}")
    return elapsed


@contextlib.asynccontextmanager
async def gateway(
    kind: str, svc: Services, bridge: DeviceBridge, tenant: int, names: list[str], tmp: Path
) -> AsyncIterator[Broker]:
    """otahub's gateway on a broker: an ExternalBroker on a private Mosquitto, or the
    embedded broker with a TLS listener and one device certificate for the fleet."""
    if kind == "mosquitto":
        with private_mosquitto() as url:
            port = int(url.rsplit(":", 1)[1])
            ext = ExternalBroker(url, bridge, client_id="bench-otahub", share_group="bench")
            stop = asyncio.Event()
            runner = asyncio.create_task(ext.run(stop))
            await asyncio.wait_for(ext.connected.wait(), 10)
            try:
                yield Broker("127.0.0.1", port)
            finally:
                stop.set()
                await runner
        return
    ca = CertificateAuthority(tmp / "ca")
    port, tls_port = free_port(), free_port()
    transport = EmbeddedTransport(
        svc, bridge, tenant_id=tenant, host="127.0.0.1", port=port, tls_port=tls_port, ca=ca,
        service_password=SERVICE_PASSWORD, tls_names=["127.0.0.1", "localhost"],
    )  # fmt: skip
    issued = ca.issue_device("bench fleet")
    cert = await svc.certificates.register(tenant, issued.certificate_pem, active=True)
    for d in await svc.registry.get_devices(
        [x.id for x in await svc.registry.list_devices(tenant, limit=len(names))]
    ):
        await svc.certificates.attach(tenant, cert.id, d.id)
    (tmp / "dev.pem").write_text(issued.certificate_pem)
    (tmp / "dev.key").write_text(issued.private_key_pem)
    (tmp / "ca.pem").write_bytes(ca.path.read_bytes())
    await transport.start()
    try:
        yield Broker(
            "127.0.0.1", tls_port, str(tmp),
            {"username": SERVICE_USER, "password": SERVICE_PASSWORD}, port,
        )  # fmt: skip
    finally:
        await transport.stop()


async def run_on(kind: str, args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        db = Database(f"sqlite:///{tmp / 'bench.db'}")
        await migrate(db)
        svc = Services.build(db, SystemClock())
        tenant = await svc.accounts.tenant("000000000001")
        names = [f"st-{i}" for i in range(args.devices)]
        await svc.registry.create_devices_bulk(tenant.id, names)
        store = FilesystemBlobStore(tmp / "blobs")
        size = max(args.blocks, args.blocks_each) * BLOCK

        async def chunks() -> AsyncIterator[bytes]:
            yield os.urandom(size)

        await store.put_stream(KEY, chunks())
        await svc.streams.create(tenant.id, STREAM, [StreamFile(0, KEY, size, {})])

        async def read_range(key: str, start: int, length: int) -> bytes:
            return b"".join([c async for c in store.open_range(key, start, start + length)])

        bridge = DeviceBridge(svc, svc.ctx.clock, read_range, default_tenant=tenant.id)
        topics = StreamTopics(svc, read_range)
        device = (await svc.registry.list_devices(tenant.id, limit=1))[0]
        [sample] = await topics.handle(
            device,
            f"$aws/things/{device.name}/streams/{STREAM}/get/cbor",
            cbor2.dumps({"s": 1, "f": 0, "l": BLOCK, "o": 0, "n": 1}),
        )
        rows = []
        async with gateway(kind, svc, bridge, tenant.id, names, tmp) as broker:
            for label, who, blocks in (
                ("1 device", names[:1], args.blocks),
                (f"{len(names)} devices", names, args.blocks_each),
            ):
                print(f"{kind}: {label}, {blocks} blocks each ...", flush=True)
                ours = await otahub_fetch(broker, who, blocks)
                raw = await raw_loop(broker, who, blocks, sample.payload)
                total = blocks * len(who)
                rows.append(
                    Row(
                        "streams", f"4 KiB blocks to {label} ({kind})", total / ours, "blocks/s",
                        baseline=total / raw, baseline_name="raw publish loop",
                        min_value=10_000, note=f"{total:,} blocks, windows of {WINDOW}",
                    )
                )  # fmt: skip
        await db.dispose()
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--blocks", type=int, default=1024, help="blocks the single device fetches")
    ap.add_argument("--blocks-each", type=int, default=256, help="blocks each of many fetches")
    ap.add_argument("--broker", choices=["mosquitto", "embedded", "both"], default="both")
    ap.add_argument("--device-side", help=argparse.SUPPRESS)
    add_json_arg(ap)
    args = ap.parse_args()
    if args.device_side:
        await device_side(json.loads(args.device_side))
        return
    rows: list[Row] = []
    for kind in ("mosquitto", "embedded"):
        if args.broker in (kind, "both"):
            rows += await run_on(kind, args)
    report(rows, args.json)


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main())

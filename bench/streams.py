"""MQTT stream benchmark: 4 KiB blocks per second that devices receive from an AFR
stream through a broker, asking for them as FreeRTOS's OTA agent does (a `get`
for a window of blocks at QoS 0, the next once they all arrived; what a device
misses for 5 s it asks again for by bitmap), to one device and to 100 devices at
once; beside a raw publish loop of same-size payloads through the same broker to
the same subscribers, in the same run.

    python bench/streams.py [--devices 100] [--blocks 1024] [--blocks-each 256]
                            [--broker mosquitto|embedded|both] [--qos 0|1]
                            [--repeat N] [--json PATH]

Mosquitto is a private one on a free port (queue limits raised, as specs/infra.md
advises, and TCP_NODELAY on); the embedded broker is otahub's, devices on its TLS
listener with certificates from otahub's CA. otahub's side runs in this process,
as bench/notify.py does: the gateway (ExternalBroker or EmbeddedTransport) over a
SQLite registry and a filesystem blob store. The devices run in a second process
on a lean MQTT client (lean_mqtt.py: a Protocol, a callback per message), for
otahub and the raw loop alike, so that neither is measured through a slow load
generator; the raw loop's publisher is a lean client too, writing a window's
packets at a time and doing nothing else. Besides blocks/s, each run prints CPU
time per block of this process (otahub, with the embedded broker inside it; or
the raw publisher), of the device process and of Mosquitto: wall-clock figures
move with whatever else runs on the machine, CPU per block much less. Prints
figures; asserts nothing.
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

import cbor2
import psutil

from common import Row, add_json_arg, child_env, free_port, private_mosquitto, report
from lean_mqtt import LeanClient
from otahub.aws.devices.streams_mqtt import StreamTopics
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.streams import StreamFile
from otahub.domain.clock import SystemClock
from otahub.gateway.bridge import DeviceBridge
from otahub.gateway.embedded.pki import CertificateAuthority
from otahub.gateway.embedded.transport import EmbeddedTransport
from otahub.gateway.external import IN_FLIGHT, ExternalBroker
from otahub.gateway.logins import SERVICE_USER
from otahub.runtime import device_bridge
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


def device_tls(broker: Broker) -> ssl.SSLContext | None:
    if broker.tls_dir is None:
        return None
    d = Path(broker.tls_dir)
    tls = ssl.create_default_context(cafile=str(d / "ca.pem"))
    tls.check_hostname = False
    tls.load_cert_chain(str(d / "dev.pem"), str(d / "dev.key"))
    return tls


STALL = 5.0  # seconds without a block before a device asks again for what it misses


async def fetch(
    broker: Broker, name: str, blocks: int, qos: int, ready: asyncio.Event, go: asyncio.Event
) -> tuple[int, int]:
    """One device: request `blocks` blocks window by window (the next once all of
    one arrived), at `qos`, as the OTA agent does: a window it misses part of for
    STALL seconds it asks again for by bitmap. Returns (blocks received, requests
    asked again)."""
    prefix = f"$aws/things/{name}/streams/{STREAM}"
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    wanted: set[int] = set()
    state = {"offset": 0, "got": 0, "again": 0, "last": 0.0}

    def ask(offset: int, missing: set[int] | None = None) -> None:
        n = min(WINDOW, blocks - offset)
        request: dict[str, Any] = {"s": 1, "f": 0, "l": BLOCK, "o": offset, "n": n}
        if missing is None:
            wanted.update(range(offset, offset + n))
        else:  # the blocks still missing, by bitmap
            bitmap = bytearray(WINDOW // 8)
            for i in missing:
                bitmap[(i - offset) // 8] |= 1 << ((i - offset) % 8)
            request["b"] = bytes(bitmap)
        state["offset"], state["last"] = offset, loop.time()
        client.publish(f"{prefix}/get/cbor", cbor2.dumps(request), qos)

    def on_publish(topic: str, payload: bytes) -> None:
        body = cbor2.loads(payload)
        if "o" in body:
            if not done.done():
                done.set_exception(RuntimeError(f"{name}: stream request rejected: {body}"))
            return
        index = body["i"]
        if index not in wanted or len(body["p"]) != body["l"]:
            return  # a block asked again that came twice
        wanted.discard(index)
        state["got"] += 1
        state["last"] = loop.time()
        if not wanted:
            following = state["offset"] + WINDOW
            if following < blocks:
                ask(following)
            elif not done.done():
                done.set_result(None)

    client = await LeanClient.connect(
        broker.host, broker.port, name, on_publish, tls=device_tls(broker)
    )
    try:
        await client.subscribe([f"{prefix}/data/cbor", f"{prefix}/rejected/cbor"], qos)
        ready.set()
        await go.wait()
        ask(0)
        while not done.done():
            await asyncio.wait(
                [done, client.closed], timeout=1, return_when=asyncio.FIRST_COMPLETED
            )
            if client.closed.done():
                raise RuntimeError(f"{name}: connection lost") from client.closed.exception()
            if not done.done() and loop.time() - state["last"] > STALL:
                state["again"] += 1
                ask(state["offset"], set(wanted))
        done.result()
        return state["got"], state["again"]
    finally:
        client.close()


async def count(
    broker: Broker, name: str, expected: int, qos: int, ready: asyncio.Event
) -> tuple[int, int]:  # the raw loop's receiving device
    prefix = f"$aws/things/{name}/streams/{STREAM}"
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    got = 0

    def on_publish(topic: str, payload: bytes) -> None:
        nonlocal got
        cbor2.loads(payload)  # what a device does with a block, as in `fetch`
        got += 1
        if got == expected and not done.done():
            done.set_result(None)

    client = await LeanClient.connect(
        broker.host, broker.port, name, on_publish, tls=device_tls(broker)
    )
    try:
        await client.subscribe([f"{prefix}/data/cbor"], qos)
        ready.set()
        await asyncio.wait([done, client.closed], timeout=120, return_when=asyncio.FIRST_COMPLETED)
        return got, 0
    finally:
        client.close()


async def device_process(broker: Broker, mode: str, names: list[str], blocks: int, qos: int) -> Any:
    """The devices, in a process of their own, on the lean client (lean_mqtt.py):
    `fetch` asks for blocks as the OTA agent does, `count` only receives (the raw
    loop's receivers). Returns once they are connected and subscribed."""
    spec = {
        "broker": asdict(broker), "mode": mode, "names": names, "blocks": blocks, "qos": qos
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--device-side", json.dumps(spec),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=child_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise RuntimeError(f"the device process did not start: {line!r}")
    return proc


@dataclass
class Outcome:
    """One run: wall time, blocks the devices got, requests they had to repeat, and
    CPU seconds of this process (otahub or the raw publisher; with the embedded
    broker, the broker too), of the device process and of Mosquitto."""

    seconds: float
    got: int
    again: int
    cpu_here: float
    cpu_devices: float
    cpu_broker: float


def cpu_of(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


async def measure(proc: Any, start: Any, broker_proc: psutil.Process | None) -> Outcome:
    """Let the devices go (`start()` begins the run) and wait for their result."""
    me, child = psutil.Process(), psutil.Process(proc.pid)
    here0, broker0 = cpu_of(me), cpu_of(broker_proc)
    devices0 = cpu_of(child)
    t0 = time.perf_counter()
    await start()
    line = await asyncio.wait_for(proc.stdout.readline(), 600)
    elapsed = time.perf_counter() - t0
    here1, broker1 = cpu_of(me), cpu_of(broker_proc)
    if not line:
        raise RuntimeError("the device process died")
    result = json.loads(line)
    devices1 = result["cpu"]
    await proc.wait()
    return Outcome(
        elapsed, result["got"], result["again"], here1 - here0, devices1 - devices0,
        broker1 - broker0,
    )  # fmt: skip


async def device_side(spec: dict[str, Any]) -> None:
    broker = Broker(**spec["broker"])
    names, blocks, qos = spec["names"], spec["blocks"], spec["qos"]
    readies = [asyncio.Event() for _ in names]
    go = asyncio.Event()
    pairs = list(zip(names, readies, strict=True))
    if spec["mode"] == "fetch":
        tasks = [asyncio.create_task(fetch(broker, n, blocks, qos, r, go)) for n, r in pairs]
    else:
        tasks = [asyncio.create_task(count(broker, n, blocks, qos, r)) for n, r in pairs]
    all_ready = asyncio.ensure_future(asyncio.gather(*(r.wait() for r in readies)))
    await asyncio.wait([all_ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done():
            task.result()  # a device that failed to start: say why
    print("ready", flush=True)
    if spec["mode"] == "fetch":
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        go.set()
    results = await asyncio.gather(*tasks)
    print(
        json.dumps(
            {
                "got": sum(g for g, _ in results),
                "again": sum(a for _, a in results),
                "cpu": cpu_of(psutil.Process()),
            }
        ),
        flush=True,
    )


async def otahub_fetch(
    broker: Broker, names: list[str], blocks: int, qos: int, broker_proc: psutil.Process | None
) -> Outcome:
    proc = await device_process(broker, "fetch", names, blocks, qos)

    async def start() -> None:
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()

    outcome = await measure(proc, start, broker_proc)
    if outcome.got != blocks * len(names):
        raise RuntimeError(f"received {outcome.got} blocks, expected {blocks * len(names)}")
    return outcome


async def raw_loop(
    broker: Broker,
    names: list[str],
    blocks: int,
    payload: bytes,
    qos: int,
    broker_proc: psutil.Process | None,
) -> Outcome:
    """The same number of same-size messages published to the devices' data topics
    by one lean client that does nothing else (WINDOW packets a write, as otahub
    writes a window; at QoS 1 IN_FLIGHT unacknowledged at most, as otahub's
    publisher), until the last one arrived. On the embedded broker the publisher
    logs in on the plain listener as otahub's service identity; the devices stay
    on TLS."""
    proc = await device_process(broker, "count", names, blocks, qos)
    topics = [f"$aws/things/{n}/streams/{STREAM}/data/cbor" for n in names]
    order = [(t, payload) for _ in range(blocks) for t in topics]  # interleaved
    pub = await LeanClient.connect(
        broker.host, broker.service_port or broker.port, f"bench-raw-{uuid.uuid4().hex[:6]}",
        lambda topic, payload: None, **broker.service_login,
    )  # fmt: skip
    try:
        sending: list[asyncio.Task[None]] = []

        async def start() -> None:
            sending.append(asyncio.create_task(pub.publish_all(order, qos, IN_FLIGHT, WINDOW)))

        outcome = await measure(proc, start, broker_proc)
        await sending[0]
    finally:
        pub.close()
    if outcome.got != len(order):
        raise RuntimeError(f"received {outcome.got} messages, expected {len(order)}")
    return outcome


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

        bridge = device_bridge(svc, svc.ctx.clock, read_range, default_tenant=tenant.id)
        topics = StreamTopics(svc, read_range)
        device = (await svc.registry.list_devices(tenant.id, limit=1))[0]
        [sample] = await topics.handle(
            device,
            f"$aws/things/{device.name}/streams/{STREAM}/get/cbor",
            cbor2.dumps({"s": 1, "f": 0, "l": BLOCK, "o": 0, "n": 1}),
        )
        rows = []
        async with gateway(kind, svc, bridge, tenant.id, names, tmp) as broker:
            mosquitto = next(
                (p for p in psutil.Process().children() if p.name() == "mosquitto"), None
            )
            for label, who, blocks in (
                ("1 device", names[:1], args.blocks),
                (f"{len(names)} devices", names, args.blocks_each),
            ):
                total = blocks * len(who)
                runs: list[tuple[Outcome, Outcome]] = []
                for rep in range(args.repeat):
                    print(f"{kind}: {label}, {blocks} blocks each, run {rep + 1} ...", flush=True)
                    ours = await otahub_fetch(broker, who, blocks, args.qos, mosquitto)
                    raw = await raw_loop(broker, who, blocks, sample.payload, args.qos, mosquitto)
                    runs.append((ours, raw))
                    print("  " + cpu_line(ours, raw, total), flush=True)
                # the best of the runs: the others lost time to whatever else ran
                ours = min((o for o, _ in runs), key=lambda o: o.seconds)
                raw = min((r for _, r in runs), key=lambda r: r.seconds)
                rows.append(
                    Row(
                        "streams", f"4 KiB blocks to {label} ({kind}, QoS {args.qos})",
                        total / ours.seconds, "blocks/s", baseline=total / raw.seconds,
                        baseline_name="raw publish loop", min_value=10_000,
                        note=f"{total:,} blocks, windows of {WINDOW}, best of {args.repeat}; "
                        + cpu_line(ours, raw, total),
                    )
                )  # fmt: skip
        await db.dispose()
    return rows


def cpu_line(ours: Outcome, raw: Outcome, total: int) -> str:
    """CPU µs per block: otahub's process (the raw publisher's), the devices', the
    broker's (Mosquitto; the embedded broker is in otahub's process)."""

    def us(seconds: float) -> str:
        return f"{seconds / total * 1e6:.1f}"

    parts = [
        f"{ours.seconds:.2f}s vs raw {raw.seconds:.2f}s",
        f"CPU µs/block: otahub {us(ours.cpu_here)} (raw publisher {us(raw.cpu_here)})",
        f"devices {us(ours.cpu_devices)} ({us(raw.cpu_devices)})",
    ]
    if ours.cpu_broker:
        parts.append(f"mosquitto {us(ours.cpu_broker)} ({us(raw.cpu_broker)})")
    if ours.again or raw.again:
        parts.append(f"requests asked again {ours.again}")
    return ", ".join(parts)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--blocks", type=int, default=1024, help="blocks the single device fetches")
    ap.add_argument("--blocks-each", type=int, default=256, help="blocks each of many fetches")
    ap.add_argument("--broker", choices=["mosquitto", "embedded", "both"], default="both")
    ap.add_argument(
        "--qos", type=int, choices=[0, 1], default=0,
        help="QoS of the devices' requests and subscriptions (the OTA agent's: 0)",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the best is reported")
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

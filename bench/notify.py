"""Notification benchmark: 20,000 notify-next messages drained from the outbox to
subscribed devices through a broker, beside a raw publish loop of the same
messages through the same broker, in the same run.

    .venv/bin/python bench/notify.py [--devices N] [--broker mqtt://host:port] [--rounds 3]

Without --broker it starts its own Mosquitto on a free port, configured as
specs/infra.md measured it (`max_queued_messages 1000000`: the packaged default of
1000 drops most of a QoS 1 burst to a Python subscriber). One subscriber takes
`$aws/things/+/jobs/notify-next` for the whole fleet (20,000 device connections
would measure the load generator, not otahub). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from sqlalchemy import update

from common import Row, add_json_arg, report
from otahub.aws.devices.jobs_mqtt import JobsTopics
from otahub.core.engine import Engine
from otahub.core.outbox import OutboxPublisher
from otahub.core.services import JobSpec, Services
from otahub.domain.clock import SystemClock
from otahub.gateway.embedded.transport import EmbeddedTransport
from otahub.gateway.external import IN_FLIGHT, ExternalBroker
from otahub.gateway.logins import SERVICE_USER
from otahub.gateway.messages import Outgoing
from otahub.runtime import device_bridge
from otahub.store.db import Database
from otahub.store.migrate import migrate
from otahub.store.tables import outbox


async def no_blobs(key: str, start: int, length: int) -> bytes:
    raise AssertionError


async def count_arrivals(
    host: str,
    port: int,
    topic: str,
    n: int,
    ready: asyncio.Event,
    done: asyncio.Event,
    stamps: list[float],
    login: dict[str, Any],
) -> None:
    async with aiomqtt.Client(
        host,
        port,
        identifier=f"bench-sub-{uuid.uuid4().hex[:6]}",
        max_queued_incoming_messages=0,
        **login,
    ) as sub:
        await sub.subscribe(topic, qos=1)
        ready.set()
        got = 0
        async for _ in sub.messages:
            got += 1
            if got == n:
                stamps.append(time.perf_counter())
                done.set()
                return


@contextlib.contextmanager
def private_mosquitto() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            "max_queued_messages 1000000\nmax_inflight_messages 0\npersistence false\n"
        )
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.1)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--broker", default=None)
    ap.add_argument("--embedded", action="store_true", help="otahub's embedded broker")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating rounds, best of each (default 3; 1 on the embedded broker, where "
        "amqtt loses some of the raw loop's messages from the second round on)",
    )
    add_json_arg(ap)
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.embedded else 3
    if args.embedded:
        await run(args)
    elif args.broker is None:
        with private_mosquitto() as url:
            args.broker = url
            await run(args, own=True)
    else:
        await run(args)


async def run(args: argparse.Namespace, *, own: bool = False) -> None:
    if args.embedded:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            args.broker = f"mqtt://{SERVICE_USER}:bench@127.0.0.1:{s.getsockname()[1]}"
    url = urlsplit(args.broker)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    login = {"username": url.username, "password": url.password} if url.username else {}
    n = args.devices
    tag = uuid.uuid4().hex[:6]

    with tempfile.TemporaryDirectory() as d:
        db = Database(f"sqlite:///{Path(d) / 'bench.db'}")
        await migrate(db)
        svc = Services.build(db, SystemClock())
        tenant = await svc.accounts.tenant("000000000001")
        names = [f"b{tag}-{i}" for i in range(n)]
        await svc.registry.create_devices_bulk(tenant.id, names)
        await svc.registry.create_group(tenant.id, "fleet")
        await svc.registry.add_group_members_from_query(tenant.id, "fleet")
        group = await svc.registry.get_group(tenant.id, "fleet")
        await svc.jobs.create_job(
            tenant.id, JobSpec(ref="bench", kind="job", group_ids=[group.id], document="{}")
        )
        await Engine(db, svc.ctx.clock).tick()
        bridge = device_bridge(svc, svc.ctx.clock, no_blobs, default_tenant=tenant.id)

        # What the outbox sends (notify and notify-next per device), rendered once
        # beforehand, for the raw loop to publish too.
        devices = await svc.registry.list_devices(tenant.id, limit=n)
        pending = await svc.executions.pending_for_devices([x.id for x in devices])
        jobs_topics = JobsTopics(svc, svc.ctx.clock)
        raw: list[Outgoing] = []
        for dev in devices:
            raw += await jobs_topics.notifications(dev, ["released"], pending[dev.id])
        topic = "$aws/things/+/jobs/notify-next"

        transport = None
        if args.embedded:
            transport = EmbeddedTransport(
                svc,
                bridge,
                tenant_id=tenant.id,
                host=host,
                port=port,
                tls_port=None,
                ca=None,
                service_password="bench",
            )
            await transport.start()

        async def raw_round() -> float:
            """The raw publish loop through the broker."""
            ready, done, stamps = asyncio.Event(), asyncio.Event(), []
            sub = asyncio.create_task(
                count_arrivals(host, port, topic, n, ready, done, stamps, login)
            )
            await ready.wait()
            async with aiomqtt.Client(
                host,
                port,
                identifier=f"bench-pub-{uuid.uuid4().hex[:6]}",
                max_inflight_messages=IN_FLIGHT,
                **login,
            ) as pub:
                pub.pending_calls_threshold = 2 * IN_FLIGHT
                t0 = time.perf_counter()
                for start in range(0, len(raw), IN_FLIGHT):  # the same pipelining as otahub's
                    window = raw[start : start + IN_FLIGHT]
                    await asyncio.gather(*(pub.publish(m.topic, m.payload, qos=1) for m in window))
                await asyncio.wait_for(done.wait(), 300)
            await sub
            return stamps[0] - t0

        # otahub: drain the outbox through the broker client, or in-process into the
        # embedded broker.
        stop = asyncio.Event()
        runner = None
        sink: Any
        if transport is not None:
            sink = transport.sink
        else:
            ext = ExternalBroker(
                args.broker, bridge, client_id=f"bench-otahub-{tag}", share_group=f"b{tag}"
            )
            runner = asyncio.create_task(ext.run(stop))
            await asyncio.wait_for(ext.connected.wait(), 10)
            sink = ext.sink

        async def ours_round() -> float:
            async with db.transaction() as conn:  # every round sends the same rows
                await conn.execute(update(outbox).values(sent_at=None, claimed_until=None))
            ready, done, stamps = asyncio.Event(), asyncio.Event(), []
            sub = asyncio.create_task(
                count_arrivals(host, port, topic, n, ready, done, stamps, login)
            )
            await ready.wait()
            t0 = time.perf_counter()
            await OutboxPublisher(db, svc.ctx.clock, sink, batch=5000).drain()
            await asyncio.wait_for(done.wait(), 300)
            await sub
            return stamps[0] - t0

        # Rounds alternate, best of each: a broker's throughput drifts between
        # back-to-back runs of the same loop by up to half.
        raw_times: list[float] = []
        ours_times: list[float] = []
        for _ in range(args.rounds):
            raw_times.append(await raw_round())
            ours_times.append(await ours_round())
        raw_s, ours_s = min(raw_times), min(ours_times)
        stop.set()
        if runner is not None:
            await runner
        if transport is not None:
            await transport.stop()
        await db.dispose()

    print()
    where = "otahub's embedded broker" if args.embedded else args.broker
    print(f"{n:,} notify-next messages to subscribed devices through {where} (QoS 1)")
    print(f"{'raw publish loop':<28}{raw_s:>8.2f}s{n / raw_s:>12,.0f} msg/s")
    print(f"{'otahub outbox -> broker':<28}{ours_s:>8.2f}s{n / ours_s:>12,.0f} msg/s")
    print(f"{'ratio (otahub / raw)':<28}{raw_s / ours_s:>9.2f}x   (target >= 0.7x)")
    print(
        f"both send notify and notify-next to each device: {2 * n:,} messages; the clock "
        "stops when the last notify-next arrives"
    )
    broker = "embedded broker" if args.embedded else "Mosquitto" if own else args.broker
    report(
        [
            Row("notify", f"{n:,} notifications ({broker})", n / ours_s, "msg/s",
                baseline=n / raw_s, baseline_name="raw publish loop", min_ratio=0.7,
                note="QoS 1; notify and notify-next per device, clocked on notify-next"
                     + (f"; best of {args.rounds} alternating rounds" if args.rounds > 1 else "")),
        ],
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())

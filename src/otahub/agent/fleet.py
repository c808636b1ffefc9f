"""A fleet of simulated AWS devices in one process: `await run_fleet(FleetConfig(...))`.

Each device is an `AwsAgent` with no disk (images are hashed, not kept) running as
an asyncio task. Over MQTT, devices share connections to an open broker such as
Mosquitto (`devices_per_connection` per connection, each device subscribing to its
own topics), so 10,000 devices need about a hundred sockets, not 10,000 clients.
Over HTTP they poll the `iot-jobs-data` plane and download through one connection
pool. Faults are drawn once per run from a seeded generator, so the count of
devices that fail, reject, hang, drop their link or crawl is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiomqtt
import boto3
import httpx

from otahub.agent.aws import AwsAgent, AwsAgentConfig, Outcome, Rehearsal
from otahub.agent.aws_http import AsyncAwsClient, GatedTransport, StreamTransport
from otahub.agent.fleet_setup import (
    Account,
    Firmware,
    create_rollout,
    register_things,
    server_counts,
)
from otahub.agent.http_download import StreamDownloader
from otahub.agent.jobs import HttpJobs, JobsChannel, MqttJobs
from otahub.agent.mqtt_rpc import DeviceLink, SharedConnection

Transport = Literal["mqtt", "http"]

# Device states, in the order a device goes through them (the live display's rows).
STATES = (
    "offline",
    "idle",
    "received",
    "download",
    "disconnected",
    "install",
    "SUCCEEDED",
    "FAILED",
    "REJECTED",
    "HUNG",
    "TIMED_OUT",
    "ERROR",
)
_ALIASES = {"resumed": "download", "hung": "HUNG"}
# aiomqtt warns whenever more than ten publishes wait: many devices per connection
# always do, by design.
_QUIET = logging.getLogger("otahub.fleet.mqtt")
_QUIET.setLevel(logging.ERROR)
FAULTS = ("fail", "reject", "hang", "disconnect", "throttle")


@dataclass(frozen=True)
class Faults:
    """Shares of the fleet (0..1) that misbehave; the five groups are disjoint."""

    fail: float = 0.0  # the self-test fails: roll back, report FAILED
    reject: float = 0.0  # refuse the job: REJECTED
    hang: float = 0.0  # report IN_PROGRESS, then go silent (TIMED_OUT with a timeout)
    disconnect: float = 0.0  # the link drops mid-download; resume, then SUCCEEDED
    throttle: float = 0.0  # download at `throttle_kbps`, then SUCCEEDED
    throttle_kbps: int = 64

    def counts(self, devices: int) -> dict[str, int]:
        counts = {f: round(getattr(self, f) * devices) for f in FAULTS}
        if sum(counts.values()) > devices:
            raise ValueError("the fault shares add up to more than the fleet")
        return counts


def assign_faults(devices: int, faults: Faults, seed: int) -> list[str | None]:
    """Which fault each device has: exact counts, seeded positions."""
    order = list(range(devices))
    random.Random(seed).shuffle(order)
    out: list[str | None] = [None] * devices
    at = 0
    for fault, n in faults.counts(devices).items():
        for i in order[at : at + n]:
            out[i] = fault
        at += n
    return out


def expected_states(devices: int, faults: Faults, *, wait_timed_out: bool) -> dict[str, int]:
    """The final device states a run with these faults should end in."""
    c = faults.counts(devices)
    out = {
        "SUCCEEDED": devices - c["fail"] - c["reject"] - c["hang"],
        "FAILED": c["fail"],
        "REJECTED": c["reject"],
        "TIMED_OUT" if wait_timed_out else "HUNG": c["hang"],
    }
    return {k: v for k, v in out.items() if v}


@dataclass
class FleetConfig:
    devices: int
    access_key: str
    secret_key: str
    endpoint: str = "http://127.0.0.1:8080"
    region: str = "us-east-1"
    transport: Transport = "mqtt"  # how devices talk to the Jobs service
    files: Transport | None = None  # how they download (default: as `transport`)
    broker: str = "mqtt://127.0.0.1:1883"  # an open broker otahub serves devices through
    devices_per_connection: int = 100
    http_connections: int = 16  # one server process gains nothing from more
    poll_interval: float = 5.0  # HTTP jobs plane: seconds between a device's polls
    prefix: str = field(default_factory=lambda: f"sim-{uuid.uuid4().hex[:6]}")
    faults: Faults = field(default_factory=Faults)
    seed: int = 1
    firmware_size: int = 64 * 1024
    register: bool = True  # create the things and their group
    rollout: bool = True  # create the OTA update; else take jobs others create
    max_per_minute: int | None = None
    in_progress_timeout_minutes: int | None = None  # needed for hung devices to time out
    wait_timed_out: bool = False  # hung devices wait until the server times them out
    deadline: float = 600.0  # seconds for the whole run
    reconnect_after: float = 0.5  # seconds a dropped link stays down
    # How long a device waits for an answer before asking again (twice at most):
    # short waits against a loaded server only add retries to its queue.
    request_timeout: float = 60.0
    idle_recheck: float = 600.0  # MQTT: seconds between looks for a job without notify-next
    concurrency: int = 64  # API calls in flight while registering

    @property
    def group(self) -> str:
        return f"{self.prefix}-fleet"

    def thing(self, i: int) -> str:
        return f"{self.prefix}-{i:06d}"


@dataclass(frozen=True)
class Snapshot:
    phase: str
    elapsed: float
    states: dict[str, int]
    registered: int
    devices: int


@dataclass
class FleetReport:
    devices: int
    transport: str
    files: str
    job_id: str | None
    states: dict[str, int]  # final device-side state -> count
    faults: dict[str, int]  # injected fault -> count
    resumed: int  # downloads that resumed after a dropped link
    register_seconds: float
    connect_seconds: float
    seconds_to_done: float  # rollout created -> last device done (see `complete`)
    update_seconds: list[float]  # per device that reported an outcome: job received -> report
    server_states: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # the simulator's own CPU time: what one process costs
    complete: bool = True  # False: the deadline came before every device was done
    errors: list[str] = field(default_factory=list)
    dialect: str = "aws"  # or "aliyun" (otahub.agent.aliyun_fleet): one report shape
    # aliyun: seconds from the last device report until the server had settled every
    # task (devices' MQTT reports are not answered); None: not measured (aws) or never
    settle_seconds: float | None = None

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of the update times."""
        if not self.update_seconds:
            return None
        xs = sorted(self.update_seconds)
        return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


class Fleet:
    def __init__(self, config: FleetConfig) -> None:
        self.cfg = config
        self.files: Transport = config.files or config.transport
        self.state = ["offline"] * config.devices
        self.counts: Counter[str] = Counter({"offline": config.devices})
        self.received_at: list[float | None] = [None] * config.devices
        self.done_at: list[float | None] = [None] * config.devices
        self.resumed = 0
        self.phase = "starting"
        self.registered = 0
        self.errors: Counter[str] = Counter()
        self.job_id: str | None = None
        self._all_done = asyncio.Event()
        self._terminal = {"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "ERROR"}
        if not config.wait_timed_out:
            self._terminal.add("HUNG")
        self._open = config.devices
        self.downloader: StreamDownloader | None = None
        self.jobs_data: AsyncAwsClient | None = None

    def snapshot(self, started: float) -> Snapshot:
        return Snapshot(
            self.phase,
            time.monotonic() - started,
            dict(self.counts),
            self.registered,
            self.cfg.devices,
        )

    def _set(self, i: int, state: str) -> None:
        if state == "resumed":
            self.resumed += 1
        state = _ALIASES.get(state, state)
        old = self.state[i]
        if old == state or old in self._terminal:
            return
        self.state[i] = state
        self.counts[old] -= 1
        self.counts[state] += 1
        now = time.monotonic()
        if state == "received":
            self.received_at[i] = now
        if state in self._terminal:
            self.done_at[i] = now
            self._open -= 1
            if self._open == 0:
                self._all_done.set()

    async def run(self, observer: Callable[[Snapshot], None] | None) -> FleetReport:
        cfg = self.cfg
        started = time.monotonic()
        cpu_at_start = time.process_time()
        ticker = asyncio.create_task(self._tick(observer, started)) if observer else None
        account = Account(cfg.endpoint, cfg.access_key, cfg.secret_key, cfg.region)
        transport = GatedTransport(cfg.http_connections)
        timeout = httpx.Timeout(60.0, pool=None)
        try:
            async with (
                httpx.AsyncClient(transport=transport, timeout=timeout) as http,
                contextlib.AsyncExitStack() as stack,
            ):
                self.downloader = StreamDownloader(cfg.http_connections, fallback=http)
                stack.push_async_callback(self.downloader.aclose)
                if urlsplit(cfg.endpoint).scheme == "http":
                    # The devices' Jobs calls: one client, on a lean transport.
                    device_transport = StreamTransport(cfg.http_connections)
                    device_http = await stack.enter_async_context(
                        httpx.AsyncClient(transport=device_transport, timeout=timeout)
                    )
                else:
                    device_http = http
                self.jobs_data = account.client(device_http, "iot-jobs-data")
                iot = account.client(http, "iot")
                names = [cfg.thing(i) for i in range(cfg.devices)]
                self.phase = "registering"
                t0 = time.monotonic()
                if cfg.register:
                    await register_things(
                        iot, names, cfg.group, concurrency=cfg.concurrency, progress=self._reg
                    )
                register_s = time.monotonic() - t0

                self.phase = "connecting"
                t0 = time.monotonic()
                links = await self._connect(stack, names)
                faults = assign_faults(cfg.devices, cfg.faults, cfg.seed)
                firmware = Firmware.random(cfg.firmware_size)
                agents = [
                    self._agent(i, names[i], links[i] if links else None, faults[i], http)
                    for i in range(cfg.devices)
                ]
                await asyncio.gather(*(self._start(i, a) for i, a in enumerate(agents)))
                connect_s = time.monotonic() - t0

                self.phase = "rolling out"
                rollout_at = time.monotonic()
                if cfg.rollout:
                    self.job_id = await create_rollout(
                        iot,
                        self._s3(account),
                        cfg.group,
                        firmware,
                        protocols=["MQTT"] if self.files == "mqtt" else ["HTTP"],
                        max_per_minute=cfg.max_per_minute,
                        in_progress_timeout_minutes=cfg.in_progress_timeout_minutes,
                    )
                rng = random.Random(cfg.seed)
                tasks = [
                    asyncio.create_task(self._device(i, a, rng.random()))
                    for i, a in enumerate(agents)
                ]
                left = cfg.deadline - (time.monotonic() - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_done.wait(), max(1.0, left))
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                last = max((d for d in self.done_at if d is not None), default=rollout_at)
                self.phase = "counting"
                server = await server_counts(iot, self.job_id) if self.job_id else {}
                self.phase = "done"
        finally:
            await self._stop_ticker(ticker, observer, started)
        return self._report(
            cfg.transport,
            register_s=register_s,
            connect_s=connect_s,
            seconds_to_done=last - rollout_at,
            server=server,
            cpu_seconds=time.process_time() - cpu_at_start,
        )

    async def _stop_ticker(
        self,
        ticker: asyncio.Task[None] | None,
        observer: Callable[[Snapshot], None] | None,
        started: float,
    ) -> None:
        """Stop the progress ticker and show the last snapshot."""
        if ticker is None:
            return
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if observer is not None:
            observer(self.snapshot(started))

    def _report(
        self,
        transport: str,
        *,
        register_s: float,
        connect_s: float,
        seconds_to_done: float,
        server: dict[str, int],
        cpu_seconds: float,
        **more: Any,
    ) -> FleetReport:
        """What the run ended with, by device state and on the server."""
        cfg = self.cfg
        return FleetReport(
            devices=cfg.devices,
            transport=transport,
            files=self.files,
            job_id=self.job_id,
            states={s: n for s, n in self.counts.items() if n},
            faults=cfg.faults.counts(cfg.devices),
            resumed=self.resumed,
            register_seconds=register_s,
            connect_seconds=connect_s,
            seconds_to_done=seconds_to_done,
            update_seconds=[
                d - r
                for r, d, s in zip(self.received_at, self.done_at, self.state, strict=True)
                if r is not None and d is not None and s not in ("HUNG", "TIMED_OUT")
            ],
            server_states=server,
            cpu_seconds=cpu_seconds,
            complete=self._all_done.is_set(),
            errors=[f"{n}x {e}" for e, n in self.errors.most_common(5)],
            **more,
        )

    def _reg(self, done: int) -> None:
        self.registered = done

    def _s3(self, account: Account) -> object:
        return boto3.client(
            "s3",
            endpoint_url=account.endpoint,
            region_name=account.region,
            aws_access_key_id=account.access_key,
            aws_secret_access_key=account.secret_key,
        )

    async def _tick(self, observer: Callable[[Snapshot], None], started: float) -> None:
        while True:
            observer(self.snapshot(started))
            await asyncio.sleep(0.25)

    async def _connect(
        self, stack: contextlib.AsyncExitStack, names: list[str]
    ) -> list[DeviceLink] | None:
        cfg = self.cfg
        if cfg.transport != "mqtt" and self.files != "mqtt":
            return None
        url = urlsplit(cfg.broker)
        per = max(1, cfg.devices_per_connection)
        count = (len(names) + per - 1) // per
        connections: list[SharedConnection] = []

        async def open_one(k: int) -> SharedConnection:
            client = aiomqtt.Client(
                url.hostname or "127.0.0.1",
                url.port or 1883,
                identifier=f"{cfg.prefix}-conn-{k}",
                username=url.username,
                password=url.password,
                max_inflight_messages=200,
                keepalive=60,
                logger=_QUIET,
            )
            await stack.enter_async_context(client)
            conn = SharedConnection(client)
            conn.start()
            stack.push_async_callback(conn.stop)
            return conn

        connections = list(await asyncio.gather(*(open_one(k) for k in range(count))))
        return [connections[i // per].link(name) for i, name in enumerate(names)]

    def _agent(
        self,
        i: int,
        name: str,
        link: DeviceLink | None,
        fault: str | None,
        http: httpx.AsyncClient,
    ) -> AwsAgent:
        cfg = self.cfg
        rng = random.Random(cfg.seed * 1_000_003 + i)
        rehearsal = Rehearsal(
            reject=fault == "reject",
            hang=fault == "hang",
            interrupt_at=rng.uniform(0.2, 0.8) if fault == "disconnect" else None,
            reconnect_after=cfg.reconnect_after,
            throttle_bps=cfg.faults.throttle_kbps * 1000 if fault == "throttle" else None,
        )
        ok = fault != "fail"
        config = AwsAgentConfig(
            thing=name,
            workdir=None,
            prefer=("MQTT",) if self.files == "mqtt" else ("HTTP",),
            timeout=cfg.request_timeout,
            self_test=lambda image: ok,
            rehearsal=rehearsal,
            on_state=lambda state: self._set(i, state),
        )
        jobs: JobsChannel | None = None
        if cfg.transport == "mqtt" and link is not None:
            jobs = MqttJobs(link, name, timeout=cfg.request_timeout, use_notified=True)
        elif cfg.transport == "http":
            assert self.jobs_data is not None
            jobs = HttpJobs(self.jobs_data, name, poll_interval=cfg.poll_interval, start_next=True)
        return AwsAgent(link, config, http, jobs=jobs, downloader=self.downloader)

    async def _start(self, i: int, agent: AwsAgent) -> None:
        try:
            await agent.start()
            self._set(i, "idle")
        except Exception as exc:
            self._error(i, exc)

    def _error(self, i: int, exc: BaseException) -> None:
        self.errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
        self._set(i, "ERROR")

    async def _device(self, i: int, agent: AwsAgent, offset: float) -> None:
        if self.state[i] == "ERROR":
            return
        try:
            if self.cfg.transport == "http":
                # Spread the polls over the interval instead of all at once.
                await asyncio.sleep(offset * self.cfg.poll_interval)
            jitter = 0.5 + offset  # spreads the idle looks of a fleet that started at once
            if self.cfg.transport == "mqtt" and self.cfg.rollout:
                # The rollout is created after every device is listening: notify-next
                # announces it, and 10,000 early looks would only queue at the server.
                await agent.jobs.wait_for_work(self.cfg.idle_recheck * jitter)
            outcome: Outcome | None = None
            while outcome is None:
                outcome = await agent.process_next()
                if outcome is not None and self.job_id and outcome.job_id != self.job_id:
                    outcome = None  # someone else's job: taken care of, not ours to count
                if outcome is None:
                    # Over MQTT notify-next wakes the device (a rare look stays, in case
                    # one is lost: thousands of idle devices asking often would be a
                    # load of their own); over HTTP the device polls at its interval.
                    await agent.jobs.wait_for_work(self.cfg.idle_recheck * jitter)
            if outcome.status == "HUNG" and self.cfg.wait_timed_out:
                await self._await_time_out(i, agent, outcome.job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error(i, exc)

    async def _await_time_out(self, i: int, agent: AwsAgent, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.cfg.poll_interval)
            execution = await agent.jobs.describe(job_id)
            if execution is not None and execution.get("status") == "TIMED_OUT":
                self._set(i, "TIMED_OUT")
                return


async def run_fleet(
    config: FleetConfig, observer: Callable[[Snapshot], None] | None = None
) -> FleetReport:
    """Register, connect and update a simulated fleet; `observer` is called four
    times a second with the devices' states."""
    return await Fleet(config).run(observer)

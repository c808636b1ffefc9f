"""`otahub device run`: the reference device as a command, a starting point for real
device code and a way to rehearse an update (and a rollback) by hand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import click
import httpx

from otahub.agent.aws import AwsAgent, AwsAgentConfig, Outcome
from otahub.agent.aws_http import AsyncAwsClient
from otahub.agent.jobs import HttpJobs, JobsChannel


@dataclass(frozen=True)
class DeviceOptions:
    dialect: str
    thing: str
    endpoint: str
    broker: str | None
    client_id: str | None
    cert: Path | None
    key: Path | None
    ca: Path | None
    jobs: str
    files: tuple[str, ...]
    slot_dir: Path
    trust: Path | None
    fail_self_test: bool
    once: bool
    wait: float
    poll_interval: float
    region: str
    access_key: str | None
    secret_key: str | None


@click.group()
def device() -> None:
    """Run a reference device."""


@device.command()
@click.option("--dialect", type=click.Choice(["aws", "aliyun"]), default="aws", show_default=True)
@click.option(
    "--thing",
    required=True,
    help="AWS: the thing name; Alibaba: ProductKey/DeviceName (secret in OTAHUB_DEVICE_SECRET)",
)
@click.option(
    "--endpoint",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="otahub's HTTP base: the iot-jobs-data plane (with --jobs http)",
)
@click.option(
    "--broker",
    default=None,
    help="mqtts://host:8883 (the embedded broker; needs --cert/--key/--ca) "
    "or mqtt://host:1883 (an external broker such as Mosquitto)",
)
@click.option("--client-id", default=None, help="MQTT client id (default: the thing name)")
@click.option("--cert", type=click.Path(exists=True, path_type=Path), help="device certificate")
@click.option("--key", type=click.Path(exists=True, path_type=Path), help="device private key")
@click.option("--ca", type=click.Path(exists=True, path_type=Path), help="CA of the broker")
@click.option("--jobs", type=click.Choice(["mqtt", "http"]), default="mqtt", show_default=True)
@click.option(
    "--files",
    default="mqtt,http",
    show_default=True,
    help="file protocols in order of preference, among those the job offers",
)
@click.option(
    "--slot-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the device's storage: DIR/slots (A and B), DIR/download",
)
@click.option(
    "--trust",
    type=click.Path(exists=True, path_type=Path),
    help="code-signing certificate (PEM) images must be signed with; none: no check",
)
@click.option("--fail-self-test", is_flag=True, help="fail the self-test: rehearse a rollback")
@click.option("--once", is_flag=True, help="exit after one job; status 0 only if it SUCCEEDED")
@click.option(
    "--wait", default=60.0, show_default=True, help="with --once: seconds to wait for a job"
)
@click.option("--poll-interval", default=5.0, show_default=True, help="with --jobs http")
@click.option("--region", envvar="AWS_REGION", default="us-east-1", show_default=True)
@click.option("--access-key", envvar="AWS_ACCESS_KEY_ID", default=None)
@click.option("--secret-key", envvar="AWS_SECRET_ACCESS_KEY", default=None)
def run(**kw: Any) -> None:
    """Take OTA jobs: download, verify, install into the inactive slot, self-test,
    report. Prints one JSON line per job."""
    kw["files"] = tuple(p.strip().upper() for p in kw["files"].split(",") if p.strip())
    opts = DeviceOptions(**kw)
    if opts.dialect == "aliyun":
        run_aliyun(opts)
        return
    if opts.jobs == "mqtt" and not opts.broker:
        raise click.UsageError("--jobs mqtt needs --broker")
    if opts.jobs == "http" and not (opts.access_key and opts.secret_key):
        raise click.UsageError("--jobs http needs --access-key and --secret-key (SigV4)")
    outcomes = asyncio.run(run_aws(opts))
    if opts.once and (not outcomes or outcomes[0].status != "SUCCEEDED"):
        sys.exit(1)


def run_aliyun(opts: DeviceOptions) -> None:
    # The Alibaba reference device lives in its own module; imported only when asked.
    import importlib

    try:
        aliyun = importlib.import_module("otahub.agent.aliyun")
    except ImportError:
        raise click.UsageError("the Alibaba reference device is not in this build") from None
    runner = getattr(aliyun, "run_device", None)
    if runner is None:
        raise click.UsageError("otahub.agent.aliyun has no run_device(options)")
    runner(opts)


def mqtt_client(opts: DeviceOptions) -> aiomqtt.Client:
    assert opts.broker is not None
    url = urlsplit(opts.broker)
    tls = None
    if url.scheme == "mqtts":
        tls = aiomqtt.TLSParameters(
            ca_certs=str(opts.ca) if opts.ca else None,
            certfile=str(opts.cert) if opts.cert else None,
            keyfile=str(opts.key) if opts.key else None,
        )
    return aiomqtt.Client(
        url.hostname or "127.0.0.1",
        url.port or (8883 if tls else 1883),
        identifier=opts.client_id or opts.thing,
        username=url.username,
        password=url.password,
        tls_params=tls,
        keepalive=30,
    )


async def run_aws(opts: DeviceOptions) -> list[Outcome]:
    trusted = opts.trust.read_text() if opts.trust else None
    fail = opts.fail_self_test
    config = AwsAgentConfig(
        thing=opts.thing,
        workdir=opts.slot_dir,
        trusted_certificate=trusted,
        prefer=opts.files,
        self_test=(lambda image: False) if fail else (lambda image: image.stat().st_size > 0),
        on_state=lambda state: click.echo(f"{opts.thing}: {state}", err=True),
    )
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        mqtt = await stack.enter_async_context(mqtt_client(opts)) if opts.broker else None
        jobs: JobsChannel | None = None
        if opts.jobs == "http":
            assert opts.access_key and opts.secret_key
            client = AsyncAwsClient(
                http,
                opts.endpoint,
                "iot-jobs-data",
                region=opts.region,
                access_key=opts.access_key,
                secret_key=opts.secret_key,
            )
            jobs = HttpJobs(client, opts.thing, poll_interval=opts.poll_interval)
        agent = AwsAgent(mqtt, config, http, jobs=jobs)
        await agent.start()
        try:
            return await _take_jobs(agent, opts)
        finally:
            await agent.stop()
    return []


async def _take_jobs(agent: AwsAgent, opts: DeviceOptions) -> list[Outcome]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    done: list[Outcome] = []
    deadline = loop.time() + opts.wait
    while not stop.is_set():
        outcome = await agent.process_next()
        if outcome is not None:
            done.append(outcome)
            click.echo(json.dumps(outcome.__dict__), nl=True)
            if opts.once:
                break
            continue
        if opts.once and loop.time() >= deadline:
            click.echo(f"{opts.thing}: no job within {opts.wait:g} s", err=True)
            break
        left = deadline - loop.time() if opts.once else 3600.0
        waiter = asyncio.create_task(agent.jobs.wait_for_work(max(0.1, left)))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for t in (waiter, stopper):
            t.cancel()
    return done

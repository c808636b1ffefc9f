"""`otahub simulate`: a simulated fleet against a running otahub, with live progress
and a summary. The work is done by `otahub.agent.fleet`; this is its terminal face."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import click
import uvloop
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from otahub.agent.aliyun_fleet import AliyunFleetConfig, run_aliyun_fleet
from otahub.agent.fleet import STATES, Faults, FleetConfig, FleetReport, Snapshot, run_fleet


def share(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 <= value <= 1:
        raise click.BadParameter("a share between 0 and 1")
    return value


ALIYUN_TRANSPORT = (
    "--transport http is AWS only: Alibaba devices take their OTA tasks over MQTT "
    "(--files http|mqtt picks how they download)"
)


@click.command()
@click.option("--devices", "-n", default=100, show_default=True, help="fleet size")
@click.option(
    "--dialect",
    type=click.Choice(["aws", "aliyun"]),
    default="aws",
    show_default=True,
    help="AWS IoT (things, Jobs, CreateOTAUpdate) or Alibaba IoT (products, OTA tasks)",
)
@click.option(
    "--transport",
    type=click.Choice(["mqtt", "http"]),
    default="mqtt",
    show_default=True,
    help="how devices take jobs (aws); aliyun: mqtt only",
)
@click.option(
    "--files",
    type=click.Choice(["mqtt", "http"]),
    default=None,
    help="file download protocol (default: aws as --transport, aliyun http, i.e. HTTPS)",
)
@click.option("--endpoint", default="http://127.0.0.1:8080", show_default=True)
@click.option(
    "--broker",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    help="aws: the open broker otahub serves devices through (otahub serve --broker-url); "
    "aliyun: the broker devices log in to (otahub's embedded one, or that open broker)",
)
@click.option(
    "--region",
    envvar=["AWS_REGION", "ALIBABA_CLOUD_REGION_ID"],
    default=None,
    help="default: us-east-1 (aws), cn-shanghai (aliyun)",
)
@click.option(
    "--access-key",
    envvar=["OTAHUB_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID"],
    required=True,
)
@click.option(
    "--secret-key",
    envvar=["OTAHUB_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
    required=True,
)
@click.option("--prefix", default=None, help="thing/device name prefix (default: a fresh one)")
@click.option(
    "--product-key",
    default=None,
    help="aliyun: an existing product for the devices (default: a new one); the job then "
    "targets the simulated devices by name",
)
@click.option("--fail", default=0.0, callback=share, help="share whose self-test fails")
@click.option(
    "--reject",
    default=0.0,
    callback=share,
    help="share that rejects the job (aliyun: declines it with progress -1, FAILED)",
)
@click.option("--hang", default=0.0, callback=share, help="share that goes silent mid-update")
@click.option("--disconnect", default=0.0, callback=share, help="share that drops mid-download")
@click.option("--throttle", default=0.0, callback=share, help="share on a slow link")
@click.option("--throttle-kbps", default=64, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--firmware-size", default=64 * 1024, show_default=True, help="bytes")
@click.option(
    "--devices-per-connection",
    default=100,
    show_default=True,
    help="aws over an open broker; an aliyun device always logs in on its own connection",
)
@click.option("--http-connections", default=16, show_default=True)
@click.option(
    "--poll-interval",
    default=5.0,
    show_default=True,
    help="HTTP jobs plane (aws), or looks for timed-out tasks (aliyun), seconds",
)
@click.option("--max-per-minute", default=None, type=int, help="rollout rate")
@click.option("--timeout-minutes", default=None, type=int, help="in-progress timeout of the job")
@click.option(
    "--wait-timed-out",
    is_flag=True,
    help="hung devices wait for the server to time them out (TIMED_OUT; aliyun: FAILED)",
)
@click.option("--no-register", is_flag=True, help="the things/devices already exist")
@click.option("--no-rollout", is_flag=True, help="take jobs created by someone else")
@click.option("--deadline", default=600.0, show_default=True, help="seconds for the whole run")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def simulate(**kw: Any) -> None:
    """Simulate a fleet: register, connect, take an OTA update, report."""
    aliyun = kw["dialect"] == "aliyun"
    if aliyun and kw["transport"] == "http":
        raise click.UsageError(ALIYUN_TRANSPORT)
    if not aliyun and kw["product_key"]:
        raise click.UsageError("--product-key is for --dialect aliyun")
    if aliyun and kw["no_register"] and not kw["product_key"]:
        raise click.UsageError("--no-register with --dialect aliyun needs --product-key")
    faults = Faults(
        fail=kw["fail"],
        reject=kw["reject"],
        hang=kw["hang"],
        disconnect=kw["disconnect"],
        throttle=kw["throttle"],
        throttle_kbps=kw["throttle_kbps"],
    )
    common: dict[str, Any] = dict(
        devices=kw["devices"],
        access_key=kw["access_key"],
        secret_key=kw["secret_key"],
        endpoint=kw["endpoint"],
        transport=kw["transport"],
        files=kw["files"],
        broker=kw["broker"],
        devices_per_connection=kw["devices_per_connection"],
        http_connections=kw["http_connections"],
        poll_interval=kw["poll_interval"],
        faults=faults,
        seed=kw["seed"],
        firmware_size=kw["firmware_size"],
        register=not kw["no_register"],
        rollout=not kw["no_rollout"],
        max_per_minute=kw["max_per_minute"],
        in_progress_timeout_minutes=kw["timeout_minutes"],
        wait_timed_out=kw["wait_timed_out"],
        deadline=kw["deadline"],
    )
    config: FleetConfig
    if aliyun:
        config = AliyunFleetConfig(
            **common, region=kw["region"] or "cn-shanghai", product_key=kw["product_key"]
        )
    else:
        config = FleetConfig(**common, region=kw["region"] or "us-east-1")
    if kw["prefix"]:
        config.prefix = kw["prefix"]
    console = Console(stderr=True)
    report = uvloop.run(_run(config, console))
    if kw["as_json"]:
        out = asdict(report)
        out["update_seconds"] = {
            "p50": report.percentile(50),
            "p90": report.percentile(90),
            "p99": report.percentile(99),
        }
        click.echo(json.dumps(out, indent=2))
    else:
        Console().print(summary(report))


def _runner(
    config: FleetConfig,
) -> Callable[[Callable[[Snapshot], None]], Awaitable[FleetReport]]:
    if isinstance(config, AliyunFleetConfig):
        return lambda show: run_aliyun_fleet(config, show)
    return lambda show: run_fleet(config, show)


async def _run(config: FleetConfig, console: Console) -> FleetReport:
    run = _runner(config)
    if not console.is_terminal:
        return await run(_log_lines(console))
    bars = Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
    )
    rows = {s: bars.add_task(s, total=config.devices, visible=False) for s in STATES}
    header = Progress(TextColumn("{task.description}"), console=console)
    line = header.add_task("")

    def show(snap: Snapshot) -> None:
        header.update(line, description=_headline(snap))
        for state, task in rows.items():
            n = snap.states.get(state, 0)
            bars.update(task, completed=n, visible=n > 0 or bars.tasks[task].visible)

    with Live(Group(header, bars), console=console, refresh_per_second=4, transient=False):
        report = await run(show)
    console.line()
    return report


def _headline(snap: Snapshot) -> str:
    registered = f"  registered {snap.registered}/{snap.devices}" if snap.registered else ""
    return f"{snap.phase}  {snap.elapsed:6.1f} s{registered}"


def _log_lines(console: Console) -> Callable[[Snapshot], None]:
    """Not a terminal (a log file, CI): a plain line every five seconds instead."""
    last = -5.0

    def show(snap: Snapshot) -> None:
        nonlocal last
        if snap.elapsed - last < 5 and snap.phase != "done":
            return
        last = snap.elapsed
        states = " ".join(f"{s}={snap.states[s]}" for s in STATES if snap.states.get(s))
        console.print(f"{_headline(snap)}  {states}", highlight=False, soft_wrap=True)

    return show


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def summary(report: FleetReport) -> Table:
    if report.dialect == "aliyun":
        title = f"{report.devices} Alibaba devices, tasks over MQTT, files over {report.files}"
    else:
        title = f"{report.devices} devices, jobs over {report.transport}, files over {report.files}"
    table = Table(title=title)
    table.add_column("")
    table.add_column("devices", justify="right")
    table.add_column("server", justify="right")
    for state in STATES:
        mine, theirs = report.states.get(state), report.server_states.get(state)
        if mine or theirs:
            table.add_row(state, str(mine or 0), str(theirs or 0))
    for state, n in report.server_states.items():
        if state not in STATES:
            table.add_row(state, "0", str(n))
    table.add_section()
    if report.dialect == "aliyun" and report.faults.get("reject"):
        table.add_row("REJECTED", "declined", "(server: FAILED)")
    for fault, n in report.faults.items():
        if n:
            table.add_row(f"injected: {fault}", str(n), "")
    table.add_row("downloads resumed", str(report.resumed), "")
    table.add_row("register", _s(report.register_seconds), "")
    table.add_row("connect", _s(report.connect_seconds), "")
    if report.complete:
        table.add_row("rollout to all done", _s(report.seconds_to_done), "")
    else:
        table.add_row("rollout to deadline", "not all done", "")
    if report.dialect == "aliyun":
        settled = _s(report.settle_seconds) if report.settle_seconds is not None else "not yet"
        table.add_row("then server settled", settled, "")
    table.add_row("simulator CPU", _s(report.cpu_seconds), "")
    for p in (50, 90, 99):
        table.add_row(f"update p{p}", _s(report.percentile(p)), "")
    for error in report.errors:
        table.add_row("error", error, "")
    return table

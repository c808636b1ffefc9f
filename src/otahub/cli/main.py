"""`otahub serve` and friends."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click

from otahub import __version__
from otahub.config import Settings
from otahub.logs import configure


class LazyGroup(click.Group):
    """Subcommands whose modules are imported only when they run: the device and the
    simulator pull in boto3, rich and the agent, which `otahub serve` has no use for."""

    LAZY = {
        "device": "otahub.cli.device:device",
        "simulate": "otahub.cli.simulate:simulate",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            import importlib

            module, name = self.LAZY[cmd_name].split(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="otahub")
def main() -> None:
    """otahub: self-hosted OTA firmware updates for AWS IoT and Alibaba Cloud IoT clients."""


def _check_aliyun_rate_limits(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    from otahub.aliyun.protocol.ratelimits import limiter_from_spec
    from otahub.domain.clock import SystemClock

    try:
        limiter_from_spec(SystemClock(), value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@main.command()
@click.option("--host", envvar="OTAHUB_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="OTAHUB_PORT", default=8080, show_default=True, type=int)
@click.option("--mqtt-port", envvar="OTAHUB_MQTT_PORT", default=1883, show_default=True, type=int)
@click.option("--mqtts-port", envvar="OTAHUB_MQTTS_PORT", default=8883, show_default=True, type=int)
@click.option(
    "--data-dir",
    envvar="OTAHUB_DATA_DIR",
    default="otahub-data",
    show_default=True,
    type=click.Path(path_type=Path),
)
@click.option(
    "--database-url",
    envvar="OTAHUB_DATABASE_URL",
    default=None,
    help="default: SQLite file in the data dir; or postgresql://user@host/db",
)
@click.option(
    "--public-host",
    envvar="OTAHUB_PUBLIC_HOST",
    default=None,
    help="host name devices use to reach this server (default: --host)",
)
@click.option(
    "--broker-url",
    envvar="OTAHUB_BROKER_URL",
    default=None,
    help="mqtt://user:pass@host:port of an external broker (default: the embedded one)",
)
@click.option(
    "--blob-url",
    envvar="OTAHUB_BLOB_URL",
    default=None,
    help="s3://bucket?endpoint=http://host:port for an S3-compatible store "
    "(default: files in the data dir)",
)
@click.option(
    "--aws-request-rate",
    envvar="OTAHUB_AWS_REQUEST_RATE",
    default=0.0,
    show_default=True,
    type=float,
    help="AWS API requests a second each account may make (0: no limit); over it: "
    "ThrottlingException",
)
@click.option(
    "--aws-request-burst",
    envvar="OTAHUB_AWS_REQUEST_BURST",
    default=None,
    type=float,
    help="requests an account may make at once (default: the rate)",
)
@click.option(
    "--aliyun-rate-limits",
    envvar="OTAHUB_ALIYUN_RATE_LIMITS",
    default=None,
    callback=_check_aliyun_rate_limits,
    help="Alibaba API calls a second per account and action: 'off', or "
    "'default=10,CreateOTAVerifyJob=20' (default: Alibaba's documented limits)",
)
@click.option(
    "--share-group",
    envvar="OTAHUB_SHARE_GROUP",
    default="otahub",
    show_default=True,
    help="shared-subscription group of the otahub processes on one external broker",
)
@click.option(
    "--hook-token",
    envvar="OTAHUB_HOOK_TOKEN",
    default=None,
    help="bearer token an external broker must send to the /mqtt/* hooks "
    "(default: the hooks are open)",
)
@click.option(
    "--engine-interval",
    envvar="OTAHUB_ENGINE_INTERVAL",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="seconds between the rollout engine's ticks",
)
@click.option("--log-level", envvar="OTAHUB_LOG_LEVEL", default="info", show_default=True)
@click.option(
    "--test-clock-file",
    envvar="OTAHUB_TEST_CLOCK_FILE",
    default=None,
    hidden=True,  # tests only: see otahub.cli.offset_clock
    type=click.Path(path_type=Path),
)
def serve(
    host: str,
    port: int,
    mqtt_port: int,
    mqtts_port: int,
    data_dir: Path,
    database_url: str | None,
    public_host: str | None,
    broker_url: str | None,
    blob_url: str | None,
    aws_request_rate: float,
    aws_request_burst: float | None,
    aliyun_rate_limits: str | None,
    share_group: str,
    hook_token: str | None,
    engine_interval: float,
    log_level: str,
    test_clock_file: Path | None,
) -> None:
    """Run the server: HTTP APIs, device gateway and rollout engine in one process."""
    import os

    settings = Settings(
        host=host,
        port=port,
        mqtt_port=mqtt_port,
        mqtts_port=mqtts_port,
        data_dir=data_dir,
        database_url=database_url,
        public_host=public_host,
        log_level=log_level,
        broker_url=broker_url,
        blob_url=blob_url,
        aws_request_rate=aws_request_rate,
        aws_request_burst=aws_request_burst,
        share_group=share_group,
        hook_token=hook_token or None,
        engine_interval=engine_interval,
        access_key_id=os.environ.get("OTAHUB_ACCESS_KEY_ID"),
        secret_access_key=os.environ.get("OTAHUB_SECRET_ACCESS_KEY"),
        aliyun_rate_limits=aliyun_rate_limits,
        test_clock_file=test_clock_file,
    )
    configure(log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    from otahub.app import build_app
    from otahub.runtime import Runtime

    _check_ports_free(settings)
    clock = None
    if settings.test_clock_file is not None:
        from otahub.cli.offset_clock import OffsetFileClock

        clock = OffsetFileClock(settings.test_clock_file)
        click.echo(f"test clock: time moves with {settings.test_clock_file} (tests only)", err=True)
    runtime = Runtime(settings, clock)
    await runtime.start()
    server = Server(
        build_app(runtime),
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGINL,
        log_enabled=False,
        backlog=2048,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    serving = asyncio.create_task(server.serve())
    _banner(settings, runtime)
    try:
        await serving
    finally:
        await runtime.stop()


def _check_ports_free(settings: Settings) -> None:
    """Refuse to start, with the option to change, when a port is taken (a Mosquitto
    on 1883 is common), rather than fail halfway through starting."""
    wanted = [("--port", "OTAHUB_PORT", settings.port)]
    if not settings.broker_url:
        wanted += [
            ("--mqtt-port", "OTAHUB_MQTT_PORT", settings.mqtt_port),
            ("--mqtts-port", "OTAHUB_MQTTS_PORT", settings.mqtts_port),
        ]
    for option, variable, port in wanted:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.host, port))
            except OSError as exc:
                raise click.ClickException(
                    f"{settings.host}:{port} is not free ({exc.strerror}); choose another "
                    f"with {option} or {variable}"
                    + (", or use that broker with --broker-url" if "mqtt" in option else "")
                ) from None


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _banner(settings: Settings, runtime: object) -> None:
    from otahub.runtime import Runtime

    assert isinstance(runtime, Runtime) and runtime.credentials is not None
    creds = runtime.credentials
    host = settings.public_host or settings.host
    lines = [
        f"otahub {__version__} is ready",
        f"  HTTP       {settings.http_base}   (AWS iot, iot-jobs-data, signer, s3; Alibaba RPC)",
        *(
            [f"  MQTT       {_without_password(settings.broker_url)}   (external broker)"]
            if settings.broker_url
            else [
                f"  MQTT       mqtt://{host}:{settings.mqtt_port}   (embedded broker)",
                f"  MQTTS      mqtts://{host}:{settings.mqtts_port}   "
                f"(device certificates; CA at {settings.http_base}/ca.pem)",
            ]
        ),
        f"  database   {runtime.db.engine.url.render_as_string(hide_password=True)}",
        f"  data dir   {settings.data_dir.resolve()}",
        f"  account    {creds.account_id}",
        f"  access key {creds.access_key_id}",
        f"  secret     {creds.secret_access_key}",
        "  health     GET /healthz",
        "  broker hooks POST /mqtt/auth, /mqtt/acl, /mqtt/events   "
        + ("(bearer token required)" if settings.hook_token else "(open: see --hook-token)"),
    ]
    click.echo("\n".join(lines), err=False)


@main.command()
@click.option("--database-url", envvar="OTAHUB_DATABASE_URL", required=True)
def migrate(database_url: str) -> None:
    """Bring a database's schema up to date."""
    from otahub.store.db import Database
    from otahub.store.migrate import migrate as run

    async def go() -> None:
        db = Database(database_url)
        try:
            await run(db)
        finally:
            await db.dispose()

    asyncio.run(go())
    click.echo("schema is up to date")


if __name__ == "__main__":
    main()

"""Settings of one otahub process: command-line options, each also an OTAHUB_* variable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    mqtt_port: int = 1883
    mqtts_port: int = 8883
    data_dir: Path = field(default_factory=lambda: Path("otahub-data"))
    database_url: str | None = None  # default: SQLite file in the data dir
    access_key_id: str | None = None  # default: generated once, kept in the data dir
    secret_access_key: str | None = None
    public_host: str | None = None  # the name devices use to reach this server
    broker_url: str | None = None  # external broker; default: the embedded one
    share_group: str = "otahub"  # processes of one deployment split device traffic in it
    hook_token: str | None = None  # bearer token the broker sends to /mqtt/*; None: open
    blob_url: str | None = None  # s3://bucket?endpoint=…; default: files in the data dir
    engine_interval: float = 1.0
    aliyun_rate_limits: str | None = None  # "off", or "default=10,CreateOTAVerifyJob=20"
    aws_request_rate: float = 0.0  # AWS API requests a second per account; 0: unlimited
    aws_request_burst: float | None = None  # default: the rate (at least 1)
    log_level: str = "info"
    # tests only: a file of seconds added to the server's clock (otahub.cli.offset_clock)
    test_clock_file: Path | None = None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'otahub.db').resolve()}"

    @property
    def http_base(self) -> str:
        return f"http://{self.public_host or self.host}:{self.port}"

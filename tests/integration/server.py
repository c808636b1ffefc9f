"""Run `otahub serve` as a real child process for tests that talk to it over the wire."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

# otahub keeps a persistent session on an external broker, in a shared-subscription
# group; a server killed in an earlier run leaves its session there for an hour,
# taking its share of device requests. This run's servers get a group of their own.
SHARE_GROUP = f"otahub-test-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(
        self, data_dir: Path, *, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.mqtt_port = free_port()
        self.mqtts_port = free_port()
        self.env = {"OTAHUB_SHARE_GROUP": SHARE_GROUP, **os.environ, **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[str] | None = None
        # A file, not a pipe: a busy server logging into a pipe nobody reads would block.
        self.log_path = data_dir.parent / f"{data_dir.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "otahub.cli.main",
            "serve",
            "--port",
            str(self.port),
            "--mqtt-port",
            str(self.mqtt_port),
            "--mqtts-port",
            str(self.mqtts_port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"otahub exited early ({self.proc.returncode}):\n{self.output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("otahub did not become healthy in time")

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    @property
    def output(self) -> str:
        """What the server printed (banner and log lines) so far."""
        return self.log_path.read_text() if self.log_path.exists() else ""

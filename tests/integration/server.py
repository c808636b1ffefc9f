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

from otahub.cli.offset_clock import write_offset

# otahub keeps a persistent session on an external broker, in a shared-subscription
# group; a server killed in an earlier run leaves its session there for an hour,
# taking its share of device requests. This run's servers get a group of their own.
SHARE_GROUP = f"otahub-test-{uuid.uuid4().hex[:8]}"

# The engine ticks ten times a second in the tests' servers (a deployment's default
# is once): what waits on a tick waits a tenth as long.
ENGINE_INTERVAL = 0.1


def engine_ticks(n: int = 5) -> None:
    """Let a server's engine tick about `n` times: for a test that something does
    not happen (a wait for something that does polls instead)."""
    time.sleep(n * ENGINE_INTERVAL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(RuntimeError):
    """The server could not bind a port it was given."""


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        movable_clock: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.mqtt_port = free_port()
        self.mqtts_port = free_port()
        self.env = {
            "OTAHUB_SHARE_GROUP": SHARE_GROUP,
            "OTAHUB_ENGINE_INTERVAL": str(ENGINE_INTERVAL),
            **os.environ,
            **(env or {}),
        }
        self.args = args or []
        # movable_clock: the server's time is the system's plus what advance_clock added
        self.clock_file: Path | None = None
        self.clock_offset = 0.0
        if movable_clock:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            self.clock_file = data_dir.parent / f"{data_dir.name}-clock"
            write_offset(self.clock_file, 0)
            self.env["OTAHUB_TEST_CLOCK_FILE"] = str(self.clock_file)
        self.proc: subprocess.Popen[str] | None = None
        # A file, not a pipe: a busy server logging into a pipe nobody reads would block.
        self.log_path = data_dir.parent / f"{data_dir.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock forward: what was due in `seconds` is due now."""
        assert self.clock_file is not None, "start the server with movable_clock=True"
        self.clock_offset += seconds
        write_offset(self.clock_file, self.clock_offset)

    def start(self, timeout: float = 30) -> ServerProcess:
        """Start and wait until healthy. A first start whose port another process took
        between free_port() and the bind (tests run beside others) retries on new ports;
        a restart keeps its ports, which its clients know."""
        first = self.proc is None
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if not first or attempt == 2:
                    raise
                self.port, self.mqtt_port, self.mqtts_port = free_port(), free_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> ServerProcess:
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
        logged_before = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.output[logged_before:]
                if "address already in use" in said or "is not free" in said:
                    raise PortTaken(said)
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

"""`otahub serve` as a user meets it: a real process, its banner, health and stop."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import need_service
from tests.integration.server import ServerProcess


def test_serve_prints_endpoints_keeps_credentials_and_stops_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok"
    assert server.stop() == 0
    banner = server.output
    assert f"http://127.0.0.1:{server.port}" in banner
    assert f"mqtt://127.0.0.1:{server.mqtt_port}" in banner
    creds = json.loads((tmp_path / "data" / "credentials.json").read_text())
    assert creds["access_key_id"] in banner
    assert (tmp_path / "data" / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert "Traceback" not in banner

    again = ServerProcess(tmp_path / "data").start()
    assert again.stop() == 0
    assert creds["access_key_id"] in again.output  # generated once, then kept


def test_access_key_from_environment(tmp_path: Path) -> None:
    env = {"OTAHUB_ACCESS_KEY_ID": "AKIDEXAMPLE", "OTAHUB_SECRET_ACCESS_KEY": "s3cr3t"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    assert server.stop() == 0
    assert "AKIDEXAMPLE" in server.output


def test_external_broker_password_lets_otahub_through_its_own_hooks(tmp_path: Path) -> None:
    """A broker that asks otahub's HTTP hooks must let otahub's own client in with the
    password of `--broker-url`; the banner never shows that password."""
    need_service("Mosquitto", "127.0.0.1", 1883)
    url = "mqtt://otahub:broker-s3cret@127.0.0.1:1883"
    server = ServerProcess(tmp_path / "data", args=["--broker-url", url]).start()
    try:

        def auth(password: str) -> str:
            body = {"clientid": "otahub-x", "username": "otahub", "password": password}
            result: str = httpx.post(f"{server.url}/mqtt/auth", json=body).json()["result"]
            return result

        assert auth("broker-s3cret") == "allow"
        assert auth("guess") == "deny"
    finally:
        server.stop()
    assert "broker-s3cret" not in server.output
    assert "mqtt://otahub:***@127.0.0.1:1883" in server.output


def test_hook_token_keeps_the_broker_hooks_for_the_broker(tmp_path: Path) -> None:
    """With --hook-token, every /mqtt/* hook refuses a caller without the token (401)
    and answers the broker that sends it as before."""
    need_service("Mosquitto", "127.0.0.1", 1883)
    url = "mqtt://otahub:broker-s3cret@127.0.0.1:1883"
    args = ["--broker-url", url, "--hook-token", "hook-t0ken"]
    server = ServerProcess(tmp_path / "data", args=args).start()
    try:
        login = {"clientid": "otahub-x", "username": "otahub", "password": "broker-s3cret"}
        event = {"event": "client.connected", "clientid": "d", "username": "d"}
        for path, body in (("/mqtt/auth", login), ("/mqtt/acl", {**login, "topic": "t"})):
            for headers in ({}, {"Authorization": "Bearer guess"}):
                refused = httpx.post(f"{server.url}{path}", json=body, headers=headers)
                assert refused.status_code == 401, path
                assert refused.json()["result"] == "deny"
        assert httpx.post(f"{server.url}/mqtt/events", json=event).status_code == 401
        token = {"Authorization": "Bearer hook-t0ken"}
        allowed = httpx.post(f"{server.url}/mqtt/auth", json=login, headers=token)
        assert allowed.status_code == 200 and allowed.json()["result"] == "allow"
        ignored = httpx.post(f"{server.url}/mqtt/events", json=event, headers=token)
        assert ignored.json() == {"result": "ignored"}
    finally:
        server.stop()
    assert "(bearer token required)" in server.output
    assert "hook-t0ken" not in server.output


def test_a_taken_port_is_named_with_the_option_to_change(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "otahub.cli.main",
                "serve",
                "--data-dir",
                str(tmp_path),
                "--port",
                "0",
                "--mqtt-port",
                str(port),
                "--mqtts-port",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"127.0.0.1:{port} is not free" in done.stderr and "--mqtt-port" in done.stderr
    assert "Traceback" not in done.stderr

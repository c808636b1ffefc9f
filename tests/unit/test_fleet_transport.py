"""The fleet simulator's lean clients: keep-alive HTTP/1.1 for Jobs calls and
downloads (with Range resume and the rehearsed interruption), and MQTT Jobs answers
matched by client token."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from otahub.agent.aws_http import StreamTransport
from otahub.agent.http_download import StreamDownloader
from otahub.agent.jobs import MqttJobs, UpdateRejected
from otahub.agent.mqtt_rpc import TopicRouter
from otahub.agent.sinks import DigestSink

FILE = bytes(range(256)) * 4096  # 1 MiB


class TinyServer:
    """Answers GET /file (Range too) and POST /echo; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                line, *fields = head.split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (f.partition(":") for f in fields if f)
                }
                method, target, _ = line.split(" ")
                self.requests.append(f"{method} {target}")
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if target.startswith("/file"):
                    start = 0
                    status = "200 OK"
                    if "range" in headers:
                        start = int(headers["range"].removeprefix("bytes=").rstrip("-"))
                        status = "206 Partial Content"
                    data = FILE[start:]
                    writer.write(
                        f"HTTP/1.1 {status}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
                    )
                else:
                    out = json.dumps({"got": body.decode(), "path": target}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(out)}\r\n\r\n".encode()
                        + out
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[TinyServer, str]]:
    tiny = TinyServer()
    srv = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield tiny, f"http://127.0.0.1:{port}"


async def test_jobs_calls_reuse_a_few_connections(server: tuple[TinyServer, str]) -> None:
    tiny, base = server
    transport = StreamTransport(2)
    async with httpx.AsyncClient(transport=transport) as client:
        answers = await asyncio.gather(
            *(client.post(f"{base}/echo?n={i}", content=f"body{i}") for i in range(20))
        )
    assert [a.json() for a in answers] == [
        {"got": f"body{i}", "path": f"/echo?n={i}"} for i in range(20)
    ]
    assert tiny.connections <= 2


async def test_transport_errors_are_httpx_errors() -> None:
    with socket.socket() as s:  # a port nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with httpx.AsyncClient(transport=StreamTransport(1)) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"http://127.0.0.1:{port}/x")


async def test_downloads_resume_after_the_rehearsed_break(server: tuple[TinyServer, str]) -> None:
    tiny, base = server
    download = StreamDownloader(2)
    whole = DigestSink()
    await download(f"{base}/file", whole, expected_size=len(FILE))
    broken = DigestSink()
    await download(f"{base}/file", broken, expected_size=len(FILE), interrupt_after=300_000)
    await download.aclose()
    assert whole.size() == broken.size() == len(FILE)
    assert whole.sha256() == broken.sha256()
    assert tiny.requests[-1] == "GET /file"  # the resumed request (Range header)
    assert tiny.connections == 2  # the broken connection was dropped, the first reused
    unhashed = DigestSink(hashing=False)
    unhashed.write(FILE)
    assert unhashed.size() == len(FILE) and unhashed.sha256() == ""


class FakeLink:
    """A device link whose broker answers every update at once."""

    def __init__(self, answer: Any) -> None:
        self.router = TopicRouter()
        self.answer = answer
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        body = json.loads(payload)
        self.published.append((topic, body))
        for suffix, reply in self.answer(topic, body):
            self.router.put(topic + suffix, json.dumps(reply).encode())

    async def subscribe(self, topics: list[str], qos: int = 1) -> None:
        return None

    async def unsubscribe(self, topics: list[str]) -> None:
        return None


async def test_mqtt_answers_match_by_token_and_notified_executions_are_used() -> None:
    def answer(topic: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        token = body["clientToken"]
        other = {"clientToken": "someone-else"}
        if body.get("status") == "FAILED":
            return [("/rejected", {"clientToken": token, "code": "InvalidStateTransition"})]
        return [("/accepted", other), ("/accepted", {"clientToken": token, "execution": None})]

    link = FakeLink(answer)
    jobs = MqttJobs(link, "t1", timeout=5, use_notified=True)
    await jobs.start()
    await jobs.update("j1", "IN_PROGRESS", {})
    with pytest.raises(UpdateRejected):
        await jobs.update("j1", "FAILED", {})
    notify = {"execution": {"jobId": "j1", "jobDocument": {}}}
    link.router.put("$aws/things/t1/jobs/notify-next", json.dumps(notify).encode())
    await jobs.wait_for_work(5)
    assert await jobs.next_execution() == notify["execution"]  # no request for it
    assert [t for t, _ in link.published] == ["$aws/things/t1/jobs/j1/update"] * 2
    assert await jobs.next_execution() is None  # taken once; then asked for
    assert link.published[-1][0] == "$aws/things/t1/jobs/$next/get"

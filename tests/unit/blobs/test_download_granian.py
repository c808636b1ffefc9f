"""The download app under a real granian process: pathsend end to end."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from otahub.blobs import FilesystemBlobStore
from otahub.blobs.presign import PresignVerifier
from otahub.domain.clock import SystemClock

from .helpers import GeneratedStream, data_stream, stop, wait_for_port

PORT = 18111
SECRET = "granian-test-secret-0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]
GRANIAN = Path(sys.executable).parent / "granian"


class Server:
    def __init__(self, root: Path, events: Path) -> None:
        self.store = FilesystemBlobStore(root)
        self.events = events
        self.base = f"http://127.0.0.1:{PORT}"
        self.verifier = PresignVerifier(SECRET.encode(), SystemClock())

    def url(self, key: str) -> str:
        return f"{self.base}/{key}?{urlencode(self.verifier.sign(key, device_id='dev1'))}"

    def take_events(self) -> list[str]:
        lines = self.events.read_text().splitlines() if self.events.exists() else []
        self.events.write_text("")
        return lines


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("granian")
    env = {
        **os.environ,
        "OTAHUB_TEST_BLOB_ROOT": str(base / "blobs"),
        "OTAHUB_TEST_SECRET": SECRET,
        "OTAHUB_TEST_EVENTS": str(base / "events.log"),
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [str(GRANIAN), "--interface", "asgi", "--http", "1", "--workers", "1",
         "--host", "127.0.0.1", "--port", str(PORT), "--no-ws", "--log-level", "warning",
         "--working-dir", str(REPO), "--factory", "tests.unit.blobs.granian_app:build"],
        env=env,
        cwd=REPO,
    )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", PORT, proc)
        yield Server(base / "blobs", base / "events.log")
    finally:
        stop(proc)


async def test_full_get_goes_out_by_pathsend(server: Server) -> None:
    source = GeneratedStream(5 * 1024 * 1024 + 7)
    info = await server.store.put_stream("fw/big.bin", source.stream())
    server.take_events()
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url("fw/big.bin"))
    assert response.status_code == 200
    assert response.headers["content-length"] == str(info.size)
    assert response.headers["etag"] == f'"{info.sha256}"'
    assert hashlib.sha256(response.content).hexdigest() == info.sha256
    events = server.take_events()
    assert [e.split()[0] for e in events] == ["http.response.start", "http.response.pathsend"]
    assert "http.response.pathsend" in events[0]


async def test_ranges_head_and_refusals_through_granian(server: Server) -> None:
    data = bytes(range(256)) * 2048
    info = await server.store.put_stream("fw/small.bin", data_stream(data))
    async with httpx.AsyncClient() as http:
        url = server.url("fw/small.bin")
        ranged = await http.get(url, headers={"range": "bytes=1000-1999"})
        assert ranged.status_code == 206
        assert ranged.content == data[1000:2000]
        assert ranged.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        suffix = await http.get(url, headers={"range": "bytes=-1"})
        assert (suffix.status_code, suffix.content) == (206, data[-1:])
        head = await http.head(url)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(data))
        assert head.content == b""
        beyond = await http.get(url, headers={"range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(data)}"
        cached = await http.get(url, headers={"if-none-match": f'"{info.etag}"'})
        assert cached.status_code == 304
        tampered = await http.get(url.replace("device=dev1", "device=dev9"))
        assert tampered.status_code == 403
        assert data[:64] not in tampered.content
        missing = await http.get(server.url("fw/none.bin"))
        assert missing.status_code == 404

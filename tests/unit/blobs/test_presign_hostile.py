"""Device download URLs under hostile input: signatures of any characters, expiries
no calendar holds, parameters that are not text. Each is a PresignError (the
download app's 403), never an exception of another kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otahub.blobs.download import make_download_app
from otahub.blobs.fs import FilesystemBlobStore
from otahub.blobs.presign import PresignError, PresignVerifier, sign_download, verify_download
from otahub.domain.clock import FakeClock
from tests.unit.blobs.helpers import data_stream

SECRET = b"s" * 32
KEY = "tenant/1/fw-1.2.3.bin"


def signed(clock: FakeClock) -> dict[str, str]:
    return sign_download(SECRET, KEY, device_id="dev1", clock=clock, version="v7")


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "é" * 43},
        {"signature": "\u0661" * 43},
        {"signature": "\udc80"},
        {"device": "dev\udc80"},
        {"version": "\ud800"},
        {"expires": "253402300799"},  # 9999-12-31
        {"expires": "9" * 13},
        {"expires": "-60"},
        {"expires": "\u0661\u0662\u0663"},
        {"expires": "1_000"},
    ],
)
def test_hostile_parameters_are_refused(clock: FakeClock, change: dict[str, str]) -> None:
    with pytest.raises(PresignError):
        verify_download(SECRET, KEY, {**signed(clock), **change}, clock=clock)


async def get(app: Any, path: str, query: bytes) -> int:
    """The status of a GET sent as raw ASGI, so the query may hold any bytes."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status: int = sent[0]["status"]
    return status


async def test_bytes_that_are_not_utf8_get_403(clock: FakeClock, tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    await store.put_stream(KEY, data_stream(b"firmware"))
    verifier = PresignVerifier(SECRET, clock)
    app = make_download_app(store, verifier)
    good = verifier.sign(KEY, device_id="dev1")
    query = "&".join(f"{k}={v}" for k, v in good.items()).encode()
    assert await get(app, f"/{KEY}", query) == 200
    for hostile in (b"&signature=\xff\xfe", b"&device=\xc3\x28", b"&expires=\xd9\xa1"):
        assert await get(app, f"/{KEY}", query + hostile) == 403

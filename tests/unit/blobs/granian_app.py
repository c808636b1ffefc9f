"""The download app as a granian factory for the end-to-end tests and the benchmark.

Configured by environment: OTAHUB_TEST_BLOB_ROOT (filesystem store root),
OTAHUB_TEST_SECRET (presign secret; unset: no presigned URL needed) and
OTAHUB_TEST_EVENTS (optional file that gets one line per response message type,
so a test can tell that pathsend was used).
"""

from __future__ import annotations

import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otahub.blobs.download import make_download_app
from otahub.blobs.fs import FilesystemBlobStore
from otahub.blobs.presign import PresignVerifier
from otahub.domain.clock import SystemClock


def build() -> ASGIApp:
    store = FilesystemBlobStore(os.environ["OTAHUB_TEST_BLOB_ROOT"])
    secret = os.environ.get("OTAHUB_TEST_SECRET")
    verifier = PresignVerifier(secret.encode(), SystemClock()) if secret else None
    app = make_download_app(store, verifier)
    events = os.environ.get("OTAHUB_TEST_EVENTS")
    if not events:
        return app

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        offered = sorted(scope.get("extensions", {}) or {})

        async def logged(message: Message) -> None:
            _append(events, f"{message['type']} offered={','.join(offered)}\n")
            await send(message)

        await app(scope, receive, logged)

    return recording


def _append(path: str, line: str) -> None:
    with open(path, "a") as log:
        log.write(line)

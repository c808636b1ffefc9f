"""Reading an API request's body, bounded: control-plane calls carry small bodies,
and nothing past the bound is buffered."""

from __future__ import annotations

from starlette.types import Receive

MAX_BODY = 1024 * 1024


class BodyTooLarge(Exception):
    """The body went past the bound; each face answers in its own protocol's shape."""


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)

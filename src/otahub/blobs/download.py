"""The blob download endpoint: GET/HEAD with Range, ETag, If-Range, If-None-Match,
guarded by a presigned-URL check, sending local files zero-copy when it can."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.datastructures import Headers, QueryParams
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otahub.blobs.base import BlobInfo, BlobStore
from otahub.blobs.errors import BlobNotFound, InvalidBlobKey
from otahub.blobs.keys import check_key
from otahub.blobs.presign import DownloadGrant, PresignError
from otahub.blobs.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    if_range_allows,
    none_match,
    parse_range,
)

log = logging.getLogger("otahub.blobs.download")

DownloadVerifier = Callable[[str, Mapping[str, str]], DownloadGrant | Awaitable[DownloadGrant]]
"""Checks a download's query parameters for a key; raises PresignError to refuse."""

PATHSEND = "http.response.pathsend"
REDIRECT_EXPIRES_S = 300


class BlobDownload:
    """An ASGI app serving the blob named by the `key` path parameter.

    Order of checks: the presigned URL (403, no bytes), the key (404), the
    signed version against the blob's (404), If-None-Match (304), then Range.
    One range is served as 206; a multi-range request gets the whole blob
    as 200. A full GET of a local file goes out as ASGI pathsend when the
    server offers it (granian sends it zero-copy); anything else is streamed
    in chunks from the store.

    With `redirect_to_store`, a store that can presign its own URLs (S3) is
    answered with a 307 to it, so the bytes bypass otahub.
    """

    def __init__(
        self,
        store: BlobStore,
        verifier: DownloadVerifier | None,
        *,
        redirect_to_store: bool = False,
    ) -> None:
        self.store = store
        self.verifier = verifier
        self.redirect_to_store = redirect_to_store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("BlobDownload serves HTTP only")
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, "method not allowed", {"allow": "GET, HEAD"})
            return
        key = str(scope.get("path_params", {}).get("key", ""))
        query = QueryParams(scope.get("query_string", b""))
        try:
            check_key(key)
            grant = await self._verify(key, query)
            info = await self.store.stat(key)
        except PresignError as exc:
            log.info("download refused: %s", exc.reason, extra={"key": key})
            await _plain(send, 403, "forbidden")
            return
        except (InvalidBlobKey, BlobNotFound):
            await _plain(send, 404, "not found")
            return
        if grant is not None and grant.version is not None and grant.version != info.version:
            await _plain(send, 404, "not found")
            return
        if self.redirect_to_store:
            url = self.store.presigned_get_url(key, REDIRECT_EXPIRES_S)
            if url is not None:
                await _plain(send, 307, "", {"location": url})
                return
        await self._respond(scope, receive, send, info, head=method == "HEAD")

    async def _verify(self, key: str, query: QueryParams) -> DownloadGrant | None:
        if self.verifier is None:
            return None
        result = self.verifier(key, query)
        if inspect.isawaitable(result):
            return await result
        return result

    async def _respond(
        self, scope: Scope, receive: Receive, send: Send, info: BlobInfo, *, head: bool
    ) -> None:
        headers = Headers(scope=scope)
        etag = f'"{info.etag}"'
        common = {
            "etag": etag,
            "accept-ranges": "bytes",
            "content-type": "application/octet-stream",
        }
        if none_match(headers.get("if-none-match"), etag):
            await _start(send, 304, {"etag": etag, "accept-ranges": "bytes"})
            await _end(send)
            return
        byte_range: ByteRange | None = None
        if if_range_allows(headers.get("if-range"), etag):
            try:
                byte_range = parse_range(headers.get("range"), info.size)
            except RangeNotSatisfiable:
                await _plain(send, 416, "", {**common, "content-range": f"bytes */{info.size}"})
                return
        if byte_range is None:
            status, start, stop = 200, 0, info.size
            extra: dict[str, str] = {}
        else:
            status, start, stop = 206, byte_range.start, byte_range.stop
            extra = {"content-range": byte_range.content_range()}
        response_headers = {**common, **extra, "content-length": str(stop - start)}
        if head or start == stop:
            await _start(send, status, response_headers)
            await _end(send)
            return
        path = self.store.local_path(info.key)
        if status == 200 and path is not None and PATHSEND in scope.get("extensions", {}):
            await _start(send, status, response_headers)
            await send({"type": PATHSEND, "path": str(path)})
            return
        chunks = self.store.open_range(info.key, start, stop)
        try:
            first = await anext(chunks, b"")
        except BlobNotFound:
            await _plain(send, 404, "not found")
            return
        await _start(send, status, response_headers)
        if len(first) >= stop - start:
            # the common small Range read: one message, no disconnect watcher needed
            await _aclose(chunks)
            await send({"type": "http.response.body", "body": first, "more_body": False})
            return
        await _stream_until_disconnect(send, receive, first, chunks)


async def _stream_until_disconnect(
    send: Send, receive: Receive, first: bytes, chunks: AsyncIterator[bytes]
) -> None:
    """Send the body; stop reading the blob as soon as the client goes away."""

    async def body() -> None:
        try:
            if first:
                await _chunk(send, first)
            async for chunk in chunks:
                await _chunk(send, chunk)
        finally:
            await _aclose(chunks)
        await _end(send)

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sender = asyncio.ensure_future(body())
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, watcher):
            task.cancel()
        results = await asyncio.gather(sender, watcher, return_exceptions=True)
    error = results[0]
    if isinstance(error, OSError):
        return  # the client went away mid-send (ASGI 2.4 servers raise OSError)
    if isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
        raise error


async def _aclose(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _start(send: Send, status: int, headers: Mapping[str, str]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _end(send: Send) -> None:
    message: Message = {"type": "http.response.body", "body": b"", "more_body": False}
    await send(message)


async def _plain(
    send: Send, status: int, text: str, headers: Mapping[str, str] | None = None
) -> None:
    body = text.encode()
    await _start(
        send,
        status,
        {
            **(headers or {}),
            "content-type": "text/plain; charset=utf-8",
            "content-length": str(len(body)),
        },
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def make_download_app(
    store: BlobStore, verifier: DownloadVerifier | None, *, redirect_to_store: bool = False
) -> ASGIApp:
    """An ASGI app answering `/{key:path}`; mount it at a prefix such as `/dl`.
    `verifier` None serves without a presigned URL (internal use only)."""
    endpoint = BlobDownload(store, verifier, redirect_to_store=redirect_to_store)
    return Router(routes=[Route("/{key:path}", endpoint, methods=["GET", "HEAD"])])

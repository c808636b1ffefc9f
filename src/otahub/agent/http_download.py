"""Download a file over HTTP, resuming with Range after an interruption."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from otahub.agent.sinks import FileSink, Pacer, Sink


class DownloadFailed(Exception):
    pass


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path | Sink,
    *,
    expected_size: int | None = None,
    attempts: int = 5,
    interrupt_after: int | None = None,
    pacer: Pacer | None = None,
) -> str:
    """Fetch `url` into `dest` (a path or a sink); returns the SHA-256 hex of the
    whole file.

    A transfer that breaks off resumes from the bytes already received with a
    `Range` request (the server must answer 206). `interrupt_after` breaks the
    first attempt off after that many bytes, to rehearse exactly that."""
    sink: Sink = FileSink(dest) if isinstance(dest, Path) else dest
    for attempt in range(attempts):
        have = sink.size()
        if expected_size is not None and have >= expected_size:
            break
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            async with client.stream("GET", url, headers=headers) as resp:
                if have and resp.status_code != 206:
                    raise DownloadFailed(f"resume refused with HTTP {resp.status_code}")
                if not have and resp.status_code != 200:
                    raise DownloadFailed(f"HTTP {resp.status_code}")
                got = 0
                async for chunk in resp.aiter_bytes(64 * 1024):
                    if interrupt_after is not None and attempt == 0:
                        chunk = chunk[: max(0, interrupt_after - got)]
                    sink.write(chunk)
                    got += len(chunk)
                    if pacer is not None:
                        await pacer.took(len(chunk))
                    if interrupt_after is not None and attempt == 0 and got >= interrupt_after:
                        # Leaving the body unread closes this connection, not just the request.
                        raise httpx.ReadError("interrupted on purpose")
            if expected_size is None or sink.size() >= expected_size:
                break
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise DownloadFailed("the download kept breaking off") from None
    return sink.sha256()


class StreamDownloader:
    """`download` for a fleet of simulated devices: plain HTTP/1.1 GETs over a few
    keep-alive connections (asyncio streams), read in large pieces.

    A general HTTP client parses each 64 KiB piece of a body through several layers;
    for thousands of 1 MB downloads in one process that, not the server, was the
    limit. Same behaviour as `download`: Range resume (206), the rehearsed
    interruption, the pacer. http:// only; anything else goes through `fallback`."""

    def __init__(self, connections: int, fallback: httpx.AsyncClient | None = None) -> None:
        self.gate = asyncio.Semaphore(connections)
        self.fallback = fallback
        self._idle: dict[tuple[str, int], list[_Conn]] = {}

    async def __call__(
        self,
        url: str,
        sink: Sink,
        *,
        expected_size: int | None = None,
        attempts: int = 5,
        interrupt_after: int | None = None,
        pacer: Pacer | None = None,
    ) -> str:
        parts = urlsplit(url)
        if parts.scheme != "http":
            if self.fallback is None:
                raise DownloadFailed(f"cannot fetch {parts.scheme} URLs")
            return await download(
                self.fallback,
                url,
                sink,
                expected_size=expected_size,
                attempts=attempts,
                interrupt_after=interrupt_after,
                pacer=pacer,
            )
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in range(attempts):
            have = sink.size()
            if expected_size is not None and have >= expected_size:
                break
            cut = interrupt_after if attempt == 0 else None
            try:
                async with self.gate:
                    await self._get(host, port, target, sink, have, cut, pacer)
            except (OSError, asyncio.IncompleteReadError, _Interrupted):
                if attempt == attempts - 1:
                    raise DownloadFailed("the download kept breaking off") from None
                continue
            if expected_size is None or sink.size() >= expected_size:
                break
        return sink.sha256()

    async def _get(
        self,
        host: str,
        port: int,
        target: str,
        sink: Sink,
        have: int,
        cut: int | None,
        pacer: Pacer | None,
    ) -> None:
        idle = self._idle.setdefault((host, port), [])
        conn = idle.pop() if idle else None
        if conn is None:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            conn = _Conn(reader, writer)
        ranged = f"Range: bytes={have}-\r\n" if have else ""
        try:
            conn.writer.write(
                f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{ranged}\r\n".encode()
            )
            head = await conn.reader.readuntil(b"\r\n\r\n")
            status, length, keep = _parse_head(head)
            if have and status != 206:
                raise DownloadFailed(f"resume refused with HTTP {status}")
            if not have and status != 200:
                raise DownloadFailed(f"HTTP {status}")
            got = 0
            while got < length:
                chunk = await conn.reader.read(min(length - got, 1 << 20))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", length - got)
                if cut is not None:
                    chunk = chunk[: max(0, cut - got)]
                sink.write(chunk)
                got += len(chunk)
                if pacer is not None:
                    await pacer.took(len(chunk))
                if cut is not None and got >= cut:
                    raise _Interrupted  # the connection is dropped with the body unread
        except BaseException:
            conn.writer.close()
            raise
        if keep:
            idle.append(conn)
        else:
            conn.writer.close()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.writer.close()
        self._idle.clear()


class _Interrupted(Exception):
    pass


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, keep-alive) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length: int | None = None
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
        elif name == "transfer-encoding":
            raise DownloadFailed("chunked responses are not supported here")
    if length is None:
        raise DownloadFailed("no Content-Length")
    return status, length, keep

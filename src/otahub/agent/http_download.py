"""Download a file over HTTP, resuming with Range after an interruption."""

from __future__ import annotations

from pathlib import Path

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

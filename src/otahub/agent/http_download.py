"""Download a file over HTTP, resuming with Range after an interruption."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx


class DownloadFailed(Exception):
    pass


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    attempts: int = 5,
    interrupt_after: int | None = None,
) -> str:
    """Fetch `url` into `dest`; returns the SHA-256 hex of the whole file.

    A transfer that breaks off resumes from the bytes already on disk with a
    `Range` request (the server must answer 206). `interrupt_after` breaks the
    first attempt off after that many bytes, to rehearse exactly that."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        have = dest.stat().st_size if dest.exists() else 0
        if expected_size is not None and have >= expected_size:
            break
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            async with client.stream("GET", url, headers=headers) as resp:
                if have and resp.status_code != 206:
                    raise DownloadFailed(f"resume refused with HTTP {resp.status_code}")
                if not have and resp.status_code != 200:
                    raise DownloadFailed(f"HTTP {resp.status_code}")
                with dest.open("ab") as out:
                    got = 0
                    async for chunk in resp.aiter_bytes(64 * 1024):
                        out.write(chunk)
                        got += len(chunk)
                        if interrupt_after is not None and attempt == 0 and got >= interrupt_after:
                            raise httpx.ReadError("interrupted on purpose")
            if expected_size is None or dest.stat().st_size >= expected_size:
                break
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise DownloadFailed("the download kept breaking off") from None
    digest = hashlib.sha256()
    with dest.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

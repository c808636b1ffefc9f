"""HTTP Range and conditional request headers (RFC 9110 §13, §14), as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

_MAX_DIGITS = 19


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes [start, stop) of a representation of `size` bytes."""

    start: int
    stop: int
    size: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


class RangeNotSatisfiable(Exception):
    """The single range requested lies wholly outside the representation."""


def _int(text: str) -> int | None:
    text = text.strip()
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, or None to serve the whole representation.

    None covers: no header, a unit other than bytes, a malformed header (which
    RFC 9110 says to ignore) and multi-range requests, which are answered with
    the full 200 rather than multipart/byteranges. Raises RangeNotSatisfiable
    for a range that starts past the end, a zero-length suffix, or any range
    of an empty representation.
    """
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [s for s in (p.strip() for p in spec.split(",")) if s]
    if len(specs) != 1:
        return None
    first, dash, last = specs[0].partition("-")
    if not dash:
        return None
    if not first.strip():
        suffix = _int(last)
        if suffix is None:
            return None
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size, size)
    start = _int(first)
    end = _int(last) if last.strip() else start
    if start is None or end is None or end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    stop = size if not last.strip() else min(end + 1, size)
    return ByteRange(start, stop, size)


def if_range_allows(header: str | None, etag: str) -> bool:
    """True when a Range may be honoured under `If-Range` (absent, or a strong
    match of the quoted `etag`). A date never matches: blobs carry no
    Last-Modified."""
    if header is None:
        return True
    return header.strip() == etag


def none_match(header: str | None, etag: str) -> bool:
    """True when `If-None-Match` matches the quoted `etag` (weak comparison)."""
    if header is None:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False

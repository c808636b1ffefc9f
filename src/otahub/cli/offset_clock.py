"""A system clock a test can move forward: for tests only, never in a deployment.

`otahub serve` uses it when OTAHUB_TEST_CLOCK_FILE names a file (unset, the default:
the plain system clock). The file holds a number of seconds added to the system
time; a test writes a larger one to bring timeouts and schedules due at once instead
of waiting for them, so a server in another process keeps its real behaviour
otherwise. Whoever can write that file can move the server's time: keep it in a
directory only the test can write.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path


class OffsetFileClock:
    """The system time plus the seconds in a file, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._offset = timedelta()

    def now(self) -> datetime:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            text = self.path.read_text().strip() if stamp is not None else ""
            self._offset = timedelta(seconds=float(text or 0))
        return datetime.now(UTC) + self._offset


def write_offset(path: Path, seconds: float) -> None:
    """Set the clock's offset in one step (a reader never sees a half-written file)."""
    part = path.with_name(path.name + ".part")
    part.write_text(repr(float(seconds)))
    os.replace(part, path)

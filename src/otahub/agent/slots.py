"""A/B firmware slots on disk: write the inactive slot, boot it, keep or roll back."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SlotState:
    active: str  # "a" or "b"
    version: str | None
    pending: str | None = None  # the slot booted for a trial, not yet confirmed


class SlotStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._state_path = root / "slots.json"

    def state(self) -> SlotState:
        if not self._state_path.exists():
            return SlotState(active="a", version=None)
        data = json.loads(self._state_path.read_text())
        return SlotState(data["active"], data.get("version"), data.get("pending"))

    def _save(self, state: SlotState) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.__dict__))
        os.replace(tmp, self._state_path)

    def image(self, slot: str) -> Path:
        return self.root / f"slot_{slot}.bin"

    def inactive(self) -> str:
        return "b" if self.state().active == "a" else "a"

    async def write_inactive(self, chunks: AsyncIterator[bytes]) -> Path:
        """Write an image into the inactive slot (the running one is never touched)."""
        path = self.image(self.inactive())
        tmp = path.with_suffix(".partial")
        with tmp.open("wb") as out:
            async for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        return path

    def boot_inactive(self, version: str) -> SlotState:
        """ "Reboot" into the freshly written slot, on trial."""
        current = self.state()
        trial = SlotState(active=self.inactive(), version=version, pending=current.active)
        self._save(trial)
        return trial

    def confirm(self) -> SlotState:
        state = self.state()
        confirmed = SlotState(active=state.active, version=state.version)
        self._save(confirmed)
        return confirmed

    def roll_back(self, previous_version: str | None) -> SlotState:
        state = self.state()
        if state.pending is None:
            return state
        back = SlotState(active=state.pending, version=previous_version)
        self._save(back)
        return back


class MemorySlots:
    """The same A/B logic without a disk, for simulated devices: an image is counted
    as it is written and then forgotten."""

    def __init__(self) -> None:
        self._state = SlotState(active="a", version=None)

    def state(self) -> SlotState:
        return self._state

    def image(self, slot: str) -> Path:
        return Path(f"/dev/null/slot_{slot}")  # nothing is kept; self-tests decide otherwise

    def inactive(self) -> str:
        return "b" if self._state.active == "a" else "a"

    async def write_inactive(self, chunks: AsyncIterator[bytes]) -> Path:
        async for _ in chunks:
            pass
        return self.image(self.inactive())

    def boot_inactive(self, version: str) -> SlotState:
        self._state = SlotState(self.inactive(), version, pending=self._state.active)
        return self._state

    def confirm(self) -> SlotState:
        self._state = SlotState(self._state.active, self._state.version)
        return self._state

    def roll_back(self, previous_version: str | None) -> SlotState:
        if self._state.pending is not None:
            self._state = SlotState(self._state.pending, previous_version)
        return self._state

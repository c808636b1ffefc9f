"""What every service holds: the database and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from otahub.domain.clock import Clock
from otahub.store.db import Database

IN_CHUNK = 10_000  # ids per IN (...) list: asyncpg binds at most 32,767 parameters


@dataclass
class ServiceContext:
    db: Database
    clock: Clock

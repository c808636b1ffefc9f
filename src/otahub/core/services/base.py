"""What every service holds: the database and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from otahub.core.clock import Clock
from otahub.store.db import Database


@dataclass
class ServiceContext:
    db: Database
    clock: Clock

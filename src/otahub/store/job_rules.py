"""Job rules the database enforces, so that two requests at once cannot both pass
a check that each makes before the other commits.

- One active job per package for a kind that allows only one: Alibaba's firmware
  has at most one running dynamic upgrade job (iot.ota.DynamicJobExists); the
  index is declared with the `jobs` table and created by migration 0006.
"""

from __future__ import annotations

from sqlalchemy import Index
from sqlalchemy.exc import IntegrityError

from otahub.store.tables import ONE_ACTIVE_JOB_KIND, jobs

__all__ = ["ONE_ACTIVE_JOB_KIND", "one_active_job_per_package", "violates"]

one_active_job_per_package: Index = next(
    index for index in jobs.indexes if index.name == "uq_jobs_one_active_per_package"
)


def violates(error: IntegrityError, index: Index) -> bool:
    """Whether `error` is a violation of the unique `index`: PostgreSQL names the
    index, SQLite its columns."""
    message = str(error.orig)
    columns = ", ".join(f"{c.table.name}.{c.name}" for c in index.columns)
    return f'"{index.name}"' in message or f"UNIQUE constraint failed: {columns}" in message

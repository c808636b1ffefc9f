"""A job the engine fails on records the error and backs off, instead of stopping
every other job's rollout.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import otahub.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engine_error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("engine_error_at", otahub.store.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("engine_failures", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("engine_failures")
        batch_op.drop_column("engine_error_at")
        batch_op.drop_column("engine_error")

"""CreateOTAUpdate answers at once and the engine builds the update: the row keeps
what the build made (so a resumed build finds it) and who builds it until when.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import otahub.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ota_updates", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "build",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("claimed_until", otahub.store.types.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("ota_updates", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("build")

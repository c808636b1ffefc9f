"""One active dynamic upgrade job per package, enforced by a partial unique index
(it was a scan of the package's jobs before the insert, which two requests at once
could both pass).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ACTIVE = "kind = 'aliyun-dynamic' AND status IN ('SCHEDULED', 'IN_PROGRESS')"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "uq_jobs_one_active_per_package",
            ["package_id"],
            unique=True,
            postgresql_where=sa.text(ACTIVE),
            sqlite_where=sa.text(ACTIVE),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("uq_jobs_one_active_per_package")

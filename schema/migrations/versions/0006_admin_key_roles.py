"""admin key roles: viewer or operator (existing keys are operators)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("admin_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=20), nullable=False, server_default="operator")
        )


def downgrade() -> None:
    with op.batch_alter_table("admin_keys", schema=None) as batch_op:
        batch_op.drop_column("role")

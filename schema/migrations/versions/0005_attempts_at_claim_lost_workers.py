"""attempt rows from the claim, lost attempts with estimated costs, lost workers per job

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.alter_column("latency_ms", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column(
            "finished_at", existing_type=sa.DateTime(timezone=True), nullable=True
        )
        batch_op.add_column(
            sa.Column("cost_estimated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lost_workers", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("lost_workers")
    op.execute("DELETE FROM job_attempts WHERE finished_at IS NULL")
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.drop_column("cost_estimated")
        batch_op.alter_column(
            "finished_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.alter_column("latency_ms", existing_type=sa.Integer(), nullable=False)

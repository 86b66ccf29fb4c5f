"""a ledger of budget entries, folded into budget_periods off the jobs' commits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budget_ledger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent_micros", sa.BigInteger(), nullable=False),
        sa.Column("released_micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_ledger")),
    )
    op.create_index(
        op.f("ix_budget_ledger_tenant_id_period_start"),
        "budget_ledger",
        ["tenant_id", "period_start"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_budget_ledger_tenant_id_period_start"), table_name="budget_ledger")
    op.drop_table("budget_ledger")

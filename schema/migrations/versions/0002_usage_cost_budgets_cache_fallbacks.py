"""usage, cost, budgets, cache, fallbacks and async poll state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:34:37.421430
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ZERO = sa.text("0")
FALSE = sa.false()


def upgrade() -> None:
    op.create_table(
        "budget_periods",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reserved_micros", sa.BigInteger(), nullable=False),
        sa.Column("spent_micros", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_budget_periods_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "period_start", name=op.f("pk_budget_periods")),
    )
    with op.batch_alter_table("job_attempts") as batch_op:
        batch_op.add_column(
            sa.Column("model", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default=ZERO)
        )
        for name, kind in (
            ("input_tokens", sa.BigInteger()),
            ("output_tokens", sa.BigInteger()),
            ("images", sa.Integer()),
            ("video_seconds", sa.Double()),
            ("predict_seconds", sa.Double()),
        ):
            batch_op.add_column(sa.Column(name, kind, nullable=False, server_default=ZERO))
        batch_op.create_index("ix_job_attempts_finished_at", ["finished_at"])

    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("current_model", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("cache_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("cached", sa.Boolean(), nullable=False, server_default=FALSE))
        batch_op.add_column(sa.Column("served_by", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("route_attempts", sa.Integer(), nullable=False, server_default=ZERO)
        )
        batch_op.add_column(
            sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default=ZERO)
        )
        batch_op.add_column(
            sa.Column("reserved_micros", sa.BigInteger(), nullable=False, server_default=ZERO)
        )
        batch_op.add_column(
            sa.Column("budget_period_start", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("provider_job_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("polls", sa.Integer(), nullable=False, server_default=ZERO))
        batch_op.add_column(sa.Column("progress", sa.Double(), nullable=True))
    op.execute("UPDATE jobs SET current_model = model, route_attempts = attempts")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("current_model", existing_type=sa.String(200), nullable=False)
        batch_op.create_index("ix_jobs_status_next_poll_at", ["status", "next_poll_at"])

    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("budget_micros", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("budget_period", sa.String(length=10), nullable=False, server_default="month")
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("budget_period")
        batch_op.drop_column("budget_micros")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_status_next_poll_at")
        for column in (
            "progress",
            "polls",
            "next_poll_at",
            "provider_job_id",
            "budget_period_start",
            "reserved_micros",
            "cost_micros",
            "route_attempts",
            "served_by",
            "cached",
            "cache_enabled",
            "current_model",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("job_attempts") as batch_op:
        batch_op.drop_index("ix_job_attempts_finished_at")
        for column in (
            "predict_seconds",
            "video_seconds",
            "images",
            "output_tokens",
            "input_tokens",
            "cost_micros",
            "model",
        ):
            batch_op.drop_column(column)
    op.drop_table("budget_periods")

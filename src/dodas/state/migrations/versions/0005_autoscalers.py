"""Autoscalers: one row per elastic deployment, leased by the process that
scales it, with what its loop remembers between polls.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autoscalers",
        sa.Column("deployment_name", sa.String(128), primary_key=True),
        sa.Column("memory", sa.JSON, nullable=False),
        sa.Column("last_reason", sa.Text, nullable=True),
        sa.Column("leased_by", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("autoscalers")

"""The first schema: deployments, instances, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("template_path", sa.Text, nullable=False),
        sa.Column("template_text", sa.Text, nullable=False),
        sa.Column("template_sha256", sa.String(64), nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("inputs_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lock_owner", sa.String(255), nullable=True),
        sa.Column("lock_acquired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.String(36), sa.ForeignKey("deployments.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(255), nullable=True),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("secrets", sa.JSON, nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("deployment_id", "node", "index", name="uq_instance"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.String(36), sa.ForeignKey("deployments.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instance", sa.String(255), nullable=True),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_events_deployment_time", "events", ["deployment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_deployment_time", "events")
    op.drop_table("events")
    op.drop_table("instances")
    op.drop_table("deployments")

"""The server's work queue and deployment owners; attempts indexed by deployment
(every status read lists a deployment's attempts).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment_name", sa.String(128), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("leases", sa.Integer, nullable=False),
        sa.Column("leased_by", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_work_status", "work_items", ["status", "id"])
    op.create_index("ix_work_deployment", "work_items", ["deployment_name", "id"])
    op.create_table(
        "deployment_access",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(512), nullable=False),
        sa.Column("owner_name", sa.String(255), nullable=False),
        sa.Column("group", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deployment_access_owner", "deployment_access", ["owner"])
    op.create_index("ix_deployment_access_group", "deployment_access", ["group"])
    op.create_index("ix_attempts_deployment", "attempts", ["deployment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_attempts_deployment", "attempts")
    op.drop_table("deployment_access")
    op.drop_table("work_items")

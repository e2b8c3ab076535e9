"""The web dashboard's sessions: logins under way, signed-in browsers and the
requests they are asked to confirm.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("session", sa.String(64), nullable=True),
        sa.Column("owner", sa.String(512), nullable=True),
        sa.Column("username", sa.String(255), nullable=True),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires_at"])
    op.create_index("ix_web_sessions_session", "web_sessions", ["session"])


def downgrade() -> None:
    op.drop_table("web_sessions")

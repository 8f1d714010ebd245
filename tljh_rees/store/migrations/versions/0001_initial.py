"""environments and builds

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "environments",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("repo", sa.Text, nullable=False),
        sa.Column("ref", sa.String(255), nullable=False, server_default="HEAD"),
        sa.Column("commit", sa.String(64)),
        sa.Column("image", sa.String(255)),
        sa.Column("owner", sa.String(255), nullable=False, server_default=""),
        sa.Column("profile", sa.String(63), nullable=False, server_default=""),
        sa.Column("cpu_limit", sa.Float),
        sa.Column("mem_limit", sa.Integer),
        sa.Column("public", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("spec_name", sa.String(63)),
        sa.Column("spec_version", sa.String(64)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
    )
    op.create_table(
        "builds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("environment", sa.String(63), nullable=False, index=True),
        sa.Column("repo", sa.Text, nullable=False),
        sa.Column("ref", sa.String(255), nullable=False, server_default="HEAD"),
        sa.Column("commit", sa.String(64)),
        sa.Column("image", sa.String(255)),
        sa.Column("owner", sa.String(255), nullable=False, server_default=""),
        sa.Column("profile", sa.String(63), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued", index=True),
        sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("spec_version", sa.String(64)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("started", sa.DateTime),
        sa.Column("finished", sa.DateTime),
    )


def downgrade():
    op.drop_table("builds")
    op.drop_table("environments")

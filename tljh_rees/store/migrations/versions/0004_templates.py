"""on-demand launches: templates, their pools, and the temporary users of anonymous
servers

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True, index=True),
        sa.Column("image_name", sa.String(255), nullable=False),
        sa.Column("image_kind", sa.String(16), nullable=False, server_default="environment"),
        sa.Column("memory", sa.BigInteger),
        sa.Column("cpu", sa.Float),
        sa.Column("cull_timeout", sa.Integer, nullable=False, server_default="3600"),
        sa.Column("max_age", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_servers", sa.Integer, nullable=False, server_default="0"),
        sa.Column("services", sa.Text, nullable=False, server_default="[]"),
        sa.Column("anonymous", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("allowed_users", sa.Text, nullable=False, server_default="[]"),
        sa.Column("owner", sa.String(255), nullable=False, server_default=""),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("modified", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "pools",
        sa.Column("template_id", sa.Integer,
                  sa.ForeignKey("templates.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "temporary_users",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("template_id", sa.Integer,
                  sa.ForeignKey("templates.id", ondelete="SET NULL"), index=True),
        sa.Column("template", sa.String(63), nullable=False),
        sa.Column("pooled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("state", sa.String(16), nullable=False, server_default="warming",
                  index=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("claimed", sa.DateTime),
        sa.Column("ended", sa.DateTime),
    )


def downgrade():
    op.drop_table("temporary_users")
    op.drop_table("pools")
    op.drop_table("templates")

"""samples for the admin's dashboard: queue length, disk use and launch times over time

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("label", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_samples_kind", "samples", ["kind"])
    op.create_index("ix_samples_at", "samples", ["at"])


def downgrade():
    op.drop_index("ix_samples_at", "samples")
    op.drop_index("ix_samples_kind", "samples")
    op.drop_table("samples")

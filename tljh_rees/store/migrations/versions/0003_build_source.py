"""builds record the kind of their source (git, archive), so a restart knows which it can
fetch again

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False,
                                   server_default="git"))


def downgrade():
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("source")

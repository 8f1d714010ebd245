"""multi-node mode: where an environment's image is in the registry every node pulls from

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("registry_ref", sa.String(512), nullable=True))


def downgrade():
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("registry_ref")

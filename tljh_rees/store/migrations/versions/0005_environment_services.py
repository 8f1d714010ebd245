"""add-on services: an environment's default services, and those a build found declared
in its repository (``.rees/services.json``)

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("services", sa.Text, nullable=False, server_default="[]"))
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("services", sa.Text, nullable=True))


def downgrade():
    with op.batch_alter_table("builds") as batch:
        batch.drop_column("services")
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("services")

"""environments record when a server of them was last seen running, and whether an
admin pinned them (the disk garbage collector keeps a pinned environment's image)

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    # plain ADD COLUMNs: a rebuilt table would lose AUTOINCREMENT (ids never reused)
    op.add_column("environments", sa.Column("last_launched", sa.DateTime, nullable=True))
    op.add_column("environments", sa.Column("pinned", sa.Boolean, nullable=False,
                                            server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("environments",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("pinned")
        batch.drop_column("last_launched")

"""the catalog: environments get an id per claim and their image's id; builds belong
to an environment id (deleting one removes its builds)

Revision ID: 0002
Revises: 0001

Builds of environments that were deleted before this revision are dropped: they
would otherwise show under a new environment that reuses the name. Image ids are
filled in by the service's first look at the engine (``Catalog.sync``), from the tags
it recorded itself.
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "environments_new",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("repo", sa.Text, nullable=False),
        sa.Column("ref", sa.String(255), nullable=False, server_default="HEAD"),
        sa.Column("owner", sa.String(255), nullable=False, server_default=""),
        sa.Column("profile", sa.String(63), nullable=False, server_default=""),
        sa.Column("public", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("spec_name", sa.String(63)),
        sa.Column("image", sa.String(255)),
        sa.Column("image_id", sa.String(80)),
        sa.Column("image_size", sa.BigInteger),
        sa.Column("image_present", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("commit", sa.String(64)),
        sa.Column("spec_version", sa.String(64)),
        sa.Column("built", sa.DateTime),
        sa.Column("last_build_id", sa.String(32)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,  # an id is never reused, even after a delete
    )
    op.execute("""
        INSERT INTO environments_new (name, display_name, description, repo, ref, owner,
            profile, public, spec_name, image, image_present, "commit", spec_version,
            last_build_id, created, updated)
        SELECT e.name, e.display_name, e.description, e.repo, e.ref, e.owner, e.profile,
            e.public, e.spec_name, e.image, e.image IS NOT NULL, e."commit", e.spec_version,
            (SELECT b.id FROM builds b WHERE b.environment = e.name
             ORDER BY b.created DESC LIMIT 1),
            e.created, e.updated
        FROM environments e ORDER BY e.created
    """)
    op.create_table(
        "builds_new",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("environment_id", sa.Integer,
                  sa.ForeignKey("environments_new.id", ondelete="CASCADE"), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("repo", sa.Text, nullable=False),
        sa.Column("ref", sa.String(255), nullable=False, server_default="HEAD"),
        sa.Column("commit", sa.String(64)),
        sa.Column("image", sa.String(255)),
        sa.Column("image_id", sa.String(80)),
        sa.Column("owner", sa.String(255), nullable=False, server_default=""),
        sa.Column("profile", sa.String(63), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("spec_version", sa.String(64)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("started", sa.DateTime),
        sa.Column("finished", sa.DateTime),
    )
    op.execute("""
        INSERT INTO builds_new (id, environment_id, environment, repo, ref, "commit", image,
            owner, profile, status, cache_hit, private, error, spec_version, created,
            started, finished)
        SELECT b.id, e.id, b.environment, b.repo, b.ref, b."commit", b.image, b.owner,
            b.profile, b.status, b.cache_hit, b.private, b.error, b.spec_version, b.created,
            b.started, b.finished
        FROM builds b JOIN environments_new e ON e.name = b.environment
    """)
    op.drop_table("builds")
    op.drop_table("environments")
    op.rename_table("environments_new", "environments")
    op.rename_table("builds_new", "builds")
    op.create_index("ix_environments_name", "environments", ["name"], unique=True)
    op.create_index("ix_builds_environment_id", "builds", ["environment_id"])
    op.create_index("ix_builds_status", "builds", ["status"])


def downgrade():
    raise NotImplementedError("the catalog's ids cannot be folded back into names; "
                              "restore a backup of rees.sqlite instead")

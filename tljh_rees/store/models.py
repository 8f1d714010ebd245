"""Database tables: the environment catalog, its builds, and the on-demand templates.

The database is the authority on what exists and who may use it. An image's own labels
are written by the build that made it, and a builder controls what that build runs
(``LABEL``, ``ONBUILD``), so labels are never read to decide a name, an owner or a
visibility. The catalog names an environment's image by its content-addressed id, which
only the service records, right after a build it ran itself.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String,
                        Text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive datetimes; we only ever store UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class Environment(Base):
    """A name someone claimed, what it builds from, who may use it, and its current image.

    ``id`` is new for every claim of a name: a build or export of a deleted environment
    can never land in a new environment that reuses its name.
    """

    __tablename__ = "environments"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    repo: Mapped[str] = mapped_column(Text)
    ref: Mapped[str] = mapped_column(String(255), default="HEAD")
    owner: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str] = mapped_column(String(63), default="")  # "" = the site's default
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    spec_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    # The current image, set only when one of the service's builds of it completes.
    image: Mapped[str | None] = mapped_column(String(255), nullable=True)  # its tag
    image_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    image_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    image_present: Mapped[bool] = mapped_column(Boolean, default=False)  # engine has it
    # Multi-node mode: the same image in the registry every node pulls from, by digest
    # (servers pull it from there: launchable even when the manager's engine lost it).
    registry_ref: Mapped[str | None] = mapped_column(String(512), nullable=True)
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    spec_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    built: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_build_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Add-on services every launch of it gets (JSON, [{"name", "version", "params"}],
    # checked by the site's ServiceCatalog): set by PATCH, or by a build of a repository
    # declaring them in .rees/services.json.
    services: Mapped[str] = mapped_column(Text, default="[]")
    # When a server of it was last seen running (the GC's "least recently launched").
    last_launched: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Pinned by an admin: the disk garbage collector never removes its current image.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def launchable(self) -> bool:
        return bool(self.image_id and (self.image_present or self.registry_ref))


class Build(Base):
    __tablename__ = "builds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    environment: Mapped[str] = mapped_column(String(63))  # its name, for display
    repo: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="git")  # its Source's kind
    ref: Mapped[str] = mapped_column(String(255), default="HEAD")
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image: Mapped[str | None] = mapped_column(String(255), nullable=True)
    image_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    owner: Mapped[str] = mapped_column(String(255), default="")  # who asked for it
    profile: Mapped[str] = mapped_column(String(63), default="")
    # queued -> running -> built | failed | cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    # Credentials are never stored; this only says a restart cannot re-run the build.
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    spec_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The services the repository declared at this commit (JSON, checked), or None when it
    # declared none or the declaration was refused (the build's log says why).
    services: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    FINAL = ("built", "failed", "cancelled")
    ACTIVE = ("queued", "running")

    @property
    def done(self) -> bool:
        return self.status in self.FINAL


class Template(Base):
    """A launchable recipe (seed 004): an environment (or an admin-allowed plain image),
    the resources its servers get, how long they live, and who may launch them.

    ``image_kind`` says which of the two ``image_name`` names, decided when the template
    was registered, so an environment never silently stands in for an image or back.
    """

    __tablename__ = "templates"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, index=True)
    image_name: Mapped[str] = mapped_column(String(255))
    image_kind: Mapped[str] = mapped_column(String(16), default="environment")  # or image
    memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # bytes
    cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    cull_timeout: Mapped[int] = mapped_column(Integer, default=3600)  # idle seconds; 0 none
    max_age: Mapped[int] = mapped_column(Integer, default=0)  # seconds; 0 none
    max_servers: Mapped[int] = mapped_column(Integer, default=0)  # 0: no cap of its own
    services: Mapped[str] = mapped_column(Text, default="[]")  # JSON, seed 004's shape
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_users: Mapped[str] = mapped_column(Text, default="[]")  # JSON; [] = every user
    owner: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    modified: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Pool(Base):
    """How many warm servers of a template to keep started for temporary users."""

    __tablename__ = "pools"

    template_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("templates.id", ondelete="CASCADE"), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TemporaryUser(Base):
    """A Hub user the service made for one anonymous server (pooled or not).

    The row is written before the Hub user exists, so the spawner (which reads this
    table) knows the user is temporary: no personal storage, only this template. Rows
    stay, as ``gone``, for a day after the user is removed (the pools' recent claims).
    """

    __tablename__ = "temporary_users"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    template_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("templates.id", ondelete="SET NULL"), nullable=True, index=True)
    template: Mapped[str] = mapped_column(String(63))  # its name, for display
    pooled: Mapped[bool] = mapped_column(Boolean, default=False)
    # warming -> available -> claimed -> gone (pooled); claimed -> gone (cold launches)
    state: Mapped[str] = mapped_column(String(16), default="warming", index=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ended: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    LIVE = ("warming", "available", "claimed")


class Sample(Base):
    """One measurement for the admin's dashboard (operations/samples.py): the build queue's
    length, the engine's data disk use (percent), or how long a launch took to answer
    (seconds, ``label`` the environment or template). Kept for eight days."""

    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # queue | disk | launch
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    value: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(Text, default="")

    KINDS = ("queue", "disk", "launch")

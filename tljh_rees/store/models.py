"""Database tables. Image labels are the source of truth for what exists; these rows
keep history and metadata (build records, display fields, who built what)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text
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
    __tablename__ = "environments"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    repo: Mapped[str] = mapped_column(Text)
    ref: Mapped[str] = mapped_column(String(255), default="HEAD")
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image: Mapped[str | None] = mapped_column(String(255), nullable=True)
    owner: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str] = mapped_column(String(63), default="")
    cpu_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    mem_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    spec_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    spec_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Build(Base):
    __tablename__ = "builds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment: Mapped[str] = mapped_column(String(63), index=True)
    repo: Mapped[str] = mapped_column(Text)
    ref: Mapped[str] = mapped_column(String(255), default="HEAD")
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image: Mapped[str | None] = mapped_column(String(255), nullable=True)
    owner: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str] = mapped_column(String(63), default="")
    # queued -> running -> built | failed | cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    # Credentials are never stored; this only says a restart cannot re-run the build.
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    spec_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    FINAL = ("built", "failed", "cancelled")

    @property
    def done(self) -> bool:
        return self.status in self.FINAL

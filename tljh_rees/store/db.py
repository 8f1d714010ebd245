"""Open the database and bring its schema to the newest Alembic revision."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    command.upgrade(_alembic_config(engine), "head")


def open_database(url: str) -> sessionmaker:
    """An engine for ``url`` with migrations applied, and its session factory."""
    engine = create_engine(url)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    upgrade(engine)
    return sessionmaker(engine, expire_on_commit=False)

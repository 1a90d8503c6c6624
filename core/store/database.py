"""Opening an array's configuration database, with explicit versioned migrations.

An existing data directory must open after an upgrade: every schema change is a new
entry in ``MIGRATIONS`` (version -> function applied to an open connection); opening
runs the ones not yet applied, in order, inside one transaction each.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from core.errors import MirrorError
from core.store.schema import Base, SchemaVersionRow


def _v1_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _v1_initial,
}
SCHEMA_VERSION = max(MIGRATIONS)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an acknowledged configuration change survives power loss
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_database(path: Path) -> tuple[Engine, sessionmaker[Session]]:
    """Open (creating or upgrading) the database at ``path``."""
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    with engine.begin() as conn:
        current = 0
        if inspect(conn).has_table(SchemaVersionRow.__tablename__):
            current = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0
        if current > SCHEMA_VERSION:
            raise MirrorError(
                f"{path} was written by a newer Async Mirror (schema {current}, this one knows {SCHEMA_VERSION}); "
                "upgrade this installation to open it",
                code="schemaTooNew",
            )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            MIGRATIONS[version](conn)
            conn.execute(text("INSERT INTO schema_version (version, applied) VALUES (:v, CURRENT_TIMESTAMP)"), {"v": version})
    return engine, sessionmaker(engine, expire_on_commit=False)

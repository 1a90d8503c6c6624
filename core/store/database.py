"""Opening an array's configuration database, with explicit versioned migrations.

An existing data directory must open after an upgrade: every schema change is a new
entry in ``MIGRATIONS`` (version -> function applied to an open connection); opening
runs the ones not yet applied, in order, inside one transaction each.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import MirrorError
from core.store.schema import Base, IscsiSettingsRow, SchemaVersionRow


class DatabaseDamaged(MirrorError):
    """The configuration database cannot be read: said in one line, never a SQLAlchemy traceback."""

    code = "arrayDatabaseDamaged"


def database_damaged(path: Path, why: str) -> DatabaseDamaged:
    e = DatabaseDamaged(
        f"{path} is damaged ({why}); the array cannot start without it: restore config.db from a backup "
        f"('mirrorctl array check {Path(path).parent}' lists what else is affected)")
    e.why = why
    return e


def _v1_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


def _v2_staged_bytes(conn: Connection) -> None:
    """The sync history records what the secondary's journal took (the reserved-capacity forecast uses it).

    A database created at version 1 by this release has the column already (version 1
    creates the current tables).
    """
    columns = {row[1] for row in conn.execute(text("PRAGMA table_info(sync_stat)"))}
    if "staged_bytes" not in columns:
        conn.execute(text("ALTER TABLE sync_stat ADD COLUMN staged_bytes INTEGER"))


def _v3_iscsi_settings(conn: Connection) -> None:
    """The iSCSI global settings both arrays of an iSCSI mirror must share (SPEC: the channel); absent: defaults."""
    Base.metadata.create_all(conn, tables=[IscsiSettingsRow.__table__])  # already there when version 1 made it


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _v1_initial,
    2: _v2_staged_bytes,
    3: _v3_iscsi_settings,
}
SCHEMA_VERSION = max(MIGRATIONS)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an acknowledged configuration change survives power loss
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def read_array_name(path: Path) -> str:
    """The array's name, read-only and without SQLAlchemy (before the data directory is locked).

    For an array daemon naming itself at start and for ``mirrorctl array check``:
    a damaged or empty file is :class:`DatabaseDamaged`, one line, not a traceback.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise database_damaged(path, "the file is empty")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT name FROM array").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise database_damaged(path, str(e)) from None
    if row is None:
        raise database_damaged(path, "it holds no array record")
    return row[0]


def open_database(path: Path) -> tuple[Engine, sessionmaker[Session]]:
    """Open (creating or upgrading) the database at ``path``.

    An existing file that is empty or not a SQLite database is damaged: it is
    refused untouched (:class:`DatabaseDamaged`), never overwritten by a fresh schema.
    """
    path = Path(path)
    if path.exists() and path.stat().st_size == 0:
        raise database_damaged(path, "the file is empty")
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    try:
        _migrate(engine, path)
    except (DatabaseError, sqlite3.DatabaseError) as e:
        engine.dispose()
        raise database_damaged(path, str(getattr(e, "orig", None) or e)) from None
    except BaseException:
        engine.dispose()
        raise
    return engine, sessionmaker(engine, expire_on_commit=False)


def _migrate(engine: Engine, path: Path) -> None:
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

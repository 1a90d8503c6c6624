"""The arrays this console (and mirrorctl) manages, and the trust decided for each (SPEC §4 Unified Manager side).

A managed array is an entry the administrator added on purpose: a display name, the
REST URL of its daemon, the array's own name and WWN as it answered, and how its
certificate is trusted — a pinned SHA-256 accepted after the administrator saw it,
or a CA certificate imported from a file (copied here, so trust does not depend on
the original file staying where it was). Entries live in the console's own SQLite
database under the user's config directory (``MIRROR_CONSOLE_HOME`` overrides it).

Passwords never go in that database: they go to the OS keyring when a usable backend
exists, otherwise to ``passwords.json`` readable by the user only (0600), and
:attr:`ManagedArrayStore.password_location` says which, so the console can tell the
administrator where the secret went.

Each call opens and closes its own Session (SQLAlchemy's FAQ: a Session is not shared
between threads), so the CLI and the console's engine thread may both use a store.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import platformdirs
from sqlalchemy import String, create_engine, event, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from core.errors import InvalidInput, MirrorError, NotFound

HOME_ENV = "MIRROR_CONSOLE_HOME"
PASSWORDS_ENV = "MIRROR_CONSOLE_PASSWORDS"  # "file" forces the file (tests, or an administrator's choice)
DB_FILE = "managed-arrays.db"
PASSWORDS_FILE = "passwords.json"
CERTS_DIR = "certificates"
KEYRING_SERVICE = "async-mirror-console"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,62}$")
SCHEMA_VERSION = 1


def console_home() -> Path:
    """The console's own configuration directory (not the lab's data directory)."""
    return Path(os.environ.get(HOME_ENV) or platformdirs.user_config_dir("async-mirror-console", "AsyncMirror"))


@dataclass(frozen=True)
class ManagedArray:
    """One managed array as stored (plain data: it crosses threads and the bridge)."""

    id: str
    name: str  # the administrator's display name
    url: str  # https://host:port of the array's REST API
    array_name: str  # the array's own name (what groups and volume refs use)
    wwn: str
    certificate_sha256: str | None  # pinned certificate, or None when trusted through ca_file
    ca_file: str | None  # the imported CA certificate (a copy under the console's home)
    added_at: str  # ISO 8601, UTC

    @property
    def trust(self) -> str:
        return f"pinned SHA-256 {self.certificate_sha256}" if self.certificate_sha256 else f"CA file {self.ca_file}"

    def to_json(self) -> dict:
        return {"name": self.name, "url": self.url, "arrayName": self.array_name, "wwn": self.wwn,
                "certificateSha256": self.certificate_sha256, "caFile": self.ca_file, "addedAt": self.added_at}


class _Base(DeclarativeBase):
    pass


class _ManagedArrayRow(_Base):
    __tablename__ = "managed_arrays"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(512))
    array_name: Mapped[str] = mapped_column(String(128), default="")
    wwn: Mapped[str] = mapped_column(String(64), default="")
    certificate_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ca_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    added_at: Mapped[str] = mapped_column(String(40))

    def snapshot(self) -> ManagedArray:
        return ManagedArray(self.id, self.name, self.url, self.array_name, self.wwn, self.certificate_sha256,
                            self.ca_file, self.added_at)


class _MetaRow(_Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def check_display_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise InvalidInput(f"'{name}' is not a usable array name: 1-63 letters, digits, spaces, '.', '_', '-' "
                           "or parentheses, starting with a letter or digit", code="invalidArrayName")
    return name


# -- passwords ---------------------------------------------------------------------------------
class PasswordVault:
    """Array passwords by entry id: the OS keyring when usable, else a 0600 file in the console's home."""

    def __init__(self, home: Path, backend: str | None = None):
        self.home = Path(home)
        self.file = self.home / PASSWORDS_FILE
        choice = (backend or os.environ.get(PASSWORDS_ENV) or "auto").lower()
        self._keyring = _usable_keyring() if choice in ("auto", "keyring") else None
        if choice == "keyring" and self._keyring is None:
            raise MirrorError("no usable system keyring here; store passwords in a file instead "
                              f"({PASSWORDS_ENV}=file)", code="keyringUnavailable")

    @property
    def location(self) -> str:
        """Where passwords go, as the administrator is told: "the system keyring" or the file's path."""
        return "the system keyring" if self._keyring is not None else str(self.file)

    def get(self, key: str) -> str | None:
        if self._keyring is not None:
            return self._keyring.get_password(KEYRING_SERVICE, key)
        return self._read().get(key)

    def set(self, key: str, password: str) -> None:
        if self._keyring is not None:
            self._keyring.set_password(KEYRING_SERVICE, key, password)
            return
        self._write({**self._read(), key: password})

    def delete(self, key: str) -> None:
        if self._keyring is not None:
            try:
                self._keyring.delete_password(KEYRING_SERVICE, key)
            except Exception:  # keyring.errors.PasswordDeleteError: nothing stored, nothing to delete
                pass
            return
        stored = self._read()
        if stored.pop(key, None) is not None:
            self._write(stored)

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.file.read_text() or "{}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise MirrorError(f"{self.file} cannot be read ({e}); remove it and add the arrays' passwords again "
                              "('mirrorctl array add ... --password')", code="passwordFileDamaged") from None
        return {str(k): str(v) for k, v in (data.get("passwords") or {}).items()}

    def _write(self, passwords: dict[str, str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
        with os.fdopen(fd, "w") as f:
            json.dump({"passwords": passwords}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.file)


def _usable_keyring():
    """The keyring backend when it can really store secrets; None for the fail/null backends (headless hosts)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    names = {type(backend).__module__, type(backend).__name__}
    if isinstance(backend, fail.Keyring) or any("null" in n.lower() for n in names) or backend.priority <= 0:
        return None
    return backend


# -- the store ---------------------------------------------------------------------------------
class ManagedArrayStore:
    """The managed arrays and their trust, in ``HOME/managed-arrays.db``; passwords in a :class:`PasswordVault`."""

    def __init__(self, home: Path | None = None, passwords: str | None = None):
        self.home = Path(home) if home is not None else console_home()
        self.db_path = self.home / DB_FILE
        self.vault = PasswordVault(self.home, passwords)
        self._engine = None

    @property
    def password_location(self) -> str:
        return self.vault.location

    def _db(self):
        if self._engine is None:
            self.home.mkdir(parents=True, exist_ok=True)
            engine = create_engine(f"sqlite:///{self.db_path}")
            event.listen(engine, "connect", lambda c, _r: c.execute("PRAGMA journal_mode=WAL"))
            try:
                _Base.metadata.create_all(engine)
                with Session(engine) as s, s.begin():
                    if s.get(_MetaRow, "schemaVersion") is None:
                        s.add(_MetaRow(key="schemaVersion", value=str(SCHEMA_VERSION)))
            except SQLAlchemyError as e:
                engine.dispose()
                raise MirrorError(f"{self.db_path} is damaged ({type(e.orig or e).__name__}); move it aside and "
                                  "add the arrays again", code="managedArraysDamaged") from None
            self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- reading -----------------------------------------------------------------------------
    def list(self) -> list[ManagedArray]:
        if self._engine is None and not self.db_path.exists():
            return []  # reading creates nothing: a console that manages no saved array leaves no file behind
        with Session(self._db()) as s:
            return [r.snapshot() for r in s.scalars(select(_ManagedArrayRow).order_by(_ManagedArrayRow.name))]

    def get(self, name: str) -> ManagedArray:
        entries = self.list()
        match = next((e for e in entries if e.name == name), None)
        if match is None:
            known = ", ".join(e.name for e in entries) or "none"
            raise NotFound(f"no managed array named '{name}' (managed: {known}); add it with "
                           "'mirrorctl array add NAME --url https://HOST:PORT --password ...'",
                           code="managedArrayNotFound")
        return match

    def password(self, entry: ManagedArray) -> str:
        password = self.vault.get(entry.id)
        if password is None:
            raise MirrorError(f"no password is stored for array '{entry.name}' in {self.password_location}; add it "
                              "again with 'mirrorctl array add'", code="passwordMissing")
        return password

    # -- changing ------------------------------------------------------------------------------
    def add(self, name: str, url: str, password: str, *, array_name: str = "", wwn: str = "",
            certificate_sha256: str | None = None, ca_file: str | Path | None = None) -> ManagedArray:
        """Record an array the administrator has connected to and trusted (see core.client.connect)."""
        name = check_display_name(name)
        if bool(certificate_sha256) == bool(ca_file):
            raise InvalidInput("an array is trusted through its certificate's fingerprint or a CA file: give one",
                               code="invalidInput")
        for other in self.list():
            if other.name == name:
                raise MirrorError(f"an array named '{name}' is already managed ({other.url}); remove it first or "
                                  "choose another name", code="managedArrayExists")
            if wwn and other.wwn == wwn:
                raise MirrorError(f"this array ({array_name or wwn}) is already managed as '{other.name}' "
                                  f"({other.url})", code="arrayAlreadyManaged")
        entry_id = str(uuid.uuid4())
        stored_ca = self._keep_ca(entry_id, Path(ca_file)) if ca_file else None
        row = _ManagedArrayRow(id=entry_id, name=name, url=url, array_name=array_name, wwn=wwn,
                               certificate_sha256=certificate_sha256, ca_file=stored_ca,
                               added_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.vault.set(entry_id, password)
        try:
            with Session(self._db()) as s, s.begin():
                s.add(row)
                snap = row.snapshot()
        except IntegrityError:
            self.vault.delete(entry_id)
            raise MirrorError(f"an array named '{name}' is already managed", code="managedArrayExists") from None
        return snap

    def remove(self, name: str) -> ManagedArray:
        entry = self.get(name)
        with Session(self._db()) as s, s.begin():
            row = s.get(_ManagedArrayRow, entry.id)
            if row is not None:
                s.delete(row)
        self.vault.delete(entry.id)
        if entry.ca_file and Path(entry.ca_file).parent == self.home / CERTS_DIR:
            Path(entry.ca_file).unlink(missing_ok=True)
        return entry

    def rename(self, name: str, new_name: str) -> ManagedArray:
        new_name = check_display_name(new_name)
        entry = self.get(name)
        if new_name != name and any(e.name == new_name for e in self.list()):
            raise MirrorError(f"an array named '{new_name}' is already managed; choose another name",
                              code="managedArrayExists")
        with Session(self._db()) as s, s.begin():
            row = s.get(_ManagedArrayRow, entry.id)
            row.name = new_name
            return row.snapshot()

    def _keep_ca(self, entry_id: str, source: Path) -> str:
        target_dir = self.home / CERTS_DIR
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{entry_id}.pem"
        shutil.copyfile(source, target)
        return str(target)

"""A storage array: one data directory, its configuration database, its volumes.

An array is a self-contained unit (it later runs as a daemon on another host): it
owns its directory lock, its one SQLAlchemy session (used only on the engine
thread), its volumes' sparse files and its event log. Cross-array rules live in
the engine; this module enforces what one array can check alone.
"""
from __future__ import annotations

import os
import secrets
import sqlite3
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import DatabaseError, MultipleResultsFound, NoResultFound

from core import iscsi_settings
from core.channel.auth import new_salt, password_hash, verify_password
from core.datadir import DataDirLock
from core.domain import (RAID_LEVELS, ControllerStatus, DriveType, Model, Security, Severity,
                         parse_word)
from core.errors import InvalidInput, MirrorError, NotFound
from core.mirror_records import GroupRecord, MirrorRecords
from core.names import check_name
from core.snapshots import (ArraySnapshot, ControllerSnapshot, EventRecord, HostPortSnapshot, IscsiSettingsSnapshot,
                            PoolSnapshot, VolumeSnapshot)
from core.store.database import database_damaged, open_database
from core.units import exact_size
from core.store.schema import (ArrayRow, ControllerRow, EventRow, GroupRow, HostPortRow, IscsiSettingsRow, PairRow,
                               PoolRow, VolumeRow, utcnow)

DB_NAME = "config.db"


@dataclass(frozen=True)
class PoolSpec:
    name: str
    drive_type: DriveType
    capacity: int


@dataclass(frozen=True)
class ArraySpec:
    """What it takes to create an array (the lab, or `array create`)."""

    name: str
    model: Model = Model.E5700
    firmware: str = "08.74.00.01"
    password: str = ""
    controllers: tuple[str, ...] = ("A", "B")
    fc_ports: int = 4  # per controller
    iscsi_ports: int = 2  # per controller
    pools: tuple[PoolSpec, ...] = ()


class StorageArray:
    """One running array. Use :meth:`create` or :meth:`open`; :meth:`close` when done."""

    def __init__(self, data_dir: Path, lock: DataDirLock):
        self.data_dir = Path(data_dir)
        self._lock = lock
        self._engine, self._sessions = open_database(self.data_dir / DB_NAME)
        self.db = self._sessions()
        try:
            row = self.db.scalars(select(ArrayRow)).one()
        except (NoResultFound, MultipleResultsFound, DatabaseError, sqlite3.DatabaseError) as e:
            self.db.close()
            self._engine.dispose()
            why = "it holds no array record" if isinstance(e, NoResultFound) else \
                "it holds several array records" if isinstance(e, MultipleResultsFound) else \
                str(getattr(e, "orig", None) or e)
            raise database_damaged(self.data_dir / DB_NAME, why) from None
        self.name = row.name
        # The group rows, held between writes, and plain records of them for listings: every
        # scheduler tick and listing asks for them (issue 14 at 64 x 8; see core.mirror_records).
        self._records = MirrorRecords(self.db)
        self.channel_address = ""  # set while the mirroring channel listens
        self.on_event: Callable[[EventRecord], None] | None = None
        self._drive_types: dict[str, str] = {}  # pool -> drive type (pools never change type)

    # -- life cycle -------------------------------------------------------
    @classmethod
    def create(cls, data_dir: Path, spec: ArraySpec) -> "StorageArray":
        check_name(spec.name, "Array")
        data_dir = Path(data_dir)
        if (data_dir / DB_NAME).exists():
            raise MirrorError(f"an array already exists in {data_dir}; open it or choose another directory",
                              code="arrayExists")
        (data_dir / "volumes").mkdir(parents=True, exist_ok=True)
        (data_dir / "reserved").mkdir(exist_ok=True)
        lock = DataDirLock(data_dir)
        lock.acquire()
        try:
            engine, sessions = open_database(data_dir / DB_NAME)
            salt = new_salt()
            with sessions() as db, db.begin():
                db.add(ArrayRow(name=spec.name, wwn=_new_wwn(), model=spec.model.value, firmware=spec.firmware,
                                password_salt=salt, password_hash=password_hash(spec.password, salt)))
                for c in spec.controllers:
                    db.add(ControllerRow(label=c, status=ControllerStatus.OPTIMAL.value))
                    for i in range(spec.fc_ports):
                        db.add(HostPortRow(label=f"{c}-fc{i + 1}", kind="fc", controller=c, number=i + 1))
                    for i in range(spec.iscsi_ports):
                        db.add(HostPortRow(label=f"{c}-iscsi{i + 1}", kind="iscsi", controller=c, number=i + 1))
                for p in spec.pools:
                    db.add(PoolRow(name=check_name(p.name, "Pool"), drive_type=p.drive_type.value,
                                   capacity=p.capacity))
            engine.dispose()
            array = cls(data_dir, lock)
        except BaseException:
            lock.release()
            raise
        array.log(Severity.INFO, spec.name, "arrayCreated", f"Array {spec.name} created ({spec.model.value})")
        return array

    @classmethod
    def open(cls, data_dir: Path, purpose: str = "") -> "StorageArray":
        """Open an existing array; a damaged config.db is one line (``arrayDatabaseDamaged``)."""
        data_dir = Path(data_dir)
        if not (data_dir / DB_NAME).exists():
            raise NotFound(f"no array in {data_dir}; create one first (mirrorctl lab init)")
        lock = DataDirLock(data_dir)
        lock.acquire(purpose)
        try:
            return cls(data_dir, lock)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        self.db.close()
        self._engine.dispose()
        self._lock.release()

    # -- identity ---------------------------------------------------------
    @property
    def row(self) -> ArrayRow:
        return self.db.scalars(select(ArrayRow)).one()

    @property
    def model(self) -> Model:
        return Model(self.row.model)

    def check_password(self, password: str) -> bool:
        row = self.row
        return verify_password(password, row.password_salt, row.password_hash)

    def controllers(self) -> list[ControllerRow]:
        return list(self.db.scalars(select(ControllerRow).order_by(ControllerRow.label)))

    def controller_offline(self, label: str) -> bool:
        """Whether controller ``label`` is offline (reset, not restored yet)."""
        return any(c.label == label and c.status == "offline" for c in self.controllers())

    def channel_types(self) -> set[str]:
        return set(self.db.scalars(select(HostPortRow.kind).distinct()))

    # -- pools ------------------------------------------------------------
    def pool(self, name: str) -> PoolRow:
        row = self.db.get(PoolRow, name)
        if row is None:
            names = ", ".join(p.name for p in self.db.scalars(select(PoolRow)))
            raise NotFound(f"array {self.name} has no pool '{name}'; its pools are: {names}")
        return row

    def drive_type_of(self, pool: str) -> str:
        """A pool's drive type, from memory: snapshots ask it for every volume and pair."""
        if pool not in self._drive_types:
            self._drive_types[pool] = self.pool(pool).drive_type
        return self._drive_types[pool]

    def pool_free(self, pool: str) -> int:
        """Capacity not yet given to volumes or reserved capacity (thick accounting)."""
        row = self.pool(pool)
        used = self.db.scalar(select(func.coalesce(func.sum(VolumeRow.capacity), 0)).where(VolumeRow.pool == pool))
        reserved = self.db.scalar(
            select(func.coalesce(func.sum(PairRow.reserved_capacity), 0)).where(PairRow.reserved_pool == pool))
        return row.capacity - used - reserved

    def pools_of(self, drive_type: str) -> list[PoolRow]:
        return list(self.db.scalars(select(PoolRow).where(PoolRow.drive_type == drive_type).order_by(PoolRow.name)))

    def pick_pool(self, drive_type: str, need: int) -> PoolRow | None:
        """The pool of ``drive_type`` with the most free capacity, if it has ``need`` bytes."""
        best = max(self.pools_of(drive_type), key=lambda p: self.pool_free(p.name), default=None)
        return best if best is not None and self.pool_free(best.name) >= need else None

    # -- volumes ----------------------------------------------------------
    def volume(self, name: str) -> VolumeRow:
        row = self.db.scalars(select(VolumeRow).where(VolumeRow.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"array {self.name} has no volume '{name}'; see 'mirrorctl volume list --array {self.name}'",
                           code="volumeNotFound")
        return row

    def volumes(self) -> list[VolumeRow]:
        return list(self.db.scalars(select(VolumeRow).order_by(VolumeRow.name)))

    def volume_path(self, row: VolumeRow) -> Path:
        return self.data_dir / row.file

    def pair_of(self, volume: VolumeRow) -> PairRow | None:
        return self.db.scalars(select(PairRow).where(PairRow.volume_id == volume.id)).one_or_none()

    def create_volume(self, name: str, capacity: int, pool: str | None = None, drive_type: str | None = None,
                      raid_level: str = "6", segment_size: int = 128 * 1024, security: str = "none",
                      drive_security: bool = False, data_assurance: bool = False,
                      resource_partitioning: bool = False, owner: str | None = None) -> VolumeRow:
        check_name(name, "Volume", code="invalidVolumeLabel")
        if self.db.scalars(select(VolumeRow.id).where(VolumeRow.name == name)).first() is not None:
            raise InvalidInput(f"array {self.name} already has a volume named '{name}'; choose another name",
                               code="volumeLabelExists")
        if capacity <= 0 or capacity % 512:
            raise InvalidInput(f"capacity {capacity} is not a positive multiple of 512 bytes; give e.g. 10GiB",
                               code="invalidCapacity")
        security = parse_word(Security, security, "security").value
        if drive_security and security == "none":
            raise InvalidInput("Drive Security needs a secure-capable volume; add --security fde or --security fips",
                               code="invalidSecurity")
        if str(raid_level) not in RAID_LEVELS:
            raise InvalidInput(f"RAID level '{raid_level}' is not valid; use one of {', '.join(RAID_LEVELS)}",
                               code="invalidRaidLevel")
        if segment_size not in (32 * 1024, 64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024):
            raise InvalidInput("segment size must be 32KiB, 64KiB, 128KiB, 256KiB or 512KiB", code="invalidSegmentSize")
        if pool is None:
            dtype = parse_word(DriveType, drive_type or "nvme", "drive type").value
            chosen = self.pick_pool(dtype, capacity)
            if chosen is None:
                raise InvalidInput(f"no {dtype.upper()} pool on {self.name} has {exact_size(capacity)} free; "
                                   "give a smaller capacity or another drive type", code="insufficientCapacity")
            pool = chosen.name
        prow = self.pool(pool)
        if drive_type is not None and parse_word(DriveType, drive_type, "drive type").value != prow.drive_type:
            raise InvalidInput(f"pool {pool} holds {prow.drive_type.upper()} drives, not {drive_type.upper()}; "
                               "pick a pool of that drive type", code="driveTypeMismatch")
        free = self.pool_free(pool)
        if capacity > free:
            raise InvalidInput(f"pool {pool} on {self.name} has only {exact_size(free)} free; "
                               "give a smaller capacity or another pool", code="insufficientCapacity")
        owner = owner or self._balanced_owner()
        rel = f"volumes/{name}.img"
        path = self.data_dir / rel
        with open(path, "wb") as f:  # sparse: costs nothing until written
            f.truncate(capacity)
        row = VolumeRow(name=name, pool=pool, capacity=capacity, raid_level=str(raid_level),
                        segment_size=segment_size, security=security, drive_security=drive_security,
                        data_assurance=data_assurance, resource_partitioning=resource_partitioning,
                        preferred_owner=owner, current_owner=owner, file=rel)
        try:
            self.db.add(row)
            self.db.commit()
        except BaseException:
            self.db.rollback()
            path.unlink(missing_ok=True)
            raise
        self.log(Severity.INFO, name, "volumeCreated", f"Volume {name} created ({capacity} bytes in {pool})")
        return row

    def _balanced_owner(self) -> str:
        ctrls = [c.label for c in self.controllers()]
        counts = {c: 0 for c in ctrls}
        for v in self.volumes():
            counts[v.preferred_owner] = counts.get(v.preferred_owner, 0) + 1
        return min(ctrls, key=lambda c: counts[c]) if ctrls else "A"

    def resize_volume(self, name: str, capacity: int) -> VolumeRow:
        row = self.volume(name)
        if capacity < row.capacity:
            raise InvalidInput(f"volume {name} can only grow (now {exact_size(row.capacity)}); give a larger capacity",
                               code="invalidCapacity")
        if capacity % 512:
            raise InvalidInput("capacity must be a multiple of 512 bytes", code="invalidCapacity")
        grow = capacity - row.capacity
        if grow > self.pool_free(row.pool):
            raise InvalidInput(f"pool {row.pool} has only {exact_size(self.pool_free(row.pool))} free for growing {name}",
                               code="insufficientCapacity")
        os.truncate(self.volume_path(row), capacity)
        row.capacity = capacity
        self.db.commit()
        self.log(Severity.INFO, name, "volumeResized", f"Volume {name} resized to {capacity} bytes")
        return row

    def delete_volume(self, name: str) -> None:
        row = self.volume(name)
        pair = self.pair_of(row)
        if pair is not None:
            raise MirrorError(f"volume {name} is in mirror group {pair.group.name}; remove the mirrored pair first",
                              code="arvmVolumeAlreadyInMirrorRelationship")
        path = self.volume_path(row)
        self.db.delete(row)
        self.db.commit()
        path.unlink(missing_ok=True)
        self.log(Severity.INFO, name, "volumeDeleted", f"Volume {name} deleted")

    # -- mirror records (this side only) ----------------------------------
    def group(self, name: str) -> GroupRow:
        row = self.find_group(name)
        if row is None:
            raise self._no_group(name)
        return row

    def _no_group(self, name: str) -> NotFound:
        return NotFound(f"array {self.name} has no mirror consistency group '{name}'; see 'mirrorctl group list'",
                        code="arvmGroupNotFound")

    def find_group(self, name: str) -> GroupRow | None:
        return self.db.scalars(select(GroupRow).where(GroupRow.name == name)).one_or_none()

    def groups(self) -> list[GroupRow]:
        return self._records.rows()

    def group_records(self) -> list[GroupRecord]:
        """Every group as plain records (see core.mirror_records), in name order: always the rows' current values."""
        return self._records.groups()

    def group_record(self, name: str) -> GroupRecord:
        record = self._records.group(name)
        if record is None:
            raise self._no_group(name)
        return record

    def pairs_by_volume(self) -> dict:
        return {p.volume_id: p for g in self.groups() for p in g.pairs}

    def reserved_dir(self, pair: PairRow) -> Path:
        return self.data_dir / pair.reserved_dir

    # -- events -----------------------------------------------------------
    def commit(self, durable: bool = True) -> None:
        """Commit the database session.

        ``durable=False`` skips the fsync of this commit: for state the engine
        rebuilds by itself after an OS crash (sync statistics, sync progress
        events, the primary's recovery point record, whose change log resends
        the regions). A process crash loses nothing either way; the next durable
        commit makes it durable too.
        """
        if durable:
            self.db.commit()
            return
        raw = self.db.connection().connection.dbapi_connection
        if raw.in_transaction:
            # An autoflush (a query after a change) already began the SQLite transaction, and
            # PRAGMA synchronous cannot change inside one: this commit is simply durable.
            self.db.commit()
            return
        raw.execute("PRAGMA synchronous=NORMAL")
        try:
            self.db.commit()
        finally:
            raw.execute("PRAGMA synchronous=FULL")

    def log(self, severity: Severity, obj: str, code: str, message: str, durable: bool = True) -> EventRecord:
        row = EventRow(time=utcnow(), severity=str(severity), object=obj, code=code, message=message)
        self.db.add(row)
        self.commit(durable)
        record = EventRecord(array=self.name, id=row.id, time=row.time, severity=row.severity, object=obj,
                             code=code, message=message)
        if self.on_event is not None:
            self.on_event(record)
        return record

    def events(self, limit: int = 200, since_id: int = 0) -> list[EventRecord]:
        rows = self.db.scalars(select(EventRow).where(EventRow.id > since_id)
                               .order_by(EventRow.id.desc()).limit(limit))
        return [EventRecord(array=self.name, id=r.id, time=r.time, severity=r.severity, object=r.object,
                            code=r.code, message=r.message) for r in reversed(list(rows))]

    # -- snapshots ----------------------------------------------------------
    def iscsi_settings(self) -> IscsiSettingsSnapshot:
        row = self.db.scalars(select(IscsiSettingsRow)).first()
        if row is None:
            return iscsi_settings.DEFAULT
        return IscsiSettingsSnapshot(**{name: getattr(row, name) for name in iscsi_settings.FIELDS})

    def set_iscsi_settings(self, changes: dict) -> IscsiSettingsSnapshot:
        """Apply ``changes`` (any of ``iscsi_settings.FIELDS``), all checked first: a wrong one stores nothing."""
        iscsi_settings.check(changes)
        row = self.db.scalars(select(IscsiSettingsRow)).first()
        if row is None:
            row = IscsiSettingsRow(id=1, **asdict(iscsi_settings.DEFAULT))
            self.db.add(row)
        for name, value in changes.items():
            setattr(row, name, value)
        self.db.commit()
        return self.iscsi_settings()

    def snapshot(self, online: bool = True) -> ArraySnapshot:
        row = self.row
        ports = list(self.db.scalars(select(HostPortRow).order_by(HostPortRow.label)))
        top_fc = {}
        for p in ports:
            if p.kind == "fc":
                top_fc[p.controller] = max(top_fc.get(p.controller, 0), p.number)
        return ArraySnapshot(
            name=row.name, wwn=row.wwn, model=row.model, firmware=row.firmware,
            controllers=tuple(ControllerSnapshot(c.label, c.status) for c in self.controllers()),
            host_ports=tuple(HostPortSnapshot(p.label, p.kind, p.controller,
                                              mirroring=p.kind == "fc" and p.number == top_fc.get(p.controller))
                             for p in ports),
            pools=tuple(PoolSnapshot(p.name, p.drive_type, p.capacity, self.pool_free(p.name))
                        for p in self.db.scalars(select(PoolRow).order_by(PoolRow.name))),
            data_dir=str(self.data_dir), channel_address=self.channel_address, online=online,
            iscsi=self.iscsi_settings())

    def volume_snapshot(self, row: VolumeRow, host_writable: bool | None = None, nbd_uri: str | None = None,
                        pairs: dict | None = None, host_bytes_written: int = 0) -> VolumeSnapshot:
        """``pairs`` (volume id -> pair, from :meth:`pairs_by_volume`) saves a query per volume."""
        pair = pairs.get(row.id) if pairs is not None else self.pair_of(row)
        role = pair.group.role if pair is not None else None
        if host_writable is None:
            host_writable = not row.failed and role != "secondary"
        return VolumeSnapshot(
            array=self.name, name=row.name, capacity=row.capacity, pool=row.pool,
            drive_type=self.drive_type_of(row.pool), raid_level=row.raid_level, segment_size=row.segment_size,
            security=row.security, drive_security=row.drive_security, data_assurance=row.data_assurance,
            resource_partitioning=row.resource_partitioning, preferred_owner=row.preferred_owner,
            current_owner=row.current_owner, path=str(self.volume_path(row)), failed=row.failed,
            mirror_group=pair.group.name if pair is not None else None, role=role,
            host_writable=host_writable, nbd_uri=nbd_uri, host_bytes_written=host_bytes_written)


def _new_wwn() -> str:
    return "600a0980" + secrets.token_hex(12)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

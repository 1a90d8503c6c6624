"""Plain read-only copies of an array's mirror rows (groups, their pairs, the pairs' volumes), kept between writes.

A ``GET async-mirrors`` at issue 14's scale (64 groups x 8 pairs) read about 15,000
attributes of SQLAlchemy rows, each through the ORM's instrumentation (py-spy on the
daemon: a quarter of the listing's time). The rows change only when the session
writes them, a few groups a second at most; every other listing finds them as they
were. Here each group's persisted fields live in named tuples with the rows' own
attribute names (``g.pairs``, ``p.volume.failed``...), so code that reads a row reads
its record the same way (``core.status`` takes either).

A group's record is kept only while it equals its rows: it is dropped when a flush
writes its group row, one of its pairs or their volumes, and any rollback or bulk
statement drops them all. A row changed in memory but not flushed yet is read from
the row itself, and that record is not kept: a record never shows an older state.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, NamedTuple

from sqlalchemy import event, select
from sqlalchemy.orm import Session, selectinload

from core.store.schema import GroupRow, PairRow, VolumeRow


class VolumeRecord(NamedTuple):
    name: str
    capacity: int
    failed: bool


class PairRecord(NamedTuple):
    volume: VolumeRecord
    remote_volume: str
    incomplete: bool
    orphan: bool
    failed_reason: str
    initial_sync_done: bool
    recovery_point_available: bool
    reserved_pool: str
    reserved_capacity: int


class GroupRecord(NamedTuple):
    name: str
    remote_array: str
    role: str
    channel: str
    sync_mode: str
    sync_interval_minutes: int
    priority: str
    resync_policy: str
    sync_alert_minutes: int
    recovery_point_alert_minutes: int
    reserved_alert_percent: int
    user_suspended: bool
    paused_reason: str
    role_change: str
    role_conflict: bool
    forced: str
    orphan: bool
    last_recovery_point: datetime | None
    pairs: tuple[PairRecord, ...]


def pair_record(p: PairRow) -> PairRecord:
    v = p.volume
    return PairRecord(VolumeRecord(v.name, v.capacity, v.failed), p.remote_volume, p.incomplete, p.orphan,
                      p.failed_reason, p.initial_sync_done, p.recovery_point_available, p.reserved_pool,
                      p.reserved_capacity)


def group_record(g: GroupRow) -> GroupRecord:
    return GroupRecord(g.name, g.remote_array, g.role, g.channel, g.sync_mode, g.sync_interval_minutes, g.priority,
                       g.resync_policy, g.sync_alert_minutes, g.recovery_point_alert_minutes,
                       g.reserved_alert_percent, g.user_suspended, g.paused_reason, g.role_change, g.role_conflict,
                       g.forced, g.orphan, g.last_recovery_point, tuple(pair_record(p) for p in g.pairs))


_EVERY_GROUP = None  # what _touched answers when groups or pairs came or went: everything is read again


class MirrorRecords:
    """The records of one array's groups, by name order; one per array, on its session's thread."""

    def __init__(self, db: Session):
        self._db = db
        # Group id -> its row, in name order, held: the session's identity map keeps rows only
        # while something refers to them, and a row dropped between two listings was loaded again
        # (with a SELECT for its pairs and one per pair for its volume). None: to be read.
        self._rows: dict[int, GroupRow] | None = None
        self._records: dict[int, GroupRecord] = {}  # group id -> record, equal to its rows
        self._group_of_volume: dict[int, int] = {}  # volume id -> the group id of its pair
        self._listed: list[GroupRecord] | None = None  # the last answer, while no record changed
        event.listen(db, "after_flush", self._flushed)
        for name in ("after_rollback", "after_soft_rollback"):
            event.listen(db, name, self._forget_all)
        event.listen(db, "do_orm_execute", self._executed)

    def groups(self) -> list[GroupRecord]:
        """Every group's record, in name order; those with unflushed changes made from their rows now."""
        pending = self._pending()
        if self._rows is None or pending is _EVERY_GROUP:
            self._read_rows()  # its query flushes what was pending first (autoflush)
            pending = self._pending()
            if pending is _EVERY_GROUP:  # autoflush held off: every record from its rows, none kept
                return [group_record(g) for g in self._rows.values()]
        if not pending and self._listed is not None:
            return list(self._listed)
        out = []
        for gid, row in self._rows.items():  # in name order (see _read_rows)
            if gid in pending:
                out.append(group_record(row))
                continue
            record = self._records.get(gid)
            if record is None:
                record = self._records[gid] = group_record(row)
            out.append(record)
        if not pending:
            self._listed = out
        return list(out)

    def group(self, name: str) -> GroupRecord | None:
        return next((g for g in self.groups() if g.name == name), None)

    def rows(self) -> list[GroupRow]:
        """The group rows themselves, in name order: the ones the records are made from.

        A row the session changed is current by itself (it is the session's own object); rows
        are read again when a group or pair came or went, as for the records.
        """
        if self._rows is None or self._pending() is _EVERY_GROUP:
            self._read_rows()  # its query flushes what was pending first (autoflush)
        return list(self._rows.values())

    # -- what a write changed ---------------------------------------------------------------
    def _read_rows(self) -> None:
        rows = list(self._db.scalars(select(GroupRow).order_by(GroupRow.name)
                                     .options(selectinload(GroupRow.pairs).selectinload(PairRow.volume))))
        self._rows = {g.id: g for g in rows}
        self._group_of_volume = {p.volume_id: g.id for g in rows for p in g.pairs}
        self._records.clear()
        self._listed = None

    def _pending(self) -> set[int] | None:
        """The groups whose rows were changed in memory and not flushed yet."""
        db = self._db
        new, dirty, deleted = db.new, db.dirty, db.deleted
        return self._touched(new, dirty, deleted) if new or dirty or deleted else set()

    def _touched(self, new: Iterable, dirty: Iterable, deleted: Iterable) -> set[int] | None:
        """Ids of the groups whose records these rows change; ``_EVERY_GROUP`` when a group or pair came or went."""
        out: set[int] = set()
        for obj in dirty:
            if isinstance(obj, GroupRow):
                out.add(obj.id)
            elif isinstance(obj, PairRow):
                if obj.group_id not in self._rows_or_empty():
                    return _EVERY_GROUP
                out.add(obj.group_id)
            elif isinstance(obj, VolumeRow) and obj.id in self._group_of_volume:
                out.add(self._group_of_volume[obj.id])
        for objs in (new, deleted):
            for obj in objs:
                if isinstance(obj, (GroupRow, PairRow)):
                    return _EVERY_GROUP
                if isinstance(obj, VolumeRow) and obj.id in self._group_of_volume:
                    out.add(self._group_of_volume[obj.id])
        return out

    def _rows_or_empty(self) -> dict:
        return self._rows if self._rows is not None else {}

    def _flushed(self, session: Session, _context) -> None:
        # After a flush the session still lists what it wrote as new, dirty and deleted.
        touched = self._touched(session.new, session.dirty, session.deleted)
        if touched is _EVERY_GROUP:
            self._forget_all()
            return
        if touched:
            for gid in touched:
                self._records.pop(gid, None)
            self._listed = None

    def _forget_all(self, *_) -> None:
        self._rows = None
        self._records.clear()
        self._group_of_volume.clear()
        self._listed = None

    def _executed(self, state) -> None:
        if not state.is_select:  # a bulk UPDATE or DELETE through the session: rows may differ from records
            self._forget_all()

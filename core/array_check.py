"""Offline check of an array's data directory, repairing what can be (``mirrorctl array check``).

Damage on disk (a bad sector, a stray write, a full disk) must never leave an
administrator with a traceback or, worse, a mirror that looks healthy while its
secondary diverges. This check runs while the array is stopped (it takes the
data-directory lock, so its daemon cannot start meanwhile) and looks at every file
the array keeps: the configuration database (SQLite ``PRAGMA integrity_check``),
the volume files, each pair's change logs, PIT store, staging journal and its side
files, and the group records (commit records, sync-resume hints). Each problem is
one :class:`Finding`: what is wrong, and either what ``--repair`` did or what the
administrator should do. Repairs only ever make the mirror resend more, never less.
"""
from __future__ import annotations

import os
import sqlite3
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from core.datadir import DataDirLock
from core.datapath import changelog, changelog_file, pit, staging
from core.datapath.extents import FormatMismatch, check_format, create_atomically
from core.domain import Severity
from core.errors import DataDirLocked, MirrorError, NotFound
from core.replication import receiver
from core.store.database import DatabaseDamaged, read_array_name
from core.store.schema import EventRow, GroupRow, PairRow, VolumeRow, utcnow

DB_NAME = "config.db"
LOG_FILES = ("changes.log", "since_capture.log")


@dataclass
class Finding:
    """One problem: ``repair`` says what ``--repair`` did, ``advice`` what is left to do."""

    what: str
    path: str
    problem: str
    repair: str = ""
    advice: str = ""

    def line(self) -> str:
        tail = f"repaired: {self.repair}" if self.repair else self.advice
        return f"{self.what} {self.path}: {self.problem}" + (f" -> {tail}" if tail else "")


@dataclass
class CheckReport:
    data_dir: str
    array: str
    repair: bool
    checked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems_left(self) -> int:
        return sum(1 for f in self.findings if not f.repair)

    def to_json(self) -> dict:
        return {"dataDir": self.data_dir, "array": self.array, "repair": self.repair, "checked": self.checked,
                "problems": [asdict(f) for f in self.findings], "problemsLeft": self.problems_left}


def check_array(data_dir, repair: bool = False, region_size: int | None = None) -> CheckReport:
    """Check (and with ``repair`` fix) a stopped array's data directory."""
    from core.domain import REGION_SIZE

    data_dir = Path(data_dir)
    if not (data_dir / DB_NAME).exists():
        raise NotFound(f"no array in {data_dir} (it holds no config.db); give an array's data directory or its "
                       "lab name", code="arrayNotFound")
    lock = DataDirLock(data_dir)
    try:
        lock.acquire("mirrorctl array check")
    except DataDirLocked:
        raise MirrorError(f"array {data_dir.name} is running ({data_dir} is locked): stop the array first: "
                          f"mirrorctl lab array stop {data_dir.name}", code="arrayRunning") from None
    try:
        return _Checker(data_dir, repair, region_size or REGION_SIZE).run()
    finally:
        lock.release()


class _Checker:
    def __init__(self, data_dir: Path, repair: bool, region_size: int):
        self.dir = data_dir
        self.repair = repair
        self.region_size = region_size
        self.report = CheckReport(str(data_dir), data_dir.name, repair)
        self.db: Session | None = None

    def run(self) -> CheckReport:
        engine = self._database()
        try:
            if self.db is not None:
                self._volumes_and_pairs()
            self._group_records()
            if self.db is not None and self.repair and any(f.repair for f in self.report.findings):
                self._log_repairs()
        finally:
            if self.db is not None:
                self.db.close()
            if engine is not None:
                engine.dispose()
        return self.report

    def add(self, what: str, path, problem: str, repair: str = "", advice: str = "") -> Finding:
        found = Finding(what, str(path), problem, repair, advice)
        self.report.findings.append(found)
        return found

    # -- the configuration database -------------------------------------------------------------
    def _database(self):
        path = self.dir / DB_NAME
        advice = "restore config.db from a backup; the array cannot start without it"
        if path.stat().st_size == 0:
            self.add("database", path, "the file is empty", advice=advice)
            return None
        try:
            conn = sqlite3.connect(path)
            try:
                rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            self.add("database", path, f"damaged: {e}", advice=advice)
            return None
        self.report.checked.append("database")
        if rows != ["ok"]:
            self.add("database", path, f"integrity check failed: {'; '.join(rows[:3])}", advice=advice)
            return None
        try:
            self.report.array = read_array_name(path)
        except DatabaseDamaged as e:
            self.add("database", path, f"damaged: {e.why}", advice=advice)
            return None
        engine = create_engine(f"sqlite:///{path}", future=True)
        self.db = Session(engine, expire_on_commit=False)
        return engine

    def _log_repairs(self) -> None:
        done = [f for f in self.report.findings if f.repair]
        for f in done:
            self.db.add(EventRow(time=utcnow(), severity=str(Severity.WARNING), object=self.report.array,
                                 code="arrayCheckRepaired", message=f"mirrorctl array check --repair: {f.line()}"))
        self.db.commit()

    # -- volumes and the reserved capacity of each pair -------------------------------------------
    def _volumes_and_pairs(self) -> None:
        volumes = list(self.db.scalars(select(VolumeRow).order_by(VolumeRow.name)))
        for v in volumes:
            path = self.dir / v.file
            if not path.exists():
                self.add("volume file", path, f"volume {v.name} has no file",
                         advice="restore the file from a backup, or delete the volume (and its pair)")
            elif path.stat().st_size < v.capacity:
                self.add("volume file", path, f"{path.stat().st_size} bytes, the volume holds {v.capacity}",
                         advice="restore the file from a backup")
        pairs = list(self.db.scalars(select(PairRow)))
        self.report.checked += [f"{len(volumes)} volume(s)", f"{len(pairs)} pair(s)"]
        for p in pairs:
            reserved = self.dir / p.reserved_dir
            for name in LOG_FILES:
                self._change_log(reserved / name, p.volume.capacity)
            self._pit(reserved / "pit.dat")
            self._journal(reserved / "staging.dat", p)

    def _change_log(self, path: Path, size: int) -> None:
        if not path.exists():  # a new log would take every region as clean: changes made before would be lost
            found = self.add("change log", path, "missing (a new log would take every region as unchanged)",
                             advice="run with --repair to rebuild it with every region changed")
            if self.repair:
                log = changelog.ChangeLog.open(path, size, self.region_size)
                log.mark_all()
                log.close()
                found.repair = "rebuilt with every region changed: they are resent at the next sync"
            return
        try:
            image = changelog_file.inspect(path, size, self.region_size)
        except (FormatMismatch, OSError) as e:
            found = self.add("change log", path, str(e), advice="run with --repair: it is moved aside and rebuilt "
                                                               "with every region changed")
            if self.repair:
                aside = _aside(path)
                os.replace(path, aside)
                log = changelog.ChangeLog.open(path, size, self.region_size)
                log.mark_all()
                log.close()
                found.repair = f"moved aside to {aside.name}, rebuilt with every region changed (resent at the " \
                               "next sync)"
            return
        if not (image.header_damaged or image.damaged_blocks):
            return
        how = "its header is damaged" if image.header_damaged else \
            f"{len(image.damaged_blocks)} block(s) fail their checksum"
        found = self.add("change log", path, how, advice="run with --repair (or start the array: it repairs the "
                                                         "log the same way)")
        if self.repair:
            changelog.ChangeLog.open(path, max(size, image.volume_size), self.region_size).close()
            found.repair = f"{image.repaired_regions} region(s) taken as changed: they are resent at the next sync"

    def _pit(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            pit.check_version(path.read_bytes()[:pit.HEADER_SIZE], path)
        except FormatMismatch as e:
            found = self.add("PIT store", path, str(e), advice="run with --repair (it holds nothing that "
                                                               "outlives a restart)")
            if self.repair:
                path.unlink()
                found.repair = "removed; the next sync starts a new one"

    def _journal(self, path: Path, pair) -> None:
        if not path.exists():
            return
        try:
            check_format(path.read_bytes()[:staging.HEADER_SIZE], staging.MAGIC, staging.VERSION,
                         "staging journal", path)
        except FormatMismatch as e:
            found = self.add("staging journal", path, str(e),
                             advice="run with --repair; if a commit of its group was under way, resynchronize the "
                                    "pair (remove it and add it again)")
            if self.repair:
                os.replace(path, _aside(path))
                found.repair = f"moved aside to {_aside(path).name}; the primary resends what it held"
        self._progress(Path(f"{path}.progress"), pair)
        self._rp_record(Path(f"{path}.rp"))

    def _progress(self, path: Path, pair) -> None:
        if not path.exists():
            return
        head = path.read_bytes()[:staging.PROGRESS_HEADER.size]
        try:
            check_format(head, staging.PROGRESS_MAGIC, staging.VERSION, "initial sync progress file", path)
            if len(head) < staging.PROGRESS_HEADER.size:
                raise FormatMismatch(f"{path}: its header is truncated")
        except FormatMismatch as e:
            found = self.add("initial sync progress", path, str(e), advice="run with --repair")
            if self.repair:
                regions = -(-pair.volume.capacity // self.region_size)
                create_atomically(path, staging.PROGRESS_HEADER.pack(staging.PROGRESS_MAGIC, staging.VERSION,
                                                                     self.region_size, regions)
                                  + bytes((regions + 7) // 8))
                found.repair = "reset: the initial synchronization resends every region of the transfer"

    def _rp_record(self, path: Path) -> None:
        if not path.exists():
            return
        raw = path.read_bytes()
        try:
            check_format(raw, staging.RP_MAGIC, staging.VERSION, "recovery point record", path)
            if len(raw) < staging.RP_HEADER.size or \
                    staging.RP_HEADER.unpack_from(raw)[2] != zlib.crc32(raw[staging.RP_HEADER.size:]):
                raise FormatMismatch(f"{path}: checksum mismatch")
        except FormatMismatch as e:
            found = self.add("recovery point hint", path, str(e), advice="run with --repair (the database keeps "
                                                                         "the recovery point)")
            if self.repair:
                path.unlink()
                found.repair = "removed; it is written again at the next commit"

    # -- group records ------------------------------------------------------------------------------
    def _group_records(self) -> None:
        d = self.dir / "reserved" / ".groups"
        if not d.exists():
            return
        for path in sorted(d.glob("*.inflight")):
            try:
                receiver.read_record(path, receiver.INFLIGHT_MAGIC, ("transfer",))
            except receiver.DamagedRecord as e:
                found = self.add("sync hint", path, e.why, advice="run with --repair (the array also removes it "
                                                                  "when it starts)")
                if self.repair:
                    path.unlink()
                    found.repair = "removed: the next sync starts a fresh transfer"
        for path in sorted(d.glob("*.commit")):
            try:
                receiver.read_record(path, receiver.COMMIT_MAGIC, receiver.COMMIT_KEYS)
            except receiver.DamagedRecord as e:
                self._damaged_commit(path, e)

    def _damaged_commit(self, path: Path, damage: receiver.DamagedRecord) -> None:
        group = path.name[: -len(".commit")]
        found = self.add("commit record", path, damage.why,
                         advice="run with --repair: it re-applies or keeps each journal and sets the record aside")
        if not self.repair:
            return
        if self.db is None:
            found.advice = "repair the database first (the repair needs the group's recovery point)"
            return
        g = self.db.scalars(select(GroupRow).where(GroupRow.name == group)).one_or_none()
        outcomes = settle_group(self.dir, g, self.region_size) if g is not None else []
        aside = _aside(path)
        os.replace(path, aside)
        for p in g.pairs if g is not None else ():
            if p.failed_reason.startswith(receiver.DAMAGED_COMMIT):
                p.failed_reason = ""
        self.db.commit()
        found.repair = f"set aside as {aside.name}" + "".join(f"; {o}" for o in outcomes)


def settle_group(data_dir: Path, g, region_size: int) -> list[str]:
    """Without its commit record, settle each secondary journal of ``g`` by the database's recovery point.

    The database records a group's recovery point when its commit is applied. A
    journal holding that very recovery point was decided: it is re-applied (applying
    is idempotent). A journal holding a newer one may never have been decided: it is
    kept, and the primary resumes that transfer, sending only what is missing (a
    delta resync). An older one is stale and dropped.
    """
    out = []
    for p in g.pairs:
        journal = data_dir / p.reserved_dir / "staging.dat"
        if not journal.exists():
            continue
        try:
            st = staging.Staging.open(journal, data_dir / p.volume.file, region_size=region_size)
        except (FormatMismatch, OSError) as e:
            out.append(f"{p.volume.name}: its journal cannot be read ({e})")
            continue
        try:
            point = st.recovery_point
            if st.transfer_id is None or point is None:
                continue
            rp = int(point.get("id", -1))
            if rp == g.last_recovery_point_id:
                st.commit(decided_elsewhere=True)
                out.append(f"{p.volume.name}: recovery point {rp} re-applied from its staging journal")
            elif rp > g.last_recovery_point_id:
                out.append(f"{p.volume.name}: transfer {st.transfer_id} kept; the primary resumes it and sends "
                           "only what is missing")
            else:
                st.discard()
                out.append(f"{p.volume.name}: a stale transfer (recovery point {rp}) dropped")
        finally:
            st.close()
    return out


def _aside(path: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return path.with_name(f"{path.name}.damaged-{stamp}")

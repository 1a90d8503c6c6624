"""The secondary side of a group sync: stage regions, commit the group atomically.

Regions of a transfer go into each secondary volume's staging journal, so the
volumes keep the previous recovery point while the transfer runs. ``commit`` first
makes every journal durable (each votes yes), then writes one group commit record,
then applies the journals; after a crash the record tells :func:`recover_groups`
to finish applying, so no secondary ever shows a mix of two recovery points.

Records (the group commit record here, the sync-resume hint of ``core.replication.sync_runner``)
are versioned and checksummed: version 2 is a 20-byte header (magic, version, JSON
length, CRC32 of the JSON) then the JSON; version 1 was bare JSON and is still read.
A truncated record once made every command fail with a JSONDecodeError; now a
damaged record is :class:`DamagedRecord`, named in one line with what to do, and
only its group stops (its pairs failed), not the whole array.
"""
from __future__ import annotations

import asyncio
import json
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from core.datapath.extents import create_atomically
from core.domain import Role, Severity
from core.errors import MirrorError, NotFound, ReservedCapacityFull

if TYPE_CHECKING:
    from core.drills import Drills
    from core.publisher import Publish
    from core.replication.host_volumes import HostVolumes

RECORD_VERSION = 2
_RECORD = struct.Struct("<8sIII")  # magic, version, JSON length, CRC32 of the JSON
COMMIT_MAGIC = b"AMGRPCMT"
INFLIGHT_MAGIC = b"AMSYNCIF"
COMMIT_KEYS = ("transfer", "volumes", "recovery_point")
DAMAGED_COMMIT = "commit record"  # how a pair failed for a damaged commit record starts its reason


class DamagedRecord(MirrorError):
    """An on-disk record fails its checks (truncated, wrong CRC, not JSON, missing fields)."""

    code = "reservedRecordDamaged"

    def __init__(self, path, why: str):
        super().__init__(f"{path} is damaged ({why})")
        self.path, self.why = Path(path), why


def encode_record(magic: bytes, data: dict) -> bytes:
    payload = json.dumps(data).encode()
    return _RECORD.pack(magic, RECORD_VERSION, len(payload), zlib.crc32(payload)) + payload


def decode_record(raw: bytes, magic: bytes, path, required: tuple[str, ...] = ()) -> dict:
    """The record's JSON, checked; raises :class:`DamagedRecord` naming what is wrong."""
    if raw[:1] == b"{":  # version 1: bare JSON, no checksum
        payload = raw
    else:
        if len(raw) < _RECORD.size:
            raise DamagedRecord(path, f"{len(raw)} bytes, shorter than its header")
        found, version, length, crc = _RECORD.unpack_from(raw)
        if found != magic:
            raise DamagedRecord(path, f"magic {found!r}, expected {magic!r}")
        if version != RECORD_VERSION:
            raise DamagedRecord(path, f"format version {version}; this engine reads 1 and {RECORD_VERSION}")
        payload = raw[_RECORD.size:]
        if len(payload) != length or zlib.crc32(payload) != crc:
            raise DamagedRecord(path, "checksum mismatch" if len(payload) == length
                                else f"{len(payload)} of {length} bytes")
    try:
        data = json.loads(payload)
    except ValueError as e:
        raise DamagedRecord(path, f"not valid JSON: {e}") from None
    missing = [k for k in required if not isinstance(data, dict) or k not in data]
    if missing:
        raise DamagedRecord(path, f"missing {', '.join(missing)}")
    return data


def read_record(path, magic: bytes, required: tuple[str, ...] = ()) -> dict | None:
    """The record at ``path`` (None when there is none)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    return decode_record(raw, magic, path, required)


def write_record(path, magic: bytes, data: dict, durable: bool = True) -> None:
    create_atomically(path, encode_record(magic, data), durable=durable)


def _commit_record(array, group: str) -> Path:
    d = array.data_dir / "reserved" / ".groups"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{group}.commit"


def check_fix(array) -> str:
    """What an administrator does about a damaged record of this array."""
    return f"stop array {array.name}, then run 'mirrorctl array check {array.data_dir} --repair'"


def refuse_while_commit_record_damaged(array, g) -> None:
    """A secondary whose commit record is damaged takes no transfer until repaired.

    A new transfer would discard the staging journals (the only copy of what the
    damaged commit was applying) and write a fresh record over the damaged one: the
    secondary would end up holding a mix of recovery points without anyone knowing.
    """
    reasons = [p.failed_reason for p in g.pairs if p.failed_reason.startswith(DAMAGED_COMMIT)]
    if reasons:
        raise MirrorError(f"group {g.name} on {array.name} cannot receive: {reasons[0]}",
                          code="arvmCommitRecordDamaged")


SETTLE_STOP_SECONDS = 30.0  # what a clean stop waits for committed recovery points to reach the disk
RECEIVING_SECONDS = 10.0  # a transfer with nothing received for this long is not "synchronizing" any more


@dataclass
class Incoming:
    """A transfer a secondary group side is receiving: its own progress figures (the primary's are in another array)."""

    id: str
    kind: str  # as the primary labels it: "initial", "interval" or "manual"
    totals: dict[str, int]  # secondary volume -> bytes the transfer sends (absent: a sender that did not say)
    received: dict[str, int]  # secondary volume -> bytes staged so far
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    last_data: float = field(default_factory=time.monotonic)

    @property
    def receiving(self) -> bool:
        return time.monotonic() - self.last_data < RECEIVING_SECONDS


class Receiver:
    """Transfer handlers of this process's secondary sides (registered on each array's endpoint)."""

    def __init__(self, hosts: "HostVolumes", drills: "Drills", publish: "Publish",
                 remove_pair_side: Callable[..., None]):
        self.hosts = hosts
        self.drills = drills
        self.publish = publish
        self._remove_pair_side = remove_pair_side  # close a side's reserved capacity and drop its record
        self.errors: dict[str, MirrorError] = {}  # transfer -> first failure while staging
        self.error_volumes: dict[str, str] = {}  # transfer -> the secondary volume that failed
        self._settling: set[asyncio.Task] = set()
        self._incoming: dict[tuple[str, str], Incoming] = {}  # (array, group) -> the open transfer
        self._incoming_of: dict[tuple[str, str], tuple[str, str]] = {}  # (array, volume) -> (array, group)

    async def stop(self) -> None:
        """A clean stop lets committed recovery points settle (volumes fsynced, records removed).

        A crash leaves the records, and the next start finishes applying them; a clean
        stop must not look like one ("recovered after a restart").
        """
        if self._settling:
            await asyncio.wait(list(self._settling), timeout=SETTLE_STOP_SECONDS)

    def incoming(self, array: str, group: str) -> Incoming | None:
        """The transfer group ``group`` of ``array`` is receiving (None between syncs)."""
        return self._incoming.get((array, group))

    def _close_incoming(self, array: str, group: str) -> None:
        self._incoming.pop((array, group), None)
        for key in [k for k, v in self._incoming_of.items() if v == (array, group)]:
            del self._incoming_of[key]

    def handlers(self, a) -> dict:
        """The transfer and pair messages that array ``a`` answers as a secondary."""
        return {
            "transfer.begin": lambda peer, **p: self.begin(a, **p),
            "transfer.checkpoint": lambda peer, **p: self.checkpoint(a, **p),
            "transfer.commit": lambda peer, **p: self.commit(a, **p),
            "transfer.abort": lambda peer, **p: self.abort(a, **p),
            "transfer.failure": lambda peer, transfer: self.failure(a, transfer),
            "pair.create": lambda peer, **p: self.create_pair(a, **p),
            "pair.remove": lambda peer, **p: self.remove_pair(a, **p),
        }

    def create_pair(self, array, **params) -> dict:
        from core import sides

        sides.create_pair_side(array, **params)
        if not params.get("check_only"):
            self.hosts.attach_pair_volume(array, params["volume"])
        return {"ok": True}

    def remove_pair(self, array, volume: str) -> dict:
        from core import sides

        group = sides.find_pair(array, volume).group.name
        self._remove_pair_side(array, volume, group)
        return {"ok": True}

    def _secondary(self, array, group: str):
        g = array.group(group)
        if g.role != Role.SECONDARY.value:
            raise MirrorError(f"group {group} is primary on {array.name}; it cannot receive a synchronization "
                              "(a role conflict must be resolved first)", code="arvmGroupNotSecondary")
        refuse_while_commit_record_damaged(array, g)
        return g

    def _volumes(self, array, g, volumes: list[str]):
        hvs = []
        for name in volumes:
            pair = array.pair_of(array.volume(name))
            if pair is None or pair.group_id != g.id:
                raise NotFound(f"{array.name}/{name} is not a secondary of group {g.name}", code="arvmPairNotFound")
            hvs.append(self.hosts.volume(array.name, name))
        return hvs

    def begin(self, array, group: str, transfer: str, recovery_point: dict, pairs: list[dict],
              kind: str = "interval") -> dict:
        g = self._secondary(array, group)
        self.errors.pop(transfer, None)
        incoming = self._incoming.get((array.name, group))
        if incoming is None or incoming.id != transfer:  # a resumed transfer keeps its start
            self._close_incoming(array.name, group)
            incoming = self._incoming[(array.name, group)] = Incoming(
                transfer, kind, {p["volume"]: int(p["bytes"]) for p in pairs if "bytes" in p}, {})
        incoming.last_data = time.monotonic()
        staged = {}
        discarded = 0  # staged for another transfer (one a crash or reboot made the primary give up): sent again
        for p in pairs:
            (hv,) = self._volumes(array, g, [p["volume"]])
            if hv.staging.transfer_id not in (None, transfer):
                discarded += sum(min(hv.size - off, self.hosts.region_size) for off in hv.staging.staged())
            # Senders before in-place resyncs sent "direct" only for the initial sync.
            in_place = bool(p["direct"]) and not p.get("initial", True)
            if in_place:
                self._give_up_recovery_point(array, g, p["volume"])
            resumed = hv.staging.begin(transfer, recovery_point, direct=bool(p["direct"]))
            if p["direct"] and not in_place and not resumed:
                # The initial sync sends only the primary's written regions: whatever the
                # secondary held before must not survive as stale data.
                from core.datapath.extents import punch_hole

                punch_hole(hv.fileno(), 0, hv.size)
            staged[p["volume"]] = sorted(hv.staging.staged())
            incoming.received[p["volume"]] = sum(min(hv.size - off, self.hosts.region_size)
                                                 for off in staged[p["volume"]])
            self._incoming_of[(array.name, p["volume"])] = (array.name, group)
        # partialRegions: this side takes regions sent as pieces of dirty blocks (issue 14).
        # regionRuns: it counts every region of a run of whole regions staged as one record
        # as staged (a secondary before this counted only the run's first region).
        return {"staged": staged, "discardedBytes": discarded, "partialRegions": True, "regionRuns": True}

    def abort(self, array, group: str, transfer: str, volumes: list[str]) -> dict:
        """The primary gave up this transfer: release its staging space now (a full disk must not stay full).

        Journalled regions never reached the volume, which keeps its recovery point; an
        in-place resync's regions did, and its pair stays without a recovery point.
        """
        g = self._secondary(array, group)
        for hv in self._volumes(array, g, [v for v in volumes if array.find_group(group) is not None]):
            if hv.staging is not None and hv.staging.transfer_id == transfer:
                hv.staging.discard()
        incoming = self._incoming.get((array.name, group))
        if incoming is not None and incoming.id == transfer:
            self._close_incoming(array.name, group)
        self.errors.pop(transfer, None)
        self.error_volumes.pop(transfer, None)
        return {"ok": True}

    def failure(self, array, transfer: str) -> dict:
        """Which secondary volume a failed transfer could not stage, and whether its reserved capacity can grow."""
        volume = self.error_volumes.get(transfer)
        if volume is None:
            return {"volume": None}
        pair = array.pair_of(array.volume(volume))
        capacity = array.volume(volume).capacity
        return {"volume": volume, "reservedCapacity": pair.reserved_capacity if pair else 0, "capacity": capacity}

    def _give_up_recovery_point(self, array, g, volume: str) -> None:
        """An in-place resync writes the volume directly: from now on it holds no recovery point."""
        if self.drills.clone(array.name, f"{volume}-drill") is not None:
            raise MirrorError(f"a DR drill of {g.name} uses the recovery point of {array.name}/{volume}; stop the "
                              "drill before resynchronizing without a recovery point", code="arvmDrillRunning")
        pair = array.pair_of(array.volume(volume))
        if pair.recovery_point_available:
            pair.recovery_point_available = False
            array.db.commit()
            array.log(Severity.WARNING, f"{g.name}/{volume}", "arvmRecoveryPointDeleted",
                      f"{array.name}/{volume} is resynchronized in place: the delta does not fit its reserved "
                      "capacity, so its recovery point is given up until the next one commits; forced promotion "
                      "is refused meanwhile (no recovery point image)")
            self.publish("pair", array.name, f"{g.name}/{volume}")

    def regions(self, array_name: str, transfer: str, volume: str, regions: list[tuple[int, int, object]]) -> None:
        """Stage ``(offset, length, data)`` regions of a transfer (data None: zeros).

        A primary that was told ``partialRegions`` at begin sends only the dirty blocks
        of a region, as pieces, all pieces of a region in one frame (one call here);
        staging journals the pieces and counts a region held once all of them are (``Staging.put_many``).
        """
        if transfer in self.errors:
            return  # already failed: the commit reports it
        try:
            hv = self.hosts.volume(array_name, volume)
            if hv.staging is None or hv.staging.transfer_id != transfer:
                raise MirrorError(f"{array_name}/{volume} is not receiving transfer {transfer}",
                                  code="syncNotInProgress")
            if hv.failed:
                raise MirrorError(f"secondary volume {array_name}/{volume} has failed", code="volumeFailed")
            self._count_received(array_name, volume, hv.staging.put_many(regions))
        except ReservedCapacityFull as e:
            self.errors[transfer] = ReservedCapacityFull(
                f"the reserved capacity of secondary volume {array_name}/{volume} is full ({e.message})")
            self.error_volumes[transfer] = volume
        except MirrorError as e:
            self.errors[transfer] = e
        except OSError as e:
            self.errors[transfer] = MirrorError(f"writing {array_name}/{volume} failed: {e}", code="volumeFailed")

    def _count_received(self, array: str, volume: str, staged: int) -> None:
        """``staged`` bytes of whole regions arrived (a short last region counts its own length).

        Counted per region brought up to date, like the transfer's announced bytes,
        whether the primary sent a region whole or only its dirty blocks.
        """
        incoming = self._incoming.get(self._incoming_of.get((array, volume), ("", "")))
        if incoming is not None:
            incoming.received[volume] = incoming.received.get(volume, 0) + staged
            incoming.last_data = time.monotonic()

    def _raise_error(self, transfer: str) -> None:
        if transfer in self.errors:
            raise self.errors[transfer]

    def checkpoint(self, array, group: str, transfer: str, volumes: list[str]) -> dict:
        """Everything received so far is durable: the primary may release its PIT copies."""
        self._raise_error(transfer)
        g = self._secondary(array, group)
        for hv in self._volumes(array, g, volumes):
            hv.staging.flush()
        return {"ok": True}

    def commit(self, array, group: str, transfer: str, volumes: list[str], recovery_point: dict) -> dict:
        self._raise_error(transfer)
        g = self._secondary(array, group)
        hvs = self._volumes(array, g, volumes)
        for hv in hvs:
            if hv.staging.transfer_id != transfer:
                raise MirrorError(f"{array.name}/{hv.name} holds no data of transfer {transfer}",
                                  code="syncNotInProgress")
            hv.staging.prepare()
        write_record(_commit_record(array, group), COMMIT_MAGIC,
                     {"transfer": transfer, "volumes": volumes, "recovery_point": recovery_point})
        self._close_incoming(array.name, group)
        finish_commit(self, array, group, transfer, volumes, recovery_point, settle_later=True)
        task = asyncio.get_running_loop().create_task(self._settle(array, group, hvs))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        return {"ok": True}

    async def _settle(self, array, group: str, hvs: list) -> None:
        """Make the applied recovery point durable in the volumes, off the engine loop.

        The commit answered once its record was durable: until the volumes are
        fsynced the journals and the record stay, so a crash re-applies them.
        """
        try:
            await asyncio.to_thread(_fsync_volumes, [hv.path for hv in hvs])
            for hv in hvs:
                if hv.staging is not None:
                    hv.staging.settle()  # cheap now; the journal is emptied
        except OSError as e:
            array.log(Severity.CRITICAL, group, "volumeFailed",
                      f"Writing the recovery point of {group} to its secondary volumes failed: {e}. "
                      "It is re-applied from the staging journal when the array restarts")
            return
        _commit_record(array, group).unlink(missing_ok=True)  # every volume holds it durably now


def _fsync_volumes(paths: list[str]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def finish_commit(rx: Receiver, array, group: str, transfer: str, volumes: list[str], recovery_point: dict,
                  settle_later: bool = False) -> None:
    """Apply every journal of the group's committed transfer, then record the recovery point.

    ``settle_later``: leave the volumes' fsync and the removal of the group record to
    the caller (:meth:`Receiver._settle`); the record keeps the commit re-appliable.
    """
    for name in volumes:
        hv = rx.hosts.volume(array.name, name, missing_ok=True)
        if hv is not None and hv.staging is not None and hv.staging.transfer_id == transfer:
            rx.drills.preserve(array.name, name, hv.staging.staged())
            # the group record is the decision
            hv.staging.commit(decided_elsewhere=True, settle_later=settle_later)
    g = array.find_group(group)
    # A record resurrected by power loss after a later commit must not roll the recovery point back.
    if g is not None and int(recovery_point["id"]) >= g.last_recovery_point_id:
        g.last_recovery_point = datetime.fromisoformat(recovery_point["time"])
        g.last_recovery_point_id = int(recovery_point["id"])
        for p in g.pairs:
            if p.volume.name in volumes:
                p.initial_sync_done = True
                p.recovery_point_available = True
        array.db.commit()
    if not settle_later:
        # not synced: a resurrected record re-applies nothing newer (see above)
        _commit_record(array, group).unlink(missing_ok=True)
    rx.publish("group", array.name, group)


def recover_groups(rx: Receiver, array) -> None:
    """After a restart: finish any group commit whose record was written (roll forward).

    A damaged record is not guessed at: its group's pairs fail (System suspended),
    naming the record and the repair, and the rest of the array runs. Damage the
    change logs repaired on opening is reported here too.
    """
    report_log_repairs(rx, array)
    d = array.data_dir / "reserved" / ".groups"
    if not d.exists():
        return
    for record in sorted(d.glob("*.commit")):
        group = record.name[: -len(".commit")]
        try:
            data = read_record(record, COMMIT_MAGIC, COMMIT_KEYS)
        except DamagedRecord as e:
            fail_group_for_damaged_record(rx, array, group, e)
            continue
        if data is None:
            continue
        finish_commit(rx, array, group, data["transfer"], data["volumes"], data["recovery_point"])
        array.log(Severity.INFO, group, "arvmRecoveryPointRecovered",
                  f"Recovery point {data['recovery_point']['id']} of {group} finished applying after a restart")


def fail_group_for_damaged_record(rx: Receiver, array, group: str, damage: DamagedRecord) -> None:
    """The group's pairs fail with a reason naming the record; its journals stay for the repair."""
    reason = f"{DAMAGED_COMMIT} {damage.path} is damaged ({damage.why}): {check_fix(array)}"
    g = array.find_group(group)
    for p in g.pairs if g is not None else ():
        p.failed_reason = reason
    array.db.commit()
    array.log(Severity.CRITICAL, group, "arvmCommitRecordDamaged",
              f"Group {group}: {reason}; until then the group receives no synchronization")
    rx.publish("group", array.name, group)


def report_log_repairs(rx: Receiver, array) -> None:
    """An event per volume whose change logs had damage taken as changed when opened."""
    for row in array.volumes():
        hv = rx.hosts.volume(array.name, row.name, missing_ok=True)
        repairs = hv.log_repairs() if hv is not None else ""
        if not repairs:
            continue
        pair = array.pair_of(row)
        obj = f"{pair.group.name}/{row.name}" if pair is not None else row.name
        array.log(Severity.WARNING, obj, "arvmChangeLogRepaired",
                  f"Change tracking of {array.name}/{row.name} was damaged on disk ({repairs}); those regions "
                  "are treated as changed and sent again at the next synchronization")

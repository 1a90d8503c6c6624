"""The primary side of one group synchronization (SPEC §2 "The write path", steps 4-5).

At one instant every primary volume of the group is captured: its changed regions
move from the change log's dirty set to the in-flight set and a PIT image starts
over them (host writes that land later copy the old data aside first). Only those
regions cross the channel (of a region whose written blocks the change log knows,
only those blocks, as pieces: issue 14); the secondary stages them and the group
commits as one recovery point. A dropped link keeps the capture and its PIT, so the
transfer resumes where the secondary's journals say it stopped; regions are released from
the PIT only after the secondary confirmed them durable (a checkpoint).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from datetime import datetime, timezone

import numpy as np

from core.channel import frames
from core.datapath.dirty_blocks import block_runs
from core.domain import Priority
from core.errors import MirrorError, ReservedCapacityFull
from core.replication import sync_figures
from core.replication.host_volume import HostVolume

if TYPE_CHECKING:
    from core.replication.host_volumes import HostVolumes
    from core.replication.links import Peer

CHECKPOINT_BYTES = 256 << 20  # release PIT copies after this much confirmed data
RUN_REGIONS = 16  # consecutive whole regions are read, encoded and staged as one run of up to 16
BATCH_BYTES = 1 << 20  # regions of one volume share a frame up to this much data
BATCH_REGIONS = 64
YIELD_BYTES = 1 << 20  # let host I/O in after each MiB sent
PREFETCH_REGIONS = 1024  # regions sent as pieces whose blocks are asked for at a time, ahead of the sender
# Pause per MiB sent while hosts are active, divided by the sync priority's weight
# (1-16): at most ~16 MiB/s (lowest) to ~256 MiB/s (highest) under host load.
HOST_PAUSE_SECONDS = 0.064


@dataclass
class PairTransfer:
    local_volume: str
    remote_volume: str
    direct: bool  # written in place on the secondary (no staging journal, no recovery point meanwhile)
    regions: np.ndarray  # captured region indices, sorted
    confirmed: np.ndarray  # bool per captured region: durable on the secondary
    sent: np.ndarray  # bool per captured region: handed to the channel at least once
    changed: np.ndarray  # bool per captured region: written since the capture a resumed transfer began
    bytes_total: int  # bytes of the captured regions: what the secondary brings up to date
    bytes_done: int = 0  # of bytes_total, the regions handed to the channel
    initial: bool = False  # the initial synchronization: the secondary starts from holes
    # Dirty-block mask per captured region (0: the whole region; see ChangeLog), in blocks of block_size.
    blocks: np.ndarray | None = None
    block_size: int = 0
    # The PIT preserves only those blocks of the regions sent as pieces: they can only be sent as pieces.
    preserved_as_pieces: bool = False

    def pieces(self, region_size: int) -> np.ndarray:
        """Bool per captured region: only its dirty blocks are sent (not the whole region)."""
        if self.blocks is None or not self.block_size or self.block_size >= region_size:
            return np.zeros(len(self.regions), dtype=bool)
        full = (1 << (region_size // self.block_size)) - 1
        return (self.blocks != 0) & (self.blocks != full)

    @property
    def in_place(self) -> bool:
        """A delta resynchronized in place: the secondary has no recovery point until this commits."""
        return self.direct and not self.initial


@dataclass
class Transfer:
    """One capture of a group, kept until its recovery point commits."""

    id: str
    recovery_point: dict
    kind: str  # "initial" or "interval"
    pairs: list[PairTransfer]
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    bytes_sent: int = 0  # wire bytes
    bytes_payload: int = 0
    bytes_staged: int = 0  # region data sent that is not zeros, before compression: what the secondary journals
    bytes_resent: int = 0
    attempts: int = 0
    manual: bool = False  # asked for by a person (Synchronize now, Resume), not the schedule
    secondary_takes_pieces: bool | None = None  # what the secondary answered at the last begin

    @property
    def bytes_total(self) -> int:
        return sum(p.bytes_total for p in self.pairs)

    @property
    def bytes_done(self) -> int:
        return sum(p.bytes_done for p in self.pairs)

    @property
    def unique_changed_bytes(self) -> int:
        return self.bytes_total


def capture(group_row, hosts: dict, region_size: int, resume_id: str | None = None,
            in_place: set[str] = frozenset(), pieces: bool = False) -> Transfer:
    """The sync instant: no await happens here, so host writes see either side of it.

    ``resume_id`` continues a transfer a crash interrupted: the secondary keeps what
    it staged from it, except the regions written since (``changed``), resent now.
    ``in_place``: secondary volumes whose delta does not fit their reserved capacity;
    they are written in place, without keeping the old recovery point.
    ``pieces``: the secondary took regions as pieces at the last begin, so the PIT
    preserves only the dirty blocks of the regions sent that way (host writes elsewhere
    in them copy nothing); otherwise whole regions, which either way of sending can read.
    """
    rp_id = group_row.last_recovery_point_id + 1
    now = datetime.now(timezone.utc)
    pairs = []
    initial = False
    for p in group_row.pairs:
        if p.incomplete or p.orphan:
            continue
        hv = hosts[p.volume.name]
        regions, written = hv.capture()
        first = not p.initial_sync_done
        initial |= first
        # The initial sync sends whole regions: its secondary starts from holes.
        blocks = None if first else hv.changelog.inflight_blocks(regions)
        hv.pit.begin(regions, blocks if pieces else None)
        size = hv.size
        ends = np.minimum((regions + 1) * region_size, size)
        total = int((ends - regions * region_size).sum())
        pairs.append(PairTransfer(p.volume.name, p.remote_volume, first or p.remote_volume in in_place, regions,
                                  np.zeros(len(regions), dtype=bool),
                                  np.zeros(len(regions), dtype=bool),
                                  np.isin(regions, written) if resume_id else np.zeros(len(regions), dtype=bool),
                                  total, initial=first, blocks=blocks, block_size=hv.changelog.block_size,
                                  preserved_as_pieces=pieces and blocks is not None))
    return Transfer(id=resume_id or f"{group_row.name}-{rp_id}-{uuid.uuid4().hex[:8]}",
                    recovery_point={"id": rp_id, "time": now.isoformat()},
                    kind="initial" if initial else "interval", pairs=pairs)


def runs(regions: np.ndarray, todo: np.ndarray, max_len: int,
         alone: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """Group consecutive regions still to send into (first index in ``regions``, count, first region).

    A region marked in ``alone`` (sent as pieces) is a run of its own.
    """
    out = []
    i, n = 0, len(regions)
    while i < n:
        if not todo[i]:
            i += 1
            continue
        j = i + 1
        if alone is None or not alone[i]:
            while j < n and j - i < max_len and todo[j] and regions[j] == regions[j - 1] + 1 and \
                    (alone is None or not alone[j]):
                j += 1
        out.append((i, j - i, int(regions[i])))
        i = j
    return out


async def send(peer: "Peer", hosts: "HostVolumes", rs: int, array, group_row, transfer: Transfer,
               on_progress) -> None:
    """Send what the secondary does not hold yet, then commit the recovery point."""
    local, remote = array.name, group_row.remote_array
    priority = Priority(group_row.priority)
    transfer.attempts += 1
    begin = await peer.call(local, remote, "transfer.begin", {
        "group": group_row.name, "transfer": transfer.id, "recovery_point": transfer.recovery_point,
        "kind": sync_figures.sync_kind(transfer.kind, transfer),
        "pairs": [{"volume": p.remote_volume, "direct": p.direct, "initial": p.initial, "bytes": p.bytes_total}
                  for p in transfer.pairs]})
    # What the secondary held of a transfer this one replaces is sent again: the history says so.
    transfer.bytes_resent += int(begin.get("discardedBytes", 0))
    session = await peer.session(local, remote)
    # Only dirty blocks of a region cross when the secondary takes regions as pieces, and a
    # region's pieces share one REGIONS frame (a peer before 1.1 gets a frame per piece).
    partial_ok = bool(begin.get("partialRegions")) and session.peer_minor >= frames.REGIONS_MINOR
    transfer.secondary_takes_pieces = partial_ok
    if not partial_ok and any(p.preserved_as_pieces and p.pieces(rs).any() for p in transfer.pairs):
        raise MirrorError(
            f"{remote} no longer takes regions as dirty-block pieces, and this capture preserved only those "
            "blocks; the next synchronization captures whole regions", code="arvmSyncFailed")
    # An interval sync after a volume was rewritten whole (a restore, a disk image) sent one
    # region per run: 4 GiB of zeros took 16 s, most of it Python per 64 KiB region.
    runs_ok = bool(begin.get("regionRuns"))
    volumes = [p.remote_volume for p in transfer.pairs]
    for p in transfer.pairs:
        staged = np.asarray(begin["staged"].get(p.remote_volume, []), dtype=np.int64) // rs
        p.confirmed |= np.isin(p.regions, staged) & ~p.changed
    pacer = _Pacer(peer, hosts, local, remote, group_row.name, transfer, volumes, priority, on_progress)
    for p in transfer.pairs:
        hv = hosts.volume(local, p.local_volume)
        p.bytes_done = _confirmed_bytes(p, rs, hv.size)
        chunk = RUN_REGIONS if p.direct or runs_ok else 1
        partial = p.pieces(rs) if partial_ok else np.zeros(len(p.regions), dtype=bool)
        ahead = np.flatnonzero(partial & ~p.confirmed)  # regions sent as pieces, in sending order
        asked = _ask_for_pieces(hv, p, ahead, 0, rs)
        batch: list[Run] = []
        batch_bytes = segments = 0
        for start, count, first in runs(p.regions, ~p.confirmed, chunk, partial):
            if not hv.pit.active:
                raise ReservedCapacityFull(
                    f"the reserved capacity of {local}/{p.local_volume} filled up during the synchronization; "
                    "its recovery point image is unavailable: increase the reserved capacity, then resume")
            span = min((first + count) * rs, hv.size) - first * rs
            if asked < len(ahead) and start >= ahead[asked - PREFETCH_REGIONS // 2]:
                asked = _ask_for_pieces(hv, p, ahead, asked, rs)  # the next ones, before these run out
            if partial[start]:
                pieces = [(off, hv.pit.read_piece(first, off, n))
                          for off, n in block_runs(int(p.blocks[start]), p.block_size, first * rs, first * rs + span)]
                pieces = [(off, data) for off, data in pieces if data]
            if not partial[start] or not pieces:
                pieces = [(first * rs, hv.pit.read_run(first, count))]
            if segments + len(pieces) > frames.MAX_SEGMENTS:  # a region's pieces never straddle frames
                await pacer.send(session, p, batch)
                batch, batch_bytes, segments = [], 0, 0
            batch.append(Run(start, count, pieces, span))
            batch_bytes += sum(len(data) for _, data in pieces)
            segments += len(pieces)
            if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_REGIONS:
                await pacer.send(session, p, batch)
                batch, batch_bytes, segments = [], 0, 0
        if batch:
            await pacer.send(session, p, batch)
    await peer.call(local, remote, "transfer.commit", {
        "group": group_row.name, "transfer": transfer.id, "volumes": volumes,
        "recovery_point": transfer.recovery_point}, timeout=600)


@dataclass
class Run:
    """Regions of one batch entry: whole (one piece) or one region's dirty-block pieces."""

    start: int  # index in PairTransfer.regions
    count: int
    pieces: list[tuple[int, bytes]]  # (volume offset, data)
    span: int  # bytes of the regions (what bytes_done and bytes_payload count)

    @property
    def payload(self) -> int:
        return sum(len(data) for _, data in self.pieces)


class _Pacer:
    """Sends batches of one transfer: accounting, host-priority pauses and checkpoints."""

    def __init__(self, peer: "Peer", hosts: "HostVolumes", local, remote, group, transfer: Transfer, volumes,
                 priority: Priority, on_progress):
        self.peer, self.hosts, self.local, self.remote, self.group = peer, hosts, local, remote, group
        self.transfer, self.volumes, self.priority, self.on_progress = transfer, volumes, priority, on_progress
        self.unconfirmed_bytes = self.since_yield = 0
        self.last_yield = time.monotonic()
        self.pending: list[tuple[PairTransfer, int, int]] = []

    async def send(self, session, p: PairTransfer, batch: list[Run]) -> None:
        t = self.transfer
        data_before = session.data_bytes(t.id)
        t.bytes_sent += await session.send_regions(t.id, p.remote_volume,
                                                   [piece for run in batch for piece in run.pieces], self.priority)
        t.bytes_staged += session.data_bytes(t.id) - data_before  # the encoder told zeros from data
        # The payload counts the regions brought up to date, as for a zero region: like zero
        # markers and compression, sending only the dirty blocks shows in the wire bytes.
        size = payload = 0
        for run in batch:
            if p.sent[run.start:run.start + run.count].any():  # lost with a dropped link: sent again
                t.bytes_resent += run.span
            p.sent[run.start:run.start + run.count] = True
            self.pending.append((p, run.start, run.count))
            size += run.span
            payload += run.payload
        t.bytes_payload += size
        p.bytes_done += size
        self.unconfirmed_bytes += size  # regions, as the PIT copies them: a checkpoint frees their copies
        self.on_progress()
        self.since_yield += payload
        if self.since_yield >= YIELD_BYTES:
            # Host I/O comes first, as on an array: while hosts are writing, a sync
            # pauses after each MiB for a time set by its priority (SPEC: sync priority
            # trades host performance for synchronization speed). Sending rarely blocks
            # on loopback, so it must yield the engine loop explicitly either way.
            self.since_yield = 0
            busy = HostVolume.last_host_write > self.last_yield  # hosts wrote since the last yield
            self.last_yield = time.monotonic()
            await asyncio.sleep(HOST_PAUSE_SECONDS / self.priority.weight if busy else 0)
        if self.unconfirmed_bytes >= CHECKPOINT_BYTES:
            await _checkpoint(self.peer, self.hosts, self.local, self.remote, self.group, t, self.volumes, self.pending)
            self.unconfirmed_bytes = 0


def _ask_for_pieces(hv, p: PairTransfer, ahead: np.ndarray, at: int, rs: int) -> int:
    """Ask the disk for the dirty-block runs of the ``PREFETCH_REGIONS`` regions from ``ahead[at]`` on; returns where that ends.

    Their reads are small and scattered: asked for together, a sync of a few scattered
    4 KiB writes waits for about one disk read instead of one per piece. Asked for a
    window at a time as the sync goes (only the first window was, once: past it, a sync
    of a volume written all over at random read every piece cold, one at a time).
    """
    out = []
    for i in ahead[at:at + PREFETCH_REGIONS]:
        r = int(p.regions[i])
        out += block_runs(int(p.blocks[i]), p.block_size, r * rs, min((r + 1) * rs, hv.size))
    hv.pit.read_ahead(out)
    return min(at + PREFETCH_REGIONS, len(ahead))


def _confirmed_bytes(p: PairTransfer, rs: int, size: int) -> int:
    idx = p.regions[p.confirmed]
    return int((np.minimum((idx + 1) * rs, size) - idx * rs).sum()) if len(idx) else 0


async def _checkpoint(peer: "Peer", hosts: "HostVolumes", local, remote, group, transfer, volumes, pending) -> None:
    await peer.call(local, remote, "transfer.checkpoint",
                           {"group": group, "transfer": transfer.id, "volumes": volumes})
    for p, start, count in pending:
        p.confirmed[start:start + count] = True
        hv = hosts.volume(local, p.local_volume)
        for r in p.regions[start:start + count]:
            hv.pit.mark_sent(int(r))
    pending.clear()

"""Operations on running mirrors: host I/O, synchronize now, suspend/resume, history, verify."""
from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np
from sqlalchemy import select

from core import sides, status
from core.array import StorageArray
from core.commands.volumes import VolumeCommands
from core.domain import Role, Severity
from core.errors import MirrorError
from core.publisher import Publish
from core.refs import split_ref
from core.replication import online_verify
from core.replication.host_volumes import HostVolumes
from core.replication.links import Peer
from core.replication.sync_figures import stats as sync_stats
from core.replication.sync_runner import SyncRunner
from core.replication.verify import (DIGEST_BLOCK_REGIONS, VERIFY_ATTEMPTS, counts, pair_not_comparable,
                                     region_bytes, verify_report, volume_digests)
from core.snapshots import SyncStats
from core.store.schema import SyncStatRow

GroupHome = Callable[[str], StorageArray]


class SyncCommands:
    def __init__(self, volumes: VolumeCommands, hosts: HostVolumes, runner: SyncRunner, peer: Peer,
                 publish: Publish, group_home: GroupHome):
        self._volumes = volumes
        self._hosts = hosts
        self._runner = runner
        self._peer = peer
        self._publish = publish
        self._group_home = group_home

    # -- host I/O (the Python API; NBD uses the same HostVolume) ------------------------
    async def host_write(self, ref: str, offset: int, data: bytes) -> int:
        a, v = split_ref(ref)
        self._volumes.array(a).volume(v)
        self._hosts.volume(a, v).write(int(offset), data)
        return len(data)

    async def host_read(self, ref: str, offset: int, length: int) -> bytes:
        a, v = split_ref(ref)
        self._volumes.array(a).volume(v)
        return self._hosts.volume(a, v).read(int(offset), int(length))

    async def host_flush(self, ref: str) -> None:
        a, v = split_ref(ref)
        self._hosts.volume(a, v).flush()

    async def host_trim(self, ref: str, offset: int, length: int) -> None:
        a, v = split_ref(ref)
        self._hosts.volume(a, v).trim(int(offset), int(length))

    # -- synchronization -------------------------------------------------------------------
    def primary_group(self, name: str):
        array = self._group_home(name)
        g = array.group(name)
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {name} has no primary side here; synchronize it from {g.remote_array}",
                              code="arvmGroupNotPrimary")
        return array, g

    async def sync_now(self, group: str, wait: bool = False, after_running: bool = False,
                       delete_recovery_point_if_necessary: bool = False) -> SyncStats | None:
        """Synchronize now (manual groups, or ahead of the interval); ``wait`` until committed.

        ``after_running`` (the CLI, whose engine may have just started the pending
        initial sync itself) waits for a running sync instead of refusing, then
        captures a new recovery point so every write made so far is included.
        ``delete_recovery_point_if_necessary`` (Web Services' deleteRecoveryPointIfNecessary):
        a delta that does not fit a secondary's reserved capacity is applied in place
        there instead of failing the pair; that secondary has no recovery point until
        this sync commits.
        """
        array, g = self.primary_group(group)
        st = self._runner.state(array.name, group)
        st.delete_recovery_point_allowed |= bool(delete_recovery_point_if_necessary)
        if after_running and (st.running or st.manual_requested):
            fut = asyncio.get_running_loop().create_future()
            st.waiters.append(fut)
            await asyncio.gather(fut, return_exceptions=True)
        if st.running or st.manual_requested:
            raise MirrorError(f"group {group} is already synchronizing; wait for it to finish",
                              code="arvmManualSyncAlreadyInProgress")
        if not g.pairs:
            raise MirrorError(f"group {group} has no mirrored pairs to synchronize; add a pair first",
                              code="arvmGroupEmpty")
        if g.user_suspended:
            raise MirrorError(f"group {group} is suspended; resume it first", code="arvmGroupSuspended")
        if any(p.failed_reason or p.volume.failed for p in g.pairs):
            raise MirrorError(f"group {group} is system suspended (a pair failed); fix the failure in the "
                              "Recovery Guru, then resume", code="arvmGroupSystemSuspended")
        if not await self._peer.can_reach(array.name, g.remote_array):
            raise MirrorError(f"cannot reach {g.remote_array}: group {group} is paused until the link returns",
                              code="arvmRemoteArrayUnreachable")
        st.waiting_for_user = False
        fut = asyncio.get_running_loop().create_future()
        # An older capture still to be sent (an interrupted sync) goes first; this request
        # is answered by the capture after it, which holds every write made before it.
        (st.next_capture_waiters if st.transfer is not None else st.waiters).append(fut)
        st.manual_requested = True
        self._runner.tick()
        if not wait:
            fut.add_done_callback(lambda f: f.exception())  # nobody waits: do not warn
            return None
        await fut
        return self._runner.last_sync(array, array.group(group))

    async def suspend(self, group: str) -> None:
        array, g = self.primary_group(group)
        if g.user_suspended:
            raise MirrorError(f"group {group} is already suspended", code="arvmGroupAlreadySuspended")
        st = self._runner.state(array.name, group)
        if st.running:
            st.task.cancel()
            await asyncio.gather(st.task, return_exceptions=True)
        self._runner.finish_waiters(st, MirrorError(
            f"group {group} was suspended before its synchronization finished", code="arvmGroupSuspended"))
        g.user_suspended = True
        array.db.commit()
        array.log(Severity.WARNING, group, "arvmGroupSuspended",
                  f"Synchronization of {group} suspended by the user; changes are tracked until resumed")
        self._publish("group", array.name, group)

    async def resume(self, group: str, delete_recovery_point_if_necessary: bool = False) -> None:
        """Resume a suspended or paused group; also retries pairs failed for a full reserved capacity.

        ``delete_recovery_point_if_necessary``: the retry may apply a delta that does not
        fit a secondary's reserved capacity in place (see :meth:`sync_now`).
        """
        array, g = self.primary_group(group)
        st = self._runner.state(array.name, group)
        st.delete_recovery_point_allowed |= bool(delete_recovery_point_if_necessary)
        was = g.user_suspended or st.waiting_for_user or any(p.failed_reason for p in g.pairs)
        if not was:
            raise MirrorError(f"group {group} is not suspended", code="arvmGroupNotSuspended")
        failed = next((p for p in g.pairs if p.volume.failed or p.failed_reason.startswith("volume ")), None)
        if failed is not None:  # resuming would only log "resumed" while the group stays System suspended
            what = f"{array.name}/{failed.volume.name} has failed" if failed.volume.failed else \
                failed.failed_reason.split(";")[0]
            raise MirrorError(f"group {group} cannot resume: {what}; repair the volume first, then resume",
                              code="arvmMemberVolumeFailed")
        g.user_suspended = False
        for p in g.pairs:
            if p.failed_reason.startswith("reserved capacity full"):
                p.failed_reason = ""
        array.db.commit()
        st.waiting_for_user = False
        st.manual_requested = True  # resync now: only what changed is sent
        array.log(Severity.INFO, group, "arvmGroupResumed", f"Synchronization of {group} resumed")
        self._publish("group", array.name, group)

    async def sync_history(self, group: str, limit: int = 500) -> list[SyncStats]:
        array = self._group_home(group)
        rows = array.db.scalars(select(SyncStatRow).where(SyncStatRow.group_name == group)
                                .order_by(SyncStatRow.id.desc()).limit(limit))
        return [sync_stats(r) for r in reversed(list(rows))]

    async def increase_reserved_capacity(self, ref: str, percent: float) -> None:
        a, v = split_ref(ref)
        array = self._volumes.array(a)
        self._hosts.volume(a, v).reserved_capacity = sides.increase_reserved_capacity(array, v, float(percent))
        self._publish("pair", a, v)

    async def long_running_operations(self) -> list[dict]:
        out = []
        for (a, gname), st in self._runner.states.items():
            if st.transfer is not None:
                for p in st.transfer.pairs:
                    out.append({"group": gname, "array": a, "pair": f"{a}/{p.local_volume}",
                                "kind": st.transfer.kind, "bytesDone": p.bytes_done, "bytesTotal": p.bytes_total,
                                "running": st.running})
        return out

    # -- verification --------------------------------------------------------------------------
    async def verify(self, group: str) -> dict:
        """Compare each secondary's recovery point with the primary's image at that instant.

        Regions changed on the primary since the recovery point (dirty or in flight)
        no longer hold that image and are skipped on both sides; everything else
        must be byte-identical. The report says how much was compared and skipped,
        per pair and in total: "identical" after skipping everything was a lie
        (outcome ``notVerified``). A sync committing meanwhile moves the recovery
        point under the comparison, so it is compared again.
        """
        array, g = self.primary_group(group)
        if not g.pairs:
            raise MirrorError(f"group {group} has no mirrored pairs to verify; add a pair first",
                              code="arvmGroupEmpty")
        if g.last_recovery_point is None:
            raise MirrorError(f"group {group} has no recovery point yet; synchronize it first",
                              code="arvmNoRecoveryPoint")
        for _ in range(VERIFY_ATTEMPTS):
            rp_id = g.last_recovery_point_id
            pairs = [await self._verify_pair(array, g, p) for p in g.pairs]
            if array.group(group).last_recovery_point_id == rp_id:
                break
        report = verify_report(g, pairs, status.group_status(g, self._runner.group_runtime(array, g)).value)
        outcome = report["outcome"]
        severity = {"identical": Severity.INFO, "mismatch": Severity.CRITICAL}.get(outcome, Severity.WARNING)
        text = {"identical": "the secondary matches the recovery point",
                "mismatch": "MISMATCH: the secondary differs from the recovery point",
                "notVerified": "NOT VERIFIED: nothing could be compared for at least one pair"}[outcome]
        array.log(severity, group, "arvmVerify",
                  f"Verification of {group}: {text} ({report['compared']['regions']} region(s) compared, "
                  f"{report['skipped']['regions']} skipped as changed since the recovery point)")
        return report

    async def _verify_pair(self, array, g, p) -> dict:
        """One pair's comparison, or why it could not be compared."""
        hv = self._hosts.volume(array.name, p.volume.name)
        rs = self._hosts.region_size
        regions = -(-hv.size // rs)
        base = {"primary": f"{array.name}/{p.volume.name}", "secondary": f"{g.remote_array}/{p.remote_volume}",
                "regions": regions, "mismatchedBlocks": 0, "firstMismatchOffset": None, "reason": ""}
        why = pair_not_comparable(p, hv)
        if why:
            return {**base, **counts(regions, regions, hv.size, hv.size), "outcome": "notVerified", "reason": why}
        exclude = hv.changelog.pending_regions().astype(np.int64)
        skipped_bytes = region_bytes(exclude, rs, hv.size)
        figures = counts(regions, len(exclude), skipped_bytes, hv.size)
        if len(exclude) == regions:
            return {**base, **figures, "outcome": "notVerified",
                    "reason": f"every region changed since the recovery point ({skipped_bytes} bytes not yet "
                              "replicated); synchronize, then verify again"}
        local = volume_digests(hv.path, hv.size, rs, exclude)
        remote = await self._peer.call(array.name, g.remote_array, "volume.digest", {
            "volume": p.remote_volume, "size": hv.size, "exclude": exclude.tolist()})
        bad = [i for i, (x, y) in enumerate(zip(local, remote["digests"])) if x != y]
        return {**base, **figures, "outcome": "mismatch" if bad else "identical", "mismatchedBlocks": len(bad),
                "firstMismatchOffset": bad[0] * DIGEST_BLOCK_REGIONS * rs if bad else None}

    async def online_verify(self, group: str) -> dict:
        """Compare the secondaries with the primary in the background; resend what differs.

        See :mod:`core.replication.online_verify`: batch by batch over the channel,
        with pauses; differing regions are marked changed for the next sync.
        """
        array, g = self.primary_group(group)
        if not g.pairs or g.last_recovery_point is None:
            raise MirrorError(f"group {group} has no recovery point yet; synchronize it first",
                              code="arvmNoRecoveryPoint")
        report = await online_verify.online_verify(self._peer, self._hosts, self._publish, array, g)
        st = self._runner.state(array.name, group)
        st.verify_mismatched = report["regionsMarked"]  # a Guru problem until a sync resends them
        return report

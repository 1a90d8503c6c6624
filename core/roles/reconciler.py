"""Reconciliation when two arrays talk again (SPEC §2 "Roles", "Orphans").

Each side sends its view of every group and pair; the differences become a role
conflict (both primary: the user chooses in the Recovery Guru), a role change the
system finishes itself (double forced change), orphans, or incomplete pairs
completed on the remote. Until a group's sides agree the scheduler holds its syncs.
It runs by itself each time a link comes (back) up: the array whose name sorts
first orchestrates, the other asks it to.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from core import sides
from core.array import StorageArray
from core.domain import Severity
from core.errors import MirrorError
from core.publisher import Publish
from core.replication.links import Links
from core.roles import hints
from core.roles.coordinator import RoleCoordinator

log = logging.getLogger(__name__)
ORPHAN_RECHECK_SECONDS = 1.0
# While a forced change or a hint waits, the non-orchestrating side asks again this often.
RECONCILE_RETRY_SECONDS = 5.0


class Reconciler:
    """Settles the differences between both sides of every group, each time a link comes (back) up."""

    def __init__(self, arrays: Mapping[str, StorageArray], peer: Links, roles: RoleCoordinator, publish: Publish):
        self._arrays = arrays
        self._peer = peer
        self._roles = roles
        self._publish = publish
        self._was_reachable: dict[tuple[str, str], bool] = {}
        self._reconcile_asked: dict[tuple[str, str], float] = {}
        self._reconciling: dict[tuple[str, str], asyncio.Task] = {}
        self.peer_changed: dict[tuple[str, str], int] = {}  # (local, group) -> bytes the remote changed

    def _array(self, name: str) -> StorageArray:
        return self._arrays[name]

    def handlers(self, a: StorageArray) -> dict:
        """The reconciliation messages that array ``a`` answers."""
        return {
            "reconcile.request": lambda peer, **p: self._side_reconcile_request(a, **p),
            "role.unhint": lambda peer, **p: self._side_unhint(a),
            "role.peer_changed": lambda peer, **p: self._side_peer_changed(a, **p),
            "pair.complete": lambda peer, **p: self._complete_pair(a, **p),
        }

    async def stop(self) -> None:
        tasks = [t for t in self._reconciling.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- reconciliation ---------------------------------------------------------------------------
    def holds(self, array, g) -> bool:
        """Scheduler hook: do not sync a group whose sides have not reconciled yet."""
        if not self._peer.reachable(array.name, g.remote_array):
            return False
        busy = self._reconciling
        return bool(g.forced) or (array.name, g.remote_array) in busy or (g.remote_array, array.name) in busy

    def watch_links(self) -> None:
        pairs = set()
        for a in self._arrays.values():
            remotes = {g.remote_array for g in a.groups()} | set(self._peer.watched(a.name))
            pairs.update((a.name, remote) for remote in remotes)
        for local, remote in sorted(pairs):
            up = self._peer.reachable(local, remote)
            was = self._was_reachable.get((local, remote))
            self._was_reachable[(local, remote)] = up
            if not up or (local, remote) in self._reconciling:
                continue
            forced = any(g.forced for g in self._arrays[local].groups() if g.remote_array == remote)
            # The array whose name sorts first orchestrates; the other asks it to, each
            # time the link comes (back) up.
            again = was is not True or (forced or bool(hints.hints(self._arrays[local]))) and \
                time.monotonic() - self._reconcile_asked.get((local, remote), 0.0) > RECONCILE_RETRY_SECONDS
            if not again:
                continue
            self._reconcile_asked[(local, remote)] = time.monotonic()
            work = self._reconcile(local, remote) if local < remote else self._ask_reconcile(local, remote)
            self._start_reconcile(local, remote, work)

    def _start_reconcile(self, local: str, remote: str, work) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"reconcile {local}<->{remote}")
        self._reconciling[(local, remote)] = task
        task.add_done_callback(lambda t, k=(local, remote): self._reconciling.pop(k, None))

    async def _ask_reconcile(self, local: str, remote: str) -> None:
        try:
            await self._peer.call(local, remote, "reconcile.request", {"remote": local})
        except MirrorError as e:
            log.info("asking %s to reconcile with %s failed: %s", remote, local, e)

    def _side_reconcile_request(self, array, remote: str) -> dict:
        """The peer's link came back: reconcile with it (this side orchestrates)."""
        if (array.name, remote) not in self._reconciling:
            self._start_reconcile(array.name, remote, self._reconcile(array.name, remote))
        return {"ok": True}

    async def reconcile(self, local: str, remote: str) -> None:
        """Compare both sides of every group between two arrays and settle the differences."""
        await self._reconcile(local, remote)

    async def _reconcile(self, local: str, remote: str) -> None:
        try:
            mine, theirs = await self._views(local, remote)
            if _unpartnered(mine, theirs) or _mid_swap(mine, theirs):
                # A group or pair being created or removed right now exists on one side
                # only for a moment, and a planned role change has both sides primary
                # between its two swaps: look again before calling it an orphan or a conflict.
                await asyncio.sleep(ORPHAN_RECHECK_SECONDS)
                mine, theirs = await self._views(local, remote)
        except MirrorError as e:
            log.info("reconciliation %s<->%s postponed: %s", local, remote, e)
            return
        la = self._array(local)
        ours = {g["name"]: g for g in mine["groups"]}
        other = {g["name"]: g for g in theirs["groups"]}
        for name in sorted(set(ours) | set(other)):
            try:
                await self._reconcile_group(la, remote, name, ours.get(name), other.get(name))
            except MirrorError as e:
                la.log(Severity.WARNING, name, "arvmReconcileFailed", f"Reconciling {name} failed: {e.message}")
        for name in list(hints.hints(la)):
            hints.set_hint(la, name, False)
        await self._roles.on(local, remote, "role.unhint", {})

    async def _views(self, local: str, remote: str) -> tuple[dict, dict]:
        mine = self._roles.side_view(self._array(local), remote)
        theirs = await self._peer.call(local, remote, "role.view", {"remote": local})
        return mine, theirs

    async def _reconcile_group(self, la, remote: str, name: str, mine: dict | None, theirs: dict | None) -> None:
        local = la.name
        if mine is None or theirs is None:
            side, view = (local, mine) if theirs is None else (remote, theirs)
            if not view["orphan"]:
                await self._roles.on(local, side, "role.mark", {"group": name, "orphan": True})
            return
        if mine["orphan"] or theirs["orphan"]:
            return
        await self._reconcile_pairs(la, remote, name, mine, theirs)
        roles = (mine["role"], theirs["role"])
        if roles == ("primary", "primary"):
            self.peer_changed[(local, name)] = sum(theirs["changed"].values())
            # tell the other side what this side changed, for its Guru
            await self._peer.call(local, remote, "role.peer_changed",
                                  {"group": name, "changed": sum(mine["changed"].values())})
            if not (mine["role_conflict"] and theirs["role_conflict"]):
                for side in (local, remote):
                    await self._roles.on(local, side, "role.mark", {"group": name, "role_conflict": True})
            return
        if "primary" in roles and "secondary" in roles and (mine["forced"] or theirs["forced"]):
            winner = local if mine["role"] == "primary" else remote
            await self._finish_forced_change(local, remote, name, winner)

    async def _reconcile_pairs(self, la, remote: str, name: str, mine: dict, theirs: dict) -> None:
        local = la.name
        for view, side, other in ((mine, local, theirs), (theirs, remote, mine)):
            partner = {p["volume"] for p in other["pairs"]}
            for p in view["pairs"]:
                if p["remote_volume"] in partner or p["orphan"]:
                    continue
                if p["incomplete"]:
                    await self._roles.on(local, side, "pair.complete", {"group": name, "volume": p["volume"]})
                else:
                    await self._roles.on(local, side, "role.mark", {"group": name, "pair": p["volume"], "orphan": True})

    async def _complete_pair(self, array, group: str, volume: str) -> dict:
        """Create the remote side of a pair added while the remote was unreachable."""
        pair = sides.find_pair(array, volume)
        g = pair.group
        pct = round(100.0 * pair.reserved_capacity / pair.volume.capacity, 3)
        params = dict(group=group, volume=pair.remote_volume, remote_volume=volume, reserved_percent=pct)
        await self._peer.call(array.name, g.remote_array, "pair.create", {**params, "check_only": True})
        await self._peer.call(array.name, g.remote_array, "pair.create", params)
        pair.incomplete = False
        array.db.commit()
        array.log(Severity.INFO, f"{group}/{volume}", "arvmPairCompleted",
                  f"Pair {array.name}/{volume} completed on {g.remote_array}/{pair.remote_volume}")
        self._publish("pair", array.name, f"{group}/{volume}")
        return {"ok": True}

    async def _finish_forced_change(self, local: str, remote: str, name: str, winner: str) -> None:
        """Double forced change: both sides in progress, exchange change logs, resync, back to normal."""
        loser = remote if winner == local else local
        for side in (winner, loser):
            await self._roles.on(local, side, "role.mark", {"group": name, "role_change": "in_progress"})
        self._array(local).log(Severity.INFO, name, "arvmRoleChangeInProgress",
                                  f"Group {name}: finishing the forced role change ({winner} primary)")
        got = await self._roles.on(local, loser, "role.yield", {"group": name, "preserve": False})
        await self._roles.resync_winner(local, winner, name, got["regions"])

    def _side_peer_changed(self, array, group: str, changed: int) -> dict:
        self.peer_changed[(array.name, group)] = changed
        return {"ok": True}

    def _side_unhint(self, array) -> dict:
        for name in list(hints.hints(array)):
            hints.set_hint(array, name, False)
        return {"ok": True}



def _mid_swap(mine: dict, theirs: dict) -> bool:
    """Whether a group is primary on both sides while one of them says its role change is in progress."""
    other = {g["name"]: g for g in theirs["groups"]}
    return any(g["role"] == "primary" and (t := other.get(g["name"])) is not None and t["role"] == "primary"
               and "in_progress" in (g["role_change"], t["role_change"]) for g in mine["groups"])


def _unpartnered(mine: dict, theirs: dict) -> bool:
    """Whether either view has a group or pair the other lacks (an orphan, or one being created)."""
    ours = {g["name"]: g for g in mine["groups"]}
    other = {g["name"]: g for g in theirs["groups"]}
    if set(ours) != set(other):
        return True
    for name, g in ours.items():
        if {p["remote_volume"] for p in g["pairs"]} != {p["volume"] for p in other[name]["pairs"]}:
            return True
    return False

"""The Recovery Guru: every problem of the mirrors, computed from real state, with its fixes.

``guru()`` looks at both sides of every group each time it is called (nothing is
cached, so a problem disappears the moment its cause is gone); each
:class:`Problem` has a stable id for the same condition ("role-conflict:G"), the
objects it concerns, the cause, numbered recovery steps and the actions the
console offers. ``guru_fix(problem_id, action_id)`` runs an action through the
same service API the CLI and console use.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol


from core import forecast
from core.domain import GroupStatus, ResyncPolicy, Role, Severity
from core.errors import MirrorError, NotFound
from core.status import system_suspended

if TYPE_CHECKING:
    from core.array import StorageArray
    from core.commands.mirrors import MirrorCommands
    from core.replication.links import Links
    from core.replication.sync_runner import SyncRunner
    from core.roles.coordinator import RoleCoordinator
    from core.roles.reconciler import Reconciler

FAILED_VOLUME = re.compile(r"^volume (\S+/\S+) failed")
HISTORY_FOR_FORECAST = 20


@dataclass(frozen=True)
class GuruAction:
    """A fix the Guru offers. One-word fields: they cross REST as they are (``models.problem_from_ws``).

    ``target``: the object the action acts on, the one the cause names (ARRAY/VOLUME or a
    group), which may be on the other array of the pair. ``value``: the figure it applies
    (a reserved-capacity percentage, an interval in minutes). ``blocked``: why it cannot
    act now ('' when it can); the console shows it disabled with this reason and
    ``guru_fix`` refuses with it.
    """

    id: str
    label: str
    destructive: bool = False
    detail: str = ""
    target: str = ""
    value: float = 0.0
    blocked: str = ""


@dataclass(frozen=True)
class Problem:
    id: str
    severity: str
    title: str
    objects: tuple[str, ...]
    cause: str
    steps: tuple[str, ...]
    actions: tuple[GuruAction, ...] = ()


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class GuruActions(Protocol):
    """The part of the service API the Guru's fixes run (the same the CLI and the console use)."""

    async def role_change(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict: ...
    async def controller_restore(self, array: str, ctrl: str) -> None: ...
    async def volume_repair(self, ref: str) -> None: ...
    async def delete_group(self, name: str) -> None: ...
    async def remove_pair(self, ref: str) -> None: ...
    async def increase_reserved_capacity(self, ref: str, percent: float) -> None: ...
    async def update_group(self, name: str, **settings): ...
    async def resume(self, group: str, delete_recovery_point_if_necessary: bool = False) -> None: ...
    async def sync_now(self, group: str, wait: bool = False): ...


class Guru:
    """The problems of this process's arrays, looked at afresh on every call, and their fixes."""

    def __init__(self, arrays: Mapping[str, StorageArray], links: Links, runner: SyncRunner,
                 mirrors: MirrorCommands, roles: RoleCoordinator, reconciler: Reconciler, actions: GuruActions):
        self._arrays = arrays
        self._links = links
        self._runner = runner
        self._mirrors = mirrors
        self._roles = roles
        self._reconciler = reconciler
        self._actions = actions

    def _array(self, name: str) -> StorageArray:
        return self._arrays[name]

    async def guru(self) -> list[Problem]:
        return self.guru_problems()

    def guru_problems(self) -> list[Problem]:
        out: dict[str, Problem] = {}

        def add(p: Problem) -> None:
            out.setdefault(p.id, p)

        for array in self._arrays.values():
            refusals = self._links.channels.refusals if self._links.channels is not None else {}
            count, addresses = refusals[array.name].burst() if array.name in refusals else (0, [])
            if count:
                add(Problem(f"channel-logins-refused:{array.name}", Severity.WARNING.value,
                            f"{array.name} refused {count} mirroring channel logins in the last minute",
                            (array.name,), f"Wrong passwords or protocol errors from {', '.join(addresses)}.",
                            ("1. If an array of yours is among them, correct its remote-array password.",
                             "2. Otherwise block the address: repeated attempts are already slowed down."), ()))
        for key in (f"{a.name}/{c.label}" for a in self._arrays.values() for c in a.controllers()
                    if c.status == "offline"):
            add(Problem(f"controller-offline:{key}", Severity.CRITICAL.value, f"Controller {key} is offline",
                        (key,), f"Controller {key} was reset; its volumes are owned by the other controller.",
                        ("1. Restore the controller.", "2. Volumes return to their preferred owner."),
                        (GuruAction("restore-controller", f"Restore controller {key}", False,
                                    "volumes move back to their preferred owner"),)))
        now = datetime.now(timezone.utc)
        for array in self._arrays.values():
            for g in array.groups():
                self._group_problems(array, g, now, add)
        order = {Severity.CRITICAL.value: 0, Severity.WARNING.value: 1, Severity.INFO.value: 2}
        return sorted(out.values(), key=lambda p: (order.get(p.severity, 3), p.id))

    def _group_problems(self, array, g, now, add) -> None:
        snap = self._mirrors.group_snapshot(array, g)
        status = snap.status
        remote = g.remote_array
        if status == GroupStatus.ORPHAN.value:
            add(Problem(f"orphan-group:{array.name}/{g.name}", Severity.WARNING.value,
                        f"Orphan group {g.name} on {array.name}", (f"{array.name}/{g.name}",),
                        f"Group {g.name} was deleted on {remote} while the arrays could not talk.",
                        ("1. Remove the orphan group (its pairs' volumes stay, with their data).",),
                        (GuruAction("remove-orphan", "Remove the orphan group", True,
                                    f"deletes {g.name} on {array.name} only"),)))
            return
        if status == GroupStatus.ROLE_CONFLICT.value:
            self._conflict_problem(array, g, add)
            return
        for p in snap.pairs:
            ref = f"{array.name}/{p.local_volume}"
            if p.status == "orphan":
                add(Problem(f"orphan-pair:{ref}", Severity.WARNING.value, f"Orphan mirrored pair {ref}", (ref,),
                            f"Its partner {remote}/{p.remote_volume} was removed while the arrays could not talk.",
                            ("1. Remove the orphan pair.",),
                            (GuruAction("remove-orphan", "Remove the orphan pair", True, f"removes {ref} only"),)))
            elif p.status == "incomplete":
                acts = [GuruAction("remove-pair", "Remove the incomplete pair", True, f"removes {ref}")]
                add(Problem(f"incomplete-pair:{ref}", Severity.WARNING.value, f"Incomplete mirrored pair {ref}",
                            (ref,), f"Created while {remote} was unreachable; it completes when the link returns.",
                            ("1. Restore communication with the remote array.", "2. The pair completes by itself."),
                            tuple(acts)))
            elif p.status == "failed":
                failed = self._failed_volumes(array, g, p.local_volume, p.remote_volume, p.reason)
                acts = [GuruAction("repair-volume", f"Repair volume {v}", False,
                                   f"lab volume repair: {v} comes back; then resume {g.name}", target=v)
                        for v in failed]
                full = self._full_reserved_capacity(array, g, p)
                if full is not None:
                    acts.append(self._grow_action(full, p.unsynchronized_bytes))
                acts.append(self._resume_action(g, failed))
                cause_objects = tuple(dict.fromkeys((ref,) + tuple(failed) + ((full,) if full else ())))
                add(Problem(f"failed-pair:{ref}", Severity.CRITICAL.value, f"Mirrored pair {ref} failed",
                            cause_objects, p.reason or "its volume or reserved capacity failed",
                            (f"1. Fix the failure: {self._fix_words(failed, full)}.",
                             f"2. Resume {g.name}: only what changed is resynchronized."), tuple(acts)))
            cap = p.reserved_capacity
            used = cap.pit_bytes + cap.log_bytes + cap.staging_bytes
            pct = 100.0 * used / cap.capacity if cap.capacity else 0.0
            if pct >= 100 or pct > g.reserved_alert_percent:
                full = pct >= 100
                add(Problem(f"reserved-capacity:{ref}", (Severity.CRITICAL if full else Severity.WARNING).value,
                            f"Reserved capacity of {ref} {'is full' if full else f'is {pct:.0f} % used'}", (ref,),
                            f"Above the group's {g.reserved_alert_percent} % threshold.",
                            ("1. Increase the reserved capacity.",),
                            (self._grow_action(ref, used),)))
        if status == GroupStatus.SYSTEM_SUSPENDED.value or system_suspended(g):
            failed = tuple(dict.fromkeys(v for p in g.pairs for v in self._failed_volumes(
                array, g, p.volume.name, p.remote_volume, p.failed_reason)))
            acts = [GuruAction("repair-volume", f"Repair volume {v}", False,
                               f"lab volume repair: {v} comes back; then resume {g.name}", target=v) for v in failed]
            acts.append(self._resume_action(g, failed))
            add(Problem(f"system-suspended:{g.name}", Severity.CRITICAL.value, f"Group {g.name} is system suspended",
                        (g.name,) + failed, "A mirrored pair failed; the other pairs are stopped.",
                        ("1. Fix the failed pair" + (f": repair {', '.join(failed)}." if failed else "."),
                         f"2. Resume {g.name}."), tuple(acts)))
        st = self._runner.states.get((array.name, g.name))
        if st is not None and st.verify_mismatched:
            add(Problem(f"verify-mismatch:{g.name}", Severity.CRITICAL.value,
                        f"{st.verify_mismatched} region(s) of {g.name} differ on {remote}", (g.name, remote),
                        "Online verification found the secondary's recovery point different from the primary's "
                        "image (damage the data path could not see).",
                        ("1. The differing regions are marked changed; the next synchronization resends them.",
                         f"2. Synchronize {g.name} now to repair it at once, then verify again."),
                        (GuruAction("sync-now", f"Resynchronize {g.name} now", False,
                                    "resends only the differing regions and what changed since"),)))
        if status == GroupStatus.SYNC_FAILING.value:
            st = self._runner.states.get((array.name, g.name))
            cause = st.last_error if st is not None else "synchronizations keep failing"
            add(Problem(f"sync-failing:{g.name}", Severity.CRITICAL.value,
                        f"Synchronization of {g.name} keeps failing", (g.name, array.name, remote),
                        f"The last {st.failures if st is not None else 'few'} synchronizations failed: {cause}",
                        ("1. Fix the cause (see the event log: for example free space on the secondary array).",
                         f"2. Synchronize {g.name} now; the recovery point stays the last committed one until then."),
                        (GuruAction("sync-now", f"Synchronize {g.name} now", False, "retries the synchronization"),)))
        elif status == GroupStatus.PAUSED.value:
            reach = self._links.reachable(array.name, remote)
            if not reach:
                add(Problem(f"communication-lost:{g.name}", Severity.CRITICAL.value,
                            f"Communication lost: group {g.name} is paused", (g.name, array.name, remote),
                            f"{array.name} cannot reach {remote} over the mirroring channel.",
                            ("1. Restore the link (or start the stopped array).",
                             "2. The group resumes by its resync policy; if the primary is lost, force-promote "
                             "the secondary."), ()))
            else:
                if g.resync_policy == ResyncPolicy.AUTOMATIC.value:
                    # Automatic resync applies to communication interruptions; after a repaired failure the
                    # engine waits for the administrator (core/service_faults.volume_repair).
                    why = ("A failed volume was repaired. After a failure synchronization restarts only when you "
                           "resume the group (the automatic resync policy covers communication interruptions).")
                else:
                    why = ("Communication returned, or a failure was repaired, and the group's resync policy is "
                           "manual.")
                add(Problem(f"waiting-resume:{g.name}", Severity.WARNING.value, f"Group {g.name} waits to resume",
                            (g.name,), why, (f"1. Resume {g.name}.",), (self._resume_action(g, ()),)))
        elif status == GroupStatus.USER_SUSPENDED.value:
            add(Problem(f"user-suspended:{g.name}", Severity.INFO.value, f"Group {g.name} is suspended", (g.name,),
                        "Suspended by a user; changes are tracked.", (f"1. Resume {g.name}.",),
                        (self._resume_action(g, ()),)))
        rp_age = self._runner.recovery_point_age(array, g)
        if g.role == Role.PRIMARY.value and rp_age is not None and rp_age > g.recovery_point_alert_minutes * 60:
            age = rp_age / 60
            add(Problem(f"recovery-point-age:{g.name}", Severity.WARNING.value,
                        f"Recovery point of {g.name} is {age:.0f} min old", (g.name,),
                        f"Older than the {g.recovery_point_alert_minutes} min threshold.",
                        ("1. Check the link and the sync schedule.", "2. Synchronize now."),
                        (GuruAction("sync-now", f"Synchronize {g.name} now", False, ""),)))
        if g.role == Role.PRIMARY.value and snap.progress is not None and \
                (now - snap.progress.started).total_seconds() > g.sync_alert_minutes * 60:
            add(Problem(f"sync-time:{g.name}", Severity.WARNING.value, f"Synchronization of {g.name} is slow",
                        (g.name,), f"Running longer than the {g.sync_alert_minutes} min threshold.",
                        ("1. Raise the group's priority or lengthen its interval.",), ()))

    def _conflict_problem(self, array, g, add) -> None:
        # Bytes each side changed since the common recovery point; the remote array
        # reported its figure when the conflict was found (None: not known here).
        sides: dict[str, int | None] = {array.name: sum(self._roles.changed_bytes(array, p) for p in g.pairs),
                                        g.remote_array: self._reconciler.peer_changed.get((array.name, g.name))}

        def amount(name: str) -> str:
            return _size(sides[name]) if sides[name] is not None else "an amount known to " + name

        acts = []
        for keep in sorted(sides):
            lose = [n for n in sides if n != keep]
            lost = f"; {amount(lose[0])} written on {lose[0]} is kept as preserved data, then overwritten" \
                if lose else ""
            acts.append(GuruAction(f"keep-{keep}", f"Keep {keep} as primary", True,
                                   f"{amount(keep)} changed on {keep} since the common recovery point{lost}"))
        changed = ", ".join(f"{n}: {amount(n)}" for n in sorted(sides))
        add(Problem(f"role-conflict:{g.name}", Severity.CRITICAL.value, f"Role conflict in group {g.name}",
                    (g.name,) + tuple(sorted(sides)),
                    f"Both arrays claim primary for {g.name} (changed since the common recovery point: {changed}).",
                    ("1. Choose the array that stays primary.",
                     "2. The other array's divergent writes are kept as preserved data (View > Preserved data, "
                     "'mirrorctl preserved list'): restore them into a new volume, export or delete them.",
                     "3. It becomes secondary and is resynchronized with only the changed regions."), tuple(acts)))

    # -- what a cause names, and the fixes that act on it ---------------------------------------
    def _failed_volumes(self, array, g, local_volume: str, remote_volume: str, reason: str) -> tuple[str, ...]:
        """The failed volumes (ARRAY/VOLUME) of one pair, on either side.

        The remote array's volume is known only through the pair's reason, which its
        failure set ("volume SiteB/db_dr failed; ...").
        """
        out = []
        local = f"{array.name}/{local_volume}"
        row = _volume_or_none(array, local_volume)
        if row is not None and row.failed:
            out.append(local)
        remote = f"{g.remote_array}/{remote_volume}"
        m = FAILED_VOLUME.match(reason or "")
        if m is not None and m.group(1) == remote:
            out.append(remote)
        return tuple(out)

    @staticmethod
    def _full_reserved_capacity(array, g, p) -> str | None:
        """The reserved capacity (ARRAY/VOLUME) whose filling failed pair snapshot ``p``, or None."""
        reason = p.reason or ""
        if reason.startswith("reserved capacity full on the secondary"):
            return f"{g.remote_array}/{p.remote_volume}"
        if reason.startswith("reserved capacity full"):
            return f"{array.name}/{p.local_volume}"
        return None

    @staticmethod
    def _fix_words(failed, full) -> str:
        words = [f"repair volume {v}" for v in failed]
        if full:
            words.append(f"increase the reserved capacity of {full}")
        return " and ".join(words) or "repair the volume or increase the reserved capacity"

    def _grow_action(self, ref: str, needed: int, percent: int | None = None) -> GuruAction:
        """Grow ``ref``'s reserved capacity to hold ``needed`` bytes (or to ``percent``), saying what it takes."""
        a, _, v = ref.partition("/")
        arr = self._arrays.get(a)
        row = _volume_or_none(arr, v) if arr is not None else None
        pair = arr.pair_of(row) if row is not None else None
        if pair is None:  # on the remote array: the fleet sizes it from that array's figures (grow_action)
            label = f"Increase the reserved capacity of {ref}" + (f" to {percent} %" if percent else "")
            return GuruAction("increase-reserved-capacity", label, False, f"on {a}; asks before it changes",
                              target=ref, value=float(percent or 0))
        return grow_action(ref, needed, pair.reserved_capacity, row.capacity, pair.reserved_pool,
                           arr.pool_free(pair.reserved_pool), percent)

    @staticmethod
    def _resume_action(g, failed) -> GuruAction:
        blocked = (f"repair {', '.join(failed)} first: a failed volume cannot be resynchronized" if failed else "")
        return GuruAction("resume", f"Resume {g.name}", False, "resynchronizes only what changed", target=g.name,
                          blocked=blocked)

    async def guru_fix(self, problem_id: str, action_id: str) -> dict:
        """Run ``action_id`` of the current problem ``problem_id``; a blocked action is refused with its reason."""
        problem = next((p for p in self.guru_problems() if p.id == problem_id), None)
        if problem is None:
            raise NotFound(f"no current problem '{problem_id}'; see 'mirrorctl guru'", code="guruProblemNotFound")
        action = next((a for a in problem.actions if a.id == action_id), None)
        if action is None:
            known = ", ".join(a.id for a in problem.actions) or "none"
            raise MirrorError(f"problem {problem_id} has no action '{action_id}' (actions: {known})",
                              code="guruActionNotFound")
        if action.blocked:
            raise MirrorError(f"{action.label} cannot act now: {action.blocked}", code="guruActionBlocked")
        kind, _, target = problem_id.partition(":")
        result = await self._guru_run(kind, action.target or target, action)
        return {"problem": problem_id, "action": action_id, "done": True, **(result or {})}

    def _here(self, ref: str, action: GuruAction) -> tuple[str, str]:
        """ARRAY, VOLUME of ``ref``, refused when another process runs that array."""
        a, _, v = ref.partition("/")
        if a not in self._arrays:
            raise MirrorError(f"{action.label}: {ref} is on {a}, which another engine runs; do it there "
                              f"(the console does it through {a}'s own API)", code="guruActionElsewhere")
        return a, v

    async def _guru_run(self, kind: str, target: str, action: GuruAction) -> dict | None:
        act = action.id
        if act.startswith("keep-"):  # the kept array may run in another process: role_change finds it
            return await self._actions.role_change(target, act[len("keep-"):])
        if act == "restore-controller":
            a, _, c = target.partition("/")
            await self._actions.controller_restore(a, c)
        elif act == "repair-volume":
            self._here(target, action)
            await self._actions.volume_repair(target)
        elif act == "remove-orphan" and kind == "orphan-group":
            await self._actions.delete_group(target.partition("/")[2])
        elif act in ("remove-orphan", "remove-pair"):
            await self._actions.remove_pair(target)
        elif act == "increase-reserved-capacity":
            a, v = self._here(target, action)
            array = self._array(a)
            row = array.volume(v)
            pair = array.pair_of(row)
            pct = action.value or min(100.0, 100.0 * pair.reserved_capacity / row.capacity + 20)
            await self._actions.increase_reserved_capacity(target, pct)
        elif act == "sync-more-often":
            await self._actions.update_group(target, sync_mode="scheduled", sync_interval_minutes=int(action.value))
        elif act == "resume":
            group = target if action.target or kind in ("system-suspended", "waiting-resume", "user-suspended") \
                else self._array(target.partition("/")[0]).pair_of(
                    self._array(target.partition("/")[0]).volume(target.partition("/")[2])).group.name
            await self._actions.resume(group)
        elif act == "sync-now":
            await self._actions.sync_now(target)
        return None


def grow_action(ref: str, needed: int, capacity: int, volume_capacity: int, pool: str, pool_free: int,
                percent: int | None = None) -> GuruAction:
    """Grow ``ref``'s reserved capacity (``capacity`` bytes now) to hold ``needed`` bytes, or to ``percent``.

    Says what it takes from which pool, and is blocked when the pool cannot give it.
    """
    now_pct = 100.0 * capacity / volume_capacity if volume_capacity else 100.0
    if percent is None:
        percent = forecast.suggested_percent(needed, 0, volume_capacity, capacity) if needed \
            else min(100, int(now_pct) + 20)
    new = volume_capacity * percent // 100
    grow = max(0, new - capacity)
    blocked = ""
    if now_pct >= 100:
        blocked = f"the reserved capacity of {ref} is already the size of its volume"
    elif grow > pool_free:
        blocked = (f"pool {pool} of {ref.partition('/')[0]} has {_size(pool_free)} free and {_size(grow)} is "
                   "needed; free capacity in the pool first")
    return GuruAction("increase-reserved-capacity", f"Increase the reserved capacity of {ref} to {percent} %",
                      False, f"{_size(capacity)} ({now_pct:.0f} %) now, {_size(new)} after: takes {_size(grow)} from "
                             f"pool {pool} ({_size(pool_free)} free)",
                      target=ref, value=float(percent), blocked=blocked)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _volume_or_none(array, name: str):
    try:
        return array.volume(name)
    except MirrorError:
        return None


def reserved_forecast_problem(g, fc: forecast.ReservedForecast, grow: GuruAction) -> Problem:
    """The Guru's warning that the next sync may not fit ``fc.volume``'s reserved capacity."""
    rate = fc.rate
    every = (f"every {g.sync_interval_minutes} min" if g.sync_mode == "scheduled"
             else f"in the {_duration(rate.interval_seconds)} a manual sync typically covers")
    changes = (f"enough changes {every} to rewrite the whole {_size(fc.volume_capacity)} volume"
               if fc.whole_volume else f"{_size(rate.per_interval)} staged on the secondary {every}")
    cause = (f"At the current change rate ({changes}, measured over "
             f"{rate.samples} synchronization(s)) the next sync needs about {_size(fc.needed)} of {fc.volume}'s "
             f"{_size(fc.capacity)} reserved capacity ({_size(fc.available)} available). If it does not fit, the "
             "pair fails and its recovery point image is lost.")
    acts = [grow]
    steps = [f"1. Increase the reserved capacity of {fc.volume} to {fc.suggested_percent} % of its volume."]
    m = fc.suggested_interval_minutes
    if m is not None and (g.sync_mode != "scheduled" or m < g.sync_interval_minutes):
        now = "manual" if g.sync_mode != "scheduled" else f"every {g.sync_interval_minutes} min"
        acts.append(GuruAction("sync-more-often", f"Synchronize every {m} min", False,
                               f"{g.name}: {now} now; each sync then carries about "
                               f"{_size(int(rate.bytes_per_second * m * 60))}", target=g.name, value=float(m)))
        steps.append(f"2. Or synchronize more often: every {m} min keeps each sync within what is available.")
    title = (f"The next synchronization of {g.name} will not fit {fc.volume}'s reserved capacity" if fc.fills
             else f"The next synchronization of {g.name} may fill {fc.volume}'s reserved capacity")
    return Problem(f"reserved-forecast:{fc.volume}", (Severity.CRITICAL if fc.fills else Severity.WARNING).value,
                   title, (g.name, fc.volume), cause, tuple(steps), tuple(acts))

"""The Recovery Guru: every problem of the mirrors, computed from real state, with its fixes.

``guru()`` looks at both sides of every group each time it is called (nothing is
cached, so a problem disappears the moment its cause is gone); each
:class:`Problem` has a stable id for the same condition ("role-conflict:G"), the
objects it concerns, the cause, numbered recovery steps and the actions the
console offers. ``guru_fix(problem_id, action_id)`` runs an action through the
same service API the CLI and console use.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from core.domain import GroupStatus, Role, Severity
from core.errors import MirrorError, NotFound
from core.status import system_suspended


@dataclass(frozen=True)
class GuruAction:
    id: str
    label: str
    destructive: bool = False
    detail: str = ""


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


class GuruService:
    """Mixed into the engine through :class:`core.service_roles.RoleService`."""

    async def guru(self) -> list[Problem]:
        return self.guru_problems()

    def guru_problems(self) -> list[Problem]:
        out: dict[str, Problem] = {}
        f = self.lab.faults

        def add(p: Problem) -> None:
            out.setdefault(p.id, p)

        for array in self.arrays.values():
            count, addresses = self.channels.refusals[array.name].burst() if hasattr(self, "channels") \
                and array.name in self.channels.refusals else (0, [])
            if count:
                add(Problem(f"channel-logins-refused:{array.name}", Severity.WARNING.value,
                            f"{array.name} refused {count} mirroring channel logins in the last minute",
                            (array.name,), f"Wrong passwords or protocol errors from {', '.join(addresses)}.",
                            ("1. If an array of yours is among them, correct its remote-array password.",
                             "2. Otherwise block the address: repeated attempts are already slowed down."), ()))
        for name in f.stopped_arrays:
            add(Problem(f"array-stopped:{name}", Severity.CRITICAL.value, f"Array {name} is stopped", (name,),
                        f"Array {name} is not running: its volumes refuse host I/O and its mirrors are paused.",
                        ("1. Start the array.", "2. Groups resume by their resync policy."),
                        (GuruAction("start-array", f"Start {name}", False, "lab array start"),)))
        for key in f.offline_controllers:
            add(Problem(f"controller-offline:{key}", Severity.CRITICAL.value, f"Controller {key} is offline",
                        (key,), f"Controller {key} was reset; its volumes are owned by the other controller.",
                        ("1. Restore the controller.", "2. Volumes return to their preferred owner."),
                        (GuruAction("restore-controller", f"Restore controller {key}", False,
                                    "volumes move back to their preferred owner"),)))
        now = datetime.now(timezone.utc)
        for array in self.arrays.values():
            for g in array.groups():
                self._group_problems(array, g, now, add)
        order = {Severity.CRITICAL.value: 0, Severity.WARNING.value: 1, Severity.INFO.value: 2}
        return sorted(out.values(), key=lambda p: (order.get(p.severity, 3), p.id))

    def _group_problems(self, array, g, now, add) -> None:
        snap = self.group_snapshot(array, g)
        status = snap.status
        remote = g.remote_array
        link_action = self._link_action()
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
                if link_action:
                    acts.insert(0, link_action)
                add(Problem(f"incomplete-pair:{ref}", Severity.WARNING.value, f"Incomplete mirrored pair {ref}",
                            (ref,), f"Created while {remote} was unreachable; it completes when the link returns.",
                            ("1. Restore communication with the remote array.", "2. The pair completes by itself."),
                            tuple(acts)))
            elif p.status == "failed":
                acts = []
                if f"{array.name}/{p.local_volume}" in self.lab.faults.failed_volumes or \
                        array.volume(p.local_volume).failed:
                    acts.append(GuruAction("repair-volume", f"Repair {ref}", False, "lab volume repair"))
                if "reserved capacity" in p.reason:
                    acts.append(GuruAction("increase-reserved-capacity", "Increase the reserved capacity by 20 %",
                                           False, f"now {_size(p.reserved_capacity.capacity)}"))
                acts.append(GuruAction("resume", f"Resume {g.name}", False, "resynchronizes only what changed"))
                add(Problem(f"failed-pair:{ref}", Severity.CRITICAL.value, f"Mirrored pair {ref} failed", (ref,),
                            p.reason or "its volume or reserved capacity failed",
                            ("1. Fix the failure (repair the volume or increase the reserved capacity).",
                             f"2. Resume {g.name}."), tuple(acts)))
            cap = p.reserved_capacity
            used = cap.pit_bytes + cap.log_bytes + cap.staging_bytes
            pct = 100.0 * used / cap.capacity if cap.capacity else 0.0
            if pct >= 100 or pct > g.reserved_alert_percent:
                full = pct >= 100
                add(Problem(f"reserved-capacity:{ref}", (Severity.CRITICAL if full else Severity.WARNING).value,
                            f"Reserved capacity of {ref} {'is full' if full else f'is {pct:.0f} % used'}", (ref,),
                            f"Above the group's {g.reserved_alert_percent} % threshold.",
                            ("1. Increase the reserved capacity.",),
                            (GuruAction("increase-reserved-capacity", "Increase the reserved capacity by 20 %", False,
                                        f"now {_size(cap.capacity)}"),)))
        if status == GroupStatus.SYSTEM_SUSPENDED.value or system_suspended(g):
            add(Problem(f"system-suspended:{g.name}", Severity.CRITICAL.value, f"Group {g.name} is system suspended",
                        (g.name,), "A mirrored pair failed; the other pairs are stopped.",
                        ("1. Fix the failed pair.", f"2. Resume {g.name}."),
                        (GuruAction("resume", f"Resume {g.name}", False, "resynchronizes only what changed"),)))
        st = self.states.get((array.name, g.name)) if hasattr(self, "states") else None
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
            st = self.states.get((array.name, g.name))
            cause = st.last_error if st is not None else "synchronizations keep failing"
            add(Problem(f"sync-failing:{g.name}", Severity.CRITICAL.value,
                        f"Synchronization of {g.name} keeps failing", (g.name, array.name, remote),
                        f"The last {st.failures if st is not None else 'few'} synchronizations failed: {cause}",
                        ("1. Fix the cause (see the event log: for example free space on the secondary array).",
                         f"2. Synchronize {g.name} now; the recovery point stays the last committed one until then."),
                        (GuruAction("sync-now", f"Synchronize {g.name} now", False, "retries the synchronization"),)))
        elif status == GroupStatus.PAUSED.value:
            reach = self.reachable(array.name, remote)
            if not reach:
                add(Problem(f"communication-lost:{g.name}", Severity.CRITICAL.value,
                            f"Communication lost: group {g.name} is paused", (g.name, array.name, remote),
                            f"{array.name} cannot reach {remote} over the mirroring channel.",
                            ("1. Restore the link (or start the stopped array).",
                             "2. The group resumes by its resync policy; if the primary is lost, force-promote "
                             "the secondary."), (link_action,) if link_action else ()))
            else:
                add(Problem(f"waiting-resume:{g.name}", Severity.WARNING.value, f"Group {g.name} waits to resume",
                            (g.name,), "Communication returned (or a failure was repaired) and the group's resync "
                            "policy is manual.", (f"1. Resume {g.name}.",),
                            (GuruAction("resume", f"Resume {g.name}", False, "resynchronizes only what changed"),)))
        elif status == GroupStatus.USER_SUSPENDED.value:
            add(Problem(f"user-suspended:{g.name}", Severity.INFO.value, f"Group {g.name} is suspended", (g.name,),
                        "Suspended by a user; changes are tracked.", (f"1. Resume {g.name}.",),
                        (GuruAction("resume", f"Resume {g.name}", False, "resynchronizes only what changed"),)))
        rp_age = self.recovery_point_age(array, g)
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
        # Bytes each side changed since the common recovery point; a remote array in
        # another process reported its figure when the conflict was found (None: not known here).
        sides: dict[str, int | None] = {array.name: sum(self._changed_bytes(array, p) for p in g.pairs)}
        other = self.arrays.get(g.remote_array)
        if other is not None and other.find_group(g.name) is not None:
            sides[other.name] = sum(self._changed_bytes(other, p) for p in other.group(g.name).pairs)
        else:
            sides[g.remote_array] = getattr(self, "peer_changed", {}).get((array.name, g.name))

        def amount(name: str) -> str:
            return _size(sides[name]) if sides[name] is not None else "an amount known to " + name

        acts = []
        for keep in sorted(sides):
            lose = [n for n in sides if n != keep]
            lost = f"; {amount(lose[0])} written on {lose[0]} is preserved in an export, then overwritten" \
                if lose else ""
            acts.append(GuruAction(f"keep-{keep}", f"Keep {keep} as primary", True,
                                   f"{amount(keep)} changed on {keep} since the common recovery point{lost}"))
        changed = ", ".join(f"{n}: {amount(n)}" for n in sorted(sides))
        add(Problem(f"role-conflict:{g.name}", Severity.CRITICAL.value, f"Role conflict in group {g.name}",
                    (g.name,) + tuple(sorted(sides)),
                    f"Both arrays claim primary for {g.name} (changed since the common recovery point: {changed}).",
                    ("1. Choose the array that stays primary.",
                     "2. The other array's divergent writes are exported to its preserved/ directory.",
                     "3. It becomes secondary and is resynchronized with only the changed regions."), tuple(acts)))

    def _link_action(self) -> GuruAction | None:
        if self.lab.faults.link_cut:
            return GuruAction("restore-link", "Restore the lab link", False, "lab link restore")
        if self.lab.faults.stopped_arrays:
            return GuruAction("start-array", "Start the stopped array", False, "lab array start")
        return None

    async def guru_fix(self, problem_id: str, action_id: str) -> dict:
        """Run ``action_id`` of the current problem ``problem_id``."""
        problem = next((p for p in self.guru_problems() if p.id == problem_id), None)
        if problem is None:
            raise NotFound(f"no current problem '{problem_id}'; see 'mirrorctl guru'", code="guruProblemNotFound")
        if action_id not in {a.id for a in problem.actions}:
            known = ", ".join(a.id for a in problem.actions) or "none"
            raise MirrorError(f"problem {problem_id} has no action '{action_id}' (actions: {known})",
                              code="guruActionNotFound")
        kind, _, target = problem_id.partition(":")
        result = await self._guru_run(kind, target, action_id)
        return {"problem": problem_id, "action": action_id, "done": True, **(result or {})}

    async def _guru_run(self, kind: str, target: str, action: str) -> dict | None:
        if action.startswith("keep-"):  # the kept array may run in another process: role_change finds it
            return await self.role_change(target, action[len("keep-"):])
        if action == "restore-link":
            await self.lab_link(False)
        elif action == "start-array":
            for name in list(self.lab.faults.stopped_arrays):
                if kind != "array-stopped" or name == target:
                    await self.array_start(name)
        elif action == "restore-controller":
            a, _, c = target.partition("/")
            await self.controller_restore(a, c)
        elif action == "repair-volume":
            await self.volume_repair(target)
        elif action == "remove-orphan" and kind == "orphan-group":
            await self.delete_group(target.partition("/")[2])
        elif action in ("remove-orphan", "remove-pair"):
            await self.remove_pair(target)
        elif action == "increase-reserved-capacity":
            a, _, v = target.partition("/")
            array = self.get_array(a)
            row = array.volume(v)
            pair = array.pair_of(row)
            pct = 100.0 * pair.reserved_capacity / row.capacity + 20
            await self.increase_reserved_capacity(target, min(100.0, pct))
        elif action == "resume":
            group = target if kind in ("system-suspended", "waiting-resume", "user-suspended") else \
                self.get_array(target.partition("/")[0]).pair_of(
                    self.get_array(target.partition("/")[0]).volume(target.partition("/")[2])).group.name
            await self.resume(group)
        elif action == "sync-now":
            await self.sync_now(target)
        return None

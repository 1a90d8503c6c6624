"""The lab's faults, host workload and DR drills, over the arrays' REST extensions (the fleet's side).

Faults happen to the real thing: a volume failed or a controller reset on the array
that owns it, the lab link cut by its relay, a workload run by each array's daemon, a
stopped array a stopped daemon (which no daemon can report: the fleet does).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.domain import Severity
from core.errors import CommunicationError, InvalidInput, MirrorError, NotFound
from core.guru import GuruAction, Problem
from core.refs import split_ref

if TYPE_CHECKING:
    from core.client.fleet import Fleet


class FleetLab:
    def __init__(self, fleet: "Fleet"):
        self._fleet = fleet

    async def lab_faults(self) -> dict:
        """The faults in force, as the arrays and the lab's link report them."""
        arrays = await self._fleet.arrays_list()
        failed = [f"{v.array}/{v.name}" for a in arrays if a.online for v in await self._fleet.volumes(a.name) if v.failed]
        offline = [f"{a.name}/{c.label}" for a in arrays for c in a.controllers if c.status != "optimal"]
        link = await self._fleet.lab.state() if self._fleet.lab is not None else {}
        return {"link_cut": bool(link.get("cut")), "link_bandwidth": link.get("bandwidth"),
                "stopped_arrays": [a.name for a in arrays if not a.online],
                "failed_volumes": failed, "offline_controllers": offline,
                "drills": sorted(d["group"] for d in await self.drills_running())}

    async def drills_running(self) -> list[dict]:
        """The DR drills running on every array that answers: ``{group, array, recoveryPoint, exports}`` each."""
        return [d for _, drills in await self._fleet._answers("drills") for d in drills]

    async def lab_link(self, cut: bool) -> dict:
        if self._fleet.lab is None:
            raise MirrorError("these arrays are not a lab: there is no lab link to cut or restore", code="notALab")
        await self._fleet.lab.set(cut=bool(cut))
        return await self.lab_faults()

    async def start_workload(self, refs: list[str], rate_mib: float, pattern: str = "random") -> dict:
        """Hosts writing ``rate_mib`` MiB/s in total, shared by the arrays of ``refs`` in proportion."""
        by_array: dict[str, list[str]] = {}
        for ref in refs:
            a, v = split_ref(ref)
            by_array.setdefault(a, []).append(v)
        if not by_array:
            raise InvalidInput("choose at least one volume for the workload", code="invalidInput")
        info = {}
        for a, vols in by_array.items():
            share = float(rate_mib) * len(vols) / len(refs)
            info[a] = await self._fleet.client(a).post("lab/workload", {"volumes": vols, "rateMib": share,
                                                                 "pattern": pattern})
        return {"volumes": list(refs), "rate_mib": rate_mib, "pattern": pattern, "arrays": info}

    async def stop_workload(self) -> dict | None:
        stopped = {}
        for name, state in await self._fleet._answers("lab/workload"):
            if state.get("running"):
                stopped[name] = await self._fleet.client(name).delete("lab/workload")
        return stopped or None

    async def workload(self) -> dict | None:
        running = {}
        for name in sorted(self._fleet.clients):
            try:
                state = await self._fleet.client(name).get("lab/workload")
            except CommunicationError:
                continue
            if state.get("running"):
                running[name] = state
        return running or None

    async def volume_fail(self, ref: str) -> None:
        a, v = split_ref(ref)
        await self._fleet.client(a).post(f"lab/volumes/{v}/fail", {})

    async def volume_repair(self, ref: str) -> None:
        a, v = split_ref(ref)
        await self._fleet.client(a).post(f"lab/volumes/{v}/repair", {})

    async def controller_reset(self, array: str, ctrl: str) -> None:
        await self._fleet.client(array).post(f"lab/controllers/{ctrl}/reset", {})

    async def controller_restore(self, array: str, ctrl: str) -> None:
        await self._fleet.client(array).post(f"lab/controllers/{ctrl}/restore", {})

    async def drill_start(self, group: str) -> dict:
        sides = await self._fleet._sides(group)
        secondary = next((g.array for g in sides if g.role == "secondary"), sides[0].array)
        return await self._fleet.client(secondary).post(f"async-mirrors/{group}/drill", {})

    async def drill_stop(self, group: str) -> None:
        sides = await self._fleet._sides(group)
        secondary = next((g.array for g in sides if g.role == "secondary"), sides[0].array)
        await self._fleet.client(secondary).delete(f"async-mirrors/{group}/drill")


    # -- stopped arrays: the daemon is down, so the fleet speaks for it ---------------------------
    async def array_stop(self, array: str) -> None:
        """Stop the lab array's daemon (the site goes down): REST, channel and NBD with it."""
        await self._lab().stop_array(array)
        await self._fleet_lost(array)

    async def array_start(self, array: str) -> None:
        """Start the lab array's daemon again; the fleet reaches it at its address as the lab lists it."""
        arrays = await self._lab().start_array(array)
        await self._fleet_found(arrays)

    def _lab(self):
        if self._fleet.lab is None:
            raise MirrorError("these arrays are not a lab: start and stop an array on its own machine",
                              code="notALab")
        return self._fleet.lab

    async def _fleet_lost(self, array: str) -> None:
        self._fleet.changed(array)

    async def _fleet_found(self, arrays: list[dict]) -> None:
        """Clients for restarted daemons whose address or certificate changed; the others keep theirs."""
        from core.client.fleet import lab_clients

        for a in arrays:
            old = self._fleet.clients.get(a["name"])
            if old is None or old.base_url != a["restUrl"].rstrip("/") or old.pinned_sha256 != a["certificateSha256"]:
                if old is not None:
                    await old.close()
                self._fleet.clients[a["name"]] = lab_clients([a])[a["name"]]
            self._fleet.stopped.pop(a["name"], None)
            self._fleet.changed(a["name"])

    async def stopped_array_problems(self) -> list[Problem]:
        """A lab array whose daemon does not answer: its volumes refuse host I/O, its mirrors pause."""
        if self._fleet.lab is None:
            return []
        out = []
        for name in sorted(self._fleet.lab_array_names()):
            try:
                await self._fleet.client(name).about()
                continue
            except MirrorError as e:
                if not isinstance(e, CommunicationError):
                    continue  # it answered, if only to refuse: it runs
            out.append(Problem(f"array-stopped:{name}", Severity.CRITICAL.value, f"Array {name} is stopped", (name,),
                               f"Array {name} does not answer: its volumes refuse host I/O and its mirrors are "
                               "paused.", ("1. Start the array.", "2. Groups resume by their resync policy."),
                               (GuruAction("start-array", f"Start {name}", False, "lab array start"),)))
        return out

    async def fix_stopped_array(self, problem_id: str, action_id: str) -> dict:
        problem = next((p for p in await self.stopped_array_problems() if p.id == problem_id), None)
        if problem is None:
            raise NotFound(f"no current problem '{problem_id}'; see 'mirrorctl guru'", code="guruProblemNotFound")
        if action_id not in {a.id for a in problem.actions}:
            known = ", ".join(a.id for a in problem.actions)
            raise MirrorError(f"problem {problem_id} has no action '{action_id}' (actions: {known})",
                              code="guruActionNotFound")
        await self.array_start(problem_id.partition(":")[2])
        return {"problem": problem_id, "action": action_id, "done": True}

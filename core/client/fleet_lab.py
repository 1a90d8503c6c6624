"""The lab's faults, host workload and DR drills, over the arrays' REST extensions (the fleet's side).

Faults happen to the real thing: a volume failed or a controller reset on the array
that owns it, the lab link cut by its relay, a workload run by each array's daemon.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import CommunicationError, InvalidInput, MirrorError
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
                "failed_volumes": failed, "offline_controllers": offline}

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


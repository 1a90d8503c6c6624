"""The Recovery Guru across the managed arrays (the fleet's side).

Each array's daemon finds its own problems; the fleet adds what no daemon alone can
tell: the lab link's restore action, the reserved-capacity forecast and sizing that
need both sides, and the lab arrays that do not answer at all.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from core.client import fleet_forecast, fleet_iscsi
from core.errors import MirrorError, NotFound
from core.guru import GuruAction, Problem
from core.rest import models

if TYPE_CHECKING:
    from core.client.fleet import Fleet

RESTORE_LINK = "restore-link"


class FleetGuru:
    def __init__(self, fleet: "Fleet"):
        self._fleet = fleet

    async def guru(self) -> list[Problem]:
        """Every managed array's problems; in the lab, a lost link also offers to restore the lab link."""
        seen: dict[str, Problem] = {}
        for _, problems in await self._fleet._answers("guru"):
            for p in problems:
                problem = await fleet_forecast.size_remote_growth(self._fleet, models.problem_from_ws(p))
                seen.setdefault(problem.id, problem)
        if self._fleet.lab is not None and any(i.startswith("communication-lost:") for i in seen):
            if (await self._fleet.lab.state()).get("cut"):
                restore = GuruAction(RESTORE_LINK, "Restore the lab link", False, "lab link restore")
                for i, p in seen.items():
                    if i.startswith("communication-lost:") and RESTORE_LINK not in {a.id for a in p.actions}:
                        seen[i] = dataclasses.replace(p, actions=(restore,) + p.actions)
        for p in await fleet_forecast.forecast_problems(self._fleet):  # needs both sides: no daemon alone can tell
            seen.setdefault(p.id, p)
        for p in await fleet_iscsi.iscsi_problems(self._fleet):  # so does this
            seen.setdefault(p.id, p)
        for p in await self._fleet.lab_tools.stopped_array_problems():
            seen.setdefault(p.id, p)
        return list(seen.values())

    async def guru_fix(self, problem_id: str, action_id: str) -> dict:
        if action_id == RESTORE_LINK and self._fleet.lab is not None:  # the lab's link is the lab's, not an array's
            problem = next((p for p in await self.guru() if p.id == problem_id), None)
            if problem is None:
                raise NotFound(f"no current problem '{problem_id}'; see 'mirrorctl guru'", code="guruProblemNotFound")
            if RESTORE_LINK not in {a.id for a in problem.actions}:
                known = ", ".join(a.id for a in problem.actions) or "none"
                raise MirrorError(f"problem {problem_id} has no action '{action_id}' (actions: {known})",
                                  code="guruActionNotFound")
            await self._fleet.lab.set(cut=False)
            return {"problem": problem_id, "action": action_id, "done": True}
        if problem_id.startswith(fleet_iscsi.PREFIX):
            return await fleet_iscsi.fix(self._fleet, problem_id, action_id)
        if problem_id.startswith("array-stopped:") and self._fleet.lab is not None:  # no daemon runs to ask
            return await self._fleet.lab_tools.fix_stopped_array(problem_id, action_id)
        if action_id == fleet_forecast.GROW:  # the capacity may be on the other array than the problem's
            problem = next((p for p in await self.guru() if p.id == problem_id), None)
            action = next((a for a in problem.actions if a.id == action_id), None) if problem else None
            if action is not None and action.target.partition("/")[0] in self._fleet.clients:
                return await fleet_forecast.fix(self._fleet, problem, action_id)
        for name, problems in await self._fleet._answers("guru"):
            if any(p["id"] == problem_id for p in problems):
                return await self._fleet.client(name).post(f"guru/{problem_id}/actions/{action_id}", {})
        if problem_id.startswith("reserved-forecast:"):
            problem = next((p for p in await fleet_forecast.forecast_problems(self._fleet) if p.id == problem_id), None)
            if problem is not None:
                return await fleet_forecast.fix(self._fleet, problem, action_id)
        raise NotFound(f"no current problem '{problem_id}'; see 'mirrorctl guru'", code="guruProblemNotFound")

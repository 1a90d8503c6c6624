"""Reserved capacity across two arrays, for the fleet's Recovery Guru.

An array daemon's Guru sees one side only: the change history is the primary's, the
reserved capacity that fills is the secondary's. The fleet has both, so it raises the
forecast problem (``core.guru.reserved_forecast_problem``) for groups whose sides it
manages, and sizes the growth a primary's Guru names on the secondary but cannot see
(a pair failed because the secondary's reserved capacity filled); the fixes run on
the array that owns the capacity (increase) or the group (synchronize more often).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core import forecast
from core.errors import MirrorError
import dataclasses

from core.guru import HISTORY_FOR_FORECAST, GuruAction, Problem, grow_action, reserved_forecast_problem

if TYPE_CHECKING:
    from core.client.fleet import Fleet


async def forecast_problems(fleet: "Fleet") -> list[Problem]:
    out = []
    for g in await fleet.groups():
        if g.role != "primary" or not g.pairs or g.remote_array not in fleet.clients:
            continue
        if g.status in ("role_conflict", "orphan"):  # nothing syncs until it is resolved: no next sync to size
            continue
        try:
            secondary = await fleet.group(g.name, g.remote_array)
            history = await fleet.sync_history(g.name, HISTORY_FOR_FORECAST)
            capacities = {f"{v.array}/{v.name}": v.capacity for v in await fleet.volumes(g.remote_array)}
        except MirrorError:
            continue  # the other side does not answer: nothing to forecast against
        failed = {p.remote_volume for p in g.pairs if p.status == "failed"}
        for fc in forecast.group_forecasts(g, secondary, history, capacities):
            if fc.at_risk and fc.volume.partition("/")[2] not in failed:
                grow = GuruAction("increase-reserved-capacity",
                                  f"Increase the reserved capacity of {fc.volume} to {fc.suggested_percent} %", False,
                                  f"on {fc.volume.partition('/')[0]}; asks before it changes", target=fc.volume,
                                  value=float(fc.suggested_percent))
                out.append(reserved_forecast_problem(g, fc, grow))
    return out


GROW = "increase-reserved-capacity"


async def size_remote_growth(fleet: "Fleet", problem: Problem) -> Problem:
    """``problem`` with its unsized growth of another array's reserved capacity sized from that array's figures.

    The capacity must hold what the primary has not synchronized yet (its pair's
    unsynchronized bytes), as the Guru sizes the growth of a capacity it sees.
    """
    actions = list(problem.actions)
    for i, action in enumerate(actions):
        if action.id != GROW or action.value or action.target.partition("/")[0] not in fleet.clients:
            continue
        array, _, volume = action.target.partition("/")
        try:
            side = next((p for p in await fleet.pairs(array=array) if p.local_volume == volume), None)
            primary = next((p for p in await fleet.pairs(array=side.remote_array)
                            if p.remote_volume == volume), None) if side is not None else None
            pools = {p.name: p.free for p in (await fleet.array(array)).pools}
        except MirrorError:
            continue  # that array does not answer: the action stays unsized, the console asks for a size
        if side is None or side.reserved_capacity.pool not in pools:
            continue
        rc = side.reserved_capacity
        actions[i] = grow_action(action.target, primary.unsynchronized_bytes if primary is not None else 0,
                                 rc.capacity, side.volume_capacity, rc.pool, pools[rc.pool])
    return dataclasses.replace(problem, actions=tuple(actions)) if actions != list(problem.actions) else problem


async def fix(fleet: "Fleet", problem: Problem, action_id: str) -> dict:
    """Run a forecast problem's action on the array it concerns."""
    action = next((a for a in problem.actions if a.id == action_id), None)
    if action is None:
        known = ", ".join(a.id for a in problem.actions)
        raise MirrorError(f"problem {problem.id} has no action '{action_id}' (actions: {known})",
                          code="guruActionNotFound")
    if action.blocked:
        raise MirrorError(f"{action.label} cannot act now: {action.blocked}", code="guruActionBlocked")
    if action.id == GROW:
        await fleet.increase_reserved_capacity(action.target, action.value)
    elif action.id == "sync-more-often":
        await fleet.update_group(action.target, sync_mode="scheduled", sync_interval_minutes=int(action.value))
    return {"problem": problem.id, "action": action_id, "done": True}

"""The Recovery Guru's check that the arrays of an iSCSI mirror share their iSCSI global settings.

A group's channel type is fixed at its creation, which refuses arrays that disagree
(:mod:`core.eligibility`); one array's settings can change later, since the other can
only be set one array at a time. Only the fleet sees both arrays' settings, so it says
when an iSCSI group's arrays differ and offers to copy one side's settings to the other.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from core import iscsi_settings
from core.domain import Severity
from core.errors import MirrorError, NotFound
from core.guru import GuruAction, Problem

if TYPE_CHECKING:
    from core.client.fleet import Fleet

PREFIX = "iscsi-settings:"
USE = "use-settings-of-"  # + the array whose settings both take


async def iscsi_problems(fleet: "Fleet") -> list[Problem]:
    groups: dict[tuple[str, str], list[str]] = {}
    for g in await fleet.groups():
        if g.channel == "iscsi" and g.role == "primary" and g.remote_array in fleet.clients:
            groups.setdefault((g.array, g.remote_array), []).append(g.name)
    out = []
    for (a, b), names in sorted(groups.items()):
        try:
            sa, sb = await fleet.iscsi_settings(a), await fleet.iscsi_settings(b)
        except MirrorError:
            continue  # an array that does not answer: its settings are not known
        said = iscsi_settings.differences_said(a, sa, b, sb)
        if not said:
            continue
        which = ", ".join(sorted(names))
        out.append(Problem(
            f"{PREFIX}{a}:{b}", Severity.WARNING.value, f"The iSCSI settings of {a} and {b} differ",
            (a, b, *sorted(names)),
            f"{which} mirror{'s' if len(names) == 1 else ''} over iSCSI between them, and the two arrays must share "
            f"their iSCSI global settings ({said}). On a real network a different VLAN or listening port keeps "
            "them from talking; this software's channel still connects.",
            ("1. Choose which array's settings both should use.",
             "2. Its VLAN, listening port, jumbo frames and Ethernet priority are set on the other array."),
            tuple(GuruAction(f"{USE}{src}", f"Use {src}'s settings on {dst}", False,
                             f"sets {dst}'s VLAN, listening port, jumbo frames and Ethernet priority", target=dst)
                  for src, dst in ((a, b), (b, a)))))
    return out


async def fix(fleet: "Fleet", problem_id: str, action_id: str) -> dict:
    """Copy the chosen array's iSCSI settings to the other array of the problem."""
    problem = next((p for p in await iscsi_problems(fleet) if p.id == problem_id), None)
    if problem is None:
        raise NotFound(f"no current problem '{problem_id}'; see 'mirrorctl guru'", code="guruProblemNotFound")
    action = next((x for x in problem.actions if x.id == action_id), None)
    if action is None:
        raise NotFound(f"problem {problem_id} has no action '{action_id}' "
                       f"(actions: {', '.join(x.id for x in problem.actions)})", code="guruActionNotFound")
    src, dst = action_id[len(USE):], action.target
    settings = await fleet.iscsi_settings(src)
    await fleet.set_iscsi_settings(dst, **dataclasses.asdict(settings))
    return {"problem": problem_id, "action": action_id, "done": True}

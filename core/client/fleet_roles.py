"""Role changes over the arrays' REST APIs (the fleet's side of ``core.roles.coordinator``).

A role change is asked of the array that takes the role; the fleet waits for a normal
change to finish by watching that side's group, as ``mirrorctl role ...`` shows it.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from core.errors import MirrorError

if TYPE_CHECKING:
    from core.client.fleet import Fleet

ROLE_WAIT_SECONDS, ROLE_WAIT_POLLS = 0.2, 3000  # a role change ends with a final sync: up to 10 min


class FleetRoles:
    def __init__(self, fleet: "Fleet"):
        self._fleet = fleet

    async def _role(self, group: str, array: str, role: str, force: bool, wait: bool) -> dict:
        """Ask ``array`` to take ``role``; ``wait`` until it has it (a normal change finishes in the background)."""
        await self._fleet.client(array).post(f"async-mirrors/{group}/role", {"role": role, "force": bool(force)})
        if wait and not force:
            for _ in range(ROLE_WAIT_POLLS):
                g = await self._fleet.group(group, array)
                if g.role == role and g.status not in ("role_change_pending", "role_change_in_progress"):
                    break
                if g.role != role and g.status not in ("role_change_pending", "role_change_in_progress",
                                                       "role_conflict"):
                    raise MirrorError(f"the role change of {group} did not complete: {array} is still {g.role}; "
                                      "see 'mirrorctl events'", code="arvmRoleChangeFailed")
                await asyncio.sleep(ROLE_WAIT_SECONDS)
            else:
                raise MirrorError(f"the role change of {group} is still running after "
                                  f"{ROLE_WAIT_POLLS * ROLE_WAIT_SECONDS:.0f} s; check 'mirrorctl group show {group}'",
                                  code="arvmRoleChangeInProgress")
        return {"group": group, "array": array, "role": role, "state": "forced" if force else
                ("done" if wait else "requested")}

    async def promote(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict:
        return await self._role(group, array, "primary", force, wait)

    async def demote(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict:
        return await self._role(group, array, "secondary", force, wait)

    async def role_change(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict:
        return await self.promote(group, array, force, wait)

    async def role_cancel(self, group: str) -> None:
        await self._fleet.client(await self._fleet.group_home(group)).delete(f"async-mirrors/{group}/role")

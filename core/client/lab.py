"""The lab's link as a client sees it: cut, restore and shape it through the running relay.

Only an embedded lab has one (the relay between its array daemons); the fleet of real
arrays has none. The relay's control API is blocking HTTP on loopback, so calls run
in a worker thread and never hold the caller's event loop.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from core.errors import MirrorError


class LabLink:
    """The link relay of the lab in ``home``, and bringing the lab's daemons up for a console."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.started_here = False  # this client started the lab (so it may offer to stop it)

    async def bring_up(self) -> list[dict]:
        """Start what is not running (daemons, relay) off the loop; the running arrays as ``lab status`` lists them."""
        from core.lab.supervisor import lab_status, lab_up

        def up() -> list[dict]:
            if not lab_status(self.home)["up"]:
                lab_up(self.home)
                self.started_here = True
            return [a for a in lab_status(self.home)["arrays"] if a["running"]]
        return await asyncio.to_thread(up)

    def _control(self):
        from core.lab.relay_control import RelayControl

        control = RelayControl.find(self.home)
        if control is None:
            raise MirrorError("the lab's link relay is not running; start the lab with 'mirrorctl lab up'",
                              code="labNotUp")
        return control

    async def state(self) -> dict:
        return await asyncio.to_thread(lambda: self._control().link())

    async def set(self, **settings) -> dict:
        return await asyncio.to_thread(lambda: self._control().set_link(**settings))

    async def stop_array(self, name: str) -> dict:
        """Stop one array's daemon (``lab array stop``)."""
        from core.lab.supervisor import stop_array

        return await asyncio.to_thread(stop_array, self.home, name)

    async def start_array(self, name: str) -> list[dict]:
        """Start what is not running (``lab array start``); the running arrays as ``lab status`` lists them."""
        from core.lab.supervisor import lab_status, lab_up

        def up() -> list[dict]:
            lab_up(self.home)
            return [a for a in lab_status(self.home)["arrays"] if a["running"]]
        return await asyncio.to_thread(up)

"""The embedded lab: array daemons on this machine, joined by a link relay that really fails.

- :mod:`core.lab.home` — the lab home directory and its arrays (re-exported here,
  so ``from core.lab import init_lab`` keeps working);
- :mod:`core.lab.passwords` — the arrays' admin passwords, recorded in the home;
- :mod:`core.lab.shaping` — the link's settings: bandwidth token buckets, latency, parsing;
- :mod:`core.lab.relay` — :class:`~core.lab.relay.LinkRelay`, the TCP relay on the mirroring channel;
- :mod:`core.lab.relay_service` — the relay as a background process with its control API;
- :mod:`core.lab.relay_control` — the blocking client of that control API;
- :mod:`core.lab.processes` — starting detached processes and stopping them surely;
- :mod:`core.lab.supervisor` — ``lab up / down / status``.

Only the home module is imported here: the engine imports ``core.lab`` and
must not pay for aiohttp.
"""
from core.lab.home import (ARRAYS_DIR, LAB_PASSWORDS, LAB_VOLUMES, LabNotUp, array_dirs, default_home, init_lab,
                           lab_specs)

__all__ = ["ARRAYS_DIR", "LAB_PASSWORDS", "LAB_VOLUMES", "LabNotUp", "array_dirs", "default_home", "init_lab",
           "lab_specs"]

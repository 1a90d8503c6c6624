"""The lab home: its arrays' data directories in one directory.

``lab init`` creates SiteA (primary site) and SiteB (DR site), or more. Faults are
real: the link relay cuts and shapes the link (:mod:`core.lab.relay`), a stopped
array is a stopped daemon, a failed volume or reset controller is its array's state.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from core.domain import DriveType, Model
from core.errors import MirrorError
from core.units import GiB, TiB

if TYPE_CHECKING:
    from core.array import ArraySpec

ARRAYS_DIR = "arrays"
# The lab's array passwords; an administrator types them in when adding a remote array.
LAB_PASSWORDS = {"SiteA": "siteA-admin", "SiteB": "siteB-admin"}
MAX_LAB_ARRAYS = 8  # SiteA..SiteH: every pair is a relay route, so n*(n-1) remote entries


def lab_array_names(count: int = 2) -> list[str]:
    """``SiteA``, ``SiteB``, ... for a lab of ``count`` arrays (2 to 8)."""
    if not isinstance(count, int) or not 2 <= count <= MAX_LAB_ARRAYS:
        raise MirrorError(f"a lab has 2 to {MAX_LAB_ARRAYS} arrays, not {count}", code="invalidInput")
    return [f"Site{chr(ord('A') + i)}" for i in range(count)]


def default_password(name: str) -> str:
    """The built-in password of lab array ``name`` (``siteC-admin`` for SiteC, as for SiteA and SiteB)."""
    return LAB_PASSWORDS.get(name) or (f"site{name[4:]}-admin" if name.startswith("Site") else "")


def default_home() -> Path:
    """``$MIRROR_HOME`` or the user data directory: where mirrorctl and the console find the lab."""
    return Path(os.environ.get("MIRROR_HOME") or platformdirs.user_data_dir("async-mirror", "AsyncMirror")) / "lab"


class LabNotUp(MirrorError):
    """A command needs the lab's daemons and relay running, and they are not."""

    code = "labNotUp"

    def __init__(self, message: str = "the lab is not up; start it with 'mirrorctl lab up'"):
        super().__init__(message)


def lab_specs(password: str | None = None, arrays: int = 2) -> list[ArraySpec]:
    """The lab's arrays; ``password`` replaces the default lab passwords (``lab init --password``)."""
    # Imported here, as in init_lab: the array's storage (SQLAlchemy, numpy) is not needed to find
    # the lab (default_home, array_dirs), which mirror-console does before its first window.
    from core.array import ArraySpec, PoolSpec

    pools = (PoolSpec("nvme_pool", DriveType.NVME, 4 * TiB), PoolSpec("sas_pool", DriveType.SAS, 16 * TiB))
    return [ArraySpec(name=n, model=Model.E5700, firmware="08.74.00.01",
                      password=default_password(n) if password is None else password, pools=pools)
            for n in lab_array_names(arrays)]


# Ready volumes on SiteA with suitable DR volumes on SiteB: (name, capacity, drive type).
LAB_VOLUMES = [("db", 4 * GiB, "nvme"), ("logs", 2 * GiB, "nvme"), ("files", 8 * GiB, "sas")]


def init_lab(home: Path, if_missing: bool = False, password: str | None = None, arrays: int = 2) -> bool:
    """Create the lab in ``home``; returns False when it exists and ``if_missing``.

    ``password`` gives every array that admin password instead of the default lab
    passwords; the caller records it (:func:`core.lab.passwords.record_passwords`).
    ``arrays``: SiteA..; the sites alternate primary volumes (SiteA, SiteC, ...) and their
    DR volumes (``db_dr`` on SiteB, SiteD, ...), so SiteA->SiteB and SiteC->SiteD mirror at once.
    """
    from core.array import StorageArray

    home = Path(home)
    arrays_dir = home / ARRAYS_DIR
    lab_array_names(arrays)  # refused before anything is made
    if arrays_dir.exists() and any(arrays_dir.iterdir()):
        if if_missing:
            return False
        raise MirrorError(f"a lab already exists in {home}; use it, or give another --home", code="labExists")
    arrays_dir.mkdir(parents=True, exist_ok=True)
    for index, spec in enumerate(lab_specs(password, arrays)):
        array = StorageArray.create(arrays_dir / spec.name, spec)
        try:
            for name, cap, dtype in LAB_VOLUMES:
                vname = name if index % 2 == 0 else f"{name}_dr"
                array.create_volume(vname, cap, drive_type=dtype)
        finally:
            array.close()
    return True


def array_dirs(home: Path) -> list[Path]:
    """The lab's array data directories (those holding a configuration database), by name."""
    root = Path(home) / ARRAYS_DIR
    return sorted(p for p in root.iterdir() if (p / "config.db").exists()) if root.exists() else []

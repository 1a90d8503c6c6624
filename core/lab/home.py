"""The lab home: two arrays in one directory, and the faults the in-process engine reads.

``lab init`` creates SiteA (primary site) and SiteB (DR site). Faults (a cut link,
a stopped array...) are kept in ``lab.json`` until restored, so separate CLI
invocations and the console all see them. (With the lab up, the link's faults are
the relay's instead: see :mod:`core.lab.relay`.)
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import platformdirs

from core.array import ArraySpec, PoolSpec, StorageArray
from core.domain import DriveType, Model
from core.errors import MirrorError
from core.units import GiB, TiB

LAB_FILE = "lab.json"
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


@dataclass
class LabFaults:
    link_cut: bool = False
    stopped_arrays: list[str] = field(default_factory=list)
    offline_controllers: list[str] = field(default_factory=list)  # "SiteA/A"
    failed_volumes: list[str] = field(default_factory=list)  # "SiteB/db"
    link_bandwidth: int | None = None  # bytes/s; None = unlimited
    drills: list[str] = field(default_factory=list)  # groups with a DR drill clone exposed


class LabState:
    """``lab.json``: the faults in force, written atomically on every change."""

    def __init__(self, home: Path):
        self.path = Path(home) / LAB_FILE
        self.faults = LabFaults()
        if self.path.exists():
            data = json.loads(self.path.read_text() or "{}")
            known = LabFaults.__dataclass_fields__
            self.faults = LabFaults(**{k: v for k, v in data.get("faults", {}).items() if k in known})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"faults": asdict(self.faults)}, indent=2))
        os.replace(tmp, self.path)


class LabNotUp(MirrorError):
    """A command needs the lab's daemons and relay running, and they are not."""

    code = "labNotUp"

    def __init__(self, message: str = "the lab is not up; start it with 'mirrorctl lab up'"):
        super().__init__(message)


def lab_specs(password: str | None = None, arrays: int = 2) -> list[ArraySpec]:
    """The lab's arrays; ``password`` replaces the default lab passwords (``lab init --password``)."""
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
    LabState(home).save()
    return True


def array_dirs(home: Path) -> list[Path]:
    """The lab's array data directories (those holding a configuration database), by name."""
    root = Path(home) / ARRAYS_DIR
    return sorted(p for p in root.iterdir() if (p / "config.db").exists()) if root.exists() else []


def open_arrays(home: Path, purpose: str = "") -> list[StorageArray]:
    """Open every lab array (taking each data-directory lock); all or none."""
    opened: list[StorageArray] = []
    try:
        for d in array_dirs(home):
            opened.append(StorageArray.open(d, purpose))
    except BaseException:
        for a in opened:
            a.close()
        raise
    return opened

"""The lab's array passwords: what each array's admin password is, recorded in the lab home.

A real array's password is a secret only its administrator knows. A lab is a lab:
its supervisor must log in to every array (REST basic auth) and tell each array the
other's password (remote-array entries), and ``lab status`` shows them, so the lab
home records them in ``passwords.json`` (mode 0600). A lab made by ``lab init``
without ``--password`` has no such file and uses :data:`LAB_PASSWORDS`, as before.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from core.array import StorageArray
from core.channel.auth import new_salt, password_hash
from core.domain import Severity
from core.errors import InvalidInput
from core.lab.home import LAB_PASSWORDS, array_dirs, default_password

PASSWORDS_FILE = "passwords.json"


def lab_passwords(home: Path) -> dict[str, str]:
    """Array name -> admin password, for every array of the lab in ``home``."""
    recorded: dict[str, str] = {}
    path = Path(home) / PASSWORDS_FILE
    if path.exists():
        recorded = json.loads(path.read_text() or "{}").get("passwords", {})
    names = [d.name for d in array_dirs(home)] or list(LAB_PASSWORDS)
    return {n: recorded.get(n, default_password(n)) for n in names}


def record_passwords(home: Path, passwords: dict[str, str]) -> None:
    """Write ``passwords.json`` atomically, readable by its owner only."""
    path = Path(home) / PASSWORDS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"passwords": passwords}, f, indent=2)
    os.replace(tmp, path)


def check_password_text(password: str) -> str:
    """An admin password is typed by people and sent in basic auth: non-empty, one line."""
    if not password or any(c in password for c in "\r\n\0"):
        raise InvalidInput("the lab password must be a non-empty single line; give e.g. --password 'Lab-2024!'",
                           code="invalidPassword")
    return password


def set_lab_password(home: Path, password: str) -> list[str]:
    """Give every lab array ``password`` (a new salt and stored hash) and record it; returns the arrays.

    Each array's data-directory lock is taken, so a running daemon refuses this with
    its own clear error (stop the lab first); arrays already done keep the new password.
    """
    check_password_text(password)
    done: list[str] = []
    for d in array_dirs(home):
        array = StorageArray.open(d, "mirrorctl lab init --password")
        try:
            row = array.row
            row.password_salt = new_salt()
            row.password_hash = password_hash(password, row.password_salt)
            array.db.commit()
            # Recorded at once: a later array failing must not leave this one's password unknown.
            record_passwords(home, {**lab_passwords(home), array.name: password})
            array.log(Severity.INFO, array.name, "passwordChanged", f"Array {array.name} admin password changed")
            done.append(array.name)
        finally:
            array.close()
    return done

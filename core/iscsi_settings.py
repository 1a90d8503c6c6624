"""An array's iSCSI global settings, which mirroring over iSCSI uses (SPEC §2 "Channel").

iSCSI ports carry host I/O and mirroring alike; the configuration messages and data
between two arrays use each array's global settings: VLAN, listening port, jumbo
frames and Ethernet priority. Both sides must agree on them, or they cannot talk
(a different VLAN, above all), so a group cannot be created over iSCSI between
arrays that disagree (:func:`differences`, used by :mod:`core.eligibility`). The
array stores them (:meth:`core.array.StorageArray.set_iscsi_settings`); this module
is the rules alone, light enough for the console's first window.
"""
from __future__ import annotations

import dataclasses

from core.errors import InvalidInput
from core.snapshots import IscsiSettingsSnapshot

DEFAULT = IscsiSettingsSnapshot(vlan=None, listen_port=3260, jumbo_frames=False, ethernet_priority=None)
FIELDS = tuple(f.name for f in dataclasses.fields(IscsiSettingsSnapshot))


def check(changes: dict) -> None:
    """Refuse, in one line, a change that names an unknown setting or a value it cannot take."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"unknown iSCSI setting(s) {', '.join(sorted(unknown))}; the settings are "
                           f"{', '.join(FIELDS)}")
    vlan = changes.get("vlan")
    if vlan is not None and (not _is_int(vlan) or not 1 <= vlan <= 4094):
        raise InvalidInput(f"iSCSI VLAN {vlan!r} is not a VLAN ID; give 1 to 4094, or none for no VLAN",
                           code="invalidIscsiSetting")
    if "listen_port" in changes:
        port = changes["listen_port"]
        if not _is_int(port) or not (port == 3260 or 49152 <= port <= 65535):
            raise InvalidInput(f"iSCSI listening port {port!r} is not allowed; give 3260 or a port from 49152 "
                               "to 65535", code="invalidIscsiSetting")
    if "jumbo_frames" in changes and not isinstance(changes["jumbo_frames"], bool):
        raise InvalidInput(f"jumbo frames {changes['jumbo_frames']!r} is not on or off; give true or false",
                           code="invalidIscsiSetting")
    priority = changes.get("ethernet_priority")
    if priority is not None and (not _is_int(priority) or not 0 <= priority <= 7):
        raise InvalidInput(f"Ethernet priority {priority!r} is not an 802.1p priority; give 0 to 7, or none",
                           code="invalidIscsiSetting")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def describe(s: IscsiSettingsSnapshot) -> dict[str, str]:
    """Each setting in words, as the differences and the CLI show them."""
    return {"VLAN": "none" if s.vlan is None else str(s.vlan),
            "listening port": str(s.listen_port),
            "jumbo frames": "on" if s.jumbo_frames else "off",
            "Ethernet priority": "not set" if s.ethernet_priority is None else str(s.ethernet_priority)}


def differences(a: IscsiSettingsSnapshot | None, b: IscsiSettingsSnapshot | None) -> list[tuple[str, str, str]]:
    """``(setting, a's, b's)`` for each setting the two arrays do not share; none when either did not say."""
    if a is None or b is None:
        return []
    da, db_ = describe(a), describe(b)
    return [(name, da[name], db_[name]) for name in da if da[name] != db_[name]]


def differences_said(a_name: str, a: IscsiSettingsSnapshot | None, b_name: str,
                     b: IscsiSettingsSnapshot | None) -> str:
    """The settings two arrays do not share, in words ("VLAN: SiteA 10, SiteB none; ..."); '' when none."""
    return "; ".join(f"{name}: {a_name} {mine}, {b_name} {theirs}" for name, mine, theirs in differences(a, b))

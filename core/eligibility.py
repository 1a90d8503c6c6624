"""Which remote volumes can be the secondary of a primary volume, and why not.

Pure functions over snapshots (no database, no Qt), so the CLI's ``candidates``,
the engine's refusal of ``pair add`` and the Create-mirrored-pair wizard page all
give the same answer with the same words (SPEC §2 "Mirrored pair" and
"Storage array").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core import iscsi_settings
from core.domain import MIN_FIRMWARE, NAME_MAX, Model, firmware_tuple
from core.snapshots import ArraySnapshot, Candidate, VolumeSnapshot
from core.units import exact_size


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str


def reserved_bytes(capacity: int, percent: float) -> int:
    """Reserved capacity for a volume: ``percent`` of it, rounded up to 4 KiB."""
    return int(math.ceil(capacity * percent / 100 / 4096) * 4096)


def array_refusals(local: ArraySnapshot, remote: ArraySnapshot, channel: str | None = None) -> list[Refusal]:
    """Rules on the two arrays themselves: firmware, controllers, E4000/iSCSI, channel."""
    out: list[Refusal] = []
    minimum = ".".join(f"{p:02d}" for p in MIN_FIRMWARE)
    for a in (local, remote):
        if firmware_tuple(a.firmware)[:2] < MIN_FIRMWARE:
            out.append(Refusal("arvmFirmwareTooOld",
                               f"array {a.name} runs firmware {a.firmware}; asynchronous mirroring needs "
                               f"{minimum} or later: upgrade its controller firmware"))
        if not a.dual_controller:
            out.append(Refusal("arvmSingleControllerArray",
                               f"array {a.name} has a single controller; asynchronous mirroring needs both "
                               "controllers A and B: install the second controller"))
    if channel is not None:
        for a in (local, remote):
            if channel not in a.channel_types:
                out.append(Refusal("arvmChannelNotAvailable",
                                   f"array {a.name} has no {channel.upper()} host ports; pick a channel type "
                                   f"both arrays have ({', '.join(sorted(local.channel_types & remote.channel_types)) or 'none'})"))
        if channel == "iscsi":
            for a in (local, remote):
                if a.model == Model.E4000.value:
                    out.append(Refusal("arvmIscsiNotSupportedOnModel",
                                       f"array {a.name} is an E4000, which cannot mirror asynchronously over iSCSI; "
                                       "use the Fibre Channel channel"))
            said = iscsi_settings.differences_said(local.name, local.iscsi, remote.name, remote.iscsi)
            if said:
                out.append(Refusal("arvmIscsiSettingsMismatch",
                                   f"the arrays' iSCSI global settings differ ({said}); both must use the same "
                                   "VLAN, listening port, jumbo frames and Ethernet priority to mirror over iSCSI: "
                                   f"set them alike ('mirrorctl array iscsi {remote.name}' shows and sets them)"))
    return out


def volume_refusals(primary: VolumeSnapshot, candidate: VolumeSnapshot, local: ArraySnapshot,
                    remote: ArraySnapshot, reserved_percent: float) -> tuple[list[Refusal], list[str]]:
    """Rules on one (primary, candidate secondary) pair; returns (refusals, warnings)."""
    out: list[Refusal] = []
    warn: list[str] = []
    if candidate.capacity < primary.capacity:
        out.append(Refusal("arvmSecondaryCapacityTooSmall",
                           f"{candidate.name} holds {exact_size(candidate.capacity)}, less than the primary's "
                           f"{exact_size(primary.capacity)}; pick a volume at least as large or grow it"))
    if candidate.mirror_group is not None:
        out.append(Refusal("arvmVolumeAlreadyInMirrorRelationship",
                           f"{candidate.name} is already in mirror group {candidate.mirror_group}; "
                           "a volume can be in only one mirror relationship"))
    if candidate.drive_type != primary.drive_type:
        out.append(Refusal("arvmDriveTypeMismatch",
                           f"{candidate.name} is on {candidate.drive_type.upper()} drives but the primary is on "
                           f"{primary.drive_type.upper()}; NVMe and SAS cannot be mixed: pick a "
                           f"{primary.drive_type.upper()} volume"))
    if candidate.security != primary.security:
        out.append(Refusal("arvmSecurityMismatch",
                           f"{candidate.name} security is {candidate.security.upper()} but the primary's is "
                           f"{primary.security.upper()}; FIPS mirrors to FIPS and FDE to FDE: pick a matching volume"))
    if candidate.drive_security != primary.drive_security:
        state = lambda v: "on" if v.drive_security else "off"  # noqa: E731
        out.append(Refusal("arvmDriveSecurityMismatch",
                           f"Drive Security is {state(candidate)} on {candidate.name} but {state(primary)} on the "
                           "primary; pick a volume with the same Drive Security setting"))
    if candidate.data_assurance != primary.data_assurance:
        out.append(Refusal("arvmDataAssuranceMismatch",
                           f"Data Assurance is {'on' if candidate.data_assurance else 'off'} on {candidate.name} "
                           f"but {'on' if primary.data_assurance else 'off'} on the primary; both must match"))
    for v, side in ((primary, "primary"), (candidate, "secondary")):
        if v.resource_partitioning:
            out.append(Refusal("arvmResourcePartitioningEnabled",
                               f"the {side} volume {v.name} has Resource Partitioning on; volumes with Resource "
                               "Partitioning cannot be mirrored: turn it off or pick another volume"))
    if Model(local.model).strict_matching or Model(remote.model).strict_matching:
        strict = [("segment size", primary.segment_size, candidate.segment_size),
                  ("RAID level", primary.raid_level, candidate.raid_level)]
        if local.channel_types != remote.channel_types:
            strict.append(("host protocol", ",".join(sorted(local.channel_types)),
                           ",".join(sorted(remote.channel_types))))
        for what, a, b in strict:
            if a != b:
                out.append(Refusal("arvmStrictMatchMismatch",
                                   f"{local.model}/{remote.model} mirrors need the same {what} on both volumes "
                                   f"({a} vs {b}); pick a volume with {what} {a}"))
    else:
        if candidate.raid_level != primary.raid_level:
            warn.append(f"RAID levels differ (primary RAID {primary.raid_level}, secondary RAID "
                        f"{candidate.raid_level}); allowed, but check the secondary can carry the primary's load")
        if candidate.segment_size != primary.segment_size:
            warn.append("segment sizes differ; allowed, but performance after a failover may differ")
    if len(candidate.name) > NAME_MAX:
        out.append(Refusal("invalidVolumeLabel",
                           f"{candidate.name} has a name longer than {NAME_MAX} characters; rename it"))
    need = reserved_bytes(candidate.capacity, reserved_percent)
    room = max((p.free for p in remote.pools if p.drive_type == candidate.drive_type), default=0)
    if room < need:
        out.append(Refusal("arvmInsufficientReservedCapacity",
                           f"no {candidate.drive_type.upper()} pool on {remote.name} has {exact_size(need)} free for "
                           f"{candidate.name}'s reserved capacity ({reserved_percent:g} %); free capacity in a "
                           "pool or lower the reserved percentage"))
    if primary.security != "none" and not primary.drive_security:
        warn.append("the primary is secure-capable without Drive Security; the product does not enforce "
                    "key management on the secondary: verify yourself")
    return out, warn


def candidates(primary: VolumeSnapshot, local: ArraySnapshot, remote: ArraySnapshot,
               remote_volumes: list[VolumeSnapshot], channel: str | None = None,
               reserved_percent: float = 20) -> list[Candidate]:
    """Every volume of ``remote``, eligible or with the exact reasons it is not."""
    common = array_refusals(local, remote, channel)
    result = []
    for v in sorted(remote_volumes, key=lambda v: v.name):
        refusals, warnings = volume_refusals(primary, v, local, remote, reserved_percent)
        refusals = common + refusals
        result.append(Candidate(volume=v, eligible=not refusals, reasons=tuple(r.message for r in refusals),
                                codes=tuple(r.code for r in refusals), warnings=tuple(warnings)))
    return result

"""The tables of one array's configuration database.

Each array keeps only its own side of every mirror: its local role, its local
volume, its reserved capacity. The two sides are reconciled over the channel; no
table is shared between arrays.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, TypeDecorator, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """Timestamps in UTC; SQLite keeps no zone, so it is restored on read."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    pass


class ArrayRow(Base):
    """The array itself (one row)."""

    __tablename__ = "array"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    wwn: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(16))
    firmware: Mapped[str] = mapped_column(String(32))
    password_salt: Mapped[bytes] = mapped_column(LargeBinary)
    password_hash: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ControllerRow(Base):
    __tablename__ = "controller"
    label: Mapped[str] = mapped_column(String(1), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="optimal")


class HostPortRow(Base):
    __tablename__ = "host_port"
    label: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # fc / iscsi
    controller: Mapped[str] = mapped_column(String(1))
    number: Mapped[int] = mapped_column(Integer)


class IscsiSettingsRow(Base):
    """The array's iSCSI global settings that mirroring over iSCSI uses (one row; none: the defaults)."""

    __tablename__ = "iscsi_settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    vlan: Mapped[int | None] = mapped_column(Integer, nullable=True)
    listen_port: Mapped[int] = mapped_column(Integer, default=3260)
    jumbo_frames: Mapped[bool] = mapped_column(Boolean, default=False)
    ethernet_priority: Mapped[int | None] = mapped_column(Integer, nullable=True)


class PoolRow(Base):
    __tablename__ = "pool"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    drive_type: Mapped[str] = mapped_column(String(8))
    capacity: Mapped[int] = mapped_column(Integer)


class VolumeRow(Base):
    __tablename__ = "volume"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    pool: Mapped[str] = mapped_column(ForeignKey("pool.name"))
    capacity: Mapped[int] = mapped_column(Integer)
    raid_level: Mapped[str] = mapped_column(String(4), default="6")
    segment_size: Mapped[int] = mapped_column(Integer, default=128 * 1024)
    security: Mapped[str] = mapped_column(String(8), default="none")
    drive_security: Mapped[bool] = mapped_column(Boolean, default=False)
    data_assurance: Mapped[bool] = mapped_column(Boolean, default=False)
    resource_partitioning: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred_owner: Mapped[str] = mapped_column(String(1), default="A")
    current_owner: Mapped[str] = mapped_column(String(1), default="A")
    file: Mapped[str] = mapped_column(Text)  # relative to the data directory
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class RemoteArrayRow(Base):
    """A remote array this array mirrors with: where to reach it and its password."""

    __tablename__ = "remote_array"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    wwn: Mapped[str] = mapped_column(String(32), default="")
    addresses: Mapped[str] = mapped_column(Text, default="")  # "host:port,host:port"
    password: Mapped[str] = mapped_column(Text, default="")


class GroupRow(Base):
    """This array's side of a mirror consistency group."""

    __tablename__ = "mirror_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    remote_array: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    sync_mode: Mapped[str] = mapped_column(String(16))
    sync_interval_minutes: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(8))
    resync_policy: Mapped[str] = mapped_column(String(16))
    sync_alert_minutes: Mapped[int] = mapped_column(Integer)
    recovery_point_alert_minutes: Mapped[int] = mapped_column(Integer)
    reserved_alert_percent: Mapped[int] = mapped_column(Integer)
    user_suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why the group cannot sync by itself (e.g. "communication"), "" when none.
    paused_reason: Mapped[str] = mapped_column(String(64), default="")
    role_change: Mapped[str] = mapped_column(String(32), default="")  # "", pending, in_progress
    role_conflict: Mapped[bool] = mapped_column(Boolean, default=False)
    forced: Mapped[str] = mapped_column(String(16), default="")  # "", promoted, demoted
    orphan: Mapped[bool] = mapped_column(Boolean, default=False)
    last_recovery_point_id: Mapped[int] = mapped_column(Integer, default=0)
    last_recovery_point: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_sync_start: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    pairs: Mapped[list["PairRow"]] = relationship(back_populates="group", cascade="all, delete-orphan")


class PairRow(Base):
    """This array's side of a mirrored pair, with its reserved capacity."""

    __tablename__ = "mirrored_pair"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("mirror_group.id"))
    volume_id: Mapped[int] = mapped_column(ForeignKey("volume.id"), unique=True)
    remote_volume: Mapped[str] = mapped_column(String(64))
    incomplete: Mapped[bool] = mapped_column(Boolean, default=False)
    orphan: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_reason: Mapped[str] = mapped_column(Text, default="")
    initial_sync_done: Mapped[bool] = mapped_column(Boolean, default=False)
    recovery_point_available: Mapped[bool] = mapped_column(Boolean, default=False)
    reserved_pool: Mapped[str] = mapped_column(ForeignKey("pool.name"))
    reserved_capacity: Mapped[int] = mapped_column(Integer)
    reserved_dir: Mapped[str] = mapped_column(Text)  # relative to the data directory
    created: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    group: Mapped[GroupRow] = relationship(back_populates="pairs")
    volume: Mapped[VolumeRow] = relationship()


class SyncStatRow(Base):
    __tablename__ = "sync_stat"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    started: Mapped[datetime] = mapped_column(UtcDateTime())
    ended: Mapped[datetime] = mapped_column(UtcDateTime())
    bytes_sent: Mapped[int] = mapped_column(Integer, default=0)
    bytes_payload: Mapped[int] = mapped_column(Integer, default=0)
    unique_changed_bytes: Mapped[int] = mapped_column(Integer, default=0)
    bytes_resent: Mapped[int] = mapped_column(Integer, default=0)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    recovery_point_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    outcome: Mapped[str] = mapped_column(Text, default="committed")
    staged_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)  # schema 2


class EventRow(Base):
    __tablename__ = "event"
    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    severity: Mapped[str] = mapped_column(String(8))
    object: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)


class SchemaVersionRow(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(primary_key=True)
    applied: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

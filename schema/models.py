"""SQLAlchemy 2 models: tenants, routes, flows + immutable versions, provider configs,
documents + chunks, call records.

Every tenant-owned table carries ``tenant_id``.  Child tables (versions, chunks) repeat it and
point at their parent through a composite foreign key ``(parent_id, tenant_id)``, so the database
itself refuses a version or chunk filed under another tenant than its parent.  Flow versions are
immutable: the ORM refuses updates here and the migration adds a trigger that refuses them in SQL.

Relationships are deliberately absent: rows are read only through `schema.store.TenantStore`,
which filters every query by tenant and hands out plain dataclasses, never live rows whose lazy
loads could wander into another tenant's data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from schema.errors import InvalidValue

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")

PROVIDER_KINDS = ("stt", "tts", "llm", "embeddings")
OVER_LIMIT_ACTIONS = ("reject", "announce", "transfer")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidValue(f"naive datetime {value.isoformat()} (give a timezone-aware datetime)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# SQLite reuses the largest rowid after a delete unless a table says AUTOINCREMENT; ids here are
# referenced from outside the database (chunk ids in vector indexes, version ids in call records),
# so none may ever be handed out twice.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    domain_name: Mapped[str] = mapped_column(String(253), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    language: Mapped[str] = mapped_column(String(16), default="en-US")
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    max_concurrent_calls: Mapped[int | None] = mapped_column(Integer, nullable=True)
    over_limit_action: Mapped[str] = mapped_column(String(32), default="reject")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Route(Base):
    """A dialled number of a tenant and the flow it starts."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("tenant_id", "number"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    flow_name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Flow(Base):
    __tablename__ = "flows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        UniqueConstraint("id", "tenant_id"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    published_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_versions.id", ondelete="SET NULL", use_alter=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class FlowVersion(Base):
    """One published text of a flow; never updated once written."""

    __tablename__ = "flow_versions"
    __table_args__ = (
        ForeignKeyConstraint(["flow_id", "tenant_id"], ["flows.id", "flows.tenant_id"], ondelete="CASCADE"),
        UniqueConstraint("flow_id", "version"),
        UniqueConstraint("flow_id", "checksum"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_id: Mapped[int] = mapped_column(Integer, index=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    version: Mapped[int] = mapped_column(Integer)
    yaml_text: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


@event.listens_for(FlowVersion, "before_update")
def _refuse_version_update(_mapper: Any, _connection: Any, target: FlowVersion) -> None:
    raise InvalidValue(f"flow version {target.id} is immutable; publish a new version instead")


class ProviderConfig(Base):
    """One link of a tenant's provider chain for a capability (position 0 is tried first)."""

    __tablename__ = "provider_configs"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "position"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Document(Base):
    """A knowledge-base source file of a tenant (RAG)."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_path"),
        UniqueConstraint("id", "tenant_id"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    source_path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(512), default="")
    embedding_model: Mapped[str] = mapped_column(String(256), default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Chunk(Base):
    """A passage of a document; its id is what a tenant's vector index stores."""

    __tablename__ = "chunks"
    __table_args__ = (
        ForeignKeyConstraint(["document_id", "tenant_id"], ["documents.id", "documents.tenant_id"],
                             ondelete="CASCADE"),
        UniqueConstraint("document_id", "ordinal"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(Integer, index=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embedding_model: Mapped[str] = mapped_column(String(256), default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType, default=dict)


class CallRecord(Base):
    """One call: timing, outcome, path through the flow, recordings, transcript, latencies."""

    __tablename__ = "call_records"
    __table_args__ = (Index("ix_call_records_tenant_started", "tenant_id", "started_at"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_uuid: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    caller: Mapped[str] = mapped_column(String(128), default="")
    destination: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str] = mapped_column(String(64), default="")
    hangup_cause: Mapped[str] = mapped_column(String(64), default="")
    flow_name: Mapped[str] = mapped_column(String(128), default="")
    flow_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_versions.id", ondelete="SET NULL"), nullable=True)
    path: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    recordings: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    turns: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    latencies: Mapped[Any] = mapped_column(JsonType, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


CALL_RECORD_FIELDS = frozenset(
    c.key for c in CallRecord.__table__.columns if c.key not in ("id", "updated_at"))

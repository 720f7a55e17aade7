"""SQLAlchemy 2 models: tenants, routes, flows + immutable versions, provider configs,
documents + chunks, call records, and the WhatsApp channel's accounts, messages, conversations,
outbound parts and dead letters.

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
    # The tenant's own secrets (webhook `sign_with` names), one Fernet token of name -> value.
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
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


# ---- The WhatsApp channel (the `whatsapp` package) -----------------------------------------------
# Every row carries tenant_id; children point at their parent through (parent_id, tenant_id).

WHATSAPP_MESSAGE_STATES = ("queued", "processing", "retrying", "done", "dead")
WHATSAPP_CONVERSATION_STATES = ("active", "handoff", "closed")
WHATSAPP_OUTBOUND_STATES = ("pending", "sending", "sent", "failed")


class WhatsAppAccount(Base):
    """A tenant's Twilio WhatsApp sender: messages are routed to it by (AccountSid, To)."""

    __tablename__ = "whatsapp_accounts"
    __table_args__ = (
        UniqueConstraint("account_sid", "from_number"),
        UniqueConstraint("id", "tenant_id"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    account_sid: Mapped[str] = mapped_column(String(64))
    from_number: Mapped[str] = mapped_column(String(64))           # "whatsapp:+15551234567"
    secrets_encrypted: Mapped[str] = mapped_column(Text)            # auth token (+ handoff secret), Fernet
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WhatsAppConversation(Base):
    """A contact's conversation with a tenant's account: its history, and whether a person has it."""

    __tablename__ = "whatsapp_conversations"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "tenant_id"], ["whatsapp_accounts.id", "whatsapp_accounts.tenant_id"],
                             ondelete="CASCADE"),
        UniqueConstraint("id", "tenant_id"),
        Index("ix_whatsapp_conversations_contact", "tenant_id", "account_id", "contact", "state"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    account_id: Mapped[int] = mapped_column(Integer)
    contact: Mapped[str] = mapped_column(String(64))                # "whatsapp:+15557654321"
    state: Mapped[str] = mapped_column(String(16), default="active")
    history: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    close_reason: Mapped[str] = mapped_column(String(32), default="")


class WhatsAppMessage(Base):
    """One inbound message, stored by the webhook before it is queued (unique per account and MessageSid)."""

    __tablename__ = "whatsapp_messages"
    __table_args__ = (
        ForeignKeyConstraint(["account_id", "tenant_id"], ["whatsapp_accounts.id", "whatsapp_accounts.tenant_id"],
                             ondelete="CASCADE"),
        UniqueConstraint("account_id", "message_sid"),
        UniqueConstraint("id", "tenant_id"),
        Index("ix_whatsapp_messages_state", "state", "updated_at"),
        Index("ix_whatsapp_messages_contact", "tenant_id", "account_id", "contact", "id"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    account_id: Mapped[int] = mapped_column(Integer)
    message_sid: Mapped[str] = mapped_column(String(64))
    idempotency_token: Mapped[str] = mapped_column(String(128), default="")
    contact: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[Any]] = mapped_column(JsonType, default=list)    # [{"url", "content_type"}]
    correlation_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    conversation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str] = mapped_column(String(32), default="")
    error_class: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WhatsAppOutbound(Base):
    """What a message makes go out: the parts of the reply, or the handoff webhook; sent at most once each."""

    __tablename__ = "whatsapp_outbound"
    __table_args__ = (
        ForeignKeyConstraint(["message_id", "tenant_id"], ["whatsapp_messages.id", "whatsapp_messages.tenant_id"],
                             ondelete="CASCADE"),
        UniqueConstraint("message_id", "kind", "ordinal"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    message_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))                   # reply | handoff
    ordinal: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    twilio_sid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    delivery_status: Mapped[str] = mapped_column(String(32), default="")
    error_code: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WhatsAppDeadLetter(Base):
    """A message given up on after its last retry: the error class and a reason, never its content."""

    __tablename__ = "whatsapp_dead_letters"
    __table_args__ = (
        ForeignKeyConstraint(["message_id", "tenant_id"], ["whatsapp_messages.id", "whatsapp_messages.tenant_id"],
                             ondelete="CASCADE"),
        UniqueConstraint("message_id"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, index=True)
    message_id: Mapped[int] = mapped_column(Integer)
    correlation_id: Mapped[str] = mapped_column(String(32))
    error_class: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(256), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

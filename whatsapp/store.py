"""The channel's rows: accounts, inbound messages, conversations, outbound parts, dead letters.

`WhatsAppStore(session_factory)` hands out frozen views, never live rows (like `schema.store`).
Two lookups are global by nature and come first: the webhook's route (`route`: AccountSid + To →
the account, its tenant and its decrypted auth token) and a worker's message by id. Everything
after that is filtered by the tenant id the message or account carries, so a conversation, a
message or a dead letter of another tenant is "not found" even when its id is known.

State changes a worker relies on are single conditional UPDATEs (`claim`, `heartbeat`,
`begin_send`): two workers, or a worker and the recovery sweep, can race for a message and only
one wins.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import gevent
from sqlalchemy import Engine, Table, and_, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from schema.database import SessionFactory, unavailable_as_error
from schema.errors import AlreadyExists, DatabaseUnavailable, InvalidValue, NotFound
from schema.models import (
    Tenant,
    WhatsAppAccount,
    WhatsAppConversation,
    WhatsAppDeadLetter,
    WhatsAppMessage,
    WhatsAppOutbound,
    utcnow,
)
from schema.secrets import Secret, decrypt_secrets, encrypt_secrets, load_keys
from whatsapp.account_settings import AccountSettings
from whatsapp.errors import LeaseLost

UNFINISHED = ("queued", "processing", "retrying")
LOCKED_WAIT = 10.0          # longest a web write waits for a locked SQLite file
T = TypeVar("T")
_MESSAGES: Table = WhatsAppMessage.__table__  # type: ignore[assignment]
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)     # Core, compiled once


class WhatsAppNotFound(NotFound):
    pass


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    tenant_id: int
    domain_name: str
    time_zone: str
    account_sid: str
    from_number: str
    settings: AccountSettings
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AccountRoute:
    """An account as the webhook and workers need it: with its decrypted secrets (never printed)."""

    account: AccountInfo
    auth_token: Secret
    handoff_secret: Secret | None


@dataclass(frozen=True, slots=True)
class MediaRef:
    url: str
    content_type: str


@dataclass(frozen=True, slots=True)
class MessageInfo:
    id: int
    tenant_id: int
    account_id: int
    message_sid: str
    contact: str
    body: str
    media: tuple[MediaRef, ...]
    correlation_id: str
    state: str
    attempts: int
    received_at: dt.datetime
    outcome: str
    error_class: str
    conversation_id: int | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    role: str                  # user | assistant
    text: str
    at: str                    # ISO time
    message_id: int | None = None
    kind: str = "text"         # text | voice | notice

    def as_json(self) -> dict[str, Any]:
        return {"role": self.role, "text": self.text, "at": self.at, "message_id": self.message_id,
                "kind": self.kind}


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    id: int
    tenant_id: int
    account_id: int
    contact: str
    state: str                 # active | handoff | closed
    history: tuple[HistoryEntry, ...]
    started_at: dt.datetime
    last_activity_at: dt.datetime
    last_inbound_at: dt.datetime | None
    closed_at: dt.datetime | None
    close_reason: str


@dataclass(frozen=True, slots=True)
class OutboundInfo:
    id: int
    message_id: int
    kind: str                  # reply | handoff
    ordinal: int
    body: str
    state: str                 # pending | sending | sent | failed
    twilio_sid: str | None
    delivery_status: str
    error_code: str
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OutboundPlan:
    kind: str
    body: str


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    id: int
    tenant_id: int
    message_id: int
    correlation_id: str
    error_class: str
    reason: str
    attempts: int
    created_at: dt.datetime


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


class WhatsAppStore:
    """See the module docstring. With `yield_on_lock` (the web service: its engine has no SQLite busy
    timeout), a write that finds the SQLite file locked by another process waits *cooperatively*
    and tries again, instead of sleeping in SQLite's busy handler — which would stop every request
    of the process (the gevent hub) for as long."""

    def __init__(self, session_factory: SessionFactory, *, yield_on_lock: bool = False) -> None:
        self._sessions = session_factory
        self._yield_on_lock = yield_on_lock
        probe = session_factory()
        bind = probe.get_bind()               # the webhook's insert goes through a bare connection
        probe.close()
        self._engine: Engine = bind if isinstance(bind, Engine) else bind.engine

    @contextmanager
    def _session(self, what: str, *, write: bool = False) -> Iterator[Session]:
        with unavailable_as_error(what), self._sessions() as session:
            if write:
                with session.begin():
                    yield session
            else:
                yield session

    # ---- accounts ------------------------------------------------------------------------------

    @staticmethod
    def _account_info(row: WhatsAppAccount, tenant: Tenant) -> AccountInfo:
        return AccountInfo(id=row.id, tenant_id=row.tenant_id, domain_name=tenant.domain_name,
                           time_zone=tenant.time_zone, account_sid=row.account_sid, from_number=row.from_number,
                           settings=AccountSettings.model_validate(row.settings or {}),
                           created_at=_aware(row.created_at) or utcnow())

    def add_account(self, tenant_id: int, account_sid: str, from_number: str, *, auth_token: str,
                    handoff_secret: str | None = None, settings: AccountSettings | None = None) -> AccountInfo:
        if not auth_token:
            raise InvalidValue("the auth token must not be empty")
        secrets = {"auth_token": auth_token}
        if handoff_secret:
            secrets["handoff_secret"] = handoff_secret
        token = encrypt_secrets(secrets, load_keys())
        row = WhatsAppAccount(tenant_id=tenant_id, account_sid=account_sid, from_number=from_number,
                              secrets_encrypted=token or "",
                              settings=(settings or AccountSettings()).model_dump(exclude_defaults=True))
        try:
            with self._session("cannot add WhatsApp account", write=True) as s:
                s.add(row)
                s.flush()
                tenant = s.get(Tenant, tenant_id)
                assert tenant is not None
                return self._account_info(row, tenant)
        except IntegrityError as e:
            raise AlreadyExists(f"an account {account_sid} with sender {from_number} already exists") from e

    def accounts(self, tenant_id: int | None = None) -> list[AccountInfo]:
        with self._session("cannot list WhatsApp accounts") as s:
            query = select(WhatsAppAccount, Tenant).join(Tenant, Tenant.id == WhatsAppAccount.tenant_id)
            if tenant_id is not None:
                query = query.where(WhatsAppAccount.tenant_id == tenant_id)
            return [self._account_info(a, t) for a, t in s.execute(query.order_by(WhatsAppAccount.id))]

    def account(self, tenant_id: int, account_id: int) -> AccountInfo:
        with self._session("cannot read WhatsApp account") as s:
            row = s.execute(select(WhatsAppAccount, Tenant).join(Tenant, Tenant.id == WhatsAppAccount.tenant_id)
                            .where(WhatsAppAccount.id == account_id, WhatsAppAccount.tenant_id == tenant_id)).first()
            if row is None:
                raise WhatsAppNotFound(f"no WhatsApp account {account_id} for this tenant")
            return self._account_info(row[0], row[1])

    def update_settings(self, tenant_id: int, account_id: int, settings: AccountSettings) -> AccountInfo:
        with self._session("cannot update WhatsApp account", write=True) as s:
            row = s.scalar(select(WhatsAppAccount).where(WhatsAppAccount.id == account_id,
                                                         WhatsAppAccount.tenant_id == tenant_id))
            if row is None:
                raise WhatsAppNotFound(f"no WhatsApp account {account_id} for this tenant")
            row.settings = settings.model_dump(exclude_defaults=True)
            s.flush()
            tenant = s.get(Tenant, tenant_id)
            assert tenant is not None
            return self._account_info(row, tenant)

    def remove_account(self, tenant_id: int, account_id: int) -> None:
        with self._session("cannot remove WhatsApp account", write=True) as s:
            done = s.execute(delete(WhatsAppAccount).where(WhatsAppAccount.id == account_id,
                                                           WhatsAppAccount.tenant_id == tenant_id))
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise WhatsAppNotFound(f"no WhatsApp account {account_id} for this tenant")

    def _route(self, s: Session, row: WhatsAppAccount, tenant: Tenant) -> AccountRoute:
        secrets = decrypt_secrets(row.secrets_encrypted, what=f"WhatsApp account {row.id}")
        return AccountRoute(self._account_info(row, tenant), secrets["auth_token"], secrets.get("handoff_secret"))

    def route(self, account_sid: str, to: str) -> AccountRoute | None:
        """The account a message to `to` on Twilio account `account_sid` belongs to (None: not ours)."""
        with self._session("cannot route WhatsApp message") as s:
            row = s.execute(select(WhatsAppAccount, Tenant).join(Tenant, Tenant.id == WhatsAppAccount.tenant_id)
                            .where(WhatsAppAccount.account_sid == account_sid,
                                   WhatsAppAccount.from_number == to)).first()
            return self._route(s, row[0], row[1]) if row is not None else None

    def routes_of_sid(self, account_sid: str) -> list[AccountRoute]:
        """Every account of a Twilio AccountSid (status callbacks carry no To of ours)."""
        with self._session("cannot route WhatsApp status") as s:
            rows = s.execute(select(WhatsAppAccount, Tenant).join(Tenant, Tenant.id == WhatsAppAccount.tenant_id)
                             .where(WhatsAppAccount.account_sid == account_sid))
            return [self._route(s, a, t) for a, t in rows]

    def route_by_id(self, tenant_id: int, account_id: int) -> AccountRoute:
        with self._session("cannot read WhatsApp account") as s:
            row = s.execute(select(WhatsAppAccount, Tenant).join(Tenant, Tenant.id == WhatsAppAccount.tenant_id)
                            .where(WhatsAppAccount.id == account_id, WhatsAppAccount.tenant_id == tenant_id)).first()
            if row is None:
                raise WhatsAppNotFound(f"no WhatsApp account {account_id} for this tenant")
            return self._route(s, row[0], row[1])

    # ---- inbound messages ------------------------------------------------------------------------

    @staticmethod
    def _message_info(r: WhatsAppMessage) -> MessageInfo:
        media = tuple(MediaRef(str(m.get("url", "")), str(m.get("content_type", ""))) for m in r.media or [])
        return MessageInfo(id=r.id, tenant_id=r.tenant_id, account_id=r.account_id, message_sid=r.message_sid,
                           contact=r.contact, body=r.body, media=media, correlation_id=r.correlation_id,
                           state=r.state, attempts=r.attempts, received_at=_aware(r.received_at) or utcnow(),
                           outcome=r.outcome, error_class=r.error_class, conversation_id=r.conversation_id)

    def store_inbound(self, account: AccountInfo, *, message_sid: str, contact: str, body: str,
                      media: Sequence[MediaRef], correlation_id: str, idempotency_token: str = "") -> tuple[int, bool]:
        """Store a message once: ``(id, True)``, or the id of the copy already stored and False.

        A Core INSERT, not the ORM: this is the webhook's hot path (the ORM's unit of work cost ~1 ms a
        message, measured in `benchmarks/whatsapp`)."""
        now = utcnow()
        values = {"tenant_id": account.tenant_id, "account_id": account.id, "message_sid": message_sid,
                  "idempotency_token": idempotency_token[:128], "contact": contact, "body": body,
                  "media": [{"url": m.url, "content_type": m.content_type} for m in media],
                  "correlation_id": correlation_id, "state": "queued", "attempts": 0, "outcome": "",
                  "error_class": "", "received_at": now, "updated_at": now}
        def insert() -> int:
            with unavailable_as_error("cannot store WhatsApp message"), self._engine.begin() as conn:
                return int(conn.execute(_INSERT_MESSAGE, values).scalar_one())

        try:
            return self.write(insert), True
        except IntegrityError:
            with self._session("cannot read WhatsApp message") as s:
                existing = s.scalar(select(WhatsAppMessage.id).where(WhatsAppMessage.account_id == account.id,
                                                                     WhatsAppMessage.message_sid == message_sid))
            if existing is None:
                raise
            return int(existing), False

    def write(self, write: Callable[[], T]) -> T:
        """Run a write, waiting cooperatively while SQLite is locked (with `yield_on_lock`)."""
        if not self._yield_on_lock:
            return write()
        delay, deadline = 0.001, time.monotonic() + LOCKED_WAIT
        while True:
            try:
                return write()
            except DatabaseUnavailable as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                gevent.sleep(delay)
                delay = min(delay * 2, 0.005)

    def message(self, message_id: int, tenant_id: int | None = None) -> MessageInfo:
        with self._session("cannot read WhatsApp message") as s:
            query = select(WhatsAppMessage).where(WhatsAppMessage.id == message_id)
            if tenant_id is not None:
                query = query.where(WhatsAppMessage.tenant_id == tenant_id)
            row = s.scalar(query)
            if row is None:
                raise WhatsAppNotFound(f"no WhatsApp message {message_id}")
            return self._message_info(row)

    def claim(self, message_id: int, *, lease: float, now: dt.datetime | None = None) -> tuple[str, int]:
        """Take the message for processing under a lease: ``("claimed", attempt)``. The attempt number
        is this worker's fencing token: every later write checks it (`LeaseLost` when another worker
        took the message over after this one's lease lapsed). Otherwise ``("finished", 0)`` (done or
        dead: nothing to do), ``("busy", 0)`` (another worker holds it) or ``("waiting", 0)`` (an
        earlier message of the same contact is not finished: a conversation is answered in order)."""
        now = now or utcnow()
        m = WhatsAppMessage
        earlier = aliased(WhatsAppMessage)
        with self._session("cannot claim WhatsApp message", write=True) as s:
            attempt = s.execute(
                update(m).where(
                    m.id == message_id,
                    or_(m.state.in_(("queued", "retrying")), and_(m.state == "processing", m.lease_until < now)),
                    ~exists().where(earlier.tenant_id == m.tenant_id, earlier.account_id == m.account_id,
                                    earlier.contact == m.contact, earlier.id < m.id, earlier.state.in_(UNFINISHED)),
                ).values(state="processing", lease_until=now + dt.timedelta(seconds=lease),
                         attempts=m.attempts + 1, updated_at=now).returning(m.attempts)
                .execution_options(synchronize_session=False)).scalar()
            if attempt is not None:
                return "claimed", int(attempt)
            row = s.scalar(select(m).where(m.id == message_id))
            if row is None or row.state in ("done", "dead"):
                return "finished", 0
            if row.state == "processing":
                return "busy", 0
            return "waiting", 0

    @staticmethod
    def _held(message_id: int, attempt: int) -> Any:
        m = WhatsAppMessage
        return and_(m.id == message_id, m.state == "processing", m.attempts == attempt)

    def _own(self, s: Session, message_id: int, attempt: int, lease: float) -> None:
        """Inside a write transaction: still this worker's (else `LeaseLost`), lease extended."""
        now = utcnow()
        done = s.execute(update(WhatsAppMessage).where(self._held(message_id, attempt))
                         .values(lease_until=now + dt.timedelta(seconds=lease), updated_at=now))
        if not done.rowcount:  # type: ignore[attr-defined]
            raise LeaseLost(f"message {message_id} was taken over (attempt {attempt} is not the current one)")

    def hold(self, message_id: int, attempt: int, *, lease: float) -> None:
        """Make sure the message is still this worker's, for a fresh lease (before a side effect)."""
        with self._session("cannot extend WhatsApp lease", write=True) as s:
            self._own(s, message_id, attempt, lease)

    def heartbeat(self, message_id: int, attempt: int, *, lease: float) -> bool:
        try:
            self.hold(message_id, attempt, lease=lease)
        except LeaseLost:
            return False
        return True

    def retry_later(self, message_id: int, attempt: int, *, delay: float, error_class: str) -> None:
        now = utcnow()
        with self._session("cannot schedule WhatsApp retry", write=True) as s:
            s.execute(update(WhatsAppMessage).where(self._held(message_id, attempt)).values(
                state="retrying", lease_until=None, next_attempt_at=now + dt.timedelta(seconds=delay),
                error_class=error_class[:64], updated_at=now))

    def finish(self, message_id: int, attempt: int, *, outcome: str) -> None:
        with self._session("cannot finish WhatsApp message", write=True) as s:
            s.execute(update(WhatsAppMessage).where(self._held(message_id, attempt)).values(
                state="done", outcome=outcome[:32], lease_until=None, next_attempt_at=None, updated_at=utcnow()))

    def finish_orphan(self, message_id: int, *, outcome: str) -> None:
        """A message whose account is gone: done, whoever holds it."""
        with self._session("cannot finish WhatsApp message", write=True) as s:
            s.execute(update(WhatsAppMessage).where(WhatsAppMessage.id == message_id).values(
                state="done", outcome=outcome[:32], lease_until=None, next_attempt_at=None, updated_at=utcnow()))

    def bury(self, message: MessageInfo, attempt: int, *, error_class: str, reason: str) -> None:
        """The last try failed: the message is dead and a dead letter says why (no content)."""
        with self._session("cannot dead-letter WhatsApp message", write=True) as s:
            row = s.scalar(select(WhatsAppMessage).where(WhatsAppMessage.id == message.id,
                                                         WhatsAppMessage.tenant_id == message.tenant_id))
            if row is None or row.state != "processing" or row.attempts != attempt:
                return                    # another worker holds it now: its call
            row.state, row.error_class, row.lease_until, row.updated_at = "dead", error_class[:64], None, utcnow()
            row.outcome = "dead"
            s.execute(delete(WhatsAppDeadLetter).where(WhatsAppDeadLetter.message_id == row.id))
            s.add(WhatsAppDeadLetter(tenant_id=row.tenant_id, message_id=row.id, correlation_id=row.correlation_id,
                                     error_class=error_class[:64], reason=reason[:256], attempts=row.attempts))

    def stale(self, *, requeue_after: float, now: dt.datetime | None = None, limit: int = 500) -> list[tuple[int, str]]:
        """Messages whose task may have been lost: queued or due for a retry long ago with nobody on
        them, or processing with an expired lease (a killed worker). ``(id, correlation_id)``."""
        now = now or utcnow()
        old = now - dt.timedelta(seconds=requeue_after)
        m = WhatsAppMessage
        with self._session("cannot list stale WhatsApp messages") as s:
            rows = s.execute(select(m.id, m.correlation_id).where(or_(
                and_(m.state == "queued", m.updated_at < old),
                and_(m.state == "retrying", m.next_attempt_at < old),
                and_(m.state == "processing", m.lease_until < now),
            )).order_by(m.id).limit(limit))
            return [(int(i), str(c)) for i, c in rows]

    def next_of_contact(self, message: MessageInfo) -> tuple[int, str] | None:
        """The contact's next unfinished message after this one (it waited its turn)."""
        m = WhatsAppMessage
        with self._session("cannot read WhatsApp message") as s:
            row = s.execute(select(m.id, m.correlation_id).where(
                m.tenant_id == message.tenant_id, m.account_id == message.account_id, m.contact == message.contact,
                m.id > message.id, m.state.in_(("queued", "retrying"))).order_by(m.id).limit(1)).first()
            return (int(row[0]), str(row[1])) if row is not None else None

    def touch(self, message_ids: Sequence[int]) -> None:
        """Note that these messages were queued again now (the sweep does not queue them again at once)."""
        if not message_ids:
            return
        now = utcnow()
        ids = list(message_ids)
        with self._session("cannot touch WhatsApp messages", write=True) as s:
            s.execute(update(WhatsAppMessage).where(WhatsAppMessage.id.in_(ids), WhatsAppMessage.state == "queued")
                      .values(updated_at=now))
            s.execute(update(WhatsAppMessage).where(WhatsAppMessage.id.in_(ids), WhatsAppMessage.state == "retrying")
                      .values(next_attempt_at=now))

    def messages(self, tenant_id: int, *, conversation_id: int | None = None, limit: int = 100) -> list[MessageInfo]:
        with self._session("cannot list WhatsApp messages") as s:
            query = select(WhatsAppMessage).where(WhatsAppMessage.tenant_id == tenant_id)
            if conversation_id is not None:
                query = query.where(WhatsAppMessage.conversation_id == conversation_id)
            rows = s.scalars(query.order_by(WhatsAppMessage.id.desc()).limit(limit))
            return [self._message_info(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many messages are in each state (for metrics and the benchmark)."""
        from sqlalchemy import func

        with self._session("cannot count WhatsApp messages") as s:
            rows = s.execute(select(WhatsAppMessage.state, func.count()).group_by(WhatsAppMessage.state))
            return {str(state): int(n) for state, n in rows}

    # ---- conversations -----------------------------------------------------------------------------

    @staticmethod
    def _conversation_info(r: WhatsAppConversation) -> ConversationInfo:
        history = tuple(HistoryEntry(str(h.get("role", "")), str(h.get("text", "")), str(h.get("at", "")),
                                     h.get("message_id"), str(h.get("kind", "text"))) for h in r.history or [])
        return ConversationInfo(id=r.id, tenant_id=r.tenant_id, account_id=r.account_id, contact=r.contact,
                                state=r.state, history=history, started_at=_aware(r.started_at) or utcnow(),
                                last_activity_at=_aware(r.last_activity_at) or utcnow(),
                                last_inbound_at=_aware(r.last_inbound_at), closed_at=_aware(r.closed_at),
                                close_reason=r.close_reason)

    def open_conversation(self, account: AccountInfo, contact: str, *, now: dt.datetime) -> ConversationInfo:
        """The contact's current conversation: the open one, unless it sat idle past the account's
        ``idle_minutes`` (then it is closed and a new one starts). A conversation a person has
        (``handoff``) never expires: only `release` ends it."""
        idle = dt.timedelta(minutes=account.settings.idle_minutes)
        c = WhatsAppConversation
        with self._session("cannot open WhatsApp conversation", write=True) as s:
            row = s.scalar(select(c).where(c.tenant_id == account.tenant_id, c.account_id == account.id,
                                           c.contact == contact, c.state.in_(("active", "handoff")))
                           .order_by(c.id.desc()).limit(1))
            if row is not None and row.state == "active" and (_aware(row.last_activity_at) or now) + idle < now:
                row.state, row.closed_at, row.close_reason = "closed", now, "idle"
                row = None
            if row is None:
                row = WhatsAppConversation(tenant_id=account.tenant_id, account_id=account.id, contact=contact,
                                           state="active", history=[], started_at=now, last_activity_at=now)
                s.add(row)
                s.flush()
            return self._conversation_info(row)

    def conversation(self, tenant_id: int, conversation_id: int) -> ConversationInfo:
        with self._session("cannot read WhatsApp conversation") as s:
            row = s.scalar(select(WhatsAppConversation).where(WhatsAppConversation.id == conversation_id,
                                                              WhatsAppConversation.tenant_id == tenant_id))
            if row is None:
                raise WhatsAppNotFound(f"no conversation {conversation_id} for this tenant")
            return self._conversation_info(row)

    def conversations(self, tenant_id: int, *, state: str | None = None, limit: int = 100) -> list[ConversationInfo]:
        with self._session("cannot list WhatsApp conversations") as s:
            query = select(WhatsAppConversation).where(WhatsAppConversation.tenant_id == tenant_id)
            if state is not None:
                query = query.where(WhatsAppConversation.state == state)
            rows = s.scalars(query.order_by(WhatsAppConversation.last_activity_at.desc()).limit(limit))
            return [self._conversation_info(r) for r in rows]

    def release(self, tenant_id: int, conversation_id: int) -> ConversationInfo:
        """A person is done: the secretary answers this contact again (the conversation goes on)."""
        with self._session("cannot release WhatsApp conversation", write=True) as s:
            row = s.scalar(select(WhatsAppConversation).where(WhatsAppConversation.id == conversation_id,
                                                              WhatsAppConversation.tenant_id == tenant_id))
            if row is None:
                raise WhatsAppNotFound(f"no conversation {conversation_id} for this tenant")
            if row.state != "handoff":
                raise InvalidValue(f"conversation {conversation_id} is {row.state}, not handed to a person")
            row.state, row.last_activity_at = "active", utcnow()
            s.flush()
            return self._conversation_info(row)

    def record_turn(self, message: MessageInfo, conversation_id: int, *, entries: Sequence[HistoryEntry],
                    outbound: Sequence[OutboundPlan], outcome: str, handoff: bool, now: dt.datetime,
                    attempt: int, lease: float, close: bool = False, max_history: int = 40) -> list[OutboundInfo]:
        """One transaction: the turn joins the conversation's history, what must go out is planned
        (each part sent at most once later), the message notes its conversation and outcome."""
        with self._session("cannot record WhatsApp turn", write=True) as s:
            self._own(s, message.id, attempt, lease)
            conv = s.scalar(select(WhatsAppConversation).where(WhatsAppConversation.id == conversation_id,
                                                               WhatsAppConversation.tenant_id == message.tenant_id))
            if conv is None:
                raise WhatsAppNotFound(f"no conversation {conversation_id} for this tenant")
            history = list(conv.history or []) + [e.as_json() for e in entries]
            conv.history = history[-max_history:]
            conv.last_activity_at = now
            conv.last_inbound_at = message.received_at
            if handoff:
                conv.state = "handoff"
            if close:
                conv.state, conv.closed_at, conv.close_reason = "closed", now, "ended"
            rows = [WhatsAppOutbound(tenant_id=message.tenant_id, message_id=message.id, kind=p.kind, ordinal=i,
                                     body=p.body, state="pending") for i, p in enumerate(outbound)]
            s.add_all(rows)
            s.execute(update(WhatsAppMessage).where(WhatsAppMessage.id == message.id)
                      .values(conversation_id=conversation_id, outcome=outcome[:32]))
            s.flush()
            return [self._outbound_info(r) for r in rows]

    # ---- outbound parts ------------------------------------------------------------------------------

    @staticmethod
    def _outbound_info(r: WhatsAppOutbound) -> OutboundInfo:
        return OutboundInfo(id=r.id, message_id=r.message_id, kind=r.kind, ordinal=r.ordinal, body=r.body,
                            state=r.state, twilio_sid=r.twilio_sid, delivery_status=r.delivery_status,
                            error_code=r.error_code, updated_at=_aware(r.updated_at) or utcnow())

    def outbound(self, message: MessageInfo) -> list[OutboundInfo]:
        with self._session("cannot list WhatsApp outbound") as s:
            rows = s.scalars(select(WhatsAppOutbound).where(WhatsAppOutbound.message_id == message.id,
                                                            WhatsAppOutbound.tenant_id == message.tenant_id)
                             .order_by(WhatsAppOutbound.kind.desc(), WhatsAppOutbound.ordinal))
            return [self._outbound_info(r) for r in rows]

    def has_plan(self, message: MessageInfo) -> bool:
        with self._session("cannot read WhatsApp outbound") as s:
            return s.scalar(select(WhatsAppOutbound.id).where(WhatsAppOutbound.message_id == message.id,
                                                              WhatsAppOutbound.tenant_id == message.tenant_id)
                            .limit(1)) is not None or s.scalar(
                select(WhatsAppMessage.conversation_id).where(WhatsAppMessage.id == message.id)) is not None

    def begin_send(self, part: OutboundInfo, attempt: int, *, lease: float) -> bool:
        """Mark a part as being sent (from pending or failed), the message still this worker's for a
        fresh lease (else `LeaseLost`, before anything went out): False when it was already on its way."""
        with self._session("cannot mark WhatsApp outbound", write=True) as s:
            self._own(s, part.message_id, attempt, lease)
            done = s.execute(update(WhatsAppOutbound).where(WhatsAppOutbound.id == part.id,
                                                            WhatsAppOutbound.state.in_(("pending", "failed")))
                             .values(state="sending", updated_at=utcnow()))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def sent(self, part: OutboundInfo, *, twilio_sid: str | None, delivery_status: str = "") -> None:
        with self._session("cannot mark WhatsApp outbound", write=True) as s:
            s.execute(update(WhatsAppOutbound).where(WhatsAppOutbound.id == part.id).values(
                state="sent", twilio_sid=twilio_sid, delivery_status=delivery_status[:32], sent_at=utcnow(),
                updated_at=utcnow()))

    def send_failed(self, part: OutboundInfo, *, error_code: str) -> None:
        with self._session("cannot mark WhatsApp outbound", write=True) as s:
            s.execute(update(WhatsAppOutbound).where(WhatsAppOutbound.id == part.id).values(
                state="failed", error_code=error_code[:16], updated_at=utcnow()))

    def delivery_status(self, account_ids: Sequence[int], twilio_sid: str, status: str, error_code: str) -> bool:
        """A status callback: the delivery status of the part Twilio knows as `twilio_sid`."""
        def write() -> bool:
            with self._session("cannot update WhatsApp delivery status", write=True) as s:
                done = s.execute(update(WhatsAppOutbound).where(
                    WhatsAppOutbound.twilio_sid == twilio_sid,
                    WhatsAppOutbound.message_id.in_(select(WhatsAppMessage.id).where(
                        WhatsAppMessage.account_id.in_(list(account_ids)))),
                ).values(delivery_status=status[:32], error_code=error_code[:16], updated_at=utcnow())
                 .execution_options(synchronize_session=False))
                return bool(done.rowcount)  # type: ignore[attr-defined]

        return self.write(write)

    def window_closed(self, account_ids: Sequence[int], twilio_sid: str) -> tuple[int, str] | None:
        """Twilio reported a reply undeliverable outside the 24-hour window (63016): the part is
        failed and its message queued again, to send the account's template or give up with that
        reason. ``(message_id, correlation_id)``, or None for a SID that is not ours."""
        with self._session("cannot reopen WhatsApp message", write=True) as s:
            part = s.scalar(select(WhatsAppOutbound).join(
                WhatsAppMessage, (WhatsAppMessage.id == WhatsAppOutbound.message_id)
                & (WhatsAppMessage.tenant_id == WhatsAppOutbound.tenant_id)).where(
                WhatsAppOutbound.twilio_sid == twilio_sid, WhatsAppMessage.account_id.in_(list(account_ids))))
            if part is None:
                return None
            part.state, part.error_code, part.updated_at = "failed", "63016", utcnow()
            message = s.scalar(select(WhatsAppMessage).where(WhatsAppMessage.id == part.message_id))
            if message is None or message.state != "done":
                return None
            message.state, message.attempts, message.outcome, message.updated_at = "queued", 0, "", utcnow()
            return message.id, message.correlation_id

    # ---- dead letters ------------------------------------------------------------------------------

    @staticmethod
    def _dead_info(r: WhatsAppDeadLetter) -> DeadLetterInfo:
        return DeadLetterInfo(id=r.id, tenant_id=r.tenant_id, message_id=r.message_id,
                              correlation_id=r.correlation_id, error_class=r.error_class, reason=r.reason,
                              attempts=r.attempts, created_at=_aware(r.created_at) or utcnow())

    def dead_letters(self, tenant_id: int | None = None, *, limit: int = 100) -> list[DeadLetterInfo]:
        with self._session("cannot list WhatsApp dead letters") as s:
            query = select(WhatsAppDeadLetter)
            if tenant_id is not None:
                query = query.where(WhatsAppDeadLetter.tenant_id == tenant_id)
            return [self._dead_info(r) for r in s.scalars(query.order_by(WhatsAppDeadLetter.id).limit(limit))]

    def dead_letter(self, tenant_id: int, dead_id: int) -> DeadLetterInfo:
        with self._session("cannot read WhatsApp dead letter") as s:
            row = s.scalar(select(WhatsAppDeadLetter).where(WhatsAppDeadLetter.id == dead_id,
                                                            WhatsAppDeadLetter.tenant_id == tenant_id))
            if row is None:
                raise WhatsAppNotFound(f"no dead letter {dead_id} for this tenant")
            return self._dead_info(row)

    def revive(self, tenant_id: int, dead_id: int) -> tuple[int, str]:
        """Replay: the message is queued again with fresh tries; parts not sent will be sent."""
        with self._session("cannot replay WhatsApp dead letter", write=True) as s:
            dead = s.scalar(select(WhatsAppDeadLetter).where(WhatsAppDeadLetter.id == dead_id,
                                                             WhatsAppDeadLetter.tenant_id == tenant_id))
            if dead is None:
                raise WhatsAppNotFound(f"no dead letter {dead_id} for this tenant")
            s.execute(update(WhatsAppMessage).where(WhatsAppMessage.id == dead.message_id,
                                                    WhatsAppMessage.tenant_id == tenant_id)
                      .values(state="queued", attempts=0, error_class="", outcome="", lease_until=None,
                              next_attempt_at=None, updated_at=utcnow()))
            s.execute(update(WhatsAppOutbound).where(WhatsAppOutbound.message_id == dead.message_id,
                                                     WhatsAppOutbound.state == "failed").values(state="pending"))
            message_id, cid = dead.message_id, dead.correlation_id
            s.delete(dead)
            return message_id, cid

    def drop_dead(self, tenant_id: int, dead_id: int) -> None:
        """Forget a dead letter (the message stays, dead, for the record)."""
        with self._session("cannot drop WhatsApp dead letter", write=True) as s:
            done = s.execute(delete(WhatsAppDeadLetter).where(WhatsAppDeadLetter.id == dead_id,
                                                              WhatsAppDeadLetter.tenant_id == tenant_id))
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise WhatsAppNotFound(f"no dead letter {dead_id} for this tenant")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)

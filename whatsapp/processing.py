"""A worker's handling of one inbound message, from its claim to its last part sent.

`MessageProcessor.process(message_id, correlation_id)` is the queue task:

1. claim the message under a lease (`WhatsAppStore.claim`: one worker at a time, in order per
   contact; a heartbeat greenlet keeps the lease while the message is handled);
2. if nothing is planned for it yet — read it (text, or a voice note downloaded and transcribed
   with the tenant's STT chain; other media get the polite "text and voice only" reply), open the
   contact's conversation (idle expiry), and decide:
   a person has the conversation → stay quiet, forward the message to the handoff URL;
   out of business hours → the out-of-hours reply (or, with ``answer_out_of_hours``, answers);
   otherwise the secretary's decision: ``answer`` → the reply; ``unsure``/``transfer`` → the
   handoff message to the contact, a signed handoff webhook with the transcript, and the bot
   quiet until `ivr whatsapp release`; ``end_call`` → its last words, the conversation closed.
   The turn, the history and every part to send are written in one transaction;
3. send each part not yet sent (a reply over 1,600 characters is several parts), each at most
   once: a part left "sending" by a killed worker is looked up at Twilio before it is sent again;
   outside WhatsApp's 24-hour window the account's template goes instead, or the message is
   dead-lettered with that reason.

`Retryable` failures return a backoff delay (the queue schedules the task again) until the last
try, after which — and at once for `Permanent` ones — the message goes to the dead-letter table.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import requests
import structlog

from providers.errors import ProviderError
from providers.llm.base import ChatMessage
from schema.models import utcnow
from whatsapp import metrics
from whatsapp.errors import LeaseLost, MediaUnusable, OutsideWindow, Permanent, Retryable, WhatsAppError
from whatsapp.handoff import HandoffEvent, post_handoff, transcript_of
from whatsapp.logs import bound
from whatsapp.media import fetch_media
from whatsapp.replies import TwilioSender
from whatsapp.retry_policy import backoff
from whatsapp.secretaries import SecretaryBook
from whatsapp.settings import ChannelSettings
from whatsapp.splitting import split_message
from whatsapp.store import (
    AccountRoute,
    HistoryEntry,
    MessageInfo,
    OutboundInfo,
    OutboundPlan,
    WhatsAppNotFound,
    WhatsAppStore,
)
from whatsapp.voice_notes import decode_voice_note, is_audio

log = structlog.get_logger("ivr.whatsapp.worker")
WINDOW = dt.timedelta(hours=24)
HISTORY_TURNS = 10          # earlier messages the secretary sees


@dataclass(frozen=True, slots=True)
class Heard:
    text: str
    kind: str                  # text | voice
    notice: str | None = None  # a reply instead of an answer (media we cannot read)
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class Turn:
    entries: tuple[HistoryEntry, ...]
    outbound: tuple[OutboundPlan, ...]
    outcome: str
    handoff: bool = False
    close: bool = False


class MessageProcessor:
    def __init__(self, store: WhatsAppStore, settings: ChannelSettings, book: SecretaryBook, *,
                 sender: TwilioSender | None = None, session: requests.Session | None = None,
                 enqueue: Callable[[int, str], None] | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.store = store
        self.settings = settings
        self.book = book
        self.sender = sender or TwilioSender(settings)
        self.session = session or requests.Session()
        self.enqueue = enqueue
        self.clock = clock

    # ---- the task --------------------------------------------------------------------------------

    def process(self, message_id: int, correlation_id: str) -> float | None:
        """Handle one message; returns a delay when the task must run again then (see module docstring)."""
        with bound(correlation_id=correlation_id):
            claim, attempt = self.store.claim(message_id, lease=self.settings.lease_seconds, now=self.clock())
            if claim == "waiting":
                return 1.0            # an earlier message of this contact first
            if claim != "claimed":
                return None           # done, dead, or another worker has it
            message = self.store.message(message_id)
            try:
                route = self.store.route_by_id(message.tenant_id, message.account_id)
            except WhatsAppNotFound:
                self.store.finish_orphan(message_id, outcome="account_removed")
                return None
            with bound(tenant=route.account.domain_name, message_id=message_id):
                return self._run(message, route, attempt)

    def _run(self, message: MessageInfo, route: AccountRoute, attempt: int) -> float | None:
        heartbeat = gevent.spawn(self._heartbeat, message.id, attempt)
        try:
            outcome = self._handle(message, route, attempt)
        except LeaseLost:
            log.warning("whatsapp.lease_lost", attempt=attempt)    # another worker has it now
            return None
        except Retryable as e:
            return self._retry_or_bury(message, attempt, e.error_class, e.reason, e.retry_after)
        except Permanent as e:
            self._bury(message, attempt, e.error_class, e.reason)
            return None
        except ProviderError as e:
            return self._retry_or_bury(message, attempt, type(e).__name__, "a provider failed")
        except Exception as e:
            log.error("whatsapp.message_failed", error=type(e).__name__, exc_info=True)
            return self._retry_or_bury(message, attempt, type(e).__name__, "unexpected error")
        finally:
            heartbeat.kill(block=False)
        self.store.finish(message.id, attempt, outcome=outcome)
        seconds = (self.clock() - message.received_at).total_seconds()
        metrics.PROCESS_SECONDS.labels(outcome).observe(max(0.0, seconds),
                                                        exemplar={"correlation_id": message.correlation_id})
        log.info("whatsapp.message_done", outcome=outcome, attempts=message.attempts,
                 seconds=round(seconds, 3))
        self._next_of_contact(message)
        return None

    def _heartbeat(self, message_id: int, attempt: int) -> None:
        while True:
            gevent.sleep(max(0.5, self.settings.lease_seconds / 3))
            try:
                if not self.store.heartbeat(message_id, attempt, lease=self.settings.lease_seconds):
                    log.warning("whatsapp.lease_lost", attempt=attempt)   # the next write stops this try
                    return
            except Exception as e:    # the database is away: the lease may lapse; the fencing protects
                log.warning("whatsapp.heartbeat_failed", error=type(e).__name__)

    def _retry_or_bury(self, message: MessageInfo, attempt: int, error_class: str, reason: str,
                       retry_after: float | None = None) -> float | None:
        if attempt >= self.settings.max_attempts:
            self._bury(message, attempt, error_class, f"{reason} (after {attempt} tries)")
            return None
        delay = backoff(attempt, base=self.settings.backoff_base, maximum=self.settings.backoff_max,
                        retry_after=retry_after)
        self.store.retry_later(message.id, attempt, delay=delay, error_class=error_class)
        metrics.RETRIES.labels(error_class).inc()
        log.warning("whatsapp.message_retry", error_class=error_class, attempts=attempt, delay=delay)
        return delay

    def _bury(self, message: MessageInfo, attempt: int, error_class: str, reason: str) -> None:
        self.store.bury(message, attempt, error_class=error_class, reason=reason)
        metrics.DEAD.labels(error_class).inc()
        log.error("whatsapp.message_dead", error_class=error_class, reason=reason, attempts=message.attempts)
        self._next_of_contact(message)

    def _next_of_contact(self, message: MessageInfo) -> None:
        if self.enqueue is None:
            return
        following = self.store.next_of_contact(message)
        if following is not None:
            self.enqueue(*following)

    # ---- one message -------------------------------------------------------------------------------

    def _handle(self, message: MessageInfo, route: AccountRoute, attempt: int) -> str:
        if not self.store.has_plan(message):
            self._plan(message, route, attempt)
        message = self.store.message(message.id, message.tenant_id)
        template_sent = False
        for part in self.store.outbound(message):
            if part.state == "sent":
                continue
            if part.kind == "handoff":
                self._send_handoff(part, message, route, attempt)
            elif template_sent:
                self.store.send_failed(part, error_code="63016")   # the template stood in for the reply
            else:
                template_sent = self._send_reply(part, message, route, attempt)
        return "template_sent" if template_sent else message.outcome or "done"

    def _read(self, message: MessageInfo, route: AccountRoute) -> Heard:
        s = route.account.settings
        audio = [m for m in message.media if is_audio(m.content_type)]
        if audio:
            try:
                media = fetch_media(audio[0].url, route, self.settings, self.session)
                clip = decode_voice_note(media.data, max_seconds=self.settings.max_voice_seconds)
            except MediaUnusable as e:
                log.info("whatsapp.voice_note_unusable", reason=e.reason)
                return Heard("", "voice", s.unreadable_voice_reply, "voice_unreadable")
            providers = self.book.for_account(route).providers
            started = time.monotonic()
            transcript = providers.stt.transcribe(clip, timeout=60.0)
            log.info("whatsapp.voice_note_transcribed", seconds=round(clip.duration, 2),
                     stt=transcript.provider, stt_ms=round((time.monotonic() - started) * 1000, 1),
                     chars=len(transcript.text))
            text = " ".join(transcript.text.split())
            if not text:
                return Heard("", "voice", s.unreadable_voice_reply, "voice_unreadable")
            return Heard(text, "voice")
        body = " ".join(message.body.split())
        if message.media and not body:
            return Heard("", "text", s.media_reply, "media_refused")
        return Heard(body, "text")

    def _plan(self, message: MessageInfo, route: AccountRoute, attempt: int) -> None:
        account = route.account
        s = account.settings
        now = self.clock()
        conversation = self.store.open_conversation(account, message.contact, now=now)
        heard = self._read(message, route)
        at = now.isoformat()
        said = HistoryEntry("user", heard.text or "[media]", at, message.id, heard.kind)
        turn: Turn
        if conversation.state == "handoff":
            forward: tuple[OutboundPlan, ...] = ()
            if s.handoff_url:
                event = HandoffEvent("message", account.domain_name, conversation.id, message.contact, "with a person",
                                     (said,))
                forward = (OutboundPlan("handoff", event.body()),)
            turn = Turn((said,), forward, "with_person")
        elif heard.notice is not None:
            turn = Turn((said, HistoryEntry("assistant", heard.notice, at, kind="notice")),
                        (OutboundPlan("reply", heard.notice),), heard.outcome)
        else:
            is_open = s.is_open(account.time_zone, now)
            if not is_open and not s.answer_out_of_hours:
                turn = Turn((said, HistoryEntry("assistant", s.out_of_hours_reply, at, kind="notice")),
                            (OutboundPlan("reply", s.out_of_hours_reply),), "out_of_hours")
            else:
                turn = self._answer(route, conversation.id, conversation.history, message.contact, said, at, is_open)
        self.store.record_turn(message, conversation.id, entries=turn.entries, outbound=turn.outbound,
                               outcome=turn.outcome, handoff=turn.handoff, close=turn.close, now=now,
                               attempt=attempt, lease=self.settings.lease_seconds)

    def _answer(self, route: AccountRoute, conversation_id: int, history: tuple[HistoryEntry, ...], contact: str,
                said: HistoryEntry, at: str, is_open: bool) -> Turn:
        account = route.account
        s = account.settings
        secretary = self.book.for_account(route).secretary
        earlier = [ChatMessage("user" if e.role == "user" else "assistant", e.text)
                   for e in history if e.kind != "notice" and e.role in ("user", "assistant")][-2 * HISTORY_TURNS:]
        result = secretary.ask(said.text, earlier)
        d = result.decision
        log.info("whatsapp.secretary_decided", decision=d.kind, grounded=result.grounding.grounded,
                 best=round(result.grounding.best_score, 3) if result.grounding.best_score is not None else None,
                 llm=d.provider, fallback=d.fallback, total_ms=result.total_ms)
        if d.kind == "error":
            raise Retryable("the secretary could not answer", error_class="SecretaryError")
        if d.kind == "answer":
            parts = tuple(OutboundPlan("reply", p) for p in split_message(d.text))
            return Turn((said, HistoryEntry("assistant", d.text, at)), parts, "answered")
        if d.kind == "end_call":
            parts = tuple(OutboundPlan("reply", p) for p in split_message(d.text))
            entries = (said, HistoryEntry("assistant", d.text, at)) if d.text else (said,)
            return Turn(entries, parts, "ended", close=True)
        if not is_open:   # nobody to hand over to now
            return Turn((said, HistoryEntry("assistant", s.out_of_hours_reply, at, kind="notice")),
                        (OutboundPlan("reply", s.out_of_hours_reply),), "out_of_hours")
        reason = f"transfer:{d.target}" if d.kind == "transfer" else "unsure"
        entries = (said, HistoryEntry("assistant", s.handoff_message, at, kind="notice"))
        outbound = [OutboundPlan("reply", s.handoff_message)]
        if s.handoff_url:
            event = HandoffEvent("handoff", account.domain_name, conversation_id, contact, reason,
                                 transcript_of((*history, *entries)))
            outbound.append(OutboundPlan("handoff", event.body()))
        else:
            log.warning("whatsapp.handoff_without_url", reason=reason)
        return Turn(entries, tuple(outbound), "handoff", handoff=True)

    # ---- sending -----------------------------------------------------------------------------------

    def _send_handoff(self, part: OutboundInfo, message: MessageInfo, route: AccountRoute, attempt: int) -> None:
        url = route.account.settings.handoff_url
        if not url:
            self.store.send_failed(part, error_code="no_url")
            return
        if not self.store.begin_send(part, attempt, lease=self.settings.lease_seconds):
            self.store.hold(message.id, attempt, lease=self.settings.lease_seconds)   # resent: at least once
        secret = route.handoff_secret.reveal() if route.handoff_secret is not None else None
        try:
            status = post_handoff(url, part.body, secret=secret, correlation_id=message.correlation_id,
                                  idempotency_key=f"{message.correlation_id}-{part.id}",
                                  timeout=self.settings.handoff_timeout, session=self.session)
        except WhatsAppError:
            self.store.send_failed(part, error_code="handoff")
            metrics.OUTBOUND.labels("handoff", "failed").inc()
            raise
        self.store.sent(part, twilio_sid=None, delivery_status=str(status))
        metrics.OUTBOUND.labels("handoff", "sent").inc()

    def _send_reply(self, part: OutboundInfo, message: MessageInfo, route: AccountRoute, attempt: int) -> bool:
        """Send one part; True when the account's template went instead (outside the window)."""
        closed = (part.state == "failed" and part.error_code == "63016") or self.clock() - message.received_at > WINDOW
        lease = self.settings.lease_seconds
        if part.state == "sending":
            # A try died while this part was on its way: did Twilio take it?
            self.store.hold(message.id, attempt, lease=lease)
            sid = self.sender.find_sent(route, message.contact, part.body, part.updated_at)
            if sid is not None:
                self.store.sent(part, twilio_sid=sid)
                log.info("whatsapp.reply_found_sent", part=part.ordinal)
                return False
        elif not self.store.begin_send(part, attempt, lease=lease):
            raise LeaseLost(f"part {part.id} is already on its way")
        template = route.account.settings.template_content_sid
        callback = self.settings.status_callback(message.correlation_id)
        try:
            if closed:
                raise OutsideWindow()
            sent = self.sender.send(route, message.contact, body=part.body, status_callback=callback)
            used_template = False
        except OutsideWindow:
            if not template:
                self.store.send_failed(part, error_code="63016")
                metrics.OUTBOUND.labels("reply", "failed").inc()
                raise OutsideWindow("outside WhatsApp's 24-hour window and no template configured") from None
            sent = self.sender.send(route, message.contact, content_sid=template, status_callback=callback)
            used_template = True
        except Retryable as e:
            if e.error_class != "TwilioTimeout":   # a timeout may have been accepted: look it up next time
                self.store.send_failed(part, error_code=e.error_class[:16])
            metrics.OUTBOUND.labels("reply", "failed").inc()
            raise
        except Permanent as e:
            self.store.send_failed(part, error_code=e.error_class[:16])
            metrics.OUTBOUND.labels("reply", "failed").inc()
            raise
        self.store.sent(part, twilio_sid=sent.sid, delivery_status=sent.status)
        metrics.OUTBOUND.labels("reply", "sent").inc()
        return used_template

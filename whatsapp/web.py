"""The HTTP service (``ivr web``): Twilio's webhooks, health and metrics, on Flask.

- ``POST /twilio/whatsapp``: an inbound message. The account is found by (AccountSid, To); an
  unknown one gets 200 and nothing is done (logged). ``X-Twilio-Signature`` is checked
  (`whatsapp.signature`): 403 with an empty body when it fails. Rate limits per sender and per
  tenant (`whatsapp.rate_limits`). The message is stored once per (account, MessageSid) — a
  retried delivery is acknowledged and not queued again — then queued, and the answer is an empty
  TwiML ``<Response/>``: nothing here waits on a model.
- ``POST /twilio/status``: a reply's delivery status (signed like the rest).
- ``GET /healthz``: the database answers; ``GET /metrics``: Prometheus (OpenMetrics with exemplars
  when asked for).

Errors never put exception text in a response: 4xx/5xx bodies are empty, the log has the class.
Flask is the conventional choice for a WSGI app this size; gevent's ``WSGIServer`` serves it, so
the process is cooperative like the rest of the project (`serve`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

import structlog
from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from sqlalchemy import Engine, text
from werkzeug.exceptions import HTTPException

from whatsapp import metrics
from whatsapp.logs import bound, contact_for_log, new_correlation_id
from whatsapp.rate_limits import RateLimits
from whatsapp.settings import ChannelSettings
from whatsapp.signature import signed_url, valid
from whatsapp.store import AccountRoute, MediaRef, WhatsAppStore

log = structlog.get_logger("ivr.whatsapp.web")
MAX_BODY = 64 * 1024          # Twilio's form posts are a few KB
MAX_MEDIA = 10                # WhatsApp sends at most 10 media per message


def twiml(message: str | None = None) -> Response:
    if message:
        from twilio.twiml.messaging_response import MessagingResponse

        reply = MessagingResponse()
        reply.message(message)
        return Response(str(reply), 200, mimetype="text/xml")
    return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', 200, mimetype="text/xml")


def _empty(status: int) -> Response:
    return Response(b"", status)


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


class AccountCache:
    """(AccountSid, To) → account, kept `ttl` seconds (the webhook's hot path reads no database then)."""

    def __init__(self, store: WhatsAppStore, ttl: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self._routes: dict[tuple[str, str], tuple[float, AccountRoute | None]] = {}
        self._sids: dict[str, tuple[float, list[AccountRoute]]] = {}

    def route(self, account_sid: str, to: str) -> AccountRoute | None:
        now = time.monotonic()
        hit = self._routes.get((account_sid, to))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        found = self.store.route(account_sid, to)
        if len(self._routes) > 10_000:
            self._routes.clear()
        self._routes[(account_sid, to)] = (now, found)
        return found

    def routes_of_sid(self, account_sid: str) -> list[AccountRoute]:
        now = time.monotonic()
        hit = self._sids.get(account_sid)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        found = self.store.routes_of_sid(account_sid)
        if len(self._sids) > 10_000:
            self._sids.clear()
        self._sids[account_sid] = (now, found)
        return found


def create_app(*, store: WhatsAppStore, engine: Engine, enqueue: Callable[[int, str], None],
               settings: ChannelSettings, limits: RateLimits, allow_unsigned: bool = False,
               account_ttl: float = 5.0) -> Flask:
    """The WSGI app. `allow_unsigned` (development only) skips signature checks for requests from
    loopback addresses; the caller refuses it unless the server listens on loopback."""
    app = Flask("ivr.whatsapp")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    accounts = AccountCache(store, account_ttl)

    def signature_ok(route: AccountRoute) -> bool:
        if allow_unsigned and _loopback(request.remote_addr):
            return True
        url = signed_url(scheme=request.scheme, host=request.host, path=request.path,
                         query=request.query_string.decode("latin-1"), peer=request.remote_addr,
                         forwarded_proto=request.headers.get("X-Forwarded-Proto"),
                         forwarded_host=request.headers.get("X-Forwarded-Host"), settings=settings)
        return valid(route.auth_token.reveal(), url, request.form, request.headers.get("X-Twilio-Signature"),
                     request.headers.get("X-Twilio-Webhooks-Signature-Settings"))

    @app.post("/twilio/whatsapp")
    def inbound() -> Response:
        started = time.perf_counter()
        cid = new_correlation_id()
        with bound(correlation_id=cid):
            result, response = _inbound(cid)
            metrics.INBOUND.labels(result).inc()
            metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started, exemplar={"correlation_id": cid})
            return response

    def _inbound(cid: str) -> tuple[str, Response]:
        form = request.form
        account_sid, to, sender = form.get("AccountSid", ""), form.get("To", ""), form.get("From", "")
        message_sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
        route = accounts.route(account_sid, to)
        if route is None:
            log.info("whatsapp.unknown_account", to=contact_for_log(to))
            return "unknown_account", twiml()
        if not signature_ok(route):
            log.warning("whatsapp.bad_signature", account_id=route.account.id)
            return "forbidden", _empty(403)
        account = route.account
        with bound(tenant=account.domain_name):
            if not message_sid or not sender:
                log.warning("whatsapp.incomplete_webhook")
                return "bad_request", _empty(400)
            verdict = limits.check(account.tenant_id, sender)
            if not verdict.allowed:
                log.info("whatsapp.rate_limited", scope=verdict.scope, contact=contact_for_log(sender))
                return "rate_limited", twiml(account.settings.rate_limit_reply if verdict.notify else None)
            try:
                count = min(MAX_MEDIA, max(0, int(form.get("NumMedia") or 0)))
            except ValueError:
                count = 0
            media = [MediaRef(form.get(f"MediaUrl{i}", ""), form.get(f"MediaContentType{i}", ""))
                     for i in range(count) if form.get(f"MediaUrl{i}")]
            message_id, created = store.store_inbound(
                account, message_sid=message_sid, contact=sender, body=form.get("Body", ""), media=media,
                correlation_id=cid, idempotency_token=request.headers.get("I-Twilio-Idempotency-Token", ""))
            if not created:
                log.info("whatsapp.duplicate_delivery", message_id=message_id)
                return "duplicate", twiml()
            try:
                enqueue(message_id, cid)
            except Exception as e:   # stored: the workers' recovery sweep queues it
                log.error("whatsapp.enqueue_failed", message_id=message_id, error=type(e).__name__)
            log.info("whatsapp.received", message_id=message_id, contact=contact_for_log(sender),
                     media=len(media), chars=len(form.get("Body", "")))
            return "queued", twiml()

    @app.post("/twilio/status")
    def status() -> Response:
        form = request.form
        with bound(correlation_id=request.args.get("cid", "")[:32]):
            routes = accounts.routes_of_sid(form.get("AccountSid", ""))
            if not routes or not any(signature_ok(r) for r in routes):
                metrics.STATUS_CALLBACKS.labels("forbidden").inc()
                return _empty(403)
            state = form.get("MessageStatus") or form.get("SmsStatus") or ""
            updated = store.delivery_status([r.account.id for r in routes], form.get("MessageSid", ""), state,
                                            form.get("ErrorCode", ""))
            metrics.STATUS_CALLBACKS.labels(state or "unknown").inc()
            if state in ("failed", "undelivered") and form.get("ErrorCode") == "63016":
                ids, sid = [r.account.id for r in routes], form.get("MessageSid", "")
                reopened = store.write(lambda: store.window_closed(ids, sid))
                if reopened is not None:
                    enqueue(*reopened)
            log.info("whatsapp.delivery_status", status=state, error_code=form.get("ErrorCode", ""), known=updated)
            return _empty(200)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as e:
            log.warning("whatsapp.health_failed", error=type(e).__name__)
            return Response('{"ok": false}', 503, mimetype="application/json")
        return Response('{"ok": true}', 200, mimetype="application/json")

    @app.get("/metrics")
    def prometheus() -> Response:
        if "application/openmetrics-text" in request.headers.get("Accept", ""):
            return Response(generate_openmetrics(REGISTRY), 200, content_type=OPENMETRICS_TYPE)
        return Response(generate_latest(REGISTRY), 200, content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        return _empty(e.code or 500)

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> Response:
        log.error("whatsapp.web_error", error=type(e).__name__, exc_info=True)
        return _empty(500)

    return app


def serve(app: Flask, host: str, port: int) -> Any:
    """gevent's WSGI server for `app` (started; ``.stop()`` to end). No access log: the app logs
    each webhook itself, redacted.

    The listening socket has ``TCP_NODELAY`` (accepted sockets inherit it): without it, a response
    on a kept-alive connection (a proxy in front, or Twilio reusing one) waits ~40 ms for the
    client's delayed ACK (Nagle's algorithm holding the last piece), measured in `benchmarks/whatsapp`.
    """
    import logging
    import socket

    from gevent.pywsgi import WSGIServer

    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(address)
    listener.listen(1024)
    server = WSGIServer(listener, app, log=None, error_log=logging.getLogger("ivr.whatsapp.wsgi"))
    server.start()
    return server

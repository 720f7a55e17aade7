"""Replies through Twilio's REST API with the ``twilio`` SDK (9.x) and our own ``http_client``.

`TwilioHttp` is the SDK's HTTP client: requests with a timeout on every call, no redirects, no
request logging (the SDK's own client logs bodies and numbers), and the API base from
``IVR_TWILIO_API_BASE`` — a regional edge, or the loopback stub the tests run. `TwilioSender.send`
creates one message (a body, or a Content template outside WhatsApp's 24-hour window) and maps
the outcome: 429 and 5xx, timeouts and connection errors are `Retryable`; error 63016 (outside
the window) is `OutsideWindow`; any other refusal is `Permanent`. `find_sent` looks for a part
already accepted by Twilio (a worker killed between Twilio's answer and our write), so a retried
part is not sent twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from whatsapp.errors import OutsideWindow, Permanent, Retryable
from whatsapp.settings import TWILIO_API, ChannelSettings
from whatsapp.store import AccountRoute

OUTSIDE_WINDOW_CODES = frozenset({63016})
_quiet = logging.getLogger("ivr.whatsapp.twilio_http")


class TwilioHttp(HttpClient):
    """The SDK's transport (see the module docstring)."""

    def __init__(self, api_base: str = TWILIO_API, *, timeout: float = 10.0,
                 session: requests.Session | None = None) -> None:
        super().__init__(_quiet, False, timeout)
        self.api_base = api_base.rstrip("/")
        self.session = session or requests.Session()

    def rebase(self, uri: str) -> str:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            raise Permanent("the twilio SDK asked for a host that is not Twilio's", error_class="TwilioHost")
        if self.api_base == TWILIO_API:
            return uri
        return self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")

    def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        try:
            response = self.session.request(method.upper(), self.rebase(uri), params=params,  # type: ignore[arg-type]
                                            data=data,
                                            headers=headers, auth=auth, timeout=timeout or self.timeout,
                                            allow_redirects=False)
        except requests.Timeout as e:
            raise Retryable("Twilio did not answer in time", error_class="TwilioTimeout") from e
        except requests.RequestException as e:
            raise Retryable("Twilio could not be reached", error_class="TwilioUnreachable") from e
        self._test_only_last_response = Response(response.status_code, response.text, response.headers)
        return self._test_only_last_response

    def log_request(self, kwargs: dict[str, Any]) -> None:   # bodies and numbers: never logged
        pass

    def log_response(self, status_code: int, response: Any) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SentMessage:
    sid: str
    status: str


def _mapped(e: TwilioRestException) -> Exception:
    code = int(e.code) if e.code is not None else None
    if code in OUTSIDE_WINDOW_CODES:
        return OutsideWindow()
    if e.status == 429:
        return Retryable("Twilio is rate limiting this account", error_class="TwilioRateLimited")
    if e.status >= 500:
        return Retryable(f"Twilio answered {e.status}", error_class="TwilioServerError")
    return Permanent(f"Twilio refused the message (HTTP {e.status}, code {code})",
                     error_class=f"TwilioRejected{code or e.status}")


class TwilioSender:
    """One SDK client per account (its credentials), sharing the channel's transport."""

    def __init__(self, settings: ChannelSettings, http: TwilioHttp | None = None) -> None:
        self.settings = settings
        self.http = http or TwilioHttp(settings.twilio_api_base, timeout=settings.twilio_timeout)
        self._clients: dict[tuple[str, str], Client] = {}

    def client(self, route: AccountRoute) -> Client:
        key = (route.account.account_sid, route.auth_token.reveal())
        client = self._clients.get(key)
        if client is None:
            client = Client(key[0], key[1], http_client=self.http)
            self._clients[key] = client
        return client

    def send(self, route: AccountRoute, to: str, *, body: str | None = None, content_sid: str | None = None,
             content_variables: Mapping[str, str] | None = None, status_callback: str | None = None) -> SentMessage:
        options: dict[str, Any] = {"to": to, "from_": route.account.from_number}
        if content_sid:
            options["content_sid"] = content_sid
            if content_variables:
                import json

                options["content_variables"] = json.dumps(dict(content_variables))
        else:
            options["body"] = body or ""
        if status_callback:
            options["status_callback"] = status_callback
        try:
            message = self.client(route).messages.create(**options)
        except TwilioRestException as e:
            raise _mapped(e) from e
        return SentMessage(str(message.sid), str(message.status or ""))

    def find_sent(self, route: AccountRoute, to: str, body: str, since: dt.datetime) -> str | None:
        """The SID of a message with this body already sent to `to` since `since`, if Twilio has one."""
        try:
            # Newest first; not filtered by DateSent: a message still queued at Twilio has none yet.
            found = self.client(route).messages.list(to=to, from_=route.account.from_number, limit=50)
        except TwilioRestException as e:
            raise _mapped(e) from e
        oldest = since - dt.timedelta(minutes=5)
        for message in found:
            created = message.date_created
            if (message.body or "") == body and (created is None or created >= oldest):
                return str(message.sid)
        return None

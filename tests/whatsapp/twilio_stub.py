"""A loopback stand-in for Twilio: its REST API for messages and media, its CDN, and its webhooks.

`TwilioStub` runs two real HTTP servers on this machine: the API on ``127.0.0.1`` and the media CDN
on ``localhost`` (another host name, so a redirect from one to the other is cross-host). The API
speaks Twilio's shapes: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (form fields, basic
auth, 201 with a Message resource), ``GET …/Messages.json`` (a page of them, newest first) and
``GET …/Messages/{MM}/Media/{ME}`` (302 to the CDN, like Twilio). Errors are Twilio's JSON
(``code``, ``message``, ``more_info``, ``status``). Tests script faults for the next creates:
``Fault(429)``, ``Fault(500)``, ``Fault(400, code=63016)``, ``Fault(delay=…)`` (an answer after
the client gave up — the message *is* accepted, as at Twilio).

For a stub in another process (the benchmark), ``GET /_stub/sent`` lists what was sent and
``POST /_stub/media?account=…&type=…`` adds a media resource (its MediaUrl is the answer).

It also plays Twilio's side of webhooks: `signed_form` signs a POST with an account's auth token
through the SDK's `RequestValidator`, and `status_callback` posts a signed delivery status.
"""

from __future__ import annotations

import base64
import email.utils
import json
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from twilio.request_validator import RequestValidator


@dataclass
class Fault:
    status: int = 0                # 0: no error status (with delay: accept, but late)
    code: int | None = None
    delay: float = 0.0


@dataclass
class SentRecord:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    content_sid: str
    status_callback: str
    created: float
    form: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class MediaRequest:
    host: str
    path: str
    authorization: str | None


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class _Server:
    def __init__(self, host: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TwilioStub:
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.sent: list[SentRecord] = []
        self.faults: deque[Fault] = deque()
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_requests: list[MediaRequest] = []
        self.lists = 0
        self.lock = threading.Lock()
        stub = self

        class Api(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                if payload is not None:
                    self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _account(self, sid: str) -> bool:
                expected = stub.tokens.get(sid)
                header = self.headers.get("Authorization", "")
                if expected is None or not header.startswith("Basic "):
                    return False
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user == sid and password == expected

            def do_POST(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                parts = parsed.path.strip("/").split("/")
                length = int(self.headers.get("Content-Length") or 0)
                if parsed.path == "/_stub/media":
                    query = urllib.parse.parse_qs(parsed.query)
                    url = stub.add_media(query["account"][0], self.rfile.read(length), query["type"][0])
                    return self._reply(200, {"url": url})
                form = urllib.parse.parse_qs(self.rfile.read(length).decode()) if length else {}
                if len(parts) != 4 or parts[:2] != ["2010-04-01", "Accounts"] or parts[3] != "Messages.json":
                    return self._reply(404, twilio_error(404, 20404, "not found"))
                sid = parts[2]
                if not self._account(sid):
                    return self._reply(401, twilio_error(401, 20003, "Authenticate"))
                with stub.lock:
                    fault = stub.faults.popleft() if stub.faults else Fault()
                if fault.status:
                    if fault.delay:
                        time.sleep(fault.delay)
                    return self._reply(fault.status, twilio_error(fault.status, fault.code or fault.status * 100 + 29,
                                                                  "scripted fault"))
                record = stub._record(sid, form)
                if fault.delay:
                    time.sleep(fault.delay)        # accepted, but the answer comes after the client gave up
                self._reply(201, stub.resource(record))

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                parts = parsed.path.strip("/").split("/")
                if parsed.path == "/_stub/sent":
                    with stub.lock:
                        sent = [{"to": r.to, "body": r.body, "content_sid": r.content_sid, "created": r.created}
                                for r in stub.sent]
                    return self._reply(200, sent)
                if len(parts) < 4 or parts[:2] != ["2010-04-01", "Accounts"]:
                    return self._reply(404, twilio_error(404, 20404, "not found"))
                sid = parts[2]
                if parts[3:] == ["Messages.json"]:
                    if not self._account(sid):
                        return self._reply(401, twilio_error(401, 20003, "Authenticate"))
                    query = urllib.parse.parse_qs(parsed.query)
                    stub.lists += 1
                    found = [r for r in reversed(stub.sent) if r.account_sid == sid
                             and r.to == query.get("To", [r.to])[0] and r.from_ == query.get("From", [r.from_])[0]]
                    size = int(query.get("PageSize", ["50"])[0])
                    return self._reply(200, {"messages": [stub.resource(r) for r in found[:size]], "end": len(found),
                                             "first_page_uri": parsed.path, "next_page_uri": None, "page": 0,
                                             "page_size": size, "previous_page_uri": None, "start": 0,
                                             "uri": parsed.path})
                if len(parts) == 7 and parts[3] == "Messages" and parts[5] == "Media":
                    stub.media_requests.append(MediaRequest("api", parsed.path, self.headers.get("Authorization")))
                    if not self._account(sid):
                        return self._reply(401, twilio_error(401, 20003, "Authenticate"))
                    key = parts[6]
                    if key not in stub.media:
                        return self._reply(404, twilio_error(404, 20404, "not found"))
                    return self._reply(302, None, {"Location": f"{stub.cdn_url}/v1/media/{key}"})
                return self._reply(404, twilio_error(404, 20404, "not found"))

        class Cdn(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                stub.media_requests.append(MediaRequest("cdn", path, self.headers.get("Authorization")))
                key = path.rsplit("/", 1)[-1]
                data, ctype = stub.media.get(key, (b"", ""))
                self.send_response(200 if ctype else 404)
                self.send_header("Content-Type", ctype or "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.api = _Server("127.0.0.1", Api)
        self.cdn = _Server("localhost", Cdn)

    # ---- the API's side ----------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    @property
    def cdn_url(self) -> str:
        return f"http://localhost:{self.cdn.port}"

    def add_account(self, auth_token: str) -> str:
        sid = "AC" + uuid.uuid4().hex
        self.tokens[sid] = auth_token
        return sid

    def add_media(self, account_sid: str, data: bytes, content_type: str) -> str:
        """A media resource; returns its MediaUrl (on the API host, as Twilio's are)."""
        key = "ME" + uuid.uuid4().hex
        self.media[key] = (data, content_type)
        return f"{self.api_url}/2010-04-01/Accounts/{account_sid}/Messages/MM{uuid.uuid4().hex}/Media/{key}"

    def _record(self, sid: str, form: dict[str, list[str]]) -> SentRecord:
        def one(name: str) -> str:
            return form.get(name, [""])[0]

        record = SentRecord("SM" + uuid.uuid4().hex, sid, one("To"), one("From"), one("Body"), one("ContentSid"),
                            one("StatusCallback"), time.time(), form)
        with self.lock:
            self.sent.append(record)
        return record

    @staticmethod
    def resource(r: SentRecord) -> dict[str, Any]:
        created = email.utils.formatdate(r.created, usegmt=True)
        return {"account_sid": r.account_sid, "api_version": "2010-04-01", "body": r.body, "date_created": created,
                "date_sent": None, "date_updated": created, "direction": "outbound-api", "error_code": None,
                "error_message": None, "from": r.from_, "messaging_service_sid": None, "num_media": "0",
                "num_segments": "1", "price": None, "price_unit": "USD", "sid": r.sid, "status": "queued",
                "subresource_uris": {"media": f"/2010-04-01/Accounts/{r.account_sid}/Messages/{r.sid}/Media.json"},
                "to": r.to, "uri": f"/2010-04-01/Accounts/{r.account_sid}/Messages/{r.sid}.json"}

    def fail_next(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def sent_to(self, to: str) -> list[SentRecord]:
        return [r for r in self.sent if r.to == to]

    # ---- Twilio's webhooks -------------------------------------------------------------------------

    @staticmethod
    def signed_form(url: str, fields: dict[str, str], auth_token: str) -> dict[str, str]:
        """The headers Twilio sends with a POST of `fields` to `url`."""
        return {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, fields),
                "I-Twilio-Idempotency-Token": uuid.uuid4().hex}

    def status_callback(self, record: SentRecord, status: str, *, error_code: str = "") -> requests.Response:
        fields = {"AccountSid": record.account_sid, "MessageSid": record.sid, "MessageStatus": status,
                  "SmsSid": record.sid, "SmsStatus": status, "To": record.to, "From": record.from_,
                  "ApiVersion": "2010-04-01"}
        if error_code:
            fields["ErrorCode"] = error_code
        headers = self.signed_form(record.status_callback, fields, self.tokens[record.account_sid])
        return requests.post(record.status_callback, data=fields, headers=headers, timeout=10)

    def close(self) -> None:
        self.api.close()
        self.cdn.close()


def inbound_fields(account_sid: str, to: str, sender: str, body: str = "", *, media: list[tuple[str, str]] = (),
                   message_sid: str | None = None) -> dict[str, str]:
    """A WhatsApp inbound webhook's fields, as Twilio posts them."""
    sid = message_sid or "SM" + uuid.uuid4().hex
    fields = {"SmsMessageSid": sid, "NumMedia": str(len(media)), "ProfileName": "Pat", "MessageType": "text",
              "SmsSid": sid, "WaId": sender.rsplit("+", 1)[-1], "SmsStatus": "received", "Body": body, "To": to,
              "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": account_sid,
              "From": sender, "ApiVersion": "2010-04-01"}
    for i, (url, ctype) in enumerate(media):
        fields[f"MediaUrl{i}"] = url
        fields[f"MediaContentType{i}"] = ctype
        fields["MessageType"] = "audio" if ctype.startswith("audio/") else "image"
    return fields

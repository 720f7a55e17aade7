"""The webhook node against a loopback HTTP server on 127.0.0.1: success with the JSON answer
mapped to variables, the HMAC signature verified on the server side, retries with exponential
backoff (500, timeout), no retry for 4xx, garbage JSON, missing fields, hosts not allowed."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from flows_fakes import FakeCall, make_ctx

from ivr_flows import FlowRunner, load_flow_text
from ivr_flows.webhook_signing import sign, verify

SECRET = "s3cret-for-tests"
NOW = dt.datetime(2026, 3, 9, 14, 0, tzinfo=dt.UTC)


class Stub:
    """Scripted answers (status, body, delay seconds); every request is kept with its signature check."""

    def __init__(self) -> None:
        self.answers: deque[tuple[int, bytes, float, dict[str, str]]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def answer(self, status: int, body: Any = b"{}", delay: float = 0.0, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers.append((status, raw, delay, headers or {}))


def make_handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            timestamp = self.headers.get("X-IVR-Timestamp", "")
            signature = self.headers.get("X-IVR-Signature", "")
            stub.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                    "signed": bool(signature) and verify(SECRET, timestamp, body, signature, now=NOW.timestamp()),
                }
            )
            status, raw, delay, headers = stub.answers.popleft() if stub.answers else (200, b"{}", 0.0, {})
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)
            except OSError:
                pass

        do_GET = do_POST = do_PUT = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


FLOW = """\
flow: hook
start: lookup
nodes:
  lookup:
    type: webhook
    url: "{url}/accounts/{{{{ vars.account }}}}"
    method: POST
    headers: {{X-Tenant: "{{{{ call.domain_name }}}}"}}
    body:
      account: "{{{{ vars.account }}}}"
      caller: "{{{{ caller.number }}}}"
      n: 3
      tags: [a, "{{{{ call.uuid }}}}"]
    timeout: {timeout}
    retries: {retries}
    backoff: 200ms
    sign_with: crm
    save: {{name: customer.name, balance: account.balance, first: orders.0.id}}
    status_var: http_status
    next: {{ok: done, error: failed}}
  done: {{type: hangup}}
  failed: {{type: hangup}}
"""


def run_hook(stub: Stub, *, timeout: str = "2s", retries: int = 2, flow: str | None = None, **ctx_options: Any):  # type: ignore[no-untyped-def]
    text = flow or FLOW.format(url=stub.url, timeout=timeout, retries=retries)
    sleeps: list[float] = []
    ctx_options.setdefault("allowed_url_hosts", frozenset({"127.0.0.1"}))
    ctx_options.setdefault("secrets", {"crm": SECRET})
    ctx = make_ctx(FakeCall(), at=NOW, vars={"account": "123456"}, sleep=sleeps.append, **ctx_options)
    result = FlowRunner(load_flow_text(text, "t.yaml"), ctx).run()
    return result, sleeps, ctx


ANSWER = {"customer": {"name": "Ada"}, "account": {"balance": -12.5}, "orders": [{"id": "o-1"}]}


def test_success_maps_json_fields_to_variables_and_signs_the_request(stub: Stub) -> None:
    stub.answer(200, ANSWER)
    result, sleeps, _ = run_hook(stub)
    assert result.path == ["lookup", "done"]
    assert (result.vars["name"], result.vars["balance"], result.vars["first"]) == ("Ada", -12.5, "o-1")
    assert result.vars["http_status"] == 200
    assert result.steps[0].detail == {"attempts": 1, "status": 200}
    assert sleeps == []
    (request,) = stub.requests
    assert (request["method"], request["path"]) == ("POST", "/accounts/123456")
    assert json.loads(request["body"]) == {
        "account": "123456",
        "caller": "+15550001111",
        "n": 3,
        "tags": ["a", "0b6e2f3a-call"],
    }
    assert request["headers"]["X-Tenant"] == "demo.example.com"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-IVR-Timestamp"] == str(int(NOW.timestamp()))
    assert request["signed"] is True
    assert request["headers"]["X-IVR-Signature"] == sign(SECRET, str(int(NOW.timestamp())), request["body"])


def test_a_wrong_secret_fails_the_servers_check(stub: Stub) -> None:
    stub.answer(200, ANSWER)
    run_hook(stub, secrets={"crm": "not-the-secret"})
    assert stub.requests[0]["signed"] is False


def test_retries_5xx_with_exponential_backoff(stub: Stub) -> None:
    stub.answer(500, {"error": "boom"})
    stub.answer(503, b"")
    stub.answer(200, ANSWER)
    result, sleeps, ctx = run_hook(stub)
    assert result.path == ["lookup", "done"]
    assert len(stub.requests) == 3
    assert sleeps == [0.2, 0.4]
    assert result.steps[0].detail == {"attempts": 3, "status": 200}
    assert [f["attempt"] for _, f in ctx.log.find("flow.webhook_failed")] == [1, 2]


def test_gives_up_after_the_retries(stub: Stub) -> None:
    for _ in range(3):
        stub.answer(500)
    result, sleeps, _ = run_hook(stub)
    assert result.path == ["lookup", "failed"]
    assert len(stub.requests) == 3
    assert sleeps == [0.2, 0.4]
    assert result.vars["http_status"] == 500


def test_timeout_is_retried_then_fails(stub: Stub) -> None:
    stub.answer(200, ANSWER, delay=1.5)
    stub.answer(200, ANSWER, delay=1.5)
    result, sleeps, ctx = run_hook(stub, timeout="200ms", retries=1)
    assert result.path == ["lookup", "failed"]
    assert len(stub.requests) == 2
    assert sleeps == [0.2]
    assert {f["error"] for _, f in ctx.log.find("flow.webhook_failed")} == {"ReadTimeout"}


def test_timeout_then_success(stub: Stub) -> None:
    stub.answer(200, ANSWER, delay=1.5)
    stub.answer(200, ANSWER)
    result, _, _ = run_hook(stub, timeout="200ms", retries=1)
    assert result.path == ["lookup", "done"]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_4xx_is_not_retried(stub: Stub, status: int) -> None:
    stub.answer(status, {"error": "no"})
    result, sleeps, _ = run_hook(stub)
    assert result.path == ["lookup", "failed"]
    assert len(stub.requests) == 1 and sleeps == []
    assert result.vars["http_status"] == status


def test_429_is_retried(stub: Stub) -> None:
    stub.answer(429)
    stub.answer(200, ANSWER)
    result, sleeps, _ = run_hook(stub)
    assert result.path == ["lookup", "done"]
    assert sleeps == [0.2]


def test_redirects_are_not_followed(stub: Stub) -> None:
    stub.answer(302, b"", headers={"Location": "http://169.254.169.254/latest/meta-data"})
    result, _, _ = run_hook(stub)
    assert result.path == ["lookup", "failed"]
    assert len(stub.requests) == 1


def test_garbage_json_is_an_error(stub: Stub) -> None:
    stub.answer(200, b"<html>not json</html>")
    result, sleeps, ctx = run_hook(stub)
    assert result.path == ["lookup", "failed"]
    assert len(stub.requests) == 1 and sleeps == []
    assert "name" not in result.vars
    assert ctx.log.find("flow.webhook_failed")[0][1]["error"] == "the answer is not JSON"


def test_a_missing_field_is_an_error_and_sets_nothing(stub: Stub) -> None:
    stub.answer(200, {"customer": {"name": "Ada"}, "account": {}})
    result, _, ctx = run_hook(stub)
    assert result.path == ["lookup", "failed"]
    assert "name" not in result.vars
    assert ctx.log.find("flow.webhook_failed")[0][1]["error"] == "the answer has no field 'account.balance'"


def test_get_without_body_or_save(stub: Stub) -> None:
    text = f"""\
flow: get
start: ping
nodes:
  ping: {{type: webhook, url: "{stub.url}/ping?n={{{{ vars.account }}}}", method: GET, next: {{ok: a, error: b}}}}
  a: {{type: hangup}}
  b: {{type: hangup}}
"""
    stub.answer(204, b"")
    result, _, _ = run_hook(stub, flow=text)
    assert result.path == ["ping", "a"]
    (request,) = stub.requests
    assert (request["method"], request["path"], request["body"]) == ("GET", "/ping?n=123456", b"")
    assert "X-IVR-Signature" not in request["headers"]


def test_host_not_allowed_makes_no_request(stub: Stub) -> None:
    result, _, ctx = run_hook(stub, allowed_url_hosts=frozenset({"crm.example.com"}))
    assert result.path == ["lookup", "failed"]
    assert stub.requests == []
    assert ctx.log.find("flow.webhook_refused")


def test_unknown_secret_is_an_error_without_request(stub: Stub) -> None:
    result, _, _ = run_hook(stub, secrets={})
    assert result.path == ["lookup", "failed"]
    assert stub.requests == []


def test_connection_refused_is_retried() -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    dead = Stub()
    dead.url = f"http://127.0.0.1:{port}"
    result, sleeps, _ = run_hook(dead, retries=2)
    assert result.path == ["lookup", "failed"]
    assert sleeps == [0.2, 0.4]


def test_a_shared_session_is_used_and_left_open(stub: Stub) -> None:
    stub.answer(200, ANSWER)
    with requests.Session() as session:
        result, _, _ = run_hook(stub, http_session=session)
        assert result.path == ["lookup", "done"]
        stub.answer(200, ANSWER)
        assert session.get(stub.url + "/again", timeout=2).status_code == 200


def test_get_with_a_body_is_refused_at_load() -> None:
    text = (
        'flow: g\nstart: p\nnodes:\n  p: {type: webhook, url: "http://x/", method: GET, body: {a: 1}, next: h}\n'
        "  h: {type: hangup}\n"
    )
    with pytest.raises(Exception, match="a GET webhook takes no body"):
        load_flow_text(text, "t.yaml")


def test_signature_helpers() -> None:
    signature = sign(SECRET, "1700000000", b'{"a":1}')
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, "1700000000", b'{"a":1}', signature)
    assert not verify(SECRET, "1700000000", b'{"a":2}', signature)
    assert not verify(SECRET, "1700000000", b'{"a":1}', signature, now=1700000000 + 301)
    assert not verify(SECRET, "soon", b'{"a":1}', signature, now=1700000000)

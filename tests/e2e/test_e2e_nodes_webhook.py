"""`webhook` end to end against a loopback HTTP server (127.0.0.1, a free port): success with the
answer's fields used by the next prompt, timeout, 500, an answer that is not JSON, and the HMAC
signature checked by the server itself; the call goes through the simulator over real TCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_controller import TENANT_NAME
from test_e2e_nodes_rig import HookServer, NodeRig, Placed

from esl_controller.simulator import CallerScript

FOUND = "Hello Ada, your balance is 42 and your order is A-17."
FAILED = "Sorry, we could not look you up."


@pytest.fixture()
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def lookup(tmp_path: Path, hook: HookServer, case: str, *, secret: str | None = None,
           hosts: frozenset[str] = frozenset({"127.0.0.1"})) -> Placed:
    with NodeRig(tmp_path, "nodes-webhook") as rig:
        rig.services["allowed_url_hosts"] = hosts
        rig.services["secrets"] = {"crm": secret or hook.secret}
        rig.vars.update(hook=hook.url, case=case)
        # A patient caller: the webhook runs before anything answers the call, in real time, which
        # is 40 times longer for the simulated caller who waits for an answer.
        return rig.call(CallerScript([], max_call_seconds=600, ring_timeout=600))


def test_success_saves_fields_that_the_next_prompt_speaks(tmp_path: Path, hook: HookServer) -> None:
    placed = lookup(tmp_path, hook, "ok")
    assert placed.steps == [("lookup", "ok"), ("found", "hangup")]
    assert placed.heard() == [FOUND]
    assert (placed.record.vars["customer"], placed.record.vars["balance"]) == ("Ada", 42)
    assert placed.record.vars["lookup_status"] == 200
    assert placed.step("lookup")["detail"] == {"attempts": 1, "status": 200}
    (request,) = hook.requests
    assert (request.method, request.path) == ("POST", "/ok")
    assert json.loads(request.body) == {"caller": "5551234", "call": placed.record.call_uuid, "source": "ivr"}
    assert request.headers["X-Tenant"] == TENANT_NAME
    assert request.headers["Content-Type"] == "application/json"
    assert request.signature_ok is True                           # checked by the server


def test_signature_is_verified_on_the_server_side(tmp_path: Path, hook: HookServer) -> None:
    placed = lookup(tmp_path, hook, "signed")
    assert placed.steps == [("lookup", "ok"), ("found", "hangup")]
    assert [r.signature_ok for r in hook.requests] == [True]


def test_a_wrong_secret_is_refused_by_the_server_and_not_retried(tmp_path: Path, hook: HookServer) -> None:
    placed = lookup(tmp_path, hook, "signed", secret="not-the-crm-secret")
    assert [r.signature_ok for r in hook.requests] == [False]     # one attempt: a 401 is not retried
    assert placed.steps == [("lookup", "error"), ("failed", "hangup")]
    assert placed.record.vars["lookup_status"] == 401
    assert placed.heard() == [FAILED]


def test_timeout_is_retried_then_error(tmp_path: Path, hook: HookServer) -> None:
    placed = lookup(tmp_path, hook, "slow")
    assert [r.path for r in hook.requests] == ["/slow", "/slow"]
    assert placed.steps == [("lookup", "error"), ("failed", "hangup")]
    assert placed.step("lookup")["detail"] == {"attempts": 2, "status": None}
    assert "lookup_status" not in placed.record.vars
    assert [e["error"] for e in placed.events("flow.webhook_failed")] == ["ReadTimeout", "ReadTimeout"]
    assert placed.heard() == [FAILED]


def test_http_500_is_retried_then_error(tmp_path: Path, hook: HookServer) -> None:
    placed = lookup(tmp_path, hook, "fail")
    assert [r.path for r in hook.requests] == ["/fail", "/fail"]
    assert placed.steps == [("lookup", "error"), ("failed", "hangup")]
    assert placed.record.vars["lookup_status"] == 500
    assert placed.step("lookup")["detail"] == {"attempts": 2, "status": 500}


def test_an_answer_that_is_not_json_is_error_without_retry(tmp_path: Path, hook: HookServer) -> None:
    placed = lookup(tmp_path, hook, "garbage")
    assert [r.path for r in hook.requests] == ["/garbage"]
    assert placed.steps == [("lookup", "error"), ("failed", "hangup")]
    assert placed.record.vars["lookup_status"] == 200
    assert "customer" not in placed.record.vars
    assert [e["error"] for e in placed.events("flow.webhook_failed")] == ["the answer is not JSON"]


def test_a_host_the_tenant_does_not_allow_is_never_called(tmp_path: Path, hook: HookServer) -> None:
    placed = lookup(tmp_path, hook, "ok", hosts=frozenset({"crm.example.com"}))
    assert hook.requests == []
    assert placed.steps == [("lookup", "error"), ("failed", "hangup")]
    assert placed.events("flow.webhook_refused")

"""Webhooks and URL prompts under ``ivr serve``: a per-tenant host allow-list an operator sets, and
private or loopback addresses refused unless the operator allows their network explicitly.

Finding: no way to allow a webhook or URL-prompt host under ``ivr serve`` was found: every webhook
was refused (the controller's allow-list was always empty).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flows_fakes import FakeCall, make_ctx
from test_flows_webhook import ANSWER, NOW, SECRET, Stub, run_hook, stub  # noqa: F401 (fixture)

from ivr_flows import FlowRunner, load_flow_text
from ivr_flows.errors import PromptPathError
from ivr_flows.nodes.base import Prompt
from ivr_flows.prompts import media_path
from ivr_flows.templating import Template
from ivr_flows.url_policy import UrlPolicy


def test_hosts_must_be_listed_and_addresses_public() -> None:
    policy = UrlPolicy(["crm.example.com", "*.example.org", "127.0.0.1", "localhost"])
    assert policy.problem("https://crm.example.com/x") is None
    assert policy.problem("https://api.example.org/x") is None
    assert "not in the tenant's allowed URL hosts" in (policy.problem("https://evil.example.net/") or "")
    assert "not public" in (policy.problem("http://127.0.0.1:8080/") or "")
    assert "not public" in (policy.problem("http://localhost:8080/", resolve=True) or "")
    for address in ("10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "0.0.0.0"):
        assert policy.address_problem(address), address
    assert policy.address_problem("93.184.216.34") is None
    opened = UrlPolicy(["127.0.0.1", "localhost"], ["127.0.0.0/8"])
    assert opened.problem("http://127.0.0.1:8080/") is None
    assert opened.problem("http://localhost:8080/", resolve=True) is None
    assert UrlPolicy().problem("https://crm.example.com/") is not None       # empty: nothing allowed


def test_a_webhook_to_a_listed_loopback_host_is_refused_until_its_network_is_allowed(stub: Stub) -> None:  # noqa: F811
    stub.answer(200, ANSWER)
    result, _, ctx = run_hook(stub, allowed_url_hosts=UrlPolicy(["127.0.0.1"]))
    assert result.outcome == "hangup" and result.steps[-1].node == "failed"
    assert stub.requests == [], "nothing may reach the loopback address"
    stub.answer(200, ANSWER)
    result, _, ctx = run_hook(stub, allowed_url_hosts=UrlPolicy(["127.0.0.1"], ["127.0.0.1/32"]))
    assert result.steps[-1].node == "done" and ctx.vars["name"] == "Ada" and len(stub.requests) == 1


def test_the_session_checks_the_address_it_connected_to(stub: Stub) -> None:  # noqa: F811
    """A name allowed by pattern that resolves to loopback (DNS rebinding) is refused at connect."""
    port = stub.url.rsplit(":", 1)[1]
    policy = UrlPolicy(["localhost"])
    flow = f"""\
flow: hook
start: lookup
nodes:
  lookup: {{type: webhook, url: "http://localhost:{port}/x", method: GET, timeout: 2s, retries: 0,
           next: {{ok: done, error: failed}}}}
  done: {{type: hangup}}
  failed: {{type: hangup}}
"""
    ctx = make_ctx(FakeCall(), at=NOW, allowed_url_hosts=policy, secrets={"crm": SECRET})
    result = FlowRunner(load_flow_text(flow, "t.yaml"), ctx).run()
    assert result.steps[-1].node == "failed" and stub.requests == []


def test_a_url_prompt_resolving_to_a_private_address_is_refused() -> None:
    ctx = make_ctx(FakeCall(), allowed_url_hosts=UrlPolicy(["localhost"]))
    with pytest.raises(PromptPathError, match="not public"):
        media_path(ctx, Prompt("url", Template("http://localhost/welcome.wav")))
    ctx = make_ctx(FakeCall(), allowed_url_hosts=UrlPolicy(["localhost"], ["127.0.0.0/8", "::1/128"]))
    assert media_path(ctx, Prompt("url", Template("http://localhost/welcome.wav"))) == "http_cache://http://localhost/welcome.wav"


def test_the_operator_sets_the_lists_per_tenant_and_the_controller_uses_them(tmp_path: Path) -> None:
    from esl_controller.database_routing import DatabaseRouting
    from ivr_flows.call import CallInfo
    from schema.database import make_engine, make_session_factory
    from schema.demo import seed_demo
    from schema.tenants import find_tenant
    from scripts.tenants_commands import tenants

    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    seed_demo(url, Path(__file__).resolve().parents[2] / "examples" / "flows")
    runner = CliRunner()
    result = runner.invoke(tenants, ["update", "tenant-a.example", "--url", url, "--allow-host", "crm.example.com",
                                     "--allow-host", "*.Example.org", "--allow-network", "10.1.2.0/24"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(tenants, ["update", "tenant-a.example", "--url", url, "--allow-network", "not-a-net"])
    assert bad.exit_code == 2 and "is not a network" in bad.output
    settings = find_tenant(make_session_factory(make_engine(url)), "tenant-a.example").settings
    assert settings["url_hosts"] == ["crm.example.com", "*.example.org"]
    assert settings["url_networks"] == ["10.1.2.0/24"]
    routing = DatabaseRouting(make_engine(url), prompt_root=tmp_path / "prompts")
    route = routing.route(CallInfo(uuid="c1", domain_uuid="11111111-1111-1111-1111-111111111111",
                                   domain_name="tenant-a.example", destination_number="5000"))
    assert route is not None
    policy = route.services["allowed_url_hosts"]
    assert isinstance(policy, UrlPolicy) and policy.problem("https://api.example.org/") is None
    assert policy.address_problem("10.1.2.7") is None and policy.address_problem("10.9.9.9")

"""Tenant snapshots and call → tenant → flow resolution (from memory: no database query), and the
per-tenant concurrent-call limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from schema.errors import SecretKeyMissing, TenantNotFound
from schema.limits import CallLimiter
from schema.resolve import ResolutionStatus, SnapshotIndex, resolve_tenant
from schema.snapshot import load_snapshot, load_snapshots
from schema.store import TenantStore
from schema.tenants import add_tenant, update_tenant

UUID_A = "11111111-1111-1111-1111-111111111111"
UUID_B = "22222222-2222-2222-2222-222222222222"


@pytest.fixture
def populated(sessions: sessionmaker[Session], secret_key: str) -> dict[str, TenantStore]:
    a = TenantStore(sessions, add_tenant(sessions, "tenant-a.example", domain_uuid=UUID_A,
                                         max_concurrent_calls=2).id)
    b = TenantStore(sessions, add_tenant(sessions, "tenant-b.example", domain_uuid=UUID_B).id)
    a.add_version("demo", "flow: demo\n# a1\n", author="x")
    a.add_version("demo", "flow: demo\n# a2\n", author="x")
    a.set_route("5000", "demo")
    a.set_route("5001", "draft", require_published=False)   # routed, never published (a hand-made row)
    a.add_version("draft", "flow: draft\n", author="x", publish=False)
    a.set_route("7000", "demo")
    b.add_version("demo", "flow: demo\n# b\n", author="y")
    b.set_route("5000", "demo")                        # same extension as tenant A
    b.set_route("6000", "demo")
    a.set_provider("stt", "vosk", position=1, settings={"model": "/m"})
    a.set_provider("stt", "deepgram", position=0, secrets={"api_key": "dg-0123456789abcdef"})
    a.set_provider("llm", "openai", secrets={"api_key": "sk-0123456789abcdef"})
    return {"a": a, "b": b}


def test_snapshots_hold_published_flows_routes_and_decrypted_provider_chains(
        engine: Engine, populated: dict[str, TenantStore]) -> None:
    snaps = load_snapshots(engine)
    assert set(snaps) == {UUID_A, UUID_B}
    a = snaps[UUID_A]
    assert a.domain_name == "tenant-a.example" and a.max_concurrent_calls == 2
    assert dict(a.routes) == {"5000": "demo", "5001": "draft", "7000": "demo"}
    assert set(a.flows) == {"demo"} and a.flows["demo"].version == 2
    assert a.flows["demo"].yaml_text == "flow: demo\n# a2\n"
    assert [p.provider for p in a.providers_for("stt")] == ["deepgram", "vosk"]
    assert a.providers_for("stt")[0].secrets["api_key"].reveal() == "dg-0123456789abcdef"
    assert "dg-0123456789abcdef" not in repr(a)
    assert load_snapshot(engine, "tenant-b.example").flows["demo"].yaml_text == "flow: demo\n# b\n"
    with pytest.raises(TenantNotFound):
        load_snapshot(engine, "nobody.example")


def test_a_snapshot_keeps_its_version_after_a_new_publish(engine: Engine,
                                                          populated: dict[str, TenantStore]) -> None:
    before = load_snapshot(engine, UUID_A)
    populated["a"].add_version("demo", "flow: demo\n# a3\n", author="x")
    assert before.flows["demo"].version == 2                     # the running call's copy is unchanged
    assert load_snapshot(engine, UUID_A).flows["demo"].version == 3  # a reload sees the new one


def test_snapshot_load_fails_cleanly_without_keys(engine: Engine, populated: dict[str, TenantStore],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_SECRET_KEYS")
    with pytest.raises(SecretKeyMissing):
        load_snapshots(engine)
    assert load_snapshot(engine, UUID_B).providers == ()  # a tenant without secrets still loads


@pytest.mark.parametrize(("channel_vars", "status", "tenant", "flow_version", "matched_by"), [
    ({"variable_domain_uuid": UUID_A, "Caller-Destination-Number": "5000"}, "ok", "tenant-a.example", 2,
     "domain_uuid"),
    ({"variable_domain_uuid": UUID_B.upper(), "Caller-Destination-Number": "5000"}, "ok", "tenant-b.example",
     1, "domain_uuid"),
    ({"variable_domain_name": "Tenant-B.example", "Caller-Destination-Number": "5000"}, "ok",
     "tenant-b.example", 1, "domain_name"),
    ({"variable_domain_uuid": UUID_A, "variable_domain_name": "tenant-a.example",
      "Caller-Destination-Number": "7000"}, "ok", "tenant-a.example", 2, "domain_uuid"),
    ({"Caller-Destination-Number": "6000"}, "ok", "tenant-b.example", 1, "number"),
    ({"Caller-Destination-Number": "5000"}, "unknown_tenant", None, None, ""),        # shared number
    ({"Caller-Destination-Number": "9999"}, "unknown_number", None, None, ""),
    ({}, "unknown_number", None, None, ""),
    ({"variable_domain_uuid": "33333333-3333-3333-3333-333333333333", "Caller-Destination-Number": "6000"},
     "unknown_tenant", None, None, ""),                                               # no fall-through
    ({"variable_domain_name": "evil.example", "Caller-Destination-Number": "6000"}, "unknown_tenant",
     None, None, ""),
    ({"variable_domain_uuid": UUID_A, "variable_domain_name": "tenant-b.example",
      "Caller-Destination-Number": "5000"}, "unknown_tenant", None, None, ""),        # contradiction
    ({"variable_domain_uuid": UUID_A, "Caller-Destination-Number": "6000"}, "unknown_number",
     "tenant-a.example", None, "domain_uuid"),
    ({"variable_domain_uuid": UUID_A, "Caller-Destination-Number": "5001"}, "no_published_flow",
     "tenant-a.example", None, "domain_uuid"),
])
def test_resolve_tenant(engine: Engine, populated: dict[str, TenantStore], channel_vars: dict[str, str],
                        status: str, tenant: str | None, flow_version: int | None, matched_by: str) -> None:
    snaps = load_snapshots(engine)
    for source in (snaps, SnapshotIndex.build(snaps)):
        result = resolve_tenant(source, channel_vars)
        assert result.status == ResolutionStatus(status), result.reason
        assert (result.tenant.domain_name if result.tenant else None) == tenant
        assert (result.flow.version if result.flow else None) == flow_version
        assert result.matched_by == matched_by
        assert result.ok == (status == "ok")
        assert result.reason and (status == "ok" or "unknown" in result.reason or "no published" in result.reason)


def test_resolution_runs_no_database_query(engine: Engine, populated: dict[str, TenantStore],
                                           sqlite_url: str) -> None:
    snaps = load_snapshots(engine)
    index = SnapshotIndex.build(snaps)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    engine.dispose()
    Path(sqlite_url.removeprefix("sqlite:///")).unlink()  # the database is gone
    for _ in range(100):
        assert resolve_tenant(index, {"variable_domain_uuid": UUID_A, "Caller-Destination-Number": "5000"}).ok
        assert resolve_tenant(snaps, {"Caller-Destination-Number": "6000"}).ok
    assert statements == []


def test_call_limiter_admits_up_to_the_limit_then_applies_the_tenant_action(
        sessions: sessionmaker[Session], engine: Engine, populated: dict[str, TenantStore]) -> None:
    limiter = CallLimiter()
    a = load_snapshot(engine, UUID_A)
    first, second, third = (limiter.try_acquire(a) for _ in range(3))
    assert (first.admitted, second.admitted, third.admitted) == (True, True, False)
    assert third.action == "reject" and third.hangup_cause == "USER_BUSY" and limiter.active(a.key) == 2
    limiter.release(a)
    assert limiter.try_acquire(a).admitted
    update_tenant(sessions, UUID_A, over_limit_action="announce",
                  settings={"over_limit_prompt": "All agents are busy.", "over_limit_hangup_cause": "CALL_REJECTED"})
    a = load_snapshot(engine, UUID_A)
    over = limiter.try_acquire(a)
    assert (over.admitted, over.action, over.prompt, over.hangup_cause) == (
        False, "announce", "All agents are busy.", "CALL_REJECTED")
    update_tenant(sessions, UUID_A, over_limit_action="transfer", settings={"over_limit_transfer": "1000"})
    over = limiter.try_acquire(load_snapshot(engine, UUID_A))
    assert (over.action, over.transfer_to) == ("transfer", "1000")
    update_tenant(sessions, UUID_A, settings={})  # transfer without a target falls back to reject
    assert limiter.try_acquire(load_snapshot(engine, UUID_A)).action == "reject"
    b = load_snapshot(engine, UUID_B)  # no limit set: always admitted, other tenants unaffected
    assert all(limiter.try_acquire(b).admitted for _ in range(50))
    assert limiter.active(a.key) == 2


def test_call_limiter_slot_releases(engine: Engine, populated: dict[str, TenantStore]) -> None:
    limiter = CallLimiter()
    a = load_snapshot(engine, UUID_A)
    with pytest.raises(RuntimeError), limiter.slot(a) as admission:
        assert admission.admitted and limiter.active(a.key) == 1
        raise RuntimeError("call failed")
    assert limiter.active(a.key) == 0
    assert limiter.release(a) == 0  # an extra release never goes negative
    assert limiter.active(a.key) == 0

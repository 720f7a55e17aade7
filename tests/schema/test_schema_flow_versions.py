"""Publishing flows through the real `ivr_flows` validator: an invalid flow is never published, the
same text twice makes no new version, history/rollback/export, and the idempotent demo seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from schema.errors import FlowRejected, VersionNotFound
from schema.flow_versions import export, history, publish, publish_text, rollback
from schema.resolve import resolve_tenant
from schema.snapshot import load_snapshots
from schema.store import TenantStore
from schema.tenants import add_tenant

ivr_flows = pytest.importorskip("ivr_flows")
if not hasattr(ivr_flows, "load_flow_text"):  # pragma: no cover - while ivr_flows is being written
    pytest.skip("ivr_flows.load_flow_text is not there yet", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
HELLO = """flow: hello
start: hi
nodes:
  hi:
    type: say
    text: Hello
    next: bye
  bye: {type: hangup, say: Goodbye}
"""


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> TenantStore:
    return TenantStore(sessions, add_tenant(sessions, "a.example").id)


def test_publish_history_rollback_export(store: TenantStore, tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    first = publish(store, path, "alice")
    assert (first.created, first.changed, first.version.version) == (True, True, 1)
    assert first.version.flow_name == "hello" and first.version.source == str(path)
    again = publish(store, path, "bob")
    assert (again.created, again.changed, again.version.id) == (False, False, first.version.id)
    path.write_text(HELLO.replace("Hello", "Hello again"))
    second = publish(store, path, "carol")
    assert (second.created, second.version.version) == (True, 2)
    assert [(v.version, v.published, v.author) for v in history(store, "hello")] == [
        (2, True, "carol"), (1, False, "alice")]
    assert "Hello again" in export(store, "hello") and "Hello again" not in export(store, "hello", 1)
    assert rollback(store, "hello").version == 1
    assert store.published_version("hello").version == 1
    with pytest.raises(VersionNotFound, match="no version before 1"):
        rollback(store, "hello")
    assert rollback(store, "hello", version=2).version == 2
    with pytest.raises(VersionNotFound):
        rollback(store, "hello", version=9)


def test_an_invalid_flow_is_never_published(store: TenantStore, tmp_path: Path) -> None:
    publish_text(store, HELLO, source="hello.yaml", author="alice")
    bad = tmp_path / "hello.yaml"
    bad.write_text(HELLO.replace("next: bye", "next: nowhere"))
    with pytest.raises(FlowRejected) as caught:
        publish(store, bad, "mallory")
    messages = [str(e) for e in caught.value.errors]
    assert any(m.startswith(f"{bad}:7:11: node 'hi': ") and "nowhere" in m for m in messages), messages
    assert "nowhere" in str(caught.value)
    assert [v.version for v in history(store, "hello")] == [1]
    assert export(store, "hello") == HELLO


def test_rollback_refuses_a_version_that_no_longer_validates(store: TenantStore) -> None:
    publish_text(store, HELLO, source="hello.yaml", author="alice")
    # a version stored without validation (as an older, laxer validator might have let through)
    broken, _ = store.add_version("hello", HELLO.replace("type: say", "type: sing"), author="old",
                                  publish=False)
    with pytest.raises(FlowRejected):
        rollback(store, "hello", version=broken.version)
    assert store.published_version("hello").version == 1


def test_seed_demo_is_idempotent_and_routes_5000(tmp_path: Path) -> None:
    from schema.demo import DEMO_DOMAIN_UUID, seed_demo

    if not (REPO / "examples" / "flows" / "demo.yaml").is_file():
        pytest.skip("examples/flows/demo.yaml is not written yet")
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    first = seed_demo(url, REPO / "examples" / "flows")
    second = seed_demo(url, REPO / "examples" / "flows")
    assert first.tenant_created and first.publish.created
    assert not second.tenant_created and not second.publish.created
    assert first.tenant.domain_uuid == DEMO_DOMAIN_UUID and first.tenant.domain_name == "tenant-a.example"
    from schema.database import make_engine

    engine: Engine = make_engine(url)
    try:
        result = resolve_tenant(load_snapshots(engine), {"variable_domain_uuid": DEMO_DOMAIN_UUID,
                                                         "Caller-Destination-Number": "5000"})
        assert result.ok and result.flow is not None
        assert result.flow.yaml_text == (REPO / "examples" / "flows" / "demo.yaml").read_text()
    finally:
        engine.dispose()

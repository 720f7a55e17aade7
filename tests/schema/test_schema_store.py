"""TenantStore and tenant rows on a real SQLite database: routes, flow versions, documents, chunks,
providers, call records."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from schema.errors import (
    AlreadyExists,
    FlowNotFound,
    InvalidValue,
    TenantNotFound,
    VersionNotFound,
)
from schema.store import ChunkInput, TenantStore, checksum
from schema.tenants import add_tenant, find_tenant, list_tenants, update_tenant


def test_tenants_add_find_update(sessions: sessionmaker[Session]) -> None:
    t = add_tenant(sessions, "Tenant-A.Example", domain_uuid="11111111-1111-1111-1111-111111111111",
                   time_zone="America/Sao_Paulo", settings={"over_limit_prompt": "busy"})
    assert t.domain_name == "tenant-a.example"
    assert find_tenant(sessions, "11111111-1111-1111-1111-111111111111").id == t.id
    assert find_tenant(sessions, "TENANT-A.example").id == t.id
    assert find_tenant(sessions, t.id).domain_name == "tenant-a.example"
    with pytest.raises(AlreadyExists):
        add_tenant(sessions, "tenant-a.example")
    with pytest.raises(AlreadyExists):
        add_tenant(sessions, "other.example", domain_uuid="11111111-1111-1111-1111-111111111111")
    with pytest.raises(InvalidValue):
        add_tenant(sessions, "x.example", domain_uuid="not-a-uuid")
    with pytest.raises(InvalidValue):
        add_tenant(sessions, "x.example", time_zone="Mars/Olympus")
    with pytest.raises(InvalidValue):
        add_tenant(sessions, "x.example", over_limit_action="explode")
    with pytest.raises(TenantNotFound):
        find_tenant(sessions, "nobody.example")
    updated = update_tenant(sessions, t.id, max_concurrent_calls=3, over_limit_action="announce")
    assert (updated.max_concurrent_calls, updated.over_limit_action) == (3, "announce")
    assert [x.domain_name for x in list_tenants(sessions)] == ["tenant-a.example"]


def test_flow_versions_are_numbered_deduplicated_and_published(sessions: sessionmaker[Session]) -> None:
    store = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    v1, created1 = store.add_version("main", "flow: main\n# one\n", author="alice", source="main.yaml")
    v2, created2 = store.add_version("main", "flow: main\n# two\n", author="bob")
    again, created3 = store.add_version("main", "flow: main\n# two\n", author="carol")
    assert (created1, created2, created3) == (True, True, False)
    assert (v1.version, v2.version, again.id) == (1, 2, v2.id)
    assert v1.checksum == checksum("flow: main\n# one\n")
    assert [v.version for v in store.versions("main")] == [2, 1]
    assert store.published_version("main").id == v2.id
    assert store.flow("main").published_version == 2
    store.set_published("main", v1.id)
    assert store.published_version("main").version == 1
    assert [v.published for v in store.versions("main")] == [False, True]
    # re-adding the text of v2 makes no new version but publishes v2 again
    back, created = store.add_version("main", "flow: main\n# two\n", author="dave")
    assert not created and back.id == v2.id and back.published
    assert store.version_by_number("main", 1).author == "alice"
    with pytest.raises(VersionNotFound):
        store.version_by_number("main", 7)
    with pytest.raises(FlowNotFound):
        store.versions("nope")
    unpublished, _ = store.add_version("draft", "flow: draft\n", author="x", publish=False)
    with pytest.raises(VersionNotFound):
        store.published_version("draft")
    assert [v.flow_name for v in store.published_versions()] == ["main"]
    assert unpublished.published is False


def test_flow_version_rows_refuse_orm_updates(sessions: sessionmaker[Session]) -> None:
    from schema.models import FlowVersion

    store = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    v, _ = store.add_version("main", "flow: main\n", author="a")
    with sessions() as s:
        row = s.get(FlowVersion, v.id)
        assert row is not None
        row.yaml_text = "flow: evil\n"
        with pytest.raises(InvalidValue, match="immutable"):
            s.commit()


def test_routes(sessions: sessionmaker[Session]) -> None:
    store = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    with pytest.raises(FlowNotFound, match="no flow named 'demo'"):
        store.set_route("5000", "demo")                      # a route to nothing is refused
    for name in ("demo", "sales", "main"):
        store.add_version(name, f"flow: {name}\n", author="x")
    store.add_version("draft", "flow: draft\n", author="x", publish=False)
    with pytest.raises(FlowNotFound, match="no published version"):
        store.set_route("5000", "draft")
    with pytest.raises(FlowNotFound, match="did you mean 'sales'"):
        store.set_route("5000", "sals")
    store.set_route("5000", "demo")
    store.set_route("5001", "sales")
    store.set_route("5000", "main")
    assert [(r.number, r.flow_name) for r in store.routes()] == [("5000", "main"), ("5001", "sales")]
    store.delete_route("5001")
    assert [r.number for r in store.routes()] == ["5000"]
    with pytest.raises(InvalidValue):
        store.set_route(" ", "x")


def test_documents_and_chunks(sessions: sessionmaker[Session]) -> None:
    store = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    doc = store.add_document("kb/faq.md", sha256="a" * 64, title="FAQ", embedding_model="minilm",
                             chunks=[ChunkInput("first", 0, {"page": 1}), ChunkInput("second", 1)],
                             meta={"lang": "en"})
    assert doc.chunk_count == 2 and doc.meta == {"lang": "en"}
    chunks = store.chunks(doc.id)
    assert [c.text for c in chunks] == ["first", "second"]
    assert chunks[0].meta == {"page": 1} and chunks[0].source_path == "kb/faq.md" and chunks[0].title == "FAQ"
    ids = [c.id for c in chunks]
    assert [c.text for c in store.get_chunks([ids[1], ids[0], 999999])] == ["second", "first"]
    replaced = store.add_document("kb/faq.md", sha256="b" * 64, title="FAQ v2", embedding_model="minilm",
                                  chunks=[ChunkInput("only", 0)])
    assert replaced.chunk_count == 1 and store.get_chunks(ids) == []
    assert store.document_by_path("kb/faq.md").sha256 == "b" * 64
    store.delete_document(replaced.id)
    assert store.documents() == [] and store.chunks() == []


def test_chunk_cannot_be_filed_under_another_tenant_than_its_document(
        sessions: sessionmaker[Session], engine: Engine) -> None:
    a = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    b = TenantStore(sessions, add_tenant(sessions, "b.example").id)
    doc = a.add_document("x.md", sha256="0" * 64, title="x", embedding_model="m", chunks=[])
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO chunks (document_id, tenant_id, ordinal, text, embedding_model, metadata) "
                          "VALUES (:d, :t, 0, 'x', 'm', '{}')"), {"d": doc.id, "t": b.tenant_id})

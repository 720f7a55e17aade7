"""No public function or CLI command of `schema` reaches another tenant's flows, documents, chunks,
recordings, call records, routes or secrets.  Tenant B tries every way in to tenant A's rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from schema.call_records import CallRecordWriter
from schema.errors import CallRecordError, NotFound
from schema.flow_versions import export, history
from schema.secrets import Secret
from schema.snapshot import load_snapshot, load_snapshots
from schema.store import TenantStore
from scripts.tenants_commands import tenants

# what only tenant A has (see the two_tenants fixture)
A_MARKERS = ("Tenant A secret menu", "sk-tenant-a-very-secret-key-1234", "A's secret price", "secret.wav",
             "A prices", "5000", "a.example")


def _plain(value: Any) -> Any:
    """Everything a value holds, secrets revealed and fields hidden from repr included."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, Secret):
        return value.reveal()
    return value if isinstance(value, int | float | bool | type(None)) else str(value)


def _leaks(value: Any) -> list[str]:
    text = json.dumps(_plain(value))
    return [m for m in A_MARKERS if m in text]


def test_leak_detector_sees_hidden_fields_and_secrets(two_tenants: Any) -> None:
    a: TenantStore = two_tenants.a
    assert "Tenant A secret menu" in _leaks(a.version(two_tenants.a_version_id))
    assert "sk-tenant-a-very-secret-key-1234" in _leaks(a.providers(decrypt=True))


def _attempts(two: Any) -> dict[str, Callable[[], Any]]:
    """One or more attempts per public TenantStore method, all as tenant B aiming at A's rows."""
    b: TenantStore = two.b
    return {
        "tenant": b.tenant,
        "set_route": lambda: b.set_route("6001", "main"),
        "delete_route": lambda: b.delete_route("5000"),
        "routes": b.routes,
        "flows": b.flows,
        "flow": lambda: b.flow("main"),
        "versions": lambda: b.versions("main"),
        "version": lambda: b.version(two.a_version_id),
        "version_by_number": lambda: b.version_by_number("main", 1),
        "published_version": lambda: b.published_version("main"),
        "published_versions": b.published_versions,
        "add_version": lambda: b.add_version("main", "flow: main\n# b2\n", author="bob", publish=False),
        "set_published": lambda: b.set_published("main", two.a_version_id),
        "set_provider": lambda: b.set_provider("llm", "anthropic", secrets={"api_key": "b-key"}),
        "providers": lambda: b.providers(decrypt=True),
        "provider": lambda: b.provider(two.a_provider_id, decrypt=True),
        "delete_provider": lambda: b.delete_provider(two.a_provider_id),
        "add_document": lambda: b.add_document("kb/a-prices.md", sha256="2" * 64, title="mine",
                                               embedding_model="m", chunks=[]),
        "documents": b.documents,
        "document": lambda: b.document(two.a_document_id),
        "document_by_path": lambda: b.document_by_path("kb/a-prices.md"),
        "delete_document": lambda: b.delete_document(two.a_document_id),
        "chunks": lambda: b.chunks(two.a_document_id),
        "get_chunks": lambda: b.get_chunks(two.a_chunk_ids),
        "call_record": lambda: b.call_record(two.a_call_uuid),
        "call_records": b.call_records,
        "recordings": lambda: b.recordings(two.a_call_uuid),
    }


def test_every_public_store_method_is_attempted(two_tenants: Any) -> None:
    public = {name for name, _ in inspect.getmembers(TenantStore, callable) if not name.startswith("_")}
    public -= {"open"}  # a constructor, covered below
    assert public == set(_attempts(two_tenants)), "add the new TenantStore method to _attempts()"


def test_tenant_b_cannot_reach_tenant_a_through_the_store(two_tenants: Any) -> None:
    a: TenantStore = two_tenants.a
    before = (a.flows(), a.versions("main"), a.routes(), a.providers(decrypt=True), a.documents(),
              a.chunks(), a.call_records())
    for name, attempt in _attempts(two_tenants).items():
        try:
            result = attempt()
        except NotFound:
            continue
        assert _leaks(result) == [], f"TenantStore.{name} returned tenant A's data"
    # and nothing of A's changed: B's writes landed in B's own rows
    after = (a.flows(), a.versions("main"), a.routes(), a.providers(decrypt=True), a.documents(),
             a.chunks(), a.call_records())
    assert [p.secrets for p in after[3]] == [p.secrets for p in before[3]]
    assert repr(after[:3]) == repr(before[:3]) and after[4:] == before[4:]
    assert two_tenants.b.document_by_path("kb/a-prices.md").title == "mine"  # B's own document of that name


def test_the_store_of_a_tenant_reads_its_own_rows(two_tenants: Any) -> None:
    """The other half: the same calls as tenant A do find the rows (so the attempts above can fail)."""
    a: TenantStore = two_tenants.a
    assert a.version(two_tenants.a_version_id).yaml_text.count("Tenant A secret menu") == 1
    assert a.document(two_tenants.a_document_id).title == "A prices"
    assert next(c.text for c in a.get_chunks(two_tenants.a_chunk_ids)) == "A's secret price is 42"
    assert a.recordings(two_tenants.a_call_uuid) == ["/var/recordings/a/secret.wav"]
    secrets = a.provider(two_tenants.a_provider_id, decrypt=True).secrets
    assert secrets is not None and secrets["api_key"].reveal() == "sk-tenant-a-very-secret-key-1234"


def test_flow_functions_and_snapshots_stay_in_their_tenant(two_tenants: Any, engine: Engine) -> None:
    b: TenantStore = two_tenants.b
    assert "Hello from B" in export(b, "main") and _leaks(export(b, "main")) == []
    assert _leaks([v.yaml_text for v in history(b, "main")]) == []
    snap_b = load_snapshot(engine, "b.example")
    assert _leaks([snap_b.routes, [f.yaml_text for f in snap_b.flows.values()],
                   [{k: v.reveal() for k, v in p.secrets.items()} for p in snap_b.providers]]) == []
    snaps = load_snapshots(engine)
    snap_a = snaps[load_snapshot(engine, "a.example").domain_uuid]
    assert snap_a.providers[0].secrets["api_key"].reveal() == "sk-tenant-a-very-secret-key-1234"
    assert "sk-tenant-a" not in repr(snap_a)  # secrets never print themselves


def test_a_call_uuid_of_tenant_a_cannot_be_overwritten_by_tenant_b(two_tenants: Any, engine: Engine,
                                                                   tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with CallRecordWriter(engine, spool) as writer, pytest.raises(CallRecordError, match="another tenant"):
        writer.write({"call_uuid": two_tenants.a_call_uuid, "tenant_id": two_tenants.b.tenant_id,
                      "recordings": [], "outcome": "hijacked", "ended_at": dt.datetime.now(dt.UTC)})
    record = two_tenants.a.call_record(two_tenants.a_call_uuid)
    assert record.outcome == "completed" and record.recordings == ["/var/recordings/a/secret.wav"]


@pytest.mark.parametrize("args", [["show", "b.example"], ["show", "b.example", "--json"], ["list"],
                                  ["route", "b.example", "7000", "main"]])
def test_cli_commands_never_print_another_tenants_data(two_tenants: Any, sqlite_url: str,
                                                       args: list[str]) -> None:
    result = CliRunner().invoke(tenants, [*args, "--url", sqlite_url])
    assert result.exit_code == 0, result.output
    leaked = [m for m in A_MARKERS if m in result.output]
    if args == ["list"]:  # the tenant list names tenants, nothing they own
        assert leaked == ["a.example"]
    else:
        assert leaked == []
    # and the same command about tenant A does show A's rows, masked
    shown = CliRunner().invoke(tenants, ["show", "a.example", "--url", sqlite_url])
    assert "5000 -> main" in shown.output and "****1234" in shown.output
    assert "sk-tenant-a" not in shown.output

"""In-memory tenant snapshots: what the controller needs at call setup, loaded once and on reload.

A `TenantSnapshot` holds a tenant's configuration, its routes, the published version (text and
id) of each of its flows and its provider chains with decrypted secrets (as `Secret`, which never
prints itself).  Resolving a tenant, its number and its flow at call setup reads only these
objects: no database query on the hot path.  Snapshots are immutable; a reload builds new ones
and swaps them in, so a running call keeps the flow version it started with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import structlog
from sqlalchemy import Engine

from schema.database import SessionFactory, make_session_factory
from schema.secrets import Secret
from schema.store import TenantStore
from schema.tenant_secrets import tenant_secrets
from schema.tenants import TenantKey, find_tenant, list_tenants

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FlowSnapshot:
    name: str
    version_id: int
    version: int
    checksum: str
    yaml_text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ProviderSnapshot:
    kind: str
    provider: str
    position: int
    settings: Mapping[str, Any]
    secrets: Mapping[str, Secret]


@dataclass(frozen=True, slots=True)
class TenantSnapshot:
    tenant_id: int
    domain_uuid: str
    domain_name: str
    time_zone: str
    language: str
    settings: Mapping[str, Any]
    max_concurrent_calls: int | None
    over_limit_action: str
    routes: Mapping[str, str]                     # dialled number -> flow name
    flows: Mapping[str, FlowSnapshot]             # flow name -> published version
    providers: tuple[ProviderSnapshot, ...]       # ordered by kind, then position (the chain)
    loaded_at: dt.datetime
    secrets: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}))   # webhook sign_with

    @property
    def key(self) -> str:
        """The key of this snapshot in `load_snapshots()`'s mapping (the domain_uuid)."""
        return self.domain_uuid

    def providers_for(self, kind: str) -> tuple[ProviderSnapshot, ...]:
        """The fallback chain for one capability (stt, tts, llm, embeddings), first choice first."""
        return tuple(p for p in self.providers if p.kind == kind)

    def flow_for_number(self, number: str) -> FlowSnapshot | None:
        name = self.routes.get(number)
        return self.flows.get(name) if name is not None else None


def _session_factory(source: Engine | SessionFactory) -> SessionFactory:
    return make_session_factory(source) if isinstance(source, Engine) else source


def load_snapshot(source: Engine | SessionFactory, tenant: TenantKey) -> TenantSnapshot:
    """Build one tenant's snapshot (tenant by id, domain_uuid or domain_name).

    Raises `TenantNotFound`, `SecretKeyMissing`/`SecretUndecryptable` (a provider secret cannot be
    decrypted) or `DatabaseUnavailable`; the caller keeps its old snapshot then.
    """
    sessions = _session_factory(source)
    info = find_tenant(sessions, tenant)
    store = TenantStore(sessions, info.id)
    flows = {v.flow_name: FlowSnapshot(name=v.flow_name, version_id=v.id, version=v.version,
                                       checksum=v.checksum, yaml_text=v.yaml_text)
             for v in store.published_versions()}
    providers = tuple(
        ProviderSnapshot(kind=p.kind, provider=p.provider, position=p.position, settings=p.settings,
                         secrets=p.secrets if p.secrets is not None else MappingProxyType({}))
        for p in store.providers(decrypt=True))
    return TenantSnapshot(
        tenant_id=info.id, domain_uuid=info.domain_uuid, domain_name=info.domain_name,
        time_zone=info.time_zone, language=info.language, settings=info.settings,
        max_concurrent_calls=info.max_concurrent_calls, over_limit_action=info.over_limit_action,
        routes=MappingProxyType({r.number: r.flow_name for r in store.routes()}),
        flows=MappingProxyType(flows), providers=providers, loaded_at=dt.datetime.now(dt.UTC),
        secrets=MappingProxyType(tenant_secrets(sessions, info.id)),
    )


def load_snapshots(source: Engine | SessionFactory) -> dict[str, TenantSnapshot]:
    """Every tenant's snapshot, keyed by domain_uuid.  An error in any tenant raises (nothing half-loaded)."""
    sessions = _session_factory(source)
    snapshots = {t.domain_uuid: load_snapshot(sessions, t.id) for t in list_tenants(sessions)}
    log.info("snapshots_loaded", tenants=len(snapshots))
    return snapshots

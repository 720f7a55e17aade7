"""Routing from the database: tenant snapshots held in memory, swapped whole on reload.

At start and on each reload, every tenant's snapshot (configuration, routes, published flow
versions, provider chains) is loaded and each published flow version is validated in the
flow-loader process and rebuilt into an `ivr_flows.Flow` (`esl_controller.flow_loading`: a
tenant's flow never holds the hub) — once per version: versions are immutable, so an unchanged
version is not parsed again.  ``route(info)`` then only reads memory (no query on the call-setup
hot path).

One tenant can never keep the others from being served: a tenant whose snapshot cannot be built
(a provider secret that cannot be decrypted with ``IVR_SECRET_KEYS``, a published flow that no
longer validates or is over the limits, providers that cannot be built) is *refused* on its own,
with one clear log line: at start-up its calls go to the fallback extension (logged per call with
the reason); on a reload it keeps the configuration it was running.  The reload then reports the
problem (``ivr tenants reload`` prints it) and everyone else gets their new configuration.  Only
the database being unreachable fails a whole reload (and keeps everything running).  A call keeps
the `Flow` it started with.  Every per-tenant folder is named by the tenant's uuid
(`schema.tenant_paths`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine

from esl_controller.routing import CallRoute
from ivr_flows.call import CallInfo

log = structlog.get_logger(__name__)

ServicesFactory = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class _RoutingTable:
    snapshots: dict[str, Any]            # domain_uuid -> schema.snapshot.TenantSnapshot
    index: Any                            # schema.resolve.SnapshotIndex
    flows: dict[int, Any]                 # flow version id -> ivr_flows.Flow
    services: dict[str, dict[str, Any]]   # domain_uuid -> services for its calls
    refused: dict[str, str] = field(default_factory=dict)   # domain_uuid and domain_name -> why
    prompt_dirs: dict[str, Path] = field(default_factory=dict)   # domain_uuid -> <prompts>/<domain_uuid>
    url_policies: dict[str, Any] = field(default_factory=dict)   # domain_uuid -> ivr_flows.url_policy.UrlPolicy


class TenantRefused(Exception):
    """One tenant's configuration cannot be served (the message says why)."""


class DatabaseRouting:
    def __init__(self, engine: Engine, *, prompt_root: Path = Path("var/prompts"),
                 recordings_root: Path = Path("var/recordings"),
                 services_factory: ServicesFactory | None = None,
                 flow_loader: Callable[..., Any] | None = None) -> None:
        from esl_controller.flow_loading import load_flow_off_hub
        from schema.database import make_session_factory

        self.engine = engine
        self.sessions = make_session_factory(engine)
        self.prompt_root = Path(prompt_root).resolve()
        self.recordings_root = Path(recordings_root).resolve()
        self.services_factory = services_factory
        self.flow_loader = flow_loader or load_flow_off_hub
        self._table = _RoutingTable({}, None, {}, {})
        self.last_resolution: Any = None
        self.last_problems: list[str] = []
        self.reload()

    # ------------------------------------------------------------------ loading

    def prompt_dir(self, snapshot: Any) -> Path:
        from schema.tenant_paths import adopt_legacy_folder

        return adopt_legacy_folder(self.prompt_root, snapshot.domain_uuid, snapshot.domain_name)

    @property
    def refused(self) -> dict[str, str]:
        """Tenants refused (by domain_uuid and domain_name) and why."""
        return dict(self._table.refused)

    def _parse_flows(self, snapshot: Any, known: dict[int, Any]) -> dict[int, Any]:
        from ivr_flows import FlowValidationError

        parsed: dict[int, Any] = {}
        problems: list[str] = []
        prompt_dir = self.prompt_dir(snapshot)
        for flow in snapshot.flows.values():
            if flow.version_id in known:
                parsed[flow.version_id] = known[flow.version_id]
                continue
            try:
                parsed[flow.version_id] = self.flow_loader(
                    flow.yaml_text, f"{snapshot.domain_name}/{flow.name}@v{flow.version}",
                    prompt_dir=prompt_dir, known_flows=set(snapshot.flows))
            except FlowValidationError as exc:
                problems.extend(str(issue) for issue in exc.errors)
        if problems:
            raise TenantRefused("published flows do not validate:\n" + "\n".join(problems))
        return parsed

    def _load_tenant(self, info: Any, old: _RoutingTable, only: str | None) -> tuple[Any, dict[int, Any], Any]:
        """(snapshot, its flows, its services) or `TenantRefused`; database errors propagate."""
        from schema.errors import DatabaseUnavailable, SchemaError, SecretError
        from schema.snapshot import load_snapshot
        from schema.tenant_paths import domain_name_problem

        try:
            snap = load_snapshot(self.sessions, info.id)
        except SecretError as exc:
            raise TenantRefused(f"its provider secrets cannot be decrypted ({exc}); "
                                "set the key that encrypted them in IVR_SECRET_KEYS") from exc
        except DatabaseUnavailable:
            raise
        except SchemaError as exc:
            raise TenantRefused(str(exc)) from exc
        if domain_name_problem(snap.domain_name):
            log.warning("routing.tenant_name_invalid", tenant=snap.domain_name, domain_uuid=snap.domain_uuid,
                        hint="rename it: ivr tenants update TENANT --domain-name NAME (its folders are by uuid)")
        flows = self._parse_flows(snap, old.flows)
        key = snap.key
        if only is not None and key in old.services and old.snapshots.get(key) is snap:
            services = old.services[key]
        else:
            try:
                services = self.services_factory(snap) if self.services_factory else {}
            except Exception as exc:
                log.exception("routing.tenant_services_failed", tenant=snap.domain_name)
                raise TenantRefused(f"its providers cannot be built: {type(exc).__name__}: {exc}") from exc
        return snap, flows, services

    def reload(self, tenant: str | None = None) -> str:
        """Reload every tenant (or one); a tenant that fails keeps its running configuration (or
        is refused if it had none) and is reported; the database being down keeps everything."""
        from schema.resolve import SnapshotIndex
        from schema.tenants import find_tenant, list_tenants

        old = self._table
        infos = list_tenants(self.sessions) if tenant is None else [find_tenant(self.sessions, tenant)]
        snapshots: dict[str, Any] = {} if tenant is None else {
            k: v for k, v in old.snapshots.items() if k != infos[0].domain_uuid}
        services: dict[str, dict[str, Any]] = {} if tenant is None else {
            k: v for k, v in old.services.items() if k in snapshots}
        refused: dict[str, str] = {} if tenant is None else {
            k: v for k, v in old.refused.items() if k not in (infos[0].domain_uuid, infos[0].domain_name)}
        flows: dict[int, Any] = {}
        problems: list[str] = []
        for info in infos:
            try:
                snap, tenant_flows, tenant_services = self._load_tenant(info, old, tenant)
            except TenantRefused as exc:
                kept = old.snapshots.get(info.domain_uuid)
                if kept is not None:
                    snapshots[kept.key], services[kept.key] = kept, old.services.get(kept.key, {})
                    what = "keeps its running configuration"
                else:
                    refused[info.domain_uuid] = refused[info.domain_name] = "; ".join(str(exc).splitlines())[:1000]
                    what = "is refused: its calls go to the fallback"
                log.error("routing.tenant_refused", tenant=info.domain_name, domain_uuid=info.domain_uuid,
                          reason=str(exc), outcome=what)
                problems.append(f"tenant {info.domain_name} {what}: {exc}")
                continue
            snapshots[snap.key], services[snap.key] = snap, tenant_services
            flows.update(tenant_flows)
        for snap in snapshots.values():      # tenants kept as they were keep their flows
            for flow in snap.flows.values():
                if flow.version_id not in flows and flow.version_id in old.flows:
                    flows[flow.version_id] = old.flows[flow.version_id]
        prompt_dirs = {key: self.prompt_dir(snap) for key, snap in snapshots.items()}
        policies = {key: _url_policy(snap) for key, snap in snapshots.items()}
        self._table = _RoutingTable(snapshots, SnapshotIndex.build(snapshots), flows, services, refused,
                                    prompt_dirs, policies)
        self.last_problems = problems
        log.info("routing.reloaded", tenants=len(snapshots), flows=len(flows), only=tenant or "all",
                 refused=len(problems))
        return "ok" if not problems else "\n".join(problems)

    # ------------------------------------------------------------------ per call

    def route(self, info: CallInfo) -> CallRoute | None:
        from schema.resolve import resolve_tenant

        table = self._table
        resolution = resolve_tenant(table.index, {
            "variable_domain_uuid": info.domain_uuid, "variable_domain_name": info.domain_name,
            "Caller-Destination-Number": info.destination_number})
        if not resolution.ok:
            why = table.refused.get(_canonical(info.domain_uuid)) or table.refused.get(
                (info.domain_name or "").strip().lower())
            if why is not None:
                log.warning("routing.tenant_refused", tenant=info.domain_name, reason=why, call_uuid=info.uuid)
                return None
            log.warning("routing.unresolved", status=str(resolution.status), reason=resolution.reason,
                        call_uuid=info.uuid)
            return None
        snap, flow_snap = resolution.tenant, resolution.flow
        flows_by_name = {f.name: table.flows[f.version_id] for f in snap.flows.values()}
        services = dict(table.services.get(snap.key, {}))
        services.setdefault("allowed_url_hosts", table.url_policies.get(snap.key) or _url_policy(snap))
        if snap.secrets:
            services["secrets"] = {name: secret.reveal() for name, secret in snap.secrets.items()}
        return CallRoute(
            tenant_key=snap.domain_uuid, tenant_name=snap.domain_name, flow=table.flows[flow_snap.version_id],
            flow_version=str(flow_snap.version_id),
            prompt_dir=table.prompt_dirs.get(snap.key) or self.prompt_dir(snap),
            recordings_dir=self.recordings_root, timezone=snap.time_zone,
            services=services, flow_loader=flows_by_name.__getitem__,
            tenant=snap, tenant_id=snap.tenant_id,
            transfer_context=str(snap.settings.get("transfer_context") or "") or None)


def _canonical(domain_uuid: str | None) -> str:
    import uuid

    try:
        return str(uuid.UUID((domain_uuid or "").strip()))
    except ValueError:
        return ""


def _url_policy(snapshot: Any) -> Any:
    """The tenant's webhook / URL-prompt policy from its settings (``url_hosts``, ``url_networks``)."""
    from ivr_flows.url_policy import UrlPolicy

    try:
        return UrlPolicy.from_settings(snapshot.settings)
    except ValueError as exc:
        log.error("routing.url_policy_invalid", tenant=snapshot.domain_name, error=str(exc))
        return UrlPolicy()

"""Routing from the database: tenant snapshots held in memory, swapped whole on reload.

At start and on each reload, every tenant's snapshot (configuration, routes, published flow
versions, provider chains) is loaded and each published flow version is parsed and validated
into an `ivr_flows.Flow` — once per version: versions are immutable, so an unchanged version is
not parsed again.  ``route(info)`` then only reads memory (no query on the call-setup hot path).
A reload that fails (database down, a flow that no longer validates, a secret that cannot be
decrypted) raises and keeps the running configuration; a call keeps the `Flow` it started with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


class DatabaseRouting:
    def __init__(self, engine: Engine, *, prompt_root: Path = Path("var/prompts"),
                 recordings_root: Path = Path("var/recordings"),
                 services_factory: ServicesFactory | None = None) -> None:
        from schema.database import make_session_factory

        self.engine = engine
        self.sessions = make_session_factory(engine)
        self.prompt_root = Path(prompt_root)
        self.recordings_root = Path(recordings_root)
        self.services_factory = services_factory
        self._table = _RoutingTable({}, None, {}, {})
        self.last_resolution: Any = None
        self.reload()

    # ------------------------------------------------------------------ loading

    def prompt_dir(self, snapshot: Any) -> Path:
        return self.prompt_root / snapshot.domain_name

    def _parse_flows(self, snapshot: Any, known: dict[int, Any]) -> dict[int, Any]:
        from ivr_flows import FlowValidationError, load_flow_text

        parsed: dict[int, Any] = {}
        problems: list[str] = []
        for flow in snapshot.flows.values():
            if flow.version_id in known:
                parsed[flow.version_id] = known[flow.version_id]
                continue
            try:
                parsed[flow.version_id] = load_flow_text(
                    flow.yaml_text, f"{snapshot.domain_name}/{flow.name}@v{flow.version}",
                    prompt_dir=self.prompt_dir(snapshot), known_flows=set(snapshot.flows))
            except FlowValidationError as exc:
                problems.extend(str(issue) for issue in exc.errors)
        if problems:
            raise ValueError(f"tenant {snapshot.domain_name}: published flows no longer validate:\n"
                             + "\n".join(problems))
        return parsed

    def reload(self, tenant: str | None = None) -> str:
        """Reload every tenant (or one); raises and keeps the running table on any error."""
        from schema.resolve import SnapshotIndex
        from schema.snapshot import load_snapshot, load_snapshots

        old = self._table
        if tenant is None:
            snapshots = load_snapshots(self.sessions)
        else:
            snap = load_snapshot(self.sessions, tenant)
            snapshots = {k: v for k, v in old.snapshots.items() if v.tenant_id != snap.tenant_id}
            snapshots[snap.key] = snap
        flows: dict[int, Any] = {}
        services: dict[str, dict[str, Any]] = {}
        for key, snap in snapshots.items():
            flows.update(self._parse_flows(snap, old.flows))
            if tenant is not None and key in old.services and old.snapshots.get(key) is snap:
                services[key] = old.services[key]
            else:
                services[key] = self.services_factory(snap) if self.services_factory else {}
        self._table = _RoutingTable(snapshots, SnapshotIndex.build(snapshots), flows, services)
        log.info("routing.reloaded", tenants=len(snapshots), flows=len(flows), only=tenant or "all")
        return "ok"

    # ------------------------------------------------------------------ per call

    def route(self, info: CallInfo) -> CallRoute | None:
        from schema.resolve import resolve_tenant

        table = self._table
        resolution = resolve_tenant(table.index, {
            "variable_domain_uuid": info.domain_uuid, "variable_domain_name": info.domain_name,
            "Caller-Destination-Number": info.destination_number})
        if not resolution.ok:
            log.warning("routing.unresolved", status=str(resolution.status), reason=resolution.reason,
                        call_uuid=info.uuid)
            return None
        snap, flow_snap = resolution.tenant, resolution.flow
        flows_by_name = {f.name: table.flows[f.version_id] for f in snap.flows.values()}
        return CallRoute(
            tenant_key=snap.domain_uuid, tenant_name=snap.domain_name, flow=table.flows[flow_snap.version_id],
            flow_version=str(flow_snap.version_id), prompt_dir=self.prompt_dir(snap),
            recordings_dir=self.recordings_root, timezone=snap.time_zone,
            services=dict(table.services.get(snap.key, {})), flow_loader=flows_by_name.__getitem__,
            tenant=snap, tenant_id=snap.tenant_id,
            transfer_context=str(snap.settings.get("transfer_context") or "") or None)

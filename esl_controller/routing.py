"""Which tenant and which flow answer a call: `CallRoute`, and routing from a flows folder.

The controller asks ``routing.route(info)`` once per call, from memory (no database query on
the call-setup hot path).  `DirectoryRouting` serves one implicit tenant from a folder of YAML
flows (``ivr serve --flows-dir``); the database-backed routing (tenant snapshots, see
`schema.snapshot`) offers the same ``route``/``reload`` methods.  A reload builds the new
table completely, validating every flow off the hub (`esl_controller.flow_loading`), and swaps it in
one assignment: a call keeps the
`Flow` object it started with, and a flow that fails validation never replaces the running one.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from ivr_flows.call import CallInfo

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CallRoute:
    """Everything a call needs from its tenant, resolved at connect."""

    tenant_key: str
    tenant_name: str
    flow: Any                                   # ivr_flows.Flow (a published version)
    flow_version: str = ""
    prompt_dir: Path | None = None
    recordings_dir: Path | None = None
    timezone: str | None = None
    services: dict[str, Any] = field(default_factory=dict)   # providers, retrieval, …
    flow_loader: Any = None                      # name -> Flow, for goto_flow
    tenant: Any = None                           # schema.snapshot.TenantSnapshot (database routing)
    tenant_id: int | None = None
    transfer_context: str | None = None          # the tenant's dialplan context for transfers (None: the call's)

    def __post_init__(self) -> None:
        # The controller names the call's recordings folder after tenant_key: one plain path part.
        if not _SAFE_KEY.match(self.tenant_key) or ".." in self.tenant_key:
            raise ValueError(f"tenant key {self.tenant_key!r} cannot name a folder")


_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Routing(Protocol):
    def route(self, info: CallInfo) -> CallRoute | None: ...

    def reload(self, tenant: str | None = None) -> str: ...


class DirectoryRouting:
    """One tenant whose flows are the ``*.yaml`` files of a folder; every number reaches ``default_flow``
    unless ``numbers`` maps it to another flow."""

    def __init__(self, flows_dir: Path, *, default_flow: str = "demo-main", numbers: dict[str, str] | None = None,
                 prompt_dir: Path | None = None, recordings_dir: Path | None = None,
                 tenant_name: str = "default", transfer_context: str | None = None) -> None:
        # Absolute: FreeSWITCH resolves a relative path against its own sounds folder.
        self.flows_dir = Path(flows_dir).resolve()
        self.default_flow = default_flow
        self.numbers = dict(numbers or {})
        self.prompt_dir = Path(prompt_dir).resolve() if prompt_dir else self.flows_dir.parent / "prompts"
        self.recordings_dir = Path(recordings_dir or "var/recordings").resolve()
        self.tenant_name = tenant_name
        self.transfer_context = transfer_context
        # Webhooks and URL prompts of the folder's flows: IVR_URL_HOSTS (patterns) and
        # IVR_URL_NETWORKS (non-public networks an operator allows), comma-separated.
        from ivr_flows.url_policy import UrlPolicy

        self.url_policy = UrlPolicy.from_settings({"url_hosts": os.environ.get("IVR_URL_HOSTS", ""),
                                                   "url_networks": os.environ.get("IVR_URL_NETWORKS", "")})
        self._flows: dict[str, Any] = {}
        self.reload()

    def _load_all(self) -> dict[str, Any]:
        from esl_controller.flow_loading import load_flow_off_hub
        from ivr_flows import FlowValidationError
        from ivr_flows.loader import read_flow_file

        flows: dict[str, Any] = {}
        problems: list[str] = []
        for path in sorted(self.flows_dir.glob("*.yaml")):
            try:
                flow = load_flow_off_hub(read_flow_file(path), str(path), prompt_dir=self.prompt_dir)
            except FlowValidationError as exc:
                problems.extend(str(issue) for issue in exc.errors)
                continue
            flows[flow.name] = flow
        if problems:
            raise ValueError("invalid flows, keeping the running ones:\n" + "\n".join(problems))
        if self.default_flow not in flows:
            raise ValueError(f"flow {self.default_flow!r} not found in {self.flows_dir}")
        return flows

    def reload(self, tenant: str | None = None) -> str:
        self._flows = self._load_all()          # one assignment: atomic for calls that start later
        log.info("routing.loaded", flows=sorted(self._flows), folder=str(self.flows_dir))
        return "ok"

    def _flow(self, name: str) -> Any:
        return self._flows[name]

    def route(self, info: CallInfo) -> CallRoute | None:
        flows = self._flows
        name = self.numbers.get(info.destination_number, self.default_flow)
        flow = flows.get(name)
        if flow is None:
            return None
        return CallRoute(tenant_key=_uuid_or(info.domain_uuid, self.tenant_name),
                         tenant_name=info.domain_name or self.tenant_name, flow=flow,
                         prompt_dir=self.prompt_dir, recordings_dir=self.recordings_dir,
                         flow_loader=flows.__getitem__, services={"allowed_url_hosts": self.url_policy},
                         transfer_context=self.transfer_context)


def _uuid_or(value: str | None, default: str) -> str:
    """A channel's domain_uuid in canonical form when it is one (it names a folder), else `default`."""
    try:
        return str(uuid.UUID((value or "").strip()))
    except ValueError:
        return default

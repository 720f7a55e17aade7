"""Which tenant, number and flow a new call belongs to, from the snapshots alone (no database query).

Order: ``variable_domain_uuid``, then ``variable_domain_name``, then the dialled number
(``Caller-Destination-Number``).  A domain variable that is present but unknown is an unknown
tenant: it never falls through to a number lookup that could land the call in another tenant.
A number shared by several tenants without a domain variable is refused as ambiguous for the
same reason.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from schema.snapshot import FlowSnapshot, TenantSnapshot

DOMAIN_UUID_VAR = "variable_domain_uuid"
DOMAIN_NAME_VAR = "variable_domain_name"
DESTINATION_VAR = "Caller-Destination-Number"


class ResolutionStatus(enum.StrEnum):
    OK = "ok"
    UNKNOWN_TENANT = "unknown_tenant"
    UNKNOWN_NUMBER = "unknown_number"
    NO_PUBLISHED_FLOW = "no_published_flow"


@dataclass(frozen=True, slots=True)
class Resolution:
    status: ResolutionStatus
    reason: str
    tenant: TenantSnapshot | None = None
    number: str = ""
    flow: FlowSnapshot | None = None
    matched_by: str = ""            # "domain_uuid", "domain_name" or "number"

    @property
    def ok(self) -> bool:
        return self.status is ResolutionStatus.OK


@dataclass(frozen=True, slots=True)
class SnapshotIndex:
    """Lookup tables over a set of snapshots: build once per (re)load, not per call."""

    by_uuid: Mapping[str, TenantSnapshot]
    by_name: Mapping[str, TenantSnapshot]
    by_number: Mapping[str, tuple[TenantSnapshot, ...]]

    @classmethod
    def build(cls, snapshots: Mapping[str, TenantSnapshot]) -> SnapshotIndex:
        by_number: dict[str, list[TenantSnapshot]] = {}
        for snap in snapshots.values():
            for number in snap.routes:
                by_number.setdefault(number, []).append(snap)
        return cls(by_uuid={s.domain_uuid: s for s in snapshots.values()},
                   by_name={s.domain_name.lower(): s for s in snapshots.values()},
                   by_number={n: tuple(s) for n, s in by_number.items()})


def _canonical_uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text.lower()


def resolve_tenant(snapshots: Mapping[str, TenantSnapshot] | SnapshotIndex,
                   channel_vars: Mapping[str, str]) -> Resolution:
    """Resolve the tenant and flow of a call from its `connect` channel variables."""
    index = snapshots if isinstance(snapshots, SnapshotIndex) else SnapshotIndex.build(snapshots)
    domain_uuid = (channel_vars.get(DOMAIN_UUID_VAR) or "").strip()
    domain_name = (channel_vars.get(DOMAIN_NAME_VAR) or "").strip().lower()
    number = (channel_vars.get(DESTINATION_VAR) or "").strip()

    tenant: TenantSnapshot | None
    if domain_uuid:
        tenant, matched_by = index.by_uuid.get(_canonical_uuid(domain_uuid)), "domain_uuid"
        if tenant is None:
            return Resolution(ResolutionStatus.UNKNOWN_TENANT, f"unknown tenant: domain_uuid {domain_uuid}",
                              number=number)
        if domain_name and tenant.domain_name.lower() != domain_name:
            return Resolution(ResolutionStatus.UNKNOWN_TENANT,
                              f"unknown tenant: domain_uuid {domain_uuid} belongs to {tenant.domain_name}, "
                              f"not {domain_name}", number=number)
    elif domain_name:
        tenant, matched_by = index.by_name.get(domain_name), "domain_name"
        if tenant is None:
            return Resolution(ResolutionStatus.UNKNOWN_TENANT, f"unknown tenant: domain_name {domain_name}",
                              number=number)
    else:
        owners = index.by_number.get(number, ()) if number else ()
        if not owners:
            return Resolution(ResolutionStatus.UNKNOWN_NUMBER,
                              f"unknown tenant/number: no domain variables and no tenant routes {number!r}",
                              number=number)
        if len(owners) > 1:
            names = ", ".join(sorted(s.domain_name for s in owners))
            return Resolution(ResolutionStatus.UNKNOWN_TENANT,
                              f"unknown tenant: number {number!r} is routed by several tenants ({names}); "
                              "set domain_uuid in the dialplan", number=number)
        tenant, matched_by = owners[0], "number"

    flow_name = tenant.routes.get(number)
    if flow_name is None:
        return Resolution(ResolutionStatus.UNKNOWN_NUMBER,
                          f"unknown number: {tenant.domain_name} has no route for {number!r}",
                          tenant=tenant, number=number, matched_by=matched_by)
    flow = tenant.flows.get(flow_name)
    if flow is None:
        return Resolution(ResolutionStatus.NO_PUBLISHED_FLOW,
                          f"flow {flow_name!r} of {tenant.domain_name} has no published version",
                          tenant=tenant, number=number, matched_by=matched_by)
    return Resolution(ResolutionStatus.OK, "ok", tenant=tenant, number=number, flow=flow,
                      matched_by=matched_by)

"""Flow versions: publish (validate first), history, rollback, export — plain functions the CLI wires
as ``ivr flows publish|history|rollback|export``.

Every publish of new text makes a new immutable version and publishes it; publishing text whose
checksum matches an existing version of that flow makes no new version (it re-publishes that one
if it was not the published one).  A flow that fails `ivr_flows` validation is never published,
and neither is an old version that no longer validates (rollback validates again).  Running calls
keep the version they started with: the controller's snapshot holds the text, not a reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from schema.errors import FlowRejected, NotFound, VersionNotFound
from schema.rows import VersionInfo
from schema.store import TenantStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PublishResult:
    version: VersionInfo
    created: bool          # a new version was stored
    changed: bool          # the published version of the flow changed


def validate_flow_text(text: str, source: str, options: Mapping[str, Any] | None = None) -> str:
    """Validate with `ivr_flows` (`options`: its loader's keywords, e.g. prompt_dir, known_flows);
    return the flow's name.  `FlowRejected` (with `.errors`) if invalid."""
    import ivr_flows  # lazy: schema sits below ivr_flows in the import order

    try:
        flow = ivr_flows.load_flow_text(text, source, **dict(options or {}))
    except ivr_flows.FlowValidationError as e:
        raise FlowRejected(f"{source}: the flow is invalid; nothing was published", e.errors) from e
    name = getattr(flow, "name", None)
    if not isinstance(name, str) or not name:
        raise FlowRejected(f"{source}: the flow has no name")
    return name


def publish_text(store: TenantStore, text: str, *, source: str, author: str,
                 options: Mapping[str, Any] | None = None) -> PublishResult:
    """Validate `text`, then store and publish it as the tenant's flow of the name it declares."""
    name = validate_flow_text(text, source, options)
    try:
        before = store.published_version(name).id
    except NotFound:
        before = None
    version, created = store.add_version(name, text, author=author, source=source, publish=True)
    result = PublishResult(version=version, created=created, changed=before != version.id)
    log.info("flow_published", tenant_id=store.tenant_id, flow=name, version=version.version,
             created=created, changed=result.changed, author=author)
    return result


def publish(store: TenantStore, file: str | Path, author: str,
            options: Mapping[str, Any] | None = None) -> PublishResult:
    """Validate and publish the flow in `file` for the store's tenant."""
    import ivr_flows.loader  # lazy: schema sits below ivr_flows in the import order

    path = Path(file)
    try:
        text = ivr_flows.loader.read_flow_file(path)
    except ivr_flows.FlowValidationError as e:     # too large, or not UTF-8 (line and column named)
        raise FlowRejected(f"{path}: the flow is invalid; nothing was published", e.errors) from e
    return publish_text(store, text, source=str(path), author=author, options=options)


def history(store: TenantStore, flow_name: str) -> list[VersionInfo]:
    """Every version of the flow, newest first (``published`` marks the one calls run)."""
    return store.versions(flow_name)


def rollback(store: TenantStore, flow_name: str, version: int | None = None,
             options: Mapping[str, Any] | None = None) -> VersionInfo:
    """Publish an earlier version: `version` (its number) or, by default, the one before the published one.

    The version is validated again first (the validator may have grown stricter since).
    """
    versions = store.versions(flow_name)
    current = next((v for v in versions if v.published), None)
    if version is None:
        if current is None:
            raise VersionNotFound(f"flow {flow_name!r} has no published version to roll back from")
        earlier = [v for v in versions if v.version < current.version]
        if not earlier:
            raise VersionNotFound(f"flow {flow_name!r} has no version before {current.version}")
        target = earlier[0]
    else:
        target = store.version_by_number(flow_name, version)
    validate_flow_text(target.yaml_text, f"db:{flow_name}@v{target.version}", options)
    published = store.set_published(flow_name, target.id)
    log.info("flow_rolled_back", tenant_id=store.tenant_id, flow=flow_name, version=published.version,
             previous=current.version if current else None)
    return published


def export(store: TenantStore, flow_name: str, version: int | None = None) -> str:
    """The YAML text of the published version (or of version number `version`)."""
    if version is None:
        return store.published_version(flow_name).yaml_text
    return store.version_by_number(flow_name, version).yaml_text

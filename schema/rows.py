"""Plain frozen dataclasses handed out by `schema.store` and `schema.tenants` instead of live ORM rows
(no lazy load can follow a relationship into another tenant's data, and no session has to stay open).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schema.secrets import Secret


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: int
    domain_uuid: str
    domain_name: str
    time_zone: str
    language: str
    settings: Mapping[str, Any]
    max_concurrent_calls: int | None
    over_limit_action: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RouteInfo:
    number: str
    flow_name: str


@dataclass(frozen=True, slots=True)
class FlowInfo:
    id: int
    name: str
    published_version_id: int | None
    published_version: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: int
    flow_name: str
    version: int
    checksum: str
    author: str
    source: str
    created_at: dt.datetime
    published: bool
    yaml_text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    id: int
    kind: str
    provider: str
    position: int
    settings: Mapping[str, Any]
    secret_names: tuple[str, ...]
    secrets: Mapping[str, Secret] | None = None  # only when asked to decrypt
    has_secrets: bool = False
    secrets_note: str = ""                       # why secret names are unknown (keys missing…)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: int
    source_path: str
    sha256: str
    title: str
    embedding_model: str
    meta: Mapping[str, Any]
    created_at: dt.datetime
    chunk_count: int


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    id: int
    document_id: int
    ordinal: int
    text: str
    embedding_model: str
    meta: Mapping[str, Any]
    source_path: str
    title: str


@dataclass(frozen=True, slots=True)
class CallRecordInfo:
    call_uuid: str
    tenant_id: int
    caller: str
    destination: str
    started_at: dt.datetime | None
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    outcome: str
    hangup_cause: str
    flow_name: str
    flow_version_id: int | None
    path: list[Any]
    recordings: list[Any]
    turns: list[Any]
    latencies: Any

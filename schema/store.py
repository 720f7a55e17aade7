"""`TenantStore`: the only way to read or write what a tenant owns.

Routes, flows and flow versions, provider configurations (and their secrets), documents and
chunks, call records and recordings are all reached through a store bound to one tenant id;
every query below filters on that id, so a row of another tenant is simply "not found"
(a `NotFound` subclass), even when its numeric id is known.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schema.database import SessionFactory, unavailable_as_error
from schema.errors import (
    AlreadyExists,
    CallRecordNotFound,
    DocumentNotFound,
    FlowNotFound,
    InvalidValue,
    ProviderConfigNotFound,
    SecretError,
    VersionNotFound,
)
from schema.models import (
    PROVIDER_KINDS,
    CallRecord,
    Chunk,
    Document,
    Flow,
    FlowVersion,
    ProviderConfig,
    Route,
    utcnow,
)
from schema.rows import (
    CallRecordInfo,
    ChunkInfo,
    DocumentInfo,
    FlowInfo,
    ProviderInfo,
    RouteInfo,
    TenantInfo,
    VersionInfo,
)
from schema.secrets import decrypt_secrets, encrypt_secrets, load_keys
from schema.tenants import TenantKey, find_tenant


def checksum(text: str) -> str:
    """sha256 hex digest of a flow's YAML text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChunkInput:
    """One passage to store under a document."""

    text: str
    ordinal: int
    meta: Mapping[str, Any] = field(default_factory=dict)


class TenantStore:
    """Reads and writes of one tenant's rows; nothing here can reach another tenant's rows."""

    def __init__(self, session_factory: SessionFactory, tenant_id: int) -> None:
        self._sessions = session_factory
        self.tenant_id = int(tenant_id)

    @classmethod
    def open(cls, session_factory: SessionFactory, key: TenantKey) -> TenantStore:
        """A store for the tenant whose id, domain_uuid or domain_name is `key` (`TenantNotFound` if none)."""
        return cls(session_factory, find_tenant(session_factory, key).id)

    def __repr__(self) -> str:
        return f"TenantStore(tenant_id={self.tenant_id})"

    @contextmanager
    def _session(self, what: str, *, write: bool = False) -> Iterator[Session]:
        with unavailable_as_error(what), self._sessions() as session:
            if write:
                with session.begin():
                    yield session
            else:
                yield session

    def tenant(self) -> TenantInfo:
        return find_tenant(self._sessions, self.tenant_id)

    # ---- routes (dialled number -> flow name) ----------------------------------------------------

    def set_route(self, number: str, flow_name: str, *, require_published: bool = True) -> RouteInfo:
        """Route `number` to `flow_name` (replacing an existing route of this tenant for that number).

        The flow must be one of this tenant's, with a published version (`FlowNotFound` otherwise,
        with a "did you mean"): a route to nothing would send every caller to the fallback.
        """
        number, flow_name = number.strip(), flow_name.strip()
        if not number or not flow_name:
            raise InvalidValue("number and flow name must not be empty")
        if require_published:
            flows = {f.name: f for f in self.flows()}
            flow = flows.get(flow_name)
            if flow is None:
                close = difflib.get_close_matches(flow_name, list(flows), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(sorted(flows)) or "none"
                raise FlowNotFound(f"no flow named {flow_name!r}{hint}; this tenant's flows: {known} "
                                   "(publish it first: ivr flows publish TENANT FILE)")
            if flow.published_version_id is None:
                raise FlowNotFound(f"flow {flow_name!r} has no published version; publish it first")
        with self._session("cannot set route", write=True) as s:
            row = s.scalar(select(Route).where(Route.tenant_id == self.tenant_id, Route.number == number))
            if row is None:
                s.add(Route(tenant_id=self.tenant_id, number=number, flow_name=flow_name))
            else:
                row.flow_name = flow_name
        return RouteInfo(number=number, flow_name=flow_name)

    def delete_route(self, number: str) -> None:
        with self._session("cannot delete route", write=True) as s:
            row = s.scalar(select(Route).where(Route.tenant_id == self.tenant_id, Route.number == number))
            if row is None:
                raise FlowNotFound(f"no route for number {number!r}")
            s.delete(row)

    def routes(self) -> list[RouteInfo]:
        with self._session("cannot list routes") as s:
            rows = s.scalars(select(Route).where(Route.tenant_id == self.tenant_id).order_by(Route.number))
            return [RouteInfo(number=r.number, flow_name=r.flow_name) for r in rows]

    # ---- flows and versions ----------------------------------------------------------------------

    def _flow_row(self, s: Session, name: str) -> Flow:
        row = s.scalar(select(Flow).where(Flow.tenant_id == self.tenant_id, Flow.name == name))
        if row is None:
            raise FlowNotFound(f"no flow named {name!r}")
        return row

    def _flow_info(self, s: Session, row: Flow) -> FlowInfo:
        version = None
        if row.published_version_id is not None:
            version = s.scalar(select(FlowVersion.version).where(
                FlowVersion.id == row.published_version_id, FlowVersion.tenant_id == self.tenant_id))
        return FlowInfo(id=row.id, name=row.name, published_version_id=row.published_version_id,
                        published_version=version, created_at=row.created_at, updated_at=row.updated_at)

    @staticmethod
    def _version_info(v: FlowVersion, flow: Flow) -> VersionInfo:
        return VersionInfo(id=v.id, flow_name=flow.name, version=v.version, checksum=v.checksum,
                           author=v.author, source=v.source, created_at=v.created_at,
                           published=flow.published_version_id == v.id, yaml_text=v.yaml_text)

    def flows(self) -> list[FlowInfo]:
        with self._session("cannot list flows") as s:
            rows = s.scalars(select(Flow).where(Flow.tenant_id == self.tenant_id).order_by(Flow.name))
            return [self._flow_info(s, r) for r in rows]

    def flow(self, name: str) -> FlowInfo:
        with self._session("cannot read flow") as s:
            return self._flow_info(s, self._flow_row(s, name))

    def versions(self, flow_name: str) -> list[VersionInfo]:
        """Every version of the flow, newest first."""
        with self._session("cannot list flow versions") as s:
            flow = self._flow_row(s, flow_name)
            rows = s.scalars(select(FlowVersion).where(
                FlowVersion.tenant_id == self.tenant_id, FlowVersion.flow_id == flow.id,
            ).order_by(FlowVersion.version.desc()))
            return [self._version_info(v, flow) for v in rows]

    def version(self, version_id: int) -> VersionInfo:
        """A version of one of this tenant's flows by its id."""
        with self._session("cannot read flow version") as s:
            row = s.execute(select(FlowVersion, Flow).join(Flow, Flow.id == FlowVersion.flow_id).where(
                FlowVersion.id == version_id, FlowVersion.tenant_id == self.tenant_id,
                Flow.tenant_id == self.tenant_id)).first()
            if row is None:
                raise VersionNotFound(f"no flow version with id {version_id}")
            return self._version_info(row[0], row[1])

    def version_by_number(self, flow_name: str, version: int) -> VersionInfo:
        with self._session("cannot read flow version") as s:
            flow = self._flow_row(s, flow_name)
            row = s.scalar(select(FlowVersion).where(
                FlowVersion.tenant_id == self.tenant_id, FlowVersion.flow_id == flow.id,
                FlowVersion.version == version))
            if row is None:
                raise VersionNotFound(f"flow {flow_name!r} has no version {version}")
            return self._version_info(row, flow)

    def published_version(self, flow_name: str) -> VersionInfo:
        with self._session("cannot read flow version") as s:
            flow = self._flow_row(s, flow_name)
            if flow.published_version_id is None:
                raise VersionNotFound(f"flow {flow_name!r} has no published version")
            row = s.scalar(select(FlowVersion).where(
                FlowVersion.id == flow.published_version_id, FlowVersion.tenant_id == self.tenant_id))
            if row is None:
                raise VersionNotFound(f"flow {flow_name!r} has no published version")
            return self._version_info(row, flow)

    def published_versions(self) -> list[VersionInfo]:
        """The published version of every flow of this tenant (what calls run)."""
        with self._session("cannot list published flows") as s:
            rows = s.execute(select(FlowVersion, Flow).join(
                Flow, Flow.published_version_id == FlowVersion.id).where(
                Flow.tenant_id == self.tenant_id, FlowVersion.tenant_id == self.tenant_id,
            ).order_by(Flow.name))
            return [self._version_info(v, f) for v, f in rows]

    def add_version(self, flow_name: str, yaml_text: str, *, author: str, source: str = "",
                    publish: bool = True) -> tuple[VersionInfo, bool]:
        """Store `yaml_text` as a new immutable version (or find the version with the same checksum).

        Returns ``(version, created)``.  With `publish`, the version becomes the published one.
        Validation is the caller's job (`schema.flow_versions.publish` validates first).
        """
        digest = checksum(yaml_text)
        for attempt in range(2):
            try:
                with self._session("cannot store flow version", write=True) as s:
                    flow = s.scalar(select(Flow).where(
                        Flow.tenant_id == self.tenant_id, Flow.name == flow_name))
                    if flow is None:
                        flow = Flow(tenant_id=self.tenant_id, name=flow_name)
                        s.add(flow)
                        s.flush()
                    row = s.scalar(select(FlowVersion).where(
                        FlowVersion.tenant_id == self.tenant_id, FlowVersion.flow_id == flow.id,
                        FlowVersion.checksum == digest))
                    created = row is None
                    if row is None:
                        last = s.scalar(select(func.max(FlowVersion.version)).where(
                            FlowVersion.tenant_id == self.tenant_id, FlowVersion.flow_id == flow.id)) or 0
                        row = FlowVersion(flow_id=flow.id, tenant_id=self.tenant_id, version=last + 1,
                                          yaml_text=yaml_text, checksum=digest, author=author[:128],
                                          source=source[:1024])
                        s.add(row)
                        s.flush()
                    if publish and flow.published_version_id != row.id:
                        flow.published_version_id = row.id
                        flow.updated_at = utcnow()
                    s.flush()
                    return self._version_info(row, flow), created
            except IntegrityError as e:  # a concurrent publish took the version number: retry once
                if attempt:
                    raise AlreadyExists(f"concurrent publish of flow {flow_name!r}; try again") from e
        raise AssertionError("unreachable")

    def set_published(self, flow_name: str, version_id: int) -> VersionInfo:
        """Make one of this flow's versions the published one (rollback)."""
        with self._session("cannot publish flow version", write=True) as s:
            flow = self._flow_row(s, flow_name)
            row = s.scalar(select(FlowVersion).where(
                FlowVersion.id == version_id, FlowVersion.tenant_id == self.tenant_id,
                FlowVersion.flow_id == flow.id))
            if row is None:
                raise VersionNotFound(f"flow {flow_name!r} has no version with id {version_id}")
            flow.published_version_id = row.id
            flow.updated_at = utcnow()
            s.flush()
            return self._version_info(row, flow)

    # ---- provider configurations -----------------------------------------------------------------

    def _provider_info(self, row: ProviderConfig, decrypt: bool) -> ProviderInfo:
        """A view of the row; without `decrypt`, a secret that cannot be opened only leaves a note."""
        what = f"provider config {row.id} ({row.kind}/{row.provider})"
        names: tuple[str, ...] = ()
        secrets = None
        note = ""
        if row.secrets_encrypted:
            try:
                decrypted = decrypt_secrets(row.secrets_encrypted, what=what)
            except SecretError as e:
                if decrypt:
                    raise
                decrypted, note = {}, str(e)
            names = tuple(sorted(decrypted))
            secrets = MappingProxyType(decrypted) if decrypt else None
        elif decrypt:
            secrets = MappingProxyType({})
        return ProviderInfo(id=row.id, kind=row.kind, provider=row.provider, position=row.position,
                            settings=MappingProxyType(dict(row.settings or {})), secret_names=names,
                            secrets=secrets, has_secrets=bool(row.secrets_encrypted), secrets_note=note)

    def set_provider(self, kind: str, provider: str, *, position: int = 0,
                     settings: Mapping[str, Any] | None = None,
                     secrets: Mapping[str, str] | None = None) -> ProviderInfo:
        """Create or replace the provider at (`kind`, `position`) of this tenant's chain.

        `secrets` (API keys…) are encrypted with ``$IVR_SECRET_KEYS`` (`SecretKeyMissing` if unset).
        """
        if kind not in PROVIDER_KINDS:
            raise InvalidValue(f"provider kind must be one of {', '.join(PROVIDER_KINDS)}, not {kind!r}")
        if position < 0:
            raise InvalidValue("position must be >= 0")
        token = encrypt_secrets(secrets, load_keys()) if secrets else None
        with self._session("cannot store provider config", write=True) as s:
            row = s.scalar(select(ProviderConfig).where(
                ProviderConfig.tenant_id == self.tenant_id, ProviderConfig.kind == kind,
                ProviderConfig.position == position))
            if row is None:
                row = ProviderConfig(tenant_id=self.tenant_id, kind=kind, position=position)
                s.add(row)
            row.provider = provider
            row.settings = dict(settings or {})
            row.secrets_encrypted = token
            s.flush()
            return self._provider_info(row, decrypt=False)

    def providers(self, kind: str | None = None, *, decrypt: bool = False) -> list[ProviderInfo]:
        """This tenant's provider chain(s) in order; secrets decrypted only with `decrypt`."""
        with self._session("cannot list provider configs") as s:
            query = select(ProviderConfig).where(ProviderConfig.tenant_id == self.tenant_id)
            if kind is not None:
                query = query.where(ProviderConfig.kind == kind)
            rows = s.scalars(query.order_by(ProviderConfig.kind, ProviderConfig.position))
            return [self._provider_info(r, decrypt) for r in rows]

    def provider(self, config_id: int, *, decrypt: bool = False) -> ProviderInfo:
        with self._session("cannot read provider config") as s:
            row = s.scalar(select(ProviderConfig).where(
                ProviderConfig.id == config_id, ProviderConfig.tenant_id == self.tenant_id))
            if row is None:
                raise ProviderConfigNotFound(f"no provider config with id {config_id}")
            return self._provider_info(row, decrypt)

    def delete_provider(self, config_id: int) -> None:
        with self._session("cannot delete provider config", write=True) as s:
            row = s.scalar(select(ProviderConfig).where(
                ProviderConfig.id == config_id, ProviderConfig.tenant_id == self.tenant_id))
            if row is None:
                raise ProviderConfigNotFound(f"no provider config with id {config_id}")
            s.delete(row)

    # ---- documents and chunks (RAG) --------------------------------------------------------------

    def _document_info(self, s: Session, row: Document) -> DocumentInfo:
        count = s.scalar(select(func.count(Chunk.id)).where(
            Chunk.document_id == row.id, Chunk.tenant_id == self.tenant_id)) or 0
        return DocumentInfo(id=row.id, source_path=row.source_path, sha256=row.sha256, title=row.title,
                            embedding_model=row.embedding_model, meta=MappingProxyType(dict(row.meta or {})),
                            created_at=row.created_at, chunk_count=count)

    def add_document(self, source_path: str, *, sha256: str, title: str, embedding_model: str,
                     chunks: Sequence[ChunkInput], meta: Mapping[str, Any] | None = None) -> DocumentInfo:
        """Store a document and its chunks, replacing this tenant's document at the same source path."""
        with self._session("cannot store document", write=True) as s:
            old = s.scalar(select(Document).where(
                Document.tenant_id == self.tenant_id, Document.source_path == source_path))
            if old is not None:
                s.query(Chunk).filter(Chunk.document_id == old.id, Chunk.tenant_id == self.tenant_id).delete()
                s.delete(old)
                s.flush()
            doc = Document(tenant_id=self.tenant_id, source_path=source_path, sha256=sha256, title=title,
                           embedding_model=embedding_model, meta=dict(meta or {}))
            s.add(doc)
            s.flush()
            s.add_all(Chunk(document_id=doc.id, tenant_id=self.tenant_id, ordinal=c.ordinal, text=c.text,
                            embedding_model=embedding_model, meta=dict(c.meta)) for c in chunks)
            s.flush()
            return self._document_info(s, doc)

    def documents(self) -> list[DocumentInfo]:
        with self._session("cannot list documents") as s:
            rows = s.scalars(select(Document).where(Document.tenant_id == self.tenant_id)
                             .order_by(Document.source_path))
            return [self._document_info(s, r) for r in rows]

    def document(self, document_id: int) -> DocumentInfo:
        with self._session("cannot read document") as s:
            row = s.scalar(select(Document).where(
                Document.id == document_id, Document.tenant_id == self.tenant_id))
            if row is None:
                raise DocumentNotFound(f"no document with id {document_id}")
            return self._document_info(s, row)

    def document_by_path(self, source_path: str) -> DocumentInfo:
        with self._session("cannot read document") as s:
            row = s.scalar(select(Document).where(
                Document.source_path == source_path, Document.tenant_id == self.tenant_id))
            if row is None:
                raise DocumentNotFound(f"no document from {source_path!r}")
            return self._document_info(s, row)

    def delete_document(self, document_id: int) -> None:
        with self._session("cannot delete document", write=True) as s:
            row = s.scalar(select(Document).where(
                Document.id == document_id, Document.tenant_id == self.tenant_id))
            if row is None:
                raise DocumentNotFound(f"no document with id {document_id}")
            s.query(Chunk).filter(Chunk.document_id == row.id, Chunk.tenant_id == self.tenant_id).delete()
            s.delete(row)

    def _chunk_query(self) -> Any:
        return select(Chunk, Document.source_path, Document.title).join(
            Document, (Document.id == Chunk.document_id) & (Document.tenant_id == Chunk.tenant_id)).where(
            Chunk.tenant_id == self.tenant_id, Document.tenant_id == self.tenant_id)

    @staticmethod
    def _chunk_info(c: Chunk, source_path: str, title: str) -> ChunkInfo:
        return ChunkInfo(id=c.id, document_id=c.document_id, ordinal=c.ordinal, text=c.text,
                         embedding_model=c.embedding_model, meta=MappingProxyType(dict(c.meta or {})),
                         source_path=source_path, title=title)

    def chunks(self, document_id: int | None = None) -> list[ChunkInfo]:
        """This tenant's chunks (of one document, or all of them) in document/ordinal order."""
        with self._session("cannot list chunks") as s:
            query = self._chunk_query()
            if document_id is not None:
                query = query.where(Chunk.document_id == document_id)
            rows = s.execute(query.order_by(Chunk.document_id, Chunk.ordinal))
            return [self._chunk_info(*r) for r in rows]

    def get_chunks(self, chunk_ids: Sequence[int]) -> list[ChunkInfo]:
        """The chunks with these ids that belong to this tenant, in the order asked (others are dropped)."""
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return []
        with self._session("cannot read chunks") as s:
            rows = s.execute(self._chunk_query().where(Chunk.id.in_(ids)))
            found = {r[0].id: self._chunk_info(*r) for r in rows}
        return [found[i] for i in ids if i in found]

    # ---- call records and recordings -------------------------------------------------------------

    @staticmethod
    def _call_info(r: CallRecord) -> CallRecordInfo:
        return CallRecordInfo(
            call_uuid=r.call_uuid, tenant_id=r.tenant_id, caller=r.caller, destination=r.destination,
            started_at=r.started_at, answered_at=r.answered_at, ended_at=r.ended_at, outcome=r.outcome,
            hangup_cause=r.hangup_cause, flow_name=r.flow_name, flow_version_id=r.flow_version_id,
            path=list(r.path or []), recordings=list(r.recordings or []), turns=list(r.turns or []),
            latencies=r.latencies)

    def call_record(self, call_uuid: str) -> CallRecordInfo:
        with self._session("cannot read call record") as s:
            row = s.scalar(select(CallRecord).where(
                CallRecord.call_uuid == call_uuid, CallRecord.tenant_id == self.tenant_id))
            if row is None:
                raise CallRecordNotFound(f"no call record for call {call_uuid}")
            return self._call_info(row)

    def call_records(self, *, limit: int = 100, offset: int = 0, since: dt.datetime | None = None,
                     outcome: str | None = None, number: str | None = None) -> list[CallRecordInfo]:
        """This tenant's call records, most recent first; ``since`` (started at or after), ``outcome``,
        ``number`` (the caller's or the dialled number) narrow them."""
        query = select(CallRecord).where(CallRecord.tenant_id == self.tenant_id)
        if since is not None:
            query = query.where(CallRecord.started_at >= since)
        if outcome is not None:
            query = query.where(CallRecord.outcome == outcome)
        if number is not None:
            query = query.where((CallRecord.caller == number) | (CallRecord.destination == number))
        with self._session("cannot list call records") as s:
            rows = s.scalars(query.order_by(CallRecord.started_at.desc(), CallRecord.id.desc())
                             .limit(limit).offset(offset))
            return [self._call_info(r) for r in rows]

    def recordings(self, call_uuid: str) -> list[Any]:
        """The recordings (as stored by the controller) of one of this tenant's calls."""
        return self.call_record(call_uuid).recordings

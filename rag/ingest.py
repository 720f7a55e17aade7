"""Ingesting a tenant's documents: read → chunk → embed in batches → database → vector index.

`Ingester(store, index, embeddings, settings)` works for one tenant (a `TenantStore` is bound to
one tenant id, and the index is that tenant's):

- `ingest(paths)` takes files and folders (folders: every supported file below, sorted; symbolic
  links given as arguments, or leaving the folder, are refused: `collect_paths`) and
  returns one `IngestReport` per file: ``added``, ``updated`` (the file changed: its chunks are
  replaced), ``unchanged`` (same bytes, same model, all chunks indexed) or ``failed`` (with the
  one-line reason; the other files still go in). A refused file changes nothing.
- `remove(source)` deletes a document, its chunks and its vectors.
- `repair()` makes the index match the database: vectors of chunks that no longer exist are
  dropped, chunks without a vector are embedded. `ingest` runs it first, so a crash between the
  database write and the index write (the only window where they disagree) heals on the next run.
- `reindex()` re-embeds every chunk with the tenant's current embedding model and rebuilds the
  index from scratch (after the tenant changed its embedding provider).

Order of writes for one file: everything that can fail on bad input (reading, chunking,
embedding) happens before anything is written; then the chunks go to the database in one
transaction, then the index is updated atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import structlog

from providers.embeddings.base import EmbeddingProvider
from providers.errors import ProviderError
from rag.chunking import DocChunk, chunk_document, embedding_text
from rag.documents import SUFFIXES, read_document
from rag.embedding_model import embed_with_model, model_id
from rag.errors import EmptyDocument, IngestError, RagError, UnsupportedDocument, VectorIndexError
from rag.settings import RagSettings
from rag.vector_index import IndexInfo, VectorIndex
from schema.errors import DocumentNotFound
from schema.rows import ChunkInfo, DocumentInfo
from schema.store import ChunkInput, TenantStore

log = structlog.get_logger(__name__)

Status = Literal["added", "updated", "unchanged", "failed", "removed"]


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...


ProgressFactory = Callable[[int, str], AbstractContextManager[Progress]]


class _NoProgress:
    def update(self, n: int = 1) -> None:
        return None


def _no_progress(total: int, desc: str) -> AbstractContextManager[Progress]:
    return nullcontext(_NoProgress())


@dataclass(frozen=True, slots=True)
class IngestReport:
    path: str
    status: Status
    chunks: int = 0
    document_id: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class RepairReport:
    dropped: int
    embedded: int
    info: IndexInfo | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file to ingest, or the reason it is refused before it is opened."""

    path: Path
    refused: str = ""


def _walk(folder: Path) -> Iterator[Path]:
    """Every entry below `folder`, without descending into symlinked folders."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files) + sorted(d for d in dirs if (base / d).is_symlink()):
            yield base / name


def collect_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Candidate]:
    """Files to ingest: the files named, and the supported files inside the folders named.

    Confined to what was asked: a symbolic link given as an argument is refused (name the file
    itself), and inside a folder a link whose target is outside that folder is refused (a folder
    holding ``shadow.txt -> /etc/shadow`` must not put /etc/shadow into a tenant's knowledge base).
    Links that stay inside the folder are read as the files they point to; linked folders are not
    walked into.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_symlink():
            yield Candidate(path, "a symbolic link: give the file or folder itself")
        elif path.is_dir():
            root = path.resolve()
            for entry in _walk(path):
                if entry.suffix.lower() not in SUFFIXES or any(
                        part.startswith(".") for part in entry.relative_to(path).parts):
                    continue
                if entry.is_symlink():
                    target = entry.resolve()
                    if root not in target.parents:
                        yield Candidate(entry, f"a symbolic link that leaves {path}: refused")
                        continue
                    if not target.is_file():
                        continue
                elif not entry.is_file():
                    continue
                yield Candidate(entry)
        else:
            yield Candidate(path)


def source_name(path: Path) -> str:
    """How a document is identified in the tenant's store: its absolute path."""
    return str(path.expanduser().resolve())


class Ingester:
    """Ingests and removes one tenant's documents."""

    def __init__(self, store: TenantStore, index: VectorIndex, embeddings: EmbeddingProvider,
                 settings: RagSettings | None = None, *, progress: ProgressFactory | None = None,
                 encoding: str | None = None) -> None:
        self.encoding = encoding           # text files' encoding when it is not UTF-8 (--encoding)
        self.store = store
        self.index = index
        self.embeddings = embeddings
        self.settings = settings or RagSettings()
        self.progress = progress or _no_progress

    # ------------------------------------------------------------------ embedding

    def _embed(self, texts: list[str], desc: str) -> tuple[np.ndarray, str]:
        """Vectors for `texts` in batches (one model for all of them), with progress."""
        parts: list[np.ndarray] = []
        model = ""
        size = self.settings.embed_batch
        with self.progress(len(texts), desc) as bar:
            for start in range(0, len(texts), size):
                batch = texts[start:start + size]
                try:
                    vectors, used = embed_with_model(self.embeddings, batch, purpose="document",
                                                     timeout=self.settings.embed_timeout)
                except ProviderError as e:
                    raise IngestError(f"embedding failed: {e}") from e
                if model and used != model:
                    raise IngestError(f"the embedding provider switched model mid-document ({model} → {used}); "
                                      "try again when the primary provider is back")
                model = used
                parts.append(vectors)
                bar.update(len(batch))
        if not parts:
            return np.zeros((0, 0), dtype=np.float32), model_id(self.embeddings)
        return np.vstack(parts), model

    def _check_model(self, model: str) -> None:
        info = self.index.info()
        if info is not None and info.count and info.model != model:
            raise VectorIndexError(f"the tenant's index was built with {info.model!r}, its embedding provider is "
                                   f"now {model!r}; run ivr docs reindex")

    # ------------------------------------------------------------------ one file

    def _existing(self, source: str) -> DocumentInfo | None:
        try:
            return self.store.document_by_path(source)
        except DocumentNotFound:
            return None

    def ingest_file(self, path: Path, *, indexed: set[int] | None = None) -> IngestReport:
        source = source_name(path)
        try:
            doc = read_document(path, self.settings.limits, encoding=self.encoding)
            existing = self._existing(source)
            current_model = model_id(self.embeddings)
            if existing is not None and existing.sha256 == doc.sha256 and existing.embedding_model == current_model:
                old = self.store.chunks(existing.id)
                ids = indexed if indexed is not None else self.index.ids()
                if old and all(c.id in ids for c in old):
                    return IngestReport(source, "unchanged", len(old), existing.id)
            chunks = chunk_document(doc, self.settings.chunks)
            if not chunks:
                raise EmptyDocument("no text found", path=str(path))
            vectors, model = self._embed([embedding_text(c.text, c.heading, doc.title) for c in chunks],
                                         path.name)
            self._check_model(model)
            old_ids = [c.id for c in self.store.chunks(existing.id)] if existing is not None else []
            info = self.store.add_document(source, sha256=doc.sha256, title=doc.title[:512], embedding_model=model,
                                           chunks=[_chunk_input(c) for c in chunks],
                                           meta={"kind": doc.kind, "chars": doc.chars, "name": path.name})
            new_ids = [c.id for c in self.store.chunks(info.id)]
            self.index.apply(model=model, dimension=int(vectors.shape[1]), remove=old_ids, add_ids=new_ids,
                             add_vectors=vectors)
            if indexed is not None:
                indexed.difference_update(old_ids)
                indexed.update(new_ids)
        except IngestError as e:
            log.warning("rag.ingest_refused", tenant_id=self.store.tenant_id, path=str(path), reason=e.reason)
            return IngestReport(source, "failed", error=e.reason if e.path else str(e))
        except RagError as e:
            log.warning("rag.ingest_failed", tenant_id=self.store.tenant_id, path=str(path), error=str(e))
            return IngestReport(source, "failed", error=str(e))
        status: Status = "updated" if existing is not None else "added"
        log.info("rag.ingested", tenant_id=self.store.tenant_id, path=path.name, status=status, chunks=len(new_ids))
        return IngestReport(source, status, len(new_ids), info.id)

    # ------------------------------------------------------------------ many files

    def ingest(self, paths: Sequence[str | os.PathLike[str]]) -> list[IngestReport]:
        self.repair()
        indexed = self.index.ids()
        reports: list[IngestReport] = []
        for candidate in collect_paths(paths):
            path = candidate.path
            if candidate.refused:
                log.warning("rag.ingest_refused", tenant_id=self.store.tenant_id, path=str(path),
                            reason=candidate.refused)
                reports.append(IngestReport(str(path), "failed", error=candidate.refused))
                continue
            if path.suffix.lower() not in SUFFIXES:
                error = UnsupportedDocument(f"unsupported file type {path.suffix or '(none)'!r}")
                reports.append(IngestReport(str(path), "failed", error=error.reason))
                continue
            reports.append(self.ingest_file(path, indexed=indexed))
        return reports

    def remove(self, source: str | int) -> IngestReport:
        """Delete a document by id, by source path, or by file name (when only one document has it)."""
        doc = self.find(source)
        ids = [c.id for c in self.store.chunks(doc.id)]
        self.store.delete_document(doc.id)
        info = self.index.info()
        if info is not None:
            self.index.apply(model=info.model, dimension=info.dimension, remove=ids, add_ids=[],
                             add_vectors=np.zeros((0, info.dimension), dtype=np.float32))
        log.info("rag.removed", tenant_id=self.store.tenant_id, document_id=doc.id, chunks=len(ids))
        return IngestReport(doc.source_path, "removed", len(ids), doc.id)

    def find(self, source: str | int) -> DocumentInfo:
        if isinstance(source, int) or str(source).isdigit():
            return self.store.document(int(source))
        try:
            return self.store.document_by_path(source_name(Path(str(source))))
        except DocumentNotFound:
            pass
        matches = [d for d in self.store.documents() if Path(d.source_path).name == str(source)
                   or d.source_path == str(source)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise DocumentNotFound(f"{len(matches)} documents are named {source!r}; give the id or full path")
        raise DocumentNotFound(f"no document {source!r}")

    # ------------------------------------------------------------------ consistency

    def repair(self) -> RepairReport:
        """Make the index hold exactly the vectors of the tenant's chunks."""
        chunks = self.store.chunks()
        indexed = self.index.ids()
        known = {c.id for c in chunks}
        stale = indexed - known
        missing = [c for c in chunks if c.id not in indexed]
        if not stale and not missing:
            return RepairReport(0, 0, self.index.info())
        info = self.index.info()
        vectors, model = self._embed([_embedding_text_of(c) for c in missing], "repair") if missing else (
            np.zeros((0, info.dimension if info else 0), dtype=np.float32), info.model if info else "")
        if missing:
            self._check_model(model)
        dimension = int(vectors.shape[1]) if missing else (info.dimension if info else 0)
        new = self.index.apply(model=model or (info.model if info else ""), dimension=dimension, remove=stale,
                               add_ids=[c.id for c in missing], add_vectors=vectors)
        log.warning("rag.index_repaired", tenant_id=self.store.tenant_id, dropped=len(stale), embedded=len(missing))
        return RepairReport(len(stale), len(missing), new)

    def reindex(self) -> RepairReport:
        """Re-embed every chunk with the current model and rebuild the index from scratch."""
        chunks = self.store.chunks()
        if not chunks:
            self.index.drop()
            return RepairReport(0, 0, None)
        vectors, model = self._embed([_embedding_text_of(c) for c in chunks], "reindex")
        info = self.index.apply(model=model, dimension=int(vectors.shape[1]), remove=[],
                                add_ids=[c.id for c in chunks], add_vectors=vectors, replace_all=True)
        return RepairReport(0, len(chunks), info)


def _chunk_input(chunk: DocChunk) -> ChunkInput:
    return ChunkInput(text=chunk.text, ordinal=chunk.ordinal, meta=chunk.meta())


def _embedding_text_of(chunk: ChunkInfo) -> str:
    return embedding_text(chunk.text, str(chunk.meta.get("heading", "")), chunk.title)

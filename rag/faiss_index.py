"""The default vector backend: one faiss index per tenant on local disk, written atomically.

Layout under the index root (``$IVR_RAG_DIR``, default ``var/rag``)::

    <root>/tenant-<id>/manifest.json        {"model", "dimension", "count", "file", "sha256", …}
    <root>/tenant-<id>/index-<gen>.faiss    faiss.serialize_index of an IndexIDMap2(IndexFlatIP)
    <root>/tenant-<id>/.lock                flock: one writer at a time (ingests of one tenant queue)

A write serialises the new index to a new generation file (temp file, fsync, rename), then
replaces ``manifest.json`` the same way; only then are older generation files deleted. A crash
at any point leaves a manifest that names a complete file: the previous index stays usable.
Readers check the manifest's sha256 against the file, so a damaged file is an error, not
garbage answers.

The loaded index is cached per process and reloaded when the manifest changes (one ``stat``
per search). Exact inner-product search (`IndexFlatIP`): at 100k chunks of 384 dimensions a
query is a few milliseconds (see ``benchmarks/rag``); searches run in the model thread pool
(`providers.offload`), since faiss releases the GIL, so the gevent hub never waits on them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from providers.audio import atomic_write
from providers.errors import ProviderTimeout
from providers.offload import run_in_thread
from rag.errors import IndexMissing, RetrievalFailed, VectorIndexError
from rag.vector_index import Hit, IndexInfo, check_vectors

log = structlog.get_logger(__name__)
# faiss tries its AVX512 and AVX2 builds first and logs each miss at INFO ("Could not load library
# with AVX512 support"), which every `ivr docs` command printed: only its warnings are news.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass(slots=True)
class _Loaded:
    key: tuple[int, int, int]          # (st_ino, st_mtime_ns, st_size) of the manifest
    info: IndexInfo
    index: Any


_cache: dict[str, _Loaded] = {}
_cache_lock = threading.Lock()


def new_flat_index(dimension: int) -> Any:
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


class FaissIndex:
    """One tenant's faiss index on disk."""

    backend = "faiss"

    def __init__(self, root: str | os.PathLike[str], tenant_id: int) -> None:
        self.tenant_id = int(tenant_id)
        self.folder = Path(root) / f"tenant-{self.tenant_id}"

    def __repr__(self) -> str:
        return f"FaissIndex({str(self.folder)!r})"

    # ------------------------------------------------------------------ reading

    def _manifest_key(self) -> tuple[int, int, int] | None:
        try:
            st = (self.folder / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            raw = (self.folder / MANIFEST).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise VectorIndexError(f"cannot read {self.folder / MANIFEST}: {e}") from e
        try:
            manifest = json.loads(raw)
            if manifest.get("format") != FORMAT:
                raise ValueError(f"unknown format {manifest.get('format')!r}")
            return dict(manifest)
        except (ValueError, AttributeError) as e:
            raise VectorIndexError(f"damaged manifest {self.folder / MANIFEST}: {e}") from e

    @staticmethod
    def _info(manifest: dict[str, Any]) -> IndexInfo:
        return IndexInfo(model=str(manifest["model"]), dimension=int(manifest["dimension"]),
                         count=int(manifest["count"]), generation=str(manifest["generation"]),
                         updated_at=float(manifest["updated_at"]))

    def info(self) -> IndexInfo | None:
        manifest = self._read_manifest()
        return self._info(manifest) if manifest else None

    def _load_file(self, manifest: dict[str, Any]) -> Any:
        import faiss

        path = self.folder / str(manifest["file"])
        try:
            data = path.read_bytes()
        except OSError as e:
            raise VectorIndexError(f"the index file {path} named by the manifest cannot be read: {e}") from e
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
            raise VectorIndexError(f"the index file {path} does not match its manifest (damaged)")
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as e:
            raise VectorIndexError(f"the index file {path} cannot be loaded: {e}") from e
        if index.d != int(manifest["dimension"]) or index.ntotal != int(manifest["count"]):
            raise VectorIndexError(f"the index file {path} does not match its manifest")
        return index

    def loaded(self) -> _Loaded:
        """The current index (cached per process; reloaded when the manifest changed)."""
        key = self._manifest_key()
        if key is None:
            raise IndexMissing(f"tenant {self.tenant_id} has no document index yet (ivr docs ingest)")
        cached = _cache.get(str(self.folder))
        if cached is not None and cached.key == key:
            return cached
        manifest = self._read_manifest()
        if manifest is None:
            raise IndexMissing(f"tenant {self.tenant_id} has no document index yet (ivr docs ingest)")
        loaded = _Loaded(key, self._info(manifest), self._load_file(manifest))
        with _cache_lock:
            _cache[str(self.folder)] = loaded
        log.info("rag.index_loaded", tenant_id=self.tenant_id, count=loaded.info.count,
                 generation=loaded.info.generation)
        return loaded

    def ids(self) -> set[int]:
        try:
            index = self.loaded().index
        except IndexMissing:
            return set()
        if index.ntotal == 0:
            return set()
        import faiss

        return {int(i) for i in faiss.vector_to_array(index.id_map)}

    def search(self, vector: np.ndarray, k: int, *, timeout: float) -> list[Hit]:
        loaded = self.loaded()
        if loaded.info.count == 0 or k <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != loaded.info.dimension:
            raise RetrievalFailed(f"query has dimension {query.shape[1]}, the index {loaded.info.dimension}")
        try:
            scores, ids = run_in_thread(loaded.index.search, query, min(k, loaded.info.count), timeout=timeout,
                                        provider="rag:faiss")
        except ProviderTimeout as e:
            raise RetrievalFailed(f"faiss search did not finish within {timeout:g}s") from e
        return [Hit(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _writer_lock(self, timeout: float = 600.0) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+b") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise VectorIndexError(f"another ingest holds {self.folder / '.lock'}") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def apply(self, *, model: str, dimension: int, remove: Iterable[int], add_ids: Sequence[int],
              add_vectors: np.ndarray, replace_all: bool = False) -> IndexInfo:
        vectors = check_vectors(add_ids, add_vectors, dimension)
        with self._writer_lock():
            manifest = self._read_manifest()
            if manifest is not None and not replace_all:
                if manifest["model"] != model or int(manifest["dimension"]) != dimension:
                    raise VectorIndexError(
                        f"the index was built with {manifest['model']!r} ({manifest['dimension']} dimensions); "
                        f"refusing vectors of {model!r} ({dimension}); rebuild it with ivr docs reindex")
                index = self._load_file(manifest)
            else:
                index = new_flat_index(dimension)
            gone = np.asarray(sorted({int(i) for i in remove}), dtype=np.int64)
            if len(gone) and index.ntotal:
                index.remove_ids(gone)
            if len(add_ids):
                ids = np.asarray(add_ids, dtype=np.int64)
                if index.ntotal:
                    import faiss

                    present = np.intersect1d(ids, faiss.vector_to_array(index.id_map))
                    if len(present):
                        index.remove_ids(present)
                index.add_with_ids(vectors, ids)
            return self._write(index, model, dimension, previous=manifest)

    def _write(self, index: Any, model: str, dimension: int, previous: dict[str, Any] | None) -> IndexInfo:
        import faiss

        generation = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        data = faiss.serialize_index(index).tobytes()
        name = f"index-{generation}.faiss"
        try:
            atomic_write(self.folder / name, data)
            manifest = {"format": FORMAT, "model": model, "dimension": dimension, "count": int(index.ntotal),
                        "file": name, "sha256": hashlib.sha256(data).hexdigest(), "generation": generation,
                        "updated_at": time.time(), "kind": "IndexIDMap2(IndexFlatIP)"}
            atomic_write(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())
        except OSError as e:
            (self.folder / name).unlink(missing_ok=True)
            raise VectorIndexError(f"cannot write the index under {self.folder}: {e}") from e
        for old in self.folder.glob("index-*.faiss"):
            if old.name != name:
                old.unlink(missing_ok=True)
        log.info("rag.index_written", tenant_id=self.tenant_id, count=int(index.ntotal), generation=generation,
                 bytes=len(data))
        return self._info(manifest)

    def drop(self) -> None:
        with self._writer_lock():
            (self.folder / MANIFEST).unlink(missing_ok=True)
            for old in self.folder.glob("index-*.faiss"):
                old.unlink(missing_ok=True)
        with _cache_lock:
            _cache.pop(str(self.folder), None)

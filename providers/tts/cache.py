"""The on-disk TTS prompt cache, one folder per tenant.

A prompt is synthesized once, not once per call: the WAV (already at the telephone rate
FreeSWITCH plays) is stored under ``<root>/<tenant>/<sha256>.wav`` where the hash covers
(provider, voice, text, sample rate). Properties:

- survives restarts (it is just files) and is shared by processes on the same disk;
- writes are atomic (temp file in the same folder + ``os.replace``), so a reader sees the
  old file or the whole new one, never half a WAV;
- bounded by bytes: after each write the least recently used files (by mtime; a hit
  touches the file) are deleted until the folder fits ``max_bytes``;
- tenants never share a folder; tenant ids are checked to be plain names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import structlog

from providers.audio import atomic_write
from providers.errors import ProviderConfigError

log = structlog.get_logger(__name__)

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class TTSCache:
    def __init__(self, root: str | os.PathLike[str], tenant: str, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        if not _TENANT.match(tenant) or ".." in tenant:
            raise ProviderConfigError(f"tenant id {tenant!r} cannot name a cache folder")
        self.tenant = tenant
        self.folder = Path(root) / tenant
        self.max_bytes = max_bytes

    @staticmethod
    def key(provider: str, voice: str, text: str, sample_rate: int) -> str:
        blob = json.dumps([provider, voice, text, sample_rate], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def path_for(self, provider: str, voice: str, text: str, sample_rate: int) -> Path:
        return self.folder / f"{self.key(provider, voice, text, sample_rate)}.wav"

    def get(self, provider: str, voice: str, text: str, sample_rate: int) -> Path | None:
        """The cached WAV, or None. A hit makes the file the most recently used."""
        path = self.path_for(provider, voice, text, sample_rate)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def put(self, provider: str, voice: str, text: str, sample_rate: int, wav: bytes) -> Path:
        """Store a WAV atomically and evict old entries past ``max_bytes``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(provider, voice, text, sample_rate)
        atomic_write(path, wav)
        self.evict(keep=path)
        return path

    def entries(self) -> list[tuple[float, int, Path]]:
        """``(mtime, size, path)`` for every cached WAV, oldest first."""
        out = []
        try:
            with os.scandir(self.folder) as it:
                for entry in it:
                    if entry.name.endswith(".wav") and entry.is_file():
                        try:
                            st = entry.stat()
                        except FileNotFoundError:
                            continue
                        out.append((st.st_mtime, st.st_size, Path(entry.path)))
        except FileNotFoundError:
            return []
        return sorted(out)

    def size(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: Path | None = None) -> int:
        """Delete least recently used files until the folder fits; returns bytes freed."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            total -= size
            freed += size
        if freed:
            log.info("tts_cache.evicted", tenant=self.tenant, freed_bytes=freed, size_bytes=total)
        return freed

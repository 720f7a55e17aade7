"""Fixtures of the WhatsApp channel's tests: the loopback Twilio stub, the channel on SQLite (and on
Redis when IVR_TEST_REDIS_URL is set), secret keys and a per-test RAG folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "rag"))
sys.path.insert(0, str(Path(__file__).parents[1] / "providers"))
os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")

from twilio_stub import TwilioStub
from whatsapp_harness import Channel

REDIS_ENV = "IVR_TEST_REDIS_URL"


@pytest.fixture(autouse=True)
def _environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_SECRET_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("IVR_RAG_DIR", str(tmp_path / "rag"))
    monkeypatch.setenv("IVR_TTS_CACHE_DIR", str(tmp_path / "tts"))


@pytest.fixture
def twilio() -> Iterator[TwilioStub]:
    stub = TwilioStub()
    try:
        yield stub
    finally:
        stub.close()


def redis_url() -> str:
    url = os.environ.get(REDIS_ENV, "").strip()
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set (e.g. redis://127.0.0.1:6379/0)")
    return url


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both queue backends: huey's SqliteHuey (a file) and RedisHuey (IVR_TEST_REDIS_URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    import redis

    url = redis_url()
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as e:
        pytest.fail(f"{REDIS_ENV}={url} does not answer: {e}")
    yield url


@pytest.fixture
def channel(tmp_path: Path, twilio: TwilioStub) -> Iterator[Channel]:
    c = Channel(tmp_path, twilio)
    try:
        yield c
    finally:
        c.close()

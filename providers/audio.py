"""Audio as providers exchange it: ``AudioClip`` (16-bit mono PCM + rate), WAV I/O, resampling.

Everything is numpy: no sox, no scipy. Resampling is a windowed-sinc low-pass FIR
(applied before decimation or after interpolation) around linear interpolation, which is
plenty for speech between the telephone rates (8/16 kHz) and vendor rates (22.05/24 kHz).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import wave
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from providers.errors import ProviderBadResponse

TELEPHONE_RATES = (8000, 16000)


@dataclass(frozen=True, slots=True)
class AudioClip:
    """16-bit little-endian mono PCM at ``sample_rate``.

    ``provider`` and ``attempts`` are set when a TTS provider made the clip, so a call
    record can say who spoke (and which providers failed first).
    """

    pcm: bytes
    sample_rate: int
    provider: str = ""
    attempts: tuple[Any, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {self.sample_rate}")
        if len(self.pcm) % 2:
            raise ValueError("16-bit PCM must have an even number of bytes")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / 2 / self.sample_rate

    def samples(self) -> np.ndarray:
        """The samples as an int16 array (a read-only view)."""
        return np.frombuffer(self.pcm, dtype="<i2")

    @classmethod
    def from_samples(cls, samples: np.ndarray, sample_rate: int, **kwargs: Any) -> AudioClip:
        """From int16 samples, or floats in [-1, 1] (clipped)."""
        arr = np.asarray(samples)
        if arr.ndim > 1:
            arr = arr.mean(axis=1) if arr.shape[1] <= 8 else arr.reshape(-1)
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.round(arr * 32767.0), -32768, 32767)
        return cls(arr.astype("<i2").tobytes(), sample_rate, **kwargs)

    def resample(self, sample_rate: int) -> AudioClip:
        """The same audio at another rate (band-limited)."""
        if sample_rate == self.sample_rate:
            return self
        floats = resample(self.samples().astype(np.float32), self.sample_rate, sample_rate)
        data = np.clip(np.round(floats), -32768, 32767).astype("<i2").tobytes()
        return replace(self, pcm=data, sample_rate=sample_rate)

    def to_wav_bytes(self) -> bytes:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.pcm)
        return buf.getvalue()

    def write_wav(self, path: str | os.PathLike[str]) -> Path:
        """Write a 16-bit mono WAV atomically (temp file in the same folder, then rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, self.to_wav_bytes())
        return target

    @classmethod
    def from_wav_bytes(cls, data: bytes, **kwargs: Any) -> AudioClip:
        """Read PCM WAV (8/16/24/32-bit integer, any channel count: mixed down to mono)."""
        try:
            with wave.open(io.BytesIO(data), "rb") as w:
                channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
                frames = w.readframes(w.getnframes())
        except (wave.Error, EOFError) as e:
            raise ProviderBadResponse(f"not a PCM WAV file: {e}") from e
        if width == 2 and channels == 1:
            return cls(frames[: len(frames) // 2 * 2], rate, **kwargs)
        samples = _int_samples(frames, width)
        if channels > 1:
            samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
        ints = np.clip(np.round(samples), -32768, 32767).astype("<i2")
        return cls(ints.tobytes(), rate, **kwargs)

    @classmethod
    def read_wav(cls, path: str | os.PathLike[str]) -> AudioClip:
        return cls.from_wav_bytes(Path(path).read_bytes())


def _int_samples(frames: bytes, width: int) -> np.ndarray:
    """Integer PCM of any width as int16-scaled floats."""
    if width == 1:
        return (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128.0) * 256.0
    if width == 2:
        return np.frombuffer(frames, dtype="<i2").astype(np.float32)
    if width == 3:
        raw = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3)
        ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8)
                | (raw[:, 2].astype(np.int32) << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        return ints.astype(np.float32) / 256.0
    if width == 4:
        return np.frombuffer(frames, dtype="<i4").astype(np.float32) / 65536.0
    raise ProviderBadResponse(f"unsupported WAV sample width {width}")


def _lowpass_taps(cutoff: float, half_width: int = 32) -> np.ndarray:
    """Windowed-sinc low-pass FIR; ``cutoff`` is a fraction of the sample rate (< 0.5)."""
    n = np.arange(-half_width, half_width + 1, dtype=np.float64)
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(len(n))
    return (taps / taps.sum()).astype(np.float32)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample float samples from ``src_rate`` to ``dst_rate`` without aliasing."""
    x = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate or len(x) == 0:
        return x
    if dst_rate < src_rate:
        # Remove what the new rate cannot hold before taking fewer samples.
        x = np.convolve(x, _lowpass_taps(0.45 * dst_rate / src_rate), mode="same")
    n_out = round(len(x) * dst_rate / src_rate)
    positions = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    y = np.interp(positions, np.arange(len(x), dtype=np.float64), x).astype(np.float32)
    if dst_rate > src_rate:
        # Smooth the interpolation's images above the old Nyquist frequency.
        y = np.convolve(y, _lowpass_taps(0.45 * src_rate / dst_rate), mode="same")
    return y


class StreamResampler:
    """`resample` over audio that arrives in pieces (a caller still speaking).

    `feed(samples)` returns the output samples that are final: the same values `resample` gives
    for the whole stream, because each call resamples only a window reaching `CONTEXT` input
    samples back (both filters are local, and the window starts on a sample where input and
    output grids meet), and the last `HOLD` output samples, which the window's right edge still
    affects, wait for more input or for `flush`.
    """

    CONTEXT = 256
    HOLD = 128

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._step = src_rate // math.gcd(src_rate, dst_rate)   # input grid points that map to whole outputs
        self._input = np.zeros(0, dtype=np.float32)
        self.done = 0                                            # output samples returned so far

    def feed(self, samples: np.ndarray) -> np.ndarray:
        self._input = np.concatenate([self._input, np.asarray(samples, dtype=np.float32)])
        return self._take(final=False)

    def flush(self) -> np.ndarray:
        """Whatever is still held back (call when the stream ends)."""
        return self._take(final=True)

    def rewind(self) -> None:
        """Start returning output from the beginning again (all input so far is kept)."""
        self.done = 0

    def _take(self, *, final: bool) -> np.ndarray:
        start = max(0, self.done * self.src_rate // self.dst_rate - self.CONTEXT)
        start -= start % self._step
        offset = start * self.dst_rate // self.src_rate
        out = resample(self._input[start:], self.src_rate, self.dst_rate)
        end = offset + len(out) - (0 if final else self.HOLD)
        if end <= self.done:
            return np.zeros(0, dtype=np.float32)
        piece = out[self.done - offset:end - offset]
        self.done = end
        return piece


def pcm_clip(data: bytes, sample_rate: int, **kwargs: Any) -> AudioClip:
    """Raw 16-bit LE mono PCM from a vendor; a trailing odd byte is a bad response."""
    if len(data) % 2:
        raise ProviderBadResponse(f"odd-length 16-bit PCM ({len(data)} bytes)")
    return AudioClip(data, sample_rate, **kwargs)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)   # the rename itself survives a crash


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

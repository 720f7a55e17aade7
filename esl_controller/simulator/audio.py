"""Audio for the simulator: prompt lengths from WAV headers, the caller's speech, and the
WAV files that ``record`` writes.

Everything is 8 kHz, mono, 16-bit PCM (FreeSWITCH's L16 at 8000 Hz in the traces); a
caller WAV in another format is converted (channels averaged, linearly resampled).

`CallerLine` is what the caller says over time: a list of speech segments placed on the
call's simulated timeline.  A ``record`` reads it in 20 ms frames: frames inside a segment
are written to the file (silent gaps between segments are CNG frames on a real loopback leg
and are not written, trace ``f1``) and their mean absolute amplitude drives silence
detection.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RATE = 8000
FRAME_SAMPLES = 160                     # 20 ms at 8 kHz
FRAME_SECONDS = FRAME_SAMPLES / RATE
WAV_HEADER_BYTES = 44


def wav_frames(path: str | Path) -> tuple[int, int] | None:
    """``(frames, rate)`` read from a WAV header, or None when missing or unreadable."""
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes(), wav.getframerate()
    except (OSError, EOFError, wave.Error):
        return None


def load_pcm8k(path: str | Path) -> np.ndarray:
    """The samples of a WAV as 8 kHz mono int16 (converted and resampled if needed)."""
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0
    else:
        raise ValueError(f"{path}: unsupported sample width {width}")
    if channels > 1:
        data = data[: len(data) // channels * channels].reshape(-1, channels).mean(axis=1)
    if rate != RATE and len(data):
        count = max(1, round(len(data) * RATE / rate))
        data = np.interp(np.arange(count) * (rate / RATE), np.arange(len(data)), data)
    return np.clip(np.round(data), -32768, 32767).astype(np.int16)


def frame_energy(samples: np.ndarray) -> np.ndarray:
    """Mean absolute amplitude of each 20 ms frame (the last, partial frame included)."""
    if not len(samples):
        return np.zeros(0)
    padded = np.zeros(-(-len(samples) // FRAME_SAMPLES) * FRAME_SAMPLES, dtype=np.int32)
    padded[: len(samples)] = np.abs(samples.astype(np.int32))
    return padded.reshape(-1, FRAME_SAMPLES).mean(axis=1)


def write_wav(path: str | Path, samples: np.ndarray) -> int:
    """Write 8 kHz mono 16-bit PCM; returns the file size in bytes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return WAV_HEADER_BYTES + 2 * len(samples)


@dataclass(slots=True)
class SpeechSegment:
    """The caller talking: ``samples`` starting at simulated second ``start``."""

    start: float
    samples: np.ndarray
    text: str | None = None
    energy: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.energy = frame_energy(self.samples)

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / RATE


@dataclass(slots=True)
class RecordPlan:
    """Where a ``record`` would stop given what the caller has said so far."""

    stop_at: float                      # simulated second (inf: not decided by the audio yet)
    silence_exhausted: bool


class CallerLine:
    """What the caller says, on the call's simulated timeline."""

    def __init__(self) -> None:
        self.segments: list[SpeechSegment] = []

    def say(self, now: float, samples: np.ndarray, text: str | None = None) -> SpeechSegment:
        """The caller starts talking at ``now`` (or when their previous sentence ends)."""
        start = max(now, self.segments[-1].end if self.segments else now)
        segment = SpeechSegment(start, samples, text)
        self.segments.append(segment)
        return segment

    def cut(self, at: float) -> None:
        """The caller stops talking at ``at`` (hangup): later speech never happens."""
        kept = []
        for seg in self.segments:
            if seg.start >= at:
                continue
            if seg.end > at:
                seg = SpeechSegment(seg.start, seg.samples[: int((at - seg.start) * RATE)], seg.text)
            kept.append(seg)
        self.segments = kept

    def plan_record(self, start: float, limit: float, threshold: int, silence_seconds: float) -> RecordPlan:
        """When a ``record`` that began at ``start`` stops on silence or on its limit.

        Silence detection (when ``threshold`` and ``silence_seconds`` are set) counts 20 ms
        frames whose energy is at or below the threshold, from the start of the recording
        and again after each voiced frame, like FreeSWITCH's ``silence_hits``.
        """
        if threshold <= 0 or silence_seconds <= 0:
            return RecordPlan(limit, False)
        hits = max(1, round(silence_seconds / FRAME_SECONDS))
        left = hits
        t = start
        for seg in self.segments:
            if seg.end <= t:
                continue
            if seg.start > t:                       # a silent gap before this segment
                gap_frames = int((seg.start - t) / FRAME_SECONDS + 1e-9)
                if gap_frames >= left:
                    stop = t + left * FRAME_SECONDS
                    return RecordPlan(stop, True) if stop < limit else RecordPlan(limit, False)
                left -= gap_frames
                t += gap_frames * FRAME_SECONDS
            first = max(0, int((t - seg.start) / FRAME_SECONDS + 1e-9))
            for index in range(first, len(seg.energy)):
                frame_time = seg.start + index * FRAME_SECONDS
                if frame_time >= limit:
                    return RecordPlan(limit, False)
                if seg.energy[index] > threshold:
                    left = hits
                else:
                    left -= 1
                    if left == 0:
                        return RecordPlan(frame_time + FRAME_SECONDS, True)
            t = max(t, seg.end)
        stop = t + left * FRAME_SECONDS
        return RecordPlan(stop, True) if stop < limit else RecordPlan(limit, False)

    def captured(self, start: float, stop: float) -> np.ndarray:
        """The samples the caller said between ``start`` and ``stop`` (silent gaps left out)."""
        parts = []
        for seg in self.segments:
            lo, hi = max(start, seg.start), min(stop, seg.end)
            if hi <= lo:
                continue
            first = round((lo - seg.start) * RATE)
            parts.append(seg.samples[first:first + round((hi - lo) * RATE)])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def talking_at(self, at: float) -> bool:
        return any(seg.start <= at < seg.end for seg in self.segments)


WRITE_BUFFER_BYTES = 65536   # FreeSWITCH's default file write buffer (~4 s of 8 kHz audio)


def write_buffer_bytes(value: str | None) -> int:
    """The buffer FreeSWITCH uses for ``enable_file_write_buffering=<value>``: none for a false value,
    its 64 KiB default otherwise (measured on 1.10.12: unset or any number mean the default)."""
    if value is not None and value.strip().lower() in ("false", "no", "off", "0"):
        return 0
    return WRITE_BUFFER_BYTES


class ProgressiveWav:
    """A WAV written while it records, as FreeSWITCH does through libsndfile: the header first
    (with zero sizes), samples appended as they arrive, the sizes written when it is closed.
    A reader may follow the file as it grows (the ``ask_ai`` node does) — but, like FreeSWITCH,
    by default the samples reach the file in ``buffer_bytes`` steps (64 KiB, ~4 s); only with
    ``enable_file_write_buffering=false`` (``buffer_bytes=0``) does each frame arrive as it comes."""

    def __init__(self, path: str | Path, *, buffer_bytes: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self.samples = 0                 # samples received (written or still in the buffer)
        self.buffer_bytes = buffer_bytes
        self._pending = bytearray()
        self._file.write(_wav_header(0, final=False))
        self._file.flush()

    def append(self, samples: np.ndarray) -> None:
        if len(samples) and not self._file.closed:
            self._pending += samples.astype("<i2").tobytes()
            self.samples += len(samples)
            whole = len(self._pending) if not self.buffer_bytes else (
                len(self._pending) // self.buffer_bytes * self.buffer_bytes)
            if whole:
                self._file.write(self._pending[:whole])
                del self._pending[:whole]
                self._file.flush()

    def close(self) -> int:
        """Fix the header's sizes; returns the file size in bytes."""
        if not self._file.closed:
            self._file.write(self._pending)
            self._pending.clear()
            self._file.seek(0)
            self._file.write(_wav_header(self.samples, final=True))
            self._file.close()
        return WAV_HEADER_BYTES + 2 * self.samples


def _wav_header(samples: int, *, final: bool) -> bytes:
    """A 44-byte PCM header; while recording (`final` False) the sizes are zero placeholders."""
    import struct

    data = 2 * samples
    return (b"RIFF" + struct.pack("<I", 36 + data if final else 0) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", data))

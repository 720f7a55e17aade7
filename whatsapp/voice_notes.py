"""Voice notes: WhatsApp audio (OGG/Opus, and AAC, AMR, MP3, M4A) decoded with PyAV to the PCM the
STT chain takes.

PyAV's wheels ship FFmpeg with these codecs, so nothing is installed beside it. Decoding runs in
the model thread pool (FFmpeg releases the GIL while it decodes), with a deadline, and stops after
`max_seconds` of audio (a long note is transcribed from its start). Anything PyAV cannot open or
decode is `MediaUnusable` — the contact is asked to write instead.
"""

from __future__ import annotations

import io

import numpy as np

from providers.audio import AudioClip
from providers.errors import ProviderTimeout
from providers.offload import run_in_thread
from whatsapp.errors import MediaUnusable

AUDIO_TYPES = frozenset({"audio/ogg", "audio/opus", "audio/mpeg", "audio/mp3", "audio/mp4", "audio/aac",
                         "audio/amr", "audio/x-m4a", "audio/m4a", "audio/wav", "audio/x-wav", "audio/webm"})
RATE = 16000


def is_audio(content_type: str) -> bool:
    return content_type.lower() in AUDIO_TYPES or content_type.lower().startswith("audio/")


def _decode(data: bytes, max_seconds: float) -> AudioClip:
    import av

    limit = int(max_seconds * RATE)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise MediaUnusable("the voice note has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            pieces: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    pieces.append(samples)
                    total += samples.size
                if total >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    pieces.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:
        raise MediaUnusable(f"the voice note could not be decoded ({type(e).__name__})") from e
    pcm = np.concatenate(pieces)[:limit].astype("<i2") if pieces else np.zeros(0, dtype="<i2")
    if pcm.size == 0:
        raise MediaUnusable("the voice note is empty")
    return AudioClip(pcm.tobytes(), RATE)


def decode_voice_note(data: bytes, *, max_seconds: float = 300.0, timeout: float = 30.0) -> AudioClip:
    """16 kHz mono PCM of the first `max_seconds` of a voice note."""
    try:
        return run_in_thread(_decode, data, max_seconds, timeout=timeout, provider="pyav")
    except ProviderTimeout as e:
        raise MediaUnusable("the voice note took too long to decode") from e

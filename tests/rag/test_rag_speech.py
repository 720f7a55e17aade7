"""The listening and speaking parts on their own: a WAV read while it grows, the VAD, sentences."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from rag_fakes import voiced

from ivr_flows.speech_answer import SentenceSplitter
from ivr_flows.speech_audio import SpeechDetector, WavFormatError, WavTail


def header(rate: int = 8000, channels: int = 1, bits: int = 16) -> bytes:
    # Sizes left at zero, as FreeSWITCH leaves them until the file is closed.
    return (b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
        + b"data" + struct.pack("<I", 0))


def test_wav_tail_reads_what_was_appended_since_last_time(tmp_path: Path) -> None:
    path = tmp_path / "growing.wav"
    tail = WavTail(path)
    assert tail.read_new() == b""                 # not there yet
    path.write_bytes(header()[:20])
    assert tail.read_new() == b"" and tail.rate is None
    with open(path, "wb") as f:
        f.write(header() + b"\x01\x00\x02")
    assert tail.read_new() == b"\x01\x00" and tail.rate == 8000     # an odd byte waits for its pair
    with open(path, "ab") as f:
        f.write(b"\x00\x03\x00")
    assert tail.read_new() == b"\x02\x00\x03\x00"
    assert bytes(tail.pcm) == b"\x01\x00\x02\x00\x03\x00"


def test_wav_tail_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    stereo = tmp_path / "stereo.wav"
    stereo.write_bytes(header(channels=2) + b"\x00" * 8)
    with pytest.raises(WavFormatError, match="2 channels"):
        WavTail(stereo).read_new()
    text = tmp_path / "text.wav"
    text.write_bytes(b"this is not a wav file at all")
    with pytest.raises(WavFormatError, match="not a WAV"):
        WavTail(text).read_new()


def test_vad_finds_the_start_and_end_of_speech() -> None:
    detector = SpeechDetector(8000)
    detector.feed(np.zeros(4000, dtype="<i2").tobytes())                       # 0.5 s of silence
    assert not detector.speech_started
    detector.feed(voiced(1.0).tobytes())
    assert detector.speech_started and detector.silence_ms == 0
    assert 22 <= (detector.speech_started_frame or 0) <= 30                      # ~0.5 s in
    detector.feed(np.zeros(8000, dtype="<i2").tobytes())                        # then 1 s of silence
    assert 900 <= detector.silence_ms <= 1000
    assert detector.speech_end_byte == (detector.last_voiced_frame + 1) * 320


def test_hiss_is_not_speech() -> None:
    detector = SpeechDetector(8000)
    detector.feed((np.random.default_rng(1).standard_normal(16000) * 60).astype("<i2").tobytes())
    assert not detector.speech_started


def test_sentences_come_out_as_soon_as_they_are_complete() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("We are open on Saturdays") == []
    assert splitter.feed(" from 9 am to 1 pm. See") == ["We are open on Saturdays from 9 am to 1 pm."]
    assert splitter.feed(" Dr. Lopez then. Bye") == ["See Dr. Lopez then."]
    assert splitter.flush() == ["Bye"]


def test_a_long_first_sentence_is_cut_after_its_first_clause() -> None:
    splitter = SentenceSplitter()
    text = "Yes, a porcelain crown costs 950 dollars, including the temporary crown and two visits. Ok then."
    assert splitter.feed(text) == ["Yes, a porcelain crown costs 950 dollars,",
                                   "including the temporary crown and two visits."]
    assert splitter.flush() == ["Ok then."]

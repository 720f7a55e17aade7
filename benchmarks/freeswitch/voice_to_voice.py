"""Voice-to-voice on the real FreeSWITCH, from FreeSWITCH's own event clock.

    .venv/bin/python benchmarks/freeswitch/voice_to_voice.py                 # 24 questions per variant
    .venv/bin/python benchmarks/freeswitch/voice_to_voice.py --calls 2 --json out.json
    .venv/bin/python benchmarks/freeswitch/voice_to_voice.py --end-silence 500ms

A private FreeSWITCH 1.10.12 (``/usr/local/freeswitch``, the loopback configuration of
``tests/fixtures/freeswitch``) calls the controller ``make serve`` runs (SQLite, the demo
tenant's virtual secretary over ``examples/knowledge``, local providers only: piper speaks,
pocketsphinx hears, MiniLM + faiss retrieve, the extractive reader answers). The caller's leg
plays questions said by piper (8 kHz, its random variation off) with ``uuid_broadcast``.

For each question: **voice-to-voice** = FreeSWITCH's ``PLAYBACK_START`` of the answer's first
audio on the controller's leg minus the moment the caller's speech ended, which is the caller
leg's ``PLAYBACK_START`` of the question plus the offset of its last voiced 20 ms frame in the
WAV (so the WAV's trailing silence is not counted as the caller speaking). Both are
``Event-Date-Timestamp``s of the same FreeSWITCH.

Two tenants are measured in the same run, calls interleaved: ``product`` (the defaults:
streaming STT, preemptive answers) and ``baseline`` (``preemptive: false`` and pocketsphinx with
``stream_workers: 0``: the whole utterance decoded after the end of speech). Each call asks
``--questions-per-call`` questions in turn (the secretary's ``follow_up`` between them; a question
it is unsure about comes back to it, so the call goes on). The first audio after the question
counts whatever it says (an answer, a filler, "I don't know"): that is what the caller hears.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")

import structlog  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

from tests.support.controllers import product_dialplan  # noqa: E402
from tests.support.freeswitch import Caller, FreeSwitch, FsEvent, missing_reason  # noqa: E402
from tests.support.tenant_controller import (  # noqa: E402
    KNOWLEDGE,
    TenantController,
    caller_voice,
    ivr,
    say_wav,
    tenant_environment,
)

QUESTIONS = [
    "What are your opening hours?", "Are you open on Saturday?", "Where is the clinic?",
    "Where can I park?", "Which bus goes to the clinic?", "How much does a cleaning cost?",
    "Do you accept insurance?", "How do I cancel an appointment?", "What does a check up cost?",
    "Is there wheelchair access?", "Do you have payment plans?", "What is the emergency number?",
]
SECRETARY = """
flow: bench-secretary
start: assistant
nodes:
  assistant:
    type: ask_ai
    prompt: "Harbor Street Dental, how can I help?"
    min_score: 0.2
    max_turns: 10
    listen: {{max_seconds: 10, no_input: 6s, max_no_input: 2{end_silence}}}
    follow_up: "Anything else?"
    preemptive: {preemptive}
    unsure_message: "Sorry, I don't know that one."
    next: {{unsure: assistant, done: goodbye, transfer: goodbye}}
  goodbye: {{type: hangup, say: "Goodbye."}}
"""
TENANTS = {"product": ("tenant-a.example", "11111111-1111-1111-1111-111111111111", "5100"),
           "baseline": ("baseline.example", "33333333-3333-3333-3333-333333333333", "5101")}


def speech_end_offset(wav: Path) -> float:
    """Seconds from the start of the WAV to the end of its last voiced 20 ms frame."""
    with wave.open(str(wav)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int32)
        rate = w.getframerate()
    frame = rate // 50
    energy = np.abs(samples[: len(samples) // frame * frame].reshape(-1, frame)).mean(axis=1)
    voiced = np.nonzero(energy >= 120)[0]
    return float((voiced[-1] + 1) * frame / rate) if len(voiced) else len(samples) / rate


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(pct(values, 50)), "p99": round(pct(values, 99)),
            "mean": round(statistics.mean(values)), "min": round(min(values)), "max": round(max(values))}


def setup_tenants(folder: Path, end_silence: str) -> None:
    setting = f", end_silence: {end_silence}" if end_silence else ""
    for variant, (domain, uuid, number) in TENANTS.items():
        if variant != "product":
            ivr("tenants", "add", domain, "--uuid", uuid)
            ivr("providers", "set", domain, "stt", "pocketsphinx", "--setting", "stream_workers=0")
        flow = folder / f"{variant}.yaml"
        flow.write_text(SECRETARY.format(end_silence=setting, preemptive="true" if variant == "product" else "false"))
        ivr("docs", "ingest", domain, str(KNOWLEDGE))
        ivr("flows", "publish", domain, str(flow))
        ivr("tenants", "route", domain, number, "bench-secretary")
        ivr("tenants", "reload", domain)


def answer_start(caller: Caller, after: FsEvent, timeout: float = 30.0) -> FsEvent:
    """The first audio the controller's leg played after the caller's question."""
    return caller.esl.wait_for(lambda e: e.name == "PLAYBACK_START" and e.uuid == caller.b_uuid
                               and e.fs_time >= after.fs_time, timeout=timeout, start=caller._start,
                               what="the answer's first audio")


def one_call(fs: FreeSwitch, number: str, questions: list[Path], offsets: dict[Path, float]) -> list[dict[str, Any]]:
    caller = fs.call(number)
    results = []
    try:
        caller.wait_app("record", timeout=60)
        for n, wav in enumerate(questions, start=1):
            start = caller.say(wav)
            stop = caller.esl.wait_for(lambda e, s=start: e.name == "PLAYBACK_STOP" and e.uuid == caller.a_uuid
                                       and e.arrived >= s.arrived, timeout=30, what="the end of the question")
            first = answer_start(caller, stop)
            spoken_end = start.fs_time + offsets[wav]
            results.append({"question": wav.stem, "v2v_ms": (first.fs_time - spoken_end) * 1000,
                            "after_wav_end_ms": (first.fs_time - stop.fs_time) * 1000})
            if n < len(questions):
                caller.wait_app("record", nth=n + 1, timeout=60)   # the next turn listens (after the answer)
    finally:
        caller.hangup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=6, help="calls per variant (default 6)")
    parser.add_argument("--questions-per-call", type=int, default=4)
    parser.add_argument("--end-silence", default="", help="ask_ai listen.end_silence (default: the node's default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    folder = Path(tempfile.mkdtemp(prefix="ivr-v2v-"))
    out: dict[str, Any] = {"settings": vars(args) | {"json": str(args.json)}, "variants": {}}
    with tenant_environment(folder) as url:
        fs = FreeSwitch(folder / "freeswitch").start()
        controller = TenantController(folder, url)
        try:
            setup_tenants(folder, args.end_silence)
            for variant, (domain, uuid, number) in TENANTS.items():
                fs.install_dialplan(f"ivr-{variant}", product_dialplan([controller.target], number=number,
                                                                       domain_name=domain, domain_uuid=uuid))
            voice = caller_voice()
            wavs = [say_wav(voice, q, folder / "questions") for q in QUESTIONS]
            offsets = {w: speech_end_offset(w) for w in wavs}
            per_call = args.questions_per_call
            results: dict[str, list[dict[str, Any]]] = {v: [] for v in TENANTS}
            one_call(fs, TENANTS["product"][2], wavs[:1], offsets)          # warm every model once
            one_call(fs, TENANTS["baseline"][2], wavs[:1], offsets)
            started = time.monotonic()
            for n in range(args.calls):
                for variant, (_, _, number) in TENANTS.items():
                    chosen = [wavs[(n * per_call + k) % len(wavs)] for k in range(per_call)]
                    results[variant] += one_call(fs, number, chosen, offsets)
                    fs.wait_idle(10)
            product = [r["v2v_ms"] for r in results["product"]]
            baseline = [r["v2v_ms"] for r in results["baseline"]]
            for variant, rows in results.items():
                out["variants"][variant] = {"v2v_ms": stats([r["v2v_ms"] for r in rows]),
                                            "after_wav_end_ms": stats([r["after_wav_end_ms"] for r in rows]),
                                            "rows": rows}
            out["ratio_p50"] = round(pct(product, 50) / pct(baseline, 50), 2) if product and baseline else None
            out["seconds"] = round(time.monotonic() - started)
        finally:
            controller.stop()
            fs.stop()
    for variant in TENANTS:
        print(f"{variant:9s} voice-to-voice ms {out['variants'][variant]['v2v_ms']}")
    print(f"product / baseline p50: {out['ratio_p50']}  ({out['seconds']} s of calls)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

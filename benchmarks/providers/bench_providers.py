"""Benchmark of the local providers: latency and real-time factor of each model, the TTS cache
hit path, and the gevent hub's longest stall while 50 concurrent greenlet "calls" use the models.

Run from the repository root:  .venv/bin/python benchmarks/providers/bench_providers.py [--calls 50]
Prints a Markdown report (the figures in this folder's README were made with it).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import structlog  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from providers import registry  # noqa: E402
from providers.audio import AudioClip  # noqa: E402
from providers.fallback import FallbackTTS  # noqa: E402
from providers.llm.base import ChatMessage, Passage  # noqa: E402
from providers.tts.cache import TTSCache  # noqa: E402
from providers.tts.render import render_prompt  # noqa: E402

MENU = ["sales", "support", "operator", "billing"]
PROMPTS = ["Welcome to Acme.", "Press one for sales, two for support, or tell me what you need.",
           "Thank you for calling Acme. Our offices are open from nine in the morning until five in the "
           "evening, Monday to Friday, and from ten until noon on Saturdays."]


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median seconds of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


class StallMeter:
    """A greenlet that sleeps 10 ms at a time and records the longest gap between wake-ups."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._running = True
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        last = time.perf_counter()
        while self._running:
            gevent.sleep(0.01)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    def stop(self) -> float:
        self._running = False
        self._greenlet.join(timeout=1)
        return self.max_gap


def espeak(text: str, voice: str) -> AudioClip:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "--stdout", text], capture_output=True,
                         check=True).stdout
    return AudioClip.from_wav_bytes(wav)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    rows: list[tuple[str, str, str, str, str]] = []

    def row(model: str, work: str, seconds: float, audio: float | None, stall: float) -> None:
        rtf = f"{seconds / audio:.3f}" if audio else "-"
        rows.append((model, work, f"{seconds * 1000:.0f}", rtf, f"{stall * 1000:.0f}"))

    load_before = os.getloadavg()[0]
    load: dict[str, float] = {}
    piper = registry.build("tts", "piper")
    sphinx = registry.build("stt", "pocketsphinx")
    vosk = registry.build("stt", "vosk")
    minilm = registry.build("embeddings", "sentence_transformers")
    for name, p in (("piper", piper), ("pocketsphinx (2 worker processes)", sphinx), ("vosk ko", vosk),
                    ("MiniLM", minilm)):
        started = time.perf_counter()
        p.warm_up()
        load[name] = time.perf_counter() - started

    for text in PROMPTS:
        meter = StallMeter()
        seconds, clip = timed(lambda t=text: piper.synthesize(t))
        row("piper", f"synthesize {len(text)} chars", seconds, clip.duration, meter.stop())

    for word in MENU[:2]:
        audio = piper.synthesize(f"I need {word} please").resample(8000)
        for _ in range(2):   # each worker process compiles the grammar once; time the steady state
            sphinx.transcribe(audio, hints=MENU)
        meter = StallMeter()
        seconds, _ = timed(lambda a=audio: sphinx.transcribe(a, hints=MENU))
        row("pocketsphinx", "8 kHz, menu grammar", seconds, audio.duration, meter.stop())
    long_audio = piper.synthesize(PROMPTS[2]).resample(8000)
    meter = StallMeter()
    seconds, _ = timed(lambda: sphinx.transcribe(long_audio, timeout=120), repeat=1)
    row("pocketsphinx", "8 kHz, full language model", seconds, long_audio.duration, meter.stop())

    ko = espeak("안녕하세요 고객 센터입니다", "ko")
    meter = StallMeter()
    seconds, _ = timed(lambda: vosk.transcribe(ko, hints=["안녕하세요", "고객 센터입니다", "감사합니다"]))
    row("vosk ko", "grammar (3 phrases)", seconds, ko.duration, meter.stop())
    meter = StallMeter()
    seconds, _ = timed(lambda: vosk.transcribe(ko, timeout=120), repeat=1)
    row("vosk ko", "free speech", seconds, ko.duration, meter.stop())

    for n in (1, 32):
        texts = [f"Question {i}: what are your opening hours on Saturday?" for i in range(n)]
        meter = StallMeter()
        seconds, _ = timed(lambda t=texts: minilm.embed(t))
        row("MiniLM", f"embed {n} sentence(s)", seconds, None, meter.stop())

    # The cache hit path for a repeated prompt.
    with tempfile.TemporaryDirectory() as tmp:
        cache = TTSCache(tmp, "bench")
        chain = FallbackTTS([piper, registry.build("tts", "flite")])
        started = time.perf_counter()
        render_prompt(chain, cache, PROMPTS[1])
        miss = time.perf_counter() - started
        hits = []
        for _ in range(1000):
            started = time.perf_counter()
            render_prompt(chain, cache, PROMPTS[1])
            hits.append(time.perf_counter() - started)
        hits.sort()

        # 50 concurrent calls: menu prompt (cached), caller speech → pocketsphinx, question → MiniLM +
        # extractive answer → piper (uncached, a different answer per call).
        llm = registry.build("llm", "extractive")
        caller = piper.synthesize("I need support please").resample(8000)
        passages = (Passage("We open at nine on weekdays and at ten on Saturdays.", "hours.md", 0.8),)
        latencies: list[float] = []

        def call(i: int) -> None:
            started = time.perf_counter()
            render_prompt(chain, cache, PROMPTS[1])
            sphinx.transcribe(caller, hints=MENU, timeout=120)
            minilm.embed([f"When do you open on Saturday, caller {i}?"], timeout=120)
            answer = llm.complete([ChatMessage("user", "When do you open?", passages=passages)])
            render_prompt(chain, cache, f"{answer.text} Is there anything else, caller {i}?", timeout=120)
            latencies.append(time.perf_counter() - started)

        meter = StallMeter()
        started = time.perf_counter()
        gevent.joinall([gevent.spawn(call, i) for i in range(args.calls)], timeout=600, raise_error=True)
        wall = time.perf_counter() - started
        stall = meter.stop()

    latencies.sort()
    print(f"# providers benchmark ({os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f})\n")
    print("Model load (warm_up): " + ", ".join(f"{k} {v:.2f} s" for k, v in load.items()) + "\n")
    print("| model | work | latency ms (median) | real-time factor | longest hub stall ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nTTS cache: first render (miss, piper + 8 kHz WAV + write) {miss * 1000:.0f} ms; "
          f"hit median {hits[500] * 1e6:.0f} µs, p99 {hits[990] * 1e6:.0f} µs (1000 hits).\n")
    print(f"{args.calls} concurrent calls (cached menu prompt, pocketsphinx menu grammar, MiniLM query, "
          f"extractive answer, piper answer): wall {wall:.1f} s; per call p50 "
          f"{latencies[len(latencies) // 2]:.2f} s, max {latencies[-1]:.2f} s; "
          f"longest hub stall {stall * 1000:.0f} ms.")


if __name__ == "__main__":
    main()

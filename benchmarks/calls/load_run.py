"""One measured run: one server process, several generator processes, a schedule of live-call steps.

`run_load(spec)` starts the server (``server_process.py KIND``, its own process), waits for
``READY``, reads its idle RSS, starts ``spec.generators`` generator processes
(multiprocessing spawn, `loadgen.generator_main`), gives them a common start time, and
samples every 0.2 s: server CPU and RSS, generator CPU, machine load, live calls.  Each step
ramps to its live-call target at a bounded rate and then holds it; after a step's hold the
runner may stop early (turnaround p99 over 10 ms, or failures).  When the generators are done
(their live calls ended, bounded), the server is stopped and its counters read.

Reported (`RunResult`): calls completed and failed; setup and turnaround percentiles over the
whole run and per step (hold part only); controller CPU = CPU seconds of the server process
from the start signal until every call ended ÷ calls completed (every call does the same
work), and its CPU % during each hold; RSS idle, at peak, and (peak − idle) ÷ live calls at
that moment; the busiest generator's CPU % (near 100 % means the generator, not the server,
limits the figures); how long the server waited for a CPU that other processes held (its
run-queue wait, % of wall time: when it is high, the latencies measure the machine).

``CALLS_BENCH_SERVER=/path/script.py`` runs another server entry point with the same command
line and ``READY``/``STATS`` lines (e.g. one that wraps the server in a profiler).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import loadgen
from loadgen import COMPLETED, FAILED, LIVE, READY, Board, LoadPlan, Step
from proc_stats import cpu_seconds, machine_jiffies, percentile, rss_kb, runqueue_wait_seconds

HERE = Path(__file__).resolve().parent
SAMPLE_SECONDS = 0.2
SLOW_FRACTION = 0.01          # more than 1 % of turnarounds over 10 ms ⇔ p99 over 10 ms


@dataclass(frozen=True)
class LoadSpec:
    kind: str
    steps: tuple[tuple[int, float], ...]      # (live calls in total, hold seconds)
    generators: int = 2
    rate: float = 500.0                       # call starts per second (all generators) while ramping
    loops: int = 3
    play_s: float = 1.0
    menu_s: float = 1.0
    jitter: float = 0.2
    io_timeout: float = 30.0
    stop_when_slow: bool = False
    warm_up_calls: int = 20                   # per generator, before the measurement
    log_level: str = "WARNING"
    prompt_dir: str = ""                      # "" = the server makes a temp dir
    log_file: Path | None = None
    nice: int | None = None                   # scheduling priority of the server and generators
    pin: bool = False                         # server on the first CPU, generators on the others

    @property
    def call_seconds_min(self) -> float:
        low = 1.0 - self.jitter
        return self.loops * (self.play_s + self.menu_s) * low + self.play_s * low / 2

    @property
    def call_seconds_max(self) -> float:
        high = 1.0 + self.jitter
        return self.loops * (self.play_s + self.menu_s) * high + self.play_s * high / 2


@dataclass
class StepResult:
    live_target: int
    live_max: int = 0
    hold_seconds: float = 0.0
    turn_n: int = 0
    turn_p50_ms: float = math.nan
    turn_p99_ms: float = math.nan
    turn_max_ms: float = math.nan
    setup_p50_ms: float = math.nan
    setup_p99_ms: float = math.nan
    failed: int = 0
    server_cpu_pct: float = math.nan
    generator_cpu_pct: float = math.nan       # the busiest generator
    machine_busy_pct: float = math.nan
    server_wait_pct: float = math.nan         # server runnable but waiting for a CPU, % of wall time
    rss_kb: int = 0


@dataclass
class RunResult:
    kind: str
    started: int = 0
    completed: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    turn_n: int = 0
    turn_p50_ms: float = math.nan
    turn_p99_ms: float = math.nan
    setup_p50_ms: float = math.nan
    setup_p99_ms: float = math.nan
    cpu_seconds: float = 0.0
    cpu_ms_per_call: float = math.nan
    rss_idle_kb: int = 0
    rss_peak_kb: int = 0
    live_at_peak: int = 0
    rss_kb_per_live_call: float = math.nan
    generator_cpu_pct: float = math.nan
    server_wait_pct: float = math.nan         # over the whole run
    commands_per_call: float = math.nan
    signature: list[str] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    stopped_after_step: int | None = None
    seconds: float = 0.0


class ServerProcess:
    """``server_process.py KIND`` in its own process; stdout lines read by a thread."""

    def __init__(self, spec: LoadSpec) -> None:
        log = open(spec.log_file, "ab") if spec.log_file else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        self._log = log
        script = os.environ.get("CALLS_BENCH_SERVER", str(HERE / "server_process.py"))
        self.proc = subprocess.Popen(
            [sys.executable, script, spec.kind, "--log-level", spec.log_level,
             *(["--prompt-dir", spec.prompt_dir] if spec.prompt_dir else []),
             *(["--nice", str(spec.nice)] if spec.nice is not None else []),
             *(["--cpus", str(min(_cpus()))] if spec.pin else [])],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)   # its own autogroup: it does not split a CPU share with the runner
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        self.pid = self.proc.pid
        self.address = self._wait_ready()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put("")

    def _line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"server gave no {prefix!r} line in {timeout:.0f}s")
            line = self.lines.get(timeout=left)
            if line.startswith(prefix):
                return line[len(prefix):]
            if line == "" and self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}) before {prefix!r}")

    def _wait_ready(self) -> tuple[str, int]:
        host, port, _pid = self._line("READY ", 60.0).split()
        return host, int(port)

    def stop(self) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                stats = json.loads(self._line("STATS ", 20.0))
            except (TimeoutError, RuntimeError, queue.Empty, ValueError) as exc:
                stats = {"stop_error": str(exc)}
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return stats


def _timeline(spec: LoadSpec) -> tuple[list[list[Step]], float]:
    """Per generator, its steps; and the per-generator start rate."""
    gens = spec.generators
    shares = [[total // gens + (1 if g < total % gens else 0) for total, _ in spec.steps] for g in range(gens)]
    peak_share = max(max(s) for s in shares)
    # Fast enough to ramp as asked and to replace ended calls at the steady-state rate.
    rate = max(spec.rate / gens, 1.3 * peak_share / max(0.5, spec.call_seconds_min))
    plans: list[list[Step]] = [[] for _ in range(gens)]
    t = 0.0
    previous = 0
    for k, (_total, hold) in enumerate(spec.steps):
        share_delta = max(0, max(shares[g][k] for g in range(gens)) - previous)
        hold_start = t + share_delta / rate + (0.5 if share_delta else 0.0)
        for g in range(gens):
            plans[g].append(Step(shares[g][k], t, hold_start, hold_start + hold))
        previous = max(shares[g][k] for g in range(gens))
        t = hold_start + hold
    return plans, rate


def _cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def _cpu_or_nan(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return math.nan


def _wait_or_nan(pid: int) -> float:
    try:
        return runqueue_wait_seconds(pid)
    except (OSError, IndexError, ValueError):
        return math.nan


def run_load(spec: LoadSpec) -> RunResult:
    result = RunResult(kind=spec.kind)
    began = time.monotonic()
    ctx = mp.get_context("spawn")
    plans, rate = _timeline(spec)
    board = Board(ctx, spec.generators, len(spec.steps))
    results_q = ctx.Queue()
    server = ServerProcess(spec)
    procs: list[Any] = []
    try:
        result.rss_idle_kb = rss_kb(server.pid)
        for g in range(spec.generators):
            plan = LoadPlan(index=g, address=server.address, steps=tuple(plans[g]), rate=rate, loops=spec.loops,
                            play_s=spec.play_s, menu_s=spec.menu_s, jitter=spec.jitter,
                            io_timeout=spec.io_timeout, drain_s=spec.call_seconds_max + 10.0, seed=1000 + g,
                            warm_up_calls=spec.warm_up_calls, nice=spec.nice,
                            cpus=tuple(sorted(_cpus() - {min(_cpus())}) or _cpus()) if spec.pin else ())
            proc = ctx.Process(target=loadgen.generator_main, args=(plan, board, results_q), daemon=True,
                               name=f"loadgen-{g}")
            proc.start()
            procs.append(proc)
        deadline = time.monotonic() + 60.0
        while board.total(READY) < spec.generators:
            if time.monotonic() > deadline or any(not p.is_alive() for p in procs):
                raise RuntimeError("load generators did not start")
            time.sleep(0.02)
        _measure(spec, board, server, procs, plans[0], results_q, result)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        result.server = server.stop()
    result.seconds = time.monotonic() - began
    return result


def _measure(spec: LoadSpec, board: Board, server: ServerProcess, procs: list[Any], steps: list[Step],
             results_q: Any, result: RunResult) -> None:
    gen_pids = [p.pid for p in procs]
    cpu0 = cpu_seconds(server.pid)
    gen0 = [_cpu_or_nan(pid) for pid in gen_pids]
    start = time.time() + 0.2
    board.control[0] = start
    time.sleep(max(0.0, start - time.time()))
    t0 = time.monotonic()
    end_of_load = steps[-1].hold_end
    wait0 = _wait_or_nan(server.pid)
    samples: list[tuple[float, float, int, int, list[float], tuple[int, int], float]] = []
    step_index = 0
    failed_before = 0
    failed_by_step: list[int] = []
    collected: list[dict[str, Any]] = []
    give_up = t0 + end_of_load + spec.call_seconds_max + 60.0
    while len(collected) < len(procs):
        now = time.monotonic() - t0
        samples.append((now, _cpu_or_nan(server.pid), rss_kb(server.pid), board.total(LIVE),
                        [_cpu_or_nan(pid) for pid in gen_pids], machine_jiffies(), _wait_or_nan(server.pid)))
        if step_index < len(steps) and now >= steps[step_index].hold_end and not board.stopping:
            n, slow = board.step_turns(step_index)
            failed_now = board.total(FAILED)
            if spec.stop_when_slow and ((n and slow / n > SLOW_FRACTION) or failed_now > failed_before):
                board.control[1] = 1.0
                result.stopped_after_step = step_index
            failed_by_step.append(failed_now - failed_before)
            failed_before = failed_now
            step_index += 1
        try:
            collected.append(results_q.get(timeout=SAMPLE_SECONDS))
        except queue.Empty:
            pass
        if time.monotonic() > give_up:
            break
    cpu1 = cpu_seconds(server.pid)
    wait1 = _wait_or_nan(server.pid)
    gen1 = [_cpu_or_nan(pid) for pid in gen_pids]
    _summarize(spec, steps, samples, collected, board, failed_by_step, result)
    result.cpu_seconds = cpu1 - cpu0
    if result.completed:
        result.cpu_ms_per_call = 1000.0 * result.cpu_seconds / result.completed
    wall = max(1e-6, time.monotonic() - t0)
    result.server_wait_pct = 100.0 * (wait1 - wait0) / wall
    result.generator_cpu_pct = max(100.0 * (b - a) / wall for a, b in zip(gen0, gen1, strict=True))


def _summarize(spec: LoadSpec, steps: list[Step], samples: list[Any], collected: list[dict[str, Any]],
               board: Board, failed_by_step: list[int], result: RunResult) -> None:
    setup_t, setup_v, turn_t, turn_v = array("d"), array("d"), array("d"), array("d")
    commands = 0
    for part in collected:
        setup_t.frombytes(part["setup_t"])
        setup_v.frombytes(part["setup_v"])
        turn_t.frombytes(part["turn_t"])
        turn_v.frombytes(part["turn_v"])
        commands += part["commands"]
        for kind, n in part["failures"].items():
            result.failures[kind] = result.failures.get(kind, 0) + n
        if part["signature"] and not result.signature:
            result.signature = part["signature"]
    result.completed = board.total(COMPLETED)
    result.failed = sum(result.failures.values())
    result.started = result.completed + result.failed
    if result.started:
        result.commands_per_call = commands / result.started
    turns = sorted(turn_v)
    setups = sorted(setup_v)
    result.turn_n = len(turns)
    result.turn_p50_ms, result.turn_p99_ms = 1000 * percentile(turns, 50), 1000 * percentile(turns, 99)
    result.setup_p50_ms, result.setup_p99_ms = 1000 * percentile(setups, 50), 1000 * percentile(setups, 99)

    # RSS: the highest reading while calls were live, and the live calls at that moment.
    live_samples = [s for s in samples if s[3] > 0]
    if live_samples:
        peak = max(live_samples, key=lambda s: (s[2], s[3]))
        result.rss_peak_kb, result.live_at_peak = peak[2], peak[3]
        result.rss_kb_per_live_call = (peak[2] - result.rss_idle_kb) / peak[3]

    for k, step in enumerate(steps):
        sr = StepResult(live_target=spec.steps[k][0], hold_seconds=step.hold_end - step.hold_start)
        in_hold = [i for i, t in enumerate(turn_t) if step.hold_start <= t < step.hold_end]
        values = sorted(turn_v[i] for i in in_hold)
        sr.turn_n = len(values)
        sr.turn_p50_ms, sr.turn_p99_ms = 1000 * percentile(values, 50), 1000 * percentile(values, 99)
        sr.turn_max_ms = 1000 * values[-1] if values else math.nan
        step_setups = sorted(setup_v[i] for i, t in enumerate(setup_t) if step.ramp_start <= t < step.hold_end)
        sr.setup_p50_ms, sr.setup_p99_ms = 1000 * percentile(step_setups, 50), 1000 * percentile(step_setups, 99)
        window = [s for s in samples if step.hold_start <= s[0] <= step.hold_end]
        if len(window) >= 2:
            first, last = window[0], window[-1]
            span = last[0] - first[0]
            sr.live_max = max(s[3] for s in window)
            sr.rss_kb = last[2]
            if span > 0:
                sr.server_cpu_pct = 100.0 * (last[1] - first[1]) / span
                sr.generator_cpu_pct = max(100.0 * (b - a) / span for a, b in zip(first[4], last[4], strict=True))
                busy = last[5][0] - first[5][0]
                total = last[5][1] - first[5][1]
                sr.machine_busy_pct = 100.0 * busy / total if total else math.nan
                sr.server_wait_pct = 100.0 * (last[6] - first[6]) / span
        sr.failed = failed_by_step[k] if k < len(failed_by_step) else 0
        result.steps.append(sr)

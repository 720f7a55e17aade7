"""The call-control benchmark: ``python benchmarks/calls/run.py [--quick] [options]``.

For each repeat, each server (in its own process, order rotated per repeat) takes the same
load from separate generator processes: ramp to ``--calls`` live calls, hold ``--duration``
seconds, let the calls end.  Servers: ``lean`` (hand-written StreamServer, the baseline the
ratios are against), ``ours`` (EslServer + CallSession), ``greenswitch`` (raw
OutboundESLServer) and ``controller`` (the full CallController with a looping flow).  Then,
unless ``--no-max``, one more run ramps ``ours`` through ``--max-steps`` live-call levels and
stops after the first level whose turnaround p99 exceeds 10 ms or that has failures.

Prints one table (medians over repeats; CPU ratios are medians of per-repeat ratios against
the lean server of the same repeat), the command sequence each server sent for one call, the
max-concurrency steps, and the goal check.  ``--json PATH`` writes every raw result.
See ``benchmarks/README.md`` ("Call control") for what each figure means.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parents[1]), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from load_run import LoadSpec, RunResult, run_load  # noqa: E402

SERVERS = ("lean", "ours", "greenswitch", "controller")
GOAL_CALLS = 5000
GOAL_P99_MS = 10.0
GOAL_CPU_RATIO = 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Call-control benchmark (see benchmarks/README.md).")
    p.add_argument("--quick", action="store_true", help="a ~30 s smoke run (small load, one repeat)")
    p.add_argument("--calls", type=int, default=1000, help="live calls to hold in the comparison runs")
    p.add_argument("--duration", type=float, default=6.0, help="seconds to hold them")
    p.add_argument("--generators", type=int, default=2, help="load generator processes")
    p.add_argument("--repeats", type=int, default=3, help="comparison repeats (0: only the max-concurrency search)")
    p.add_argument("--loops", type=int, default=3, help="play → menu rounds per call before the caller hangs up")
    p.add_argument("--play-ms", type=float, default=1000.0, help="simulated prompt length")
    p.add_argument("--menu-ms", type=float, default=1000.0, help="simulated menu time (prompt + key press)")
    p.add_argument("--jitter", type=float, default=0.2, help="± fraction applied to play and menu times")
    p.add_argument("--rate", type=float, default=500.0, help="call starts per second while ramping")
    p.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from {', '.join(SERVERS)}")
    p.add_argument("--max-steps", default="1000,2000,3000,4000,5000,6000,7000,8000",
                   help="live-call levels for the max-concurrency search of 'ours'")
    p.add_argument("--max-hold", type=float, default=6.0, help="seconds each level is held")
    p.add_argument("--max-play-ms", type=float, default=3000.0,
                   help="simulated prompt length in the max-concurrency search (longer, more realistic calls)")
    p.add_argument("--max-menu-ms", type=float, default=3000.0, help="simulated menu time in that search")
    p.add_argument("--max-servers", default="ours", help="servers given the max-concurrency search")
    p.add_argument("--no-max", action="store_true", help="skip the max-concurrency search")
    p.add_argument("--nice", type=int, default=None,
                   help="run the servers and generators at this nice value (e.g. -10, needs root) so other work "
                        "on a shared machine disturbs the figures less; the run says so")
    p.add_argument("--pin", action="store_true",
                   help="pin the server to the first CPU and the generators to the others, so they do not take "
                        "CPU from each other")
    p.add_argument("--log-level", default="WARNING", help="the servers' log level (their logs go to --out-dir)")
    p.add_argument("--out-dir", type=Path, default=None, help="server logs and prompts (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="write every raw result here")
    args = p.parse_args(argv)
    if args.quick:
        args.calls, args.duration, args.repeats, args.loops = 200, 2.0, 1, 1
        args.play_ms = args.menu_ms = 300.0
        args.max_steps, args.max_hold = "300,600", 2.0
        args.max_play_ms = args.max_menu_ms = 300.0
    for name in args.servers.split(",") + args.max_servers.split(","):
        if name not in SERVERS:
            p.error(f"unknown server {name!r}")
    return args


def _spec(args: argparse.Namespace, kind: str, steps: tuple[tuple[int, float], ...], out: Path,
          stop_when_slow: bool = False) -> LoadSpec:
    play_ms, menu_ms = (args.max_play_ms, args.max_menu_ms) if stop_when_slow else (args.play_ms, args.menu_ms)
    return LoadSpec(kind=kind, steps=steps, generators=args.generators, rate=args.rate, loops=args.loops,
                    play_s=play_ms / 1000.0, menu_s=menu_ms / 1000.0, jitter=args.jitter,
                    stop_when_slow=stop_when_slow, log_level=args.log_level, prompt_dir=str(out / "prompts"),
                    nice=args.nice, pin=args.pin,
                    log_file=out / f"server-{kind}.log")


def _median(values: list[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def compare(args: argparse.Namespace, out: Path) -> dict[str, list[RunResult]]:
    servers = args.servers.split(",")
    runs: dict[str, list[RunResult]] = {k: [] for k in servers}
    for repeat in range(args.repeats):
        order = servers[repeat % len(servers):] + servers[: repeat % len(servers)]
        for kind in order:
            print(f"  repeat {repeat + 1}/{args.repeats}: {kind} …", end="", flush=True)
            result = run_load(_spec(args, kind, ((args.calls, args.duration),), out))
            runs[kind].append(result)
            print(f" {result.completed} calls, turn p99 {_fmt(result.turn_p99_ms, 2)} ms, "
                  f"{_fmt(result.cpu_ms_per_call, 2)} ms CPU/call ({result.seconds:.0f} s)", flush=True)
    return runs


def ratio_against_lean(runs: dict[str, list[RunResult]], kind: str) -> float:
    lean = runs.get("lean") or []
    ratios = [r.cpu_ms_per_call / b.cpu_ms_per_call for r, b in zip(runs[kind], lean, strict=False)
              if b.cpu_ms_per_call and not math.isnan(b.cpu_ms_per_call)]
    return _median(ratios)


def print_comparison(args: argparse.Namespace, runs: dict[str, list[RunResult]]) -> None:
    print()
    print(f"Comparison: {args.calls} live calls held {args.duration:g} s; per call {args.loops} play → menu rounds "
          f"(play {args.play_ms:g} ms, menu {args.menu_ms:g} ms, ±{args.jitter:.0%}), then the caller hangs up "
          f"mid-prompt; {args.generators} generator processes; medians of {args.repeats} repeat(s).")
    header = (f"{'server':<12}{'calls':>7}{'fail':>6}{'setup p50':>11}{'p99':>8}{'turn p50':>10}{'p99':>8}"
              f"{'CPU ms/call':>13}{'×lean':>7}{'CPU% hold':>11}{'RSS idle MB':>13}{'KB/live':>9}{'gen CPU%':>10}"
              f"{'runq%':>7}")
    print(header)
    print("-" * len(header))
    for kind, results in runs.items():
        if not results:
            continue

        def med(name: str, results: list[RunResult] = results) -> float:
            return _median([float(getattr(r, name)) for r in results])

        hold_cpu = _median([r.steps[0].server_cpu_pct for r in results if r.steps])
        ratio = ratio_against_lean(runs, kind) if kind != "lean" else 1.0
        print(f"{kind:<12}{med('completed'):>7.0f}{med('failed'):>6.0f}{_fmt(med('setup_p50_ms'), 2):>11}"
              f"{_fmt(med('setup_p99_ms'), 1):>8}{_fmt(med('turn_p50_ms'), 2):>10}{_fmt(med('turn_p99_ms'), 1):>8}"
              f"{_fmt(med('cpu_ms_per_call'), 2):>13}{_fmt(ratio, 2):>7}{_fmt(hold_cpu, 0):>11}"
              f"{_fmt(med('rss_idle_kb') / 1024, 1):>13}{_fmt(med('rss_kb_per_live_call'), 1):>9}"
              f"{_fmt(med('generator_cpu_pct'), 0):>10}{_fmt(med('server_wait_pct'), 0):>7}")
    print("  setup = TCP connect → 'connect' received; turn = completion event sent → next command received (ms);")
    print("  CPU ms/call = server CPU from start to the last call's end ÷ calls completed; CPU% hold = server CPU")
    print("  while the level held (100 = one core); KB/live = (peak RSS − idle RSS) ÷ live calls at the peak;")
    print("  runq% = time the server waited for a CPU held by other processes (high: latencies measure the machine).")
    failures: dict[str, dict[str, int]] = {}
    for kind, results in runs.items():
        for r in results:
            for name, n in r.failures.items():
                failures.setdefault(kind, {})[name] = failures.get(kind, {}).get(name, 0) + n
            errors = r.server.get("errors") or {}
            for name, n in errors.items():
                failures.setdefault(kind, {})[f"server: {name}"] = n
            if r.server.get("wrong_result"):
                failures.setdefault(kind, {})["server: wrong menu result"] = r.server["wrong_result"]
    for kind, kinds in failures.items():
        print(f"  failures, {kind}: {kinds}")
    print()
    print("Commands one call sent (as the generator saw them):")
    for kind, results in runs.items():
        signature = next((r.signature for r in results if r.signature), [])
        print(f"  {kind:<12}{' | '.join(signature)}")


def max_search(args: argparse.Namespace, out: Path, kind: str) -> RunResult:
    steps = tuple((int(n), args.max_hold) for n in args.max_steps.split(","))
    print(f"  max-concurrency search: {kind}, levels {args.max_steps} …", end="", flush=True)
    result = run_load(_spec(args, kind, steps, out, stop_when_slow=True))
    print(f" done ({result.seconds:.0f} s)", flush=True)
    return result


def sustained(result: RunResult) -> int:
    """The highest level held with turnaround p99 ≤ 10 ms, no failures and the live calls reached."""
    best = 0
    for step in result.steps:
        if step.turn_n == 0:
            break
        ok = step.turn_p99_ms <= GOAL_P99_MS and step.failed == 0 and step.live_max >= step.live_target
        if not ok:
            break
        best = step.live_target
    return best


def cpu_ceiling(result: RunResult) -> tuple[float, int] | None:
    """Live calls one core could hold at the CPU cost per live call of the highest level that ran
    below 80 % CPU with all its calls live — a figure that other work on the machine disturbs less
    than latency does."""
    best = None
    last = result.stopped_after_step if result.stopped_after_step is not None else len(result.steps) - 1
    for step in result.steps[: last + 1]:
        if step.live_max and step.live_max >= step.live_target and 0 < step.server_cpu_pct < 80:
            best = (100.0 * step.live_max / step.server_cpu_pct, step.live_target)
    return best


def print_max(args: argparse.Namespace, kind: str, result: RunResult) -> None:
    print()
    print(f"Max concurrency, {kind}: each level held {result.steps[0].hold_seconds:g} s (figures from the hold); "
          f"calls of {args.loops} rounds of play {args.max_play_ms:g} ms → menu {args.max_menu_ms:g} ms.")
    header = (f"{'level':>7}{'live':>7}{'turn p50':>10}{'p99':>8}{'max':>8}{'setup p99':>11}{'fail':>6}"
              f"{'server CPU%':>13}{'runq%':>7}{'gen CPU%':>10}{'machine%':>10}{'RSS MB':>8}")
    print(header)
    print("-" * len(header))
    last = result.stopped_after_step if result.stopped_after_step is not None else len(result.steps) - 1
    for step in result.steps[: last + 1]:
        print(f"{step.live_target:>7}{step.live_max:>7}{_fmt(step.turn_p50_ms, 2):>10}{_fmt(step.turn_p99_ms, 1):>8}"
              f"{_fmt(step.turn_max_ms, 0):>8}{_fmt(step.setup_p99_ms, 1):>11}{step.failed:>6}"
              f"{_fmt(step.server_cpu_pct, 0):>13}{_fmt(step.server_wait_pct, 0):>7}"
              f"{_fmt(step.generator_cpu_pct, 0):>10}"
              f"{_fmt(step.machine_busy_pct, 0):>10}{step.rss_kb / 1024:>8.0f}")
    ceiling = cpu_ceiling(result)
    if ceiling:
        print(f"  CPU ceiling ≈ {ceiling[0]:.0f} live calls: one core ÷ the server CPU per live call at level "
              f"{ceiling[1]} (an upper bound: queueing pushes p99 over {GOAL_P99_MS:g} ms before 100 %)")
    print(f"  sustained: {sustained(result)} live calls (p99 ≤ {GOAL_P99_MS:g} ms, no failures)"
          + (f"; stopped after level {result.steps[result.stopped_after_step].live_target}"
             if result.stopped_after_step is not None else ""))
    if result.failures:
        print(f"  failures: {result.failures}")


def print_goal(runs: dict[str, list[RunResult]], searches: dict[str, RunResult]) -> None:
    print()
    print(f"Goal: ≥ {GOAL_CALLS} concurrent calls in one process with turnaround p99 < {GOAL_P99_MS:g} ms, "
          f"CPU per call ≤ {GOAL_CPU_RATIO}× lean.")
    if "ours" in searches:
        best = sustained(searches["ours"])
        print(f"  concurrency: ours sustained {best} live calls → {'met' if best >= GOAL_CALLS else 'NOT met'}")
    if runs.get("ours") and runs.get("lean"):
        ratio = ratio_against_lean(runs, "ours")
        print(f"  CPU per call: ours {_fmt(ratio, 2)}× lean → "
              f"{'met' if ratio <= GOAL_CPU_RATIO else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    out = args.out_dir or Path(tempfile.mkdtemp(prefix="bench-calls-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"call-control benchmark; server logs in {out}"
          + (f"; servers and generators at nice {args.nice}" if args.nice is not None else "")
          + ("; server pinned to the first CPU, generators to the others" if args.pin else ""), flush=True)
    runs = compare(args, out)
    searches: dict[str, RunResult] = {}
    if not args.no_max:
        for kind in args.max_servers.split(","):
            searches[kind] = max_search(args, out, kind)
    if args.repeats > 0:
        print_comparison(args, runs)
    for kind, result in searches.items():
        print_max(args, kind, result)
    print_goal(runs, searches)
    print(f"\n(total {time.monotonic() - began:.0f} s)")
    if args.json:
        data: dict[str, Any] = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "runs": {k: [dataclasses.asdict(r) for r in v] for k, v in runs.items()},
            "max_search": {k: dataclasses.asdict(v) for k, v in searches.items()},
        }
        args.json.write_text(json.dumps(data, indent=1, default=str))
    bad = any(r.completed == 0 for results in [*runs.values(), list(searches.values())] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

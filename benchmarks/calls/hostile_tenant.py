"""Does a hostile tenant delay another tenant's calls? (issue 11, finding 1)

One real controller process (``ivr serve`` on a SQLite database in a temp folder) serves two
tenants. Tenant A's calls run ``bench-loop.yaml`` (play → one-key menu, a few rounds) through the
FreeSWITCH simulator in this process; what is measured is A's **setup** (call placed → ``connect``
received by the simulated FreeSWITCH) and **turnaround** (a playback / menu completion sent → the
controller's next command received), wall-clock, on the FreeSWITCH side.

Each round runs A's calls in two phases, in random order: *baseline* (tenant B idle) and *hostile*
(at least as many calls, and until ``--min-reloads`` of B's reloads completed during it), while
tenant B's admin keeps publishing new versions of a flow that is as costly to load as the
limits allow (900 nodes of templates, ~0.9 MB of YAML; each publish makes every controller reload
it) and B's callers keep running a ``set`` node whose template spends its whole budget (nested
loops). The figures are medians and p99 over all rounds, and the ratio hostile ÷ baseline of the
same run.

    .venv/bin/python benchmarks/calls/hostile_tenant.py                 # ~2 min
    .venv/bin/python benchmarks/calls/hostile_tenant.py --rounds 5 --calls 40 --concurrency 10
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Hangup, Press, WaitForApp  # noqa: E402
from schema.database import make_engine, make_session_factory  # noqa: E402
from schema.migrate import upgrade  # noqa: E402
from schema.reload_bus import publish_reload  # noqa: E402
from schema.store import TenantStore  # noqa: E402
from schema.tenants import add_tenant  # noqa: E402

A_UUID = "11111111-1111-4111-8111-111111111111"
B_UUID = "66666666-6666-4666-8666-666666666666"
BENCH_FLOW = (ROOT / "benchmarks" / "calls" / "flows" / "bench-loop.yaml").read_text()
SPIN_FLOW = ("flow: spin\nstart: s\nnodes:\n"
             "  s: {type: set, vars: {x: \"{% for i in range(20) %}{% for j in range(20) %}{{ i * j }}"
             "{% endfor %}{% endfor %}\"}, next: t}\n"
             "  t: {type: set, vars: {y: \"{% for i in range(20) %}{% for j in range(20) %}{{ i + j }}"
             "{% endfor %}{% endfor %}\"}, next: m}\n"
             "  m: {type: menu, prompt: {file: bench_prompt.wav}, input: [dtmf], options: {'1': s}, timeout: 100ms,"
             " max_attempts: 1, next: {failure: s, error: s}}\n")


def heavy_flow(version: int, nodes: int = 900) -> str:
    lines = ["flow: heavy", f"description: version {version}", "start: n0", "nodes:"]
    for i in range(nodes):
        lines.append(f"  n{i}: {{type: set, vars: {{a: \"{{{{ vars.x | default('') ~ '{i}' }}}}\", "
                     f"b: \"{{{{ (vars.y | default(0)) * 2 + {i} }}}}\"}}, next: n{i + 1}}}")
    lines.append(f"  n{nodes}: {{type: hangup}}")
    return "\n".join(lines) + "\n"


def write_prompts(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, seconds in (("bench_prompt.wav", 0.3), ("bench_menu.wav", 0.3)):
        with wave.open(str(folder / name), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x00\x00" * int(8000 * seconds))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Measure:
    def __init__(self) -> None:
        self.setup: list[float] = []
        self.turn: list[float] = []
        self.failed = 0
        self.errors: list[str] = []


def one_call(sim: FreeSwitchSimulator, socket_data: str, loops: int, measure: Measure) -> None:
    placed = time.monotonic()
    state = {"first": None, "completed": None}

    def on_command(_command: object) -> None:
        now = time.monotonic()
        if state["first"] is None:
            state["first"] = now
            measure.setup.append((now - placed) * 1000)
        elif state["completed"] is not None:
            measure.turn.append((now - state["completed"]) * 1000)
            state["completed"] = None

    def on_frame(frame: object) -> None:
        if getattr(frame, "kind", "") == "event" and getattr(frame, "name", "") == "CHANNEL_EXECUTE_COMPLETE":
            raw = getattr(frame, "raw", b"")
            if b"playback" in raw or b"play_and_get_digits" in raw:
                state["completed"] = time.monotonic()

    actions: list[object] = []
    for _ in range(loops):
        actions += [WaitForApp("play_and_get_digits", timeout=60), Press("1")]
    actions.append(WaitForApp("playback", timeout=60))
    actions.append(Hangup())
    script = CallerScript(actions, ring_timeout=None, max_call_seconds=120)
    call = sim.place_call(socket_data=socket_data, destination="5000", domain_uuid=A_UUID,
                          domain_name="a.example", caller=script, on_command=on_command, on_frame=on_frame)
    try:
        call.wait(timeout=120)
    except Exception as e:
        measure.failed += 1
        measure.errors.append(f"{type(e).__name__}: {e}"[:200])
    finally:
        call.kill()


def run_calls(sim: FreeSwitchSimulator, socket_data: str, calls: int, concurrency: int, loops: int) -> Measure:
    measure = Measure()
    pool = gevent.pool.Pool(concurrency)
    for _ in range(calls):
        pool.spawn(one_call, sim, socket_data, loops, measure)
    pool.join()
    return measure


class Hostile:
    """Tenant B: publishes heavy flow versions back to back and keeps spinning callers on the line."""

    def __init__(self, url: str, sim: FreeSwitchSimulator, socket_data: str, run_dir: Path, callers: int) -> None:
        self.url, self.sim, self.socket_data, self.run_dir, self.callers = url, sim, socket_data, run_dir, callers
        self.store = TenantStore.open(make_session_factory(make_engine(url)), B_UUID)
        self.version = 0
        self.reloads = 0
        self.reload_ms: list[float] = []
        self._jobs: list[gevent.Greenlet] = []
        self._stop = False

    def start(self) -> None:
        self._stop = False
        self._jobs = [gevent.spawn(self._publisher)] + [gevent.spawn(self._caller) for _ in range(self.callers)]

    def stop(self) -> None:
        """Stop publishing (the reload under way finishes first: the next baseline must not share
        the machine with it) and hang up B's callers."""
        self._stop = True
        self._jobs[0].join(timeout=300)
        gevent.killall(self._jobs, timeout=10)

    def _publisher(self) -> None:
        while not self._stop:
            self.version += 1
            self.store.add_version("heavy", heavy_flow(self.version), author="evil")
            started = time.monotonic()
            publish_reload(self.url, B_UUID, run_dir=self.run_dir, timeout=60)
            self.reload_ms.append((time.monotonic() - started) * 1000)
            self.reloads += 1

    def _caller(self) -> None:
        while not self._stop:
            call = self.sim.place_call(socket_data=self.socket_data, destination="6000", domain_uuid=B_UUID,
                                       domain_name="b.example",
                                       caller=CallerScript([], ring_timeout=None, max_call_seconds=5))
            try:
                call.wait(timeout=30)
            except Exception:
                pass
            finally:
                call.kill()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=40, help="tenant A calls per phase")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--loops", type=int, default=3, help="play → menu rounds per call")
    parser.add_argument("--hostile-callers", type=int, default=4)
    parser.add_argument("--min-reloads", type=int, default=2,
                        help="heavy reloads of tenant B that must complete during each hostile phase")
    args = parser.parse_args()
    from esl_controller.call_log import configure_logging

    configure_logging(level="ERROR")

    folder = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    url = f"sqlite:///{folder / 'ivr.db'}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    add_tenant(sessions, "a.example", domain_uuid=A_UUID)
    add_tenant(sessions, "b.example", domain_uuid=B_UUID)
    a, b = TenantStore.open(sessions, A_UUID), TenantStore.open(sessions, B_UUID)
    write_prompts(folder / "var" / "prompts" / A_UUID)
    write_prompts(folder / "var" / "prompts" / B_UUID)
    a.add_version("bench-loop", BENCH_FLOW, author="bench")
    a.set_route("5000", "bench-loop")
    b.add_version("spin", SPIN_FLOW, author="evil")
    b.add_version("heavy", heavy_flow(0), author="evil")
    b.set_route("6000", "spin")

    port = free_port()
    env = {**os.environ, "IVR_DATABASE_URL": url, "IVR_VAR_DIR": str(folder / "var"),
           "IVR_RUN_DIR": str(folder / "run"), "IVR_WARM_PROVIDERS": "0", "PYTHONPATH": str(ROOT)}
    serve_log = open(folder / "serve.log", "w")  # noqa: SIM115 - the server's stderr for its whole life
    server = subprocess.Popen([sys.executable, "-m", "scripts.cli", "--log-level", "WARNING", "serve",
                               "--port", str(port)], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                              stderr=serve_log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the controller did not start; see {folder / 'serve.log'}") from None
                gevent.sleep(0.2)
        while not list((folder / "run").glob("ivr-*.sock")):
            gevent.sleep(0.1)
        socket_data = f"127.0.0.1:{port} async full"
        sim = FreeSwitchSimulator(speed=1.0)
        hostile = Hostile(url, sim, socket_data, folder / "run", args.hostile_callers)
        run_calls(sim, socket_data, 10, 5, 1)                           # warm-up, not counted
        results: dict[str, Measure] = {"baseline": Measure(), "hostile": Measure()}
        for _ in range(args.rounds):
            for phase in random.sample(["baseline", "hostile"], 2):
                if phase == "hostile":
                    hostile.start()
                    gevent.sleep(1.0)                                   # the first heavy reload is under way
                    before = hostile.reloads
                m = run_calls(sim, socket_data, args.calls, args.concurrency, args.loops)
                if phase == "hostile":
                    # Keep tenant A's calls coming until B's reloads really overlapped them.
                    while hostile.reloads < before + args.min_reloads:
                        more = run_calls(sim, socket_data, args.calls, args.concurrency, args.loops)
                        m.setup += more.setup
                        m.turn += more.turn
                        m.failed += more.failed
                        m.errors += more.errors
                    hostile.stop()
                results[phase].setup += m.setup
                results[phase].turn += m.turn
                results[phase].failed += m.failed
                results[phase].errors += m.errors
        base, bad = results["baseline"], results["hostile"]
        print(f"hostile tenant benchmark, {dt.date.today().isoformat()}, {os.cpu_count()} CPUs, "
              f"{args.rounds} rounds × {args.calls} calls of tenant A at concurrency {args.concurrency}")
        print(f"tenant B during the hostile phases: {hostile.reloads} reloads of a 900-node flow "
              f"(reload median {statistics.median(hostile.reload_ms or [float('nan')]):.0f} ms), "
              f"{args.hostile_callers} callers spinning a set node at the template budget")
        heads = ("setup p50", "setup p99", "turn p50", "turn p99")
        print(f"{'':10} " + " ".join(f"{h:>10}" for h in heads) + f" {'calls':>6} {'failed':>6}")
        for name, m in (("baseline", base), ("hostile", bad)):
            print(f"{name:10} {pct(m.setup, .5):10.2f} {pct(m.setup, .99):10.2f} {pct(m.turn, .5):10.2f} "
                  f"{pct(m.turn, .99):10.2f} {len(m.setup):6d} {m.failed:6d}")
        print(f"{'ratio':10} {pct(bad.setup, .5) / pct(base.setup, .5):10.2f} "
              f"{pct(bad.setup, .99) / pct(base.setup, .99):10.2f} {pct(bad.turn, .5) / pct(base.turn, .5):10.2f} "
              f"{pct(bad.turn, .99) / pct(base.turn, .99):10.2f}")
        for name, m in results.items():
            if m.errors:
                print(f"{name}: first failure: {m.errors[0]}")
        print(f"calls of tenant A measured: baseline {len(base.setup)}, hostile {len(bad.setup)}")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()

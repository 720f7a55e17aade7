"""A lean FreeSWITCH outbound-socket load generator: many simulated calls dialling into a controller.

Each simulated call (`SimulatedCall`, one greenlet, raw gevent socket, 127.0.0.1 only) speaks
the protocol of the recorded FreeSWITCH 1.10 traces (frames from `channel_events`):

* ``connect`` → the CHANNEL_DATA reply (async, full); ``myevents``/``linger``/``event``/
  ``divert_events``/``resume`` → their ``+OK`` replies; ``api`` → ``api/response +OK``;
* ``sendmsg`` execute → ``+OK``, CHANNEL_EXECUTE and CHANNEL_EXECUTE_COMPLETE echoing the
  ``Event-UUID`` as ``Application-UUID`` (FreeSWITCH makes one up when none is sent).  The
  completion of ``playback`` comes after the simulated play time; ``play_and_get_digits`` after
  the simulated menu time with ``variable_<var>: 1`` and ``read_result: success``; ``answer``
  adds CHANNEL_ANSWER; other applications complete at once;
* after ``loops`` play → menu rounds, the caller hangs up during the next playback: the
  i1 sequence (CHANNEL_HANGUP, the playback's COMPLETE with PLAYBACK ERROR, UNPARK, the socket
  app's COMPLETE, CHANNEL_STATE ×2, HANGUP_COMPLETE, disconnect notice ``linger``); then
  ``exit`` → ``+OK bye``, disconnect notice ``disconnect``, close.

Measured here: setup (TCP connect started → ``connect`` received) and turnaround (a waited
application's completion sent → the controller's next command received; only when nothing
was already buffered).  A generator process (`generator_main`, started with multiprocessing
spawn) runs its share of the calls: it ramps to each step's live-call target at a bounded
rate, replaces ended calls while the step holds, stops starting calls after the last step (or
when the runner raises the stop flag) and gives live calls a bounded time to end.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
import uuid
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import gevent
from channel_events import SwitchFrames, encode_value, load_switch_frames
from gevent import socket
from gevent.event import Event as GEvent

from esl_controller.protocol import encode_api_response, encode_reply

REPLY_OK = encode_reply("+OK")
REPLY_EVENTS = encode_reply("+OK Events Enabled")
REPLY_LINGER = encode_reply("+OK will linger")
REPLY_LISTENER = encode_reply("+OK event listener enabled plain")
REPLY_DIVERT = encode_reply("+OK events diverted")
REPLY_BYE = encode_reply("+OK bye")
REPLY_UNKNOWN = encode_reply("-ERR command not found")
API_OK = encode_api_response("+OK\n")
API_GONE = encode_api_response("-ERR No such channel!\n")
TURN_SLOW_SECONDS = 0.010          # the goal's p99 bound; the runner's early stop counts samples above it
FIELDS = ("ready", "live", "started", "completed", "failed")
READY, LIVE, STARTED, COMPLETED, FAILED = range(len(FIELDS))


class PeerClosed(Exception):
    """The controller closed the connection before the call was over."""


@dataclass(frozen=True, slots=True)
class Step:
    live: int              # this generator's live-call target
    ramp_start: float      # seconds after the common start
    hold_start: float
    hold_end: float


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What one generator process does."""

    index: int
    address: tuple[str, int]
    steps: tuple[Step, ...]
    rate: float            # call starts per second, at most
    loops: int             # play → menu rounds before the caller hangs up
    play_s: float
    menu_s: float
    jitter: float          # play and menu times vary uniformly by ± this fraction
    io_timeout: float      # any single wait on the controller
    drain_s: float         # after the last step, how long live calls may take to end
    seed: int = 0
    warm_up_calls: int = 0 # short calls before the start signal, not counted
    nice: int | None = None
    cpus: tuple[int, ...] = ()   # CPU affinity (empty: any)


class Board:
    """Counters shared by the generators and the runner (multiprocessing RawArrays, no locks:
    each generator writes only its own cells)."""

    def __init__(self, ctx: Any, generators: int, steps: int) -> None:
        self.generators = generators
        self.steps = steps
        self.counts = ctx.RawArray("q", generators * len(FIELDS))
        self.turns = ctx.RawArray("q", generators * steps * 2)    # per step's hold: samples, samples > 10 ms
        self.control = ctx.RawArray("d", 2)                       # [0] start (epoch, 0 = wait), [1] stop

    def add(self, gen: int, field: int, delta: int = 1) -> None:
        self.counts[gen * len(FIELDS) + field] += delta

    def total(self, field: int) -> int:
        width = len(FIELDS)
        return sum(self.counts[g * width + field] for g in range(self.generators))

    def step_turns(self, step: int) -> tuple[int, int]:
        samples = slow = 0
        for g in range(self.generators):
            base = (g * self.steps + step) * 2
            samples += self.turns[base]
            slow += self.turns[base + 1]
        return samples, slow

    @property
    def started_at(self) -> float:
        return self.control[0]

    @property
    def stopping(self) -> bool:
        return self.control[1] != 0.0


class Generator:
    """One process's share of the calls."""

    def __init__(self, plan: LoadPlan, board: Board, frames: SwitchFrames) -> None:
        self.plan = plan
        self.board = board
        self.frames = frames
        self.rng = random.Random(plan.seed)
        self.live = 0
        self.slot_free = GEvent()
        self.calls: set[gevent.Greenlet] = set()
        self.start = 0.0                               # perf_counter at the common start
        self.bounds = [s.ramp_start for s in plan.steps]
        self.setup_t, self.setup_v = array("d"), array("d")
        self.turn_t, self.turn_v = array("d"), array("d")
        self.failures: dict[str, int] = {}
        self.commands = 0
        self.completed = 0
        self.signature: list[str] = []
        self.signature_taken = False           # the first call records its command sequence
        self.recording = True                  # False while warming up: nothing is counted
        self.play_s, self.menu_s = plan.play_s, plan.menu_s

    # ------------------------------------------------------------------ samples

    def step_of(self, t: float) -> int:
        return max(0, bisect_right(self.bounds, t) - 1)

    def record_setup(self, now: float, value: float) -> None:
        if not self.recording:
            return
        self.setup_t.append(now - self.start)
        self.setup_v.append(value)

    def record_turn(self, now: float, value: float) -> None:
        if not self.recording:
            return
        t = now - self.start
        self.turn_t.append(t)
        self.turn_v.append(value)
        k = self.step_of(t)
        step = self.plan.steps[k]
        if step.hold_start <= t < step.hold_end:      # the runner's early stop judges holds only
            base = (self.plan.index * self.board.steps + k) * 2
            self.board.turns[base] += 1
            if value > TURN_SLOW_SECONDS:
                self.board.turns[base + 1] += 1

    def jittered(self, seconds: float) -> float:
        j = self.plan.jitter
        return seconds * (1.0 + self.rng.uniform(-j, j)) if j else seconds

    # ------------------------------------------------------------------ running

    def warm_up(self, calls: int) -> None:
        """Run a few short calls, not counted, so the server's first-call costs (imports, caches)
        fall before the measurement."""
        self.recording = False
        self.signature_taken = True
        self.play_s = self.menu_s = 0.005
        try:
            greenlets = [gevent.spawn(SimulatedCall(self).run) for _ in range(calls)]
            gevent.joinall(greenlets, timeout=self.plan.io_timeout)
            gevent.killall(greenlets, timeout=5.0)
        finally:
            self.recording = True
            self.signature_taken = False
            self.play_s, self.menu_s = self.plan.play_s, self.plan.menu_s
            self.commands = self.completed = 0
            self.failures.clear()

    def run(self) -> None:
        plan, board = self.plan, self.board
        deadline = time.time() + 120.0
        while board.started_at == 0.0:
            if time.time() > deadline:
                raise TimeoutError("the runner never gave the start signal")
            gevent.sleep(0.01)
        gevent.sleep(max(0.0, board.started_at - time.time()))
        self.start = time.perf_counter()
        self._spawn_calls()
        end = self.start + plan.steps[-1].hold_end + plan.drain_s
        while self.calls and time.perf_counter() < end:
            gevent.joinall(list(self.calls), timeout=max(0.05, min(1.0, end - time.perf_counter())))
        if self.calls:
            self.failures["aborted_at_deadline"] = len(self.calls)
            gevent.killall(list(self.calls), timeout=5.0)

    def _spawn_calls(self) -> None:
        plan, board = self.plan, self.board
        interval = 1.0 / plan.rate
        next_at = time.perf_counter()
        for step in plan.steps:
            hold_end = self.start + step.hold_end
            while not board.stopping:
                now = time.perf_counter()
                if now >= hold_end:
                    break
                if self.live < step.live:
                    if now < next_at:
                        gevent.sleep(next_at - now)
                        continue
                    next_at = max(next_at + interval, now - interval)
                    self._start_call()
                else:
                    self.slot_free.clear()
                    self.slot_free.wait(timeout=min(0.05, max(0.001, hold_end - now)))
            if board.stopping:
                return

    def _start_call(self) -> None:
        self.live += 1
        self.board.add(self.plan.index, LIVE)
        self.board.add(self.plan.index, STARTED)
        call = SimulatedCall(self)
        greenlet = gevent.spawn(call.run)
        self.calls.add(greenlet)
        greenlet.rawlink(self._call_ended)     # runs in the hub: must not block

    def _call_ended(self, greenlet: gevent.Greenlet) -> None:
        self.calls.discard(greenlet)
        self.live -= 1
        self.board.add(self.plan.index, LIVE, -1)
        self.slot_free.set()

    def fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if self.recording:
            self.board.add(self.plan.index, FAILED)

    def results(self) -> dict[str, Any]:
        return {
            "index": self.plan.index,
            "setup_t": self.setup_t.tobytes(), "setup_v": self.setup_v.tobytes(),
            "turn_t": self.turn_t.tobytes(), "turn_v": self.turn_v.tobytes(),
            "failures": dict(self.failures), "commands": self.commands, "completed": self.completed,
            "signature": list(self.signature),
        }


class SimulatedCall:
    """One call: FreeSWITCH's side of an outbound socket, as lean as the protocol allows."""

    __slots__ = ("buf", "call_enc", "call_uuid", "commands", "gen", "hung_up", "linger", "loops_done", "mark",
                 "names", "sock", "t0")

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.call_uuid = str(uuid.uuid4())
        self.call_enc = encode_value(self.call_uuid)
        self.buf = bytearray()
        self.mark = 0.0
        self.loops_done = 0
        self.hung_up = False
        self.linger = -1
        self.commands = 0
        self.names: list[str] | None = None if gen.signature_taken else []
        gen.signature_taken = True
        self.sock: Any = None
        self.t0 = 0.0

    def run(self) -> None:
        gen = self.gen
        self.t0 = time.perf_counter()
        try:
            sock = self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.settimeout(gen.plan.io_timeout)
                sock.connect(gen.plan.address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._serve()
            finally:
                sock.close()
        except TimeoutError:
            gen.fail("timeout_hung_up" if self.hung_up else "timeout")
        except ConnectionRefusedError:
            gen.fail("refused")
        except ConnectionResetError:
            gen.fail("reset")
        except PeerClosed:
            gen.fail("closed_before_exit" if self.hung_up else "closed_mid_call")
        except OSError as exc:
            gen.fail(f"socket:{type(exc).__name__}")
        except Exception as exc:   # a bug here must show in the figures, not vanish into a greenlet
            gen.fail(f"loadgen:{type(exc).__name__}")
        else:
            if self.loops_done >= gen.plan.loops:
                gen.completed += 1
                if gen.recording:
                    gen.board.add(gen.plan.index, COMPLETED)
                if self.names is not None:
                    gen.signature = self.names
            else:
                gen.fail("ended_early")
        finally:
            gen.commands += self.commands

    # ------------------------------------------------------------------ wire

    def _command(self) -> tuple[bytes, bytes]:
        buf = self.buf
        while True:
            end = buf.find(b"\n\n")
            if end >= 0:
                head = bytes(buf[:end]).lstrip(b"\n")
                at = head.find(b"\nContent-Length: ")
                if at < 0:
                    del buf[: end + 2]
                    return head, b""
                line_end = head.find(b"\n", at + 1)
                size = int(head[at + 17: line_end if line_end >= 0 else len(head)])
                if len(buf) >= end + 2 + size:
                    body = bytes(buf[end + 2: end + 2 + size])
                    del buf[: end + 2 + size]
                    return head, body
            data = self.sock.recv(65536)
            if self.mark:
                now = time.perf_counter()
                self.gen.record_turn(now, now - self.mark)
                self.mark = 0.0
            if not data:
                raise PeerClosed()
            buf += data

    def _mark(self) -> None:
        """The controller is expected to act on what was just sent: time its next command."""
        self.mark = 0.0 if self.buf else time.perf_counter()

    def _serve(self) -> None:
        sock = self.sock
        while True:
            head, body = self._command()
            self.commands += 1
            line, _, rest = head.partition(b"\n")
            if self.names is not None:
                self.names.append(_describe(line, rest))
            if line == b"sendmsg" or line.startswith(b"sendmsg "):
                self._sendmsg(rest, body)
            elif line == b"connect":
                now = time.perf_counter()
                self.gen.record_setup(now, now - self.t0)
                sock.sendall(self.gen.frames.connect_reply.render((self.call_enc, b"", b"", b"", b"")))
            elif line == b"exit":
                sock.sendall(REPLY_BYE + SwitchFrames.disconnect_notice(self.call_uuid))
                return
            elif line.startswith(b"api "):
                sock.sendall(API_GONE if self.hung_up else API_OK)
            elif line == b"myevents" or line.startswith(b"myevents "):
                sock.sendall(REPLY_EVENTS)
            elif line == b"linger" or line.startswith(b"linger "):
                value = line[7:].strip()
                self.linger = int(value) if value.isdigit() else -1
                sock.sendall(REPLY_LINGER)
            elif line.startswith(b"event "):
                sock.sendall(REPLY_LISTENER)
            elif line.startswith(b"divert_events"):
                sock.sendall(REPLY_DIVERT)
            elif line == b"resume":
                sock.sendall(REPLY_OK)
            else:
                sock.sendall(REPLY_UNKNOWN)

    def _sendmsg(self, rest: bytes, body: bytes) -> None:
        headers: dict[bytes, bytes] = {}
        for raw in rest.split(b"\n"):
            key, _, value = raw.partition(b": ")
            headers[key.lower()] = value
        sock, gen = self.sock, self.gen
        frames = gen.frames
        if self.hung_up:
            sock.sendall(REPLY_OK)      # FreeSWITCH still says +OK to a lingering channel, and runs nothing
            return
        command = headers.get(b"call-command", b"")
        if command == b"hangup":
            sock.sendall(REPLY_OK)
            self._hang_up(b"")
            return
        if command != b"execute":
            sock.sendall(REPLY_OK)      # FreeSWITCH only logs "Invalid Command!"
            return
        app = headers.get(b"execute-app-name", b"").decode()
        arg = headers[b"execute-app-arg"].decode() if b"execute-app-arg" in headers else body.decode()
        app_uuid = headers.get(b"event-uuid", b"").decode() or str(uuid.uuid4())
        values = (self.call_enc, encode_value(app_uuid), encode_value(app), encode_value(arg), b"")
        started = REPLY_OK + frames.execute.render(values)
        if app == "playback":
            sock.sendall(started)
            if self.loops_done >= gen.plan.loops:
                gevent.sleep(gen.jittered(gen.play_s) / 2)     # the caller hangs up mid-prompt
                self._hang_up(frames.running_app_broken.render(values))
                return
            gevent.sleep(gen.jittered(gen.play_s))
            sock.sendall(frames.playback_done.render(values))
            self._mark()
        elif app == "play_and_get_digits":
            parts = arg.split(" ")
            var = parts[7] if len(parts) > 7 else "digits"
            sock.sendall(started)
            gevent.sleep(gen.jittered(gen.menu_s))
            self.loops_done += 1
            sock.sendall(frames.digits_done.render((*values[:4], var.encode())))
            self._mark()
        elif app == "answer":
            sock.sendall(started + frames.answer.render(values) + frames.complete.render(values))
            self._mark()
        elif app == "hangup":
            sock.sendall(started)
            self._hang_up(frames.complete.render(values))
        else:
            sock.sendall(started + frames.complete.render(values))

    def _hang_up(self, running_app_complete: bytes) -> None:
        frames = self.gen.frames
        values = (self.call_enc, b"", b"", b"", b"")
        parts = [t.render(values) for t in frames.hangup_before]
        parts.append(running_app_complete)
        parts.extend(t.render(values) for t in frames.hangup_after)
        parts.append(frames.linger_notice(self.call_uuid, self.linger))
        self.hung_up = True
        self.sock.sendall(b"".join(parts))


def _describe(line: bytes, rest: bytes) -> str:
    """A short name for a command, for the per-server command sequence in the report."""
    if line != b"sendmsg":
        words = line.decode(errors="replace").split(" ")
        return " ".join(words[:2]) if words[0] in ("linger", "api", "event") else words[0]
    fields = dict(raw.partition(b": ")[::2] for raw in rest.split(b"\n"))
    lowered = {k.lower(): v for k, v in fields.items()}
    command = lowered.get(b"call-command", b"?").decode()
    app = lowered.get(b"execute-app-name", b"").decode()
    return f"sendmsg {command} {app}".rstrip()


def own_scheduling(nice: int | None) -> None:
    """Leave the runner's session, so that with the kernel's autogroup scheduling this process
    gets its own share of the CPUs instead of splitting one with the server and the runner; and
    run at ``nice`` (negative needs root; applied to the process and to its autogroup, since
    across autogroups only the group's nice counts).  A refusal is reported, not fatal."""
    try:
        os.setsid()
    except OSError:
        pass
    if nice is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError as exc:
        print(f"loadgen: cannot set nice {nice}: {exc}", file=sys.stderr)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def generator_main(plan: LoadPlan, board: Board, results: Any) -> None:
    """Entry point of a generator process (multiprocessing spawn): run the plan, put the results."""
    raise_fd_limit()
    own_scheduling(plan.nice)
    if plan.cpus:
        os.sched_setaffinity(0, plan.cpus)
    gen = Generator(plan, board, load_switch_frames())
    try:
        if plan.warm_up_calls:
            gevent.spawn(gen.warm_up, plan.warm_up_calls).get()
        board.add(plan.index, READY)
        gevent.spawn(gen.run).get()
    except Exception as exc:   # the runner reports it; the process must still hand its samples back
        gen.failures[f"generator:{type(exc).__name__}: {exc}"[:120]] = 1
    results.put(gen.results())

"""A real FreeSWITCH for the tests: a private instance per test session, calls placed over inbound ESL.

The simulator (`esl_controller.simulator`) is our model of FreeSWITCH; this module drives the
thing itself, FreeSWITCH 1.10.12 with the loopback-only configuration in
``tests/fixtures/freeswitch/conf``:

- `FreeSwitch` starts a private instance (its configuration, logs, database and recordings in
  one folder, inbound ESL on a free 127.0.0.1 port), installs dialplan files (bare
  ``<extension>``s into context ``default``, or whole ``<context>`` files, the FusionPBX layout)
  and stops it.
- `InboundEsl` is a client of FreeSWITCH's inbound Event Socket (``api``, ``bgapi``, every event
  kept with FreeSWITCH's own timestamp), built on the package's sans-IO parser.
- `Caller` is one loopback call: its A leg is the caller (continuous silence, WAVs spoken with
  ``uuid_broadcast``, digits with ``uuid_send_dtmf``, hang up with ``uuid_kill``), its B leg runs
  the dialplan and is the channel our controller sees.

Where FreeSWITCH is not installed the tests that need it are skipped with the reason
(`missing_reason`); CI installs it and sets ``IVR_TEST_FREESWITCH_REQUIRED=1``, so there a
missing FreeSWITCH fails instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gevent
from gevent.event import AsyncResult
from gevent.event import Event as GEvent

from esl_controller.protocol import EslParser, Frame

CONF = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch" / "conf"
DEFAULT_BIN = "/usr/local/freeswitch/bin/freeswitch"
PASSWORD = "ClueCon"
REQUIRED_ENV = "IVR_TEST_FREESWITCH_REQUIRED"


def freeswitch_binary() -> Path:
    return Path(os.environ.get("IVR_FREESWITCH_BIN", DEFAULT_BIN))


def missing_reason() -> str | None:
    """Why the real-FreeSWITCH tests cannot run here, or None when they can."""
    binary = freeswitch_binary()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        return (f"FreeSWITCH is not installed ({binary} not found; install FreeSWITCH 1.10 there or set "
                "IVR_FREESWITCH_BIN to its binary)")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------- events


@dataclass(slots=True)
class FsEvent:
    """One event as FreeSWITCH sent it; ``fs_time`` is its own clock (Event-Date-Timestamp, seconds)."""

    headers: dict[str, str]
    body: str
    arrived: float                         # time.monotonic() when we read it

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def uuid(self) -> str:
        return self.headers.get("Unique-ID", "")

    @property
    def app(self) -> str:
        return self.headers.get("Application", "")

    @property
    def app_data(self) -> str:
        return self.headers.get("Application-Data", "")

    @property
    def fs_time(self) -> float:
        return int(self.headers.get("Event-Date-Timestamp", "0")) / 1e6

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)

    def __repr__(self) -> str:
        extra = f" {self.app} {self.app_data[:50]}" if self.app else ""
        return f"<{self.name}{extra} {self.headers.get('Channel-Name', '')}>"


def _event_headers(body: bytes) -> tuple[dict[str, str], str]:
    text = body.decode("utf-8", errors="replace")
    head, _, rest = text.partition("\n\n")
    headers: dict[str, str] = {}
    for line in head.split("\n"):
        key, sep, value = line.partition(": ")
        if sep:
            headers[key] = urllib.parse.unquote(value)
    return headers, rest


class InboundEsl:
    """A connection to FreeSWITCH's inbound Event Socket that keeps every event it receives."""

    def __init__(self, port: int, *, events: str = "ALL", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(None)
        self._parser = EslParser(max_body=64 * 1024 * 1024)
        self._replies: list[AsyncResult] = []
        self._jobs: dict[str, AsyncResult] = {}
        self._auth = AsyncResult()
        self.events: list[FsEvent] = []
        self._changed = GEvent()
        self._closed = False
        self._reader = gevent.spawn(self._read)
        self._auth.get(timeout=timeout)
        self._command(f"auth {PASSWORD}", timeout)
        if events:
            self._command(f"event plain {events}", timeout)

    # -- wire
    def _read(self) -> None:
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    break
                for frame in self._parser.feed(data):
                    self._dispatch(frame)
        except OSError:
            pass
        finally:
            self._closed = True
            for slot in self._replies:
                if not slot.ready():
                    slot.set_exception(ConnectionError("FreeSWITCH closed the inbound connection"))
            self._changed.set()

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.content_type
        if kind == "auth/request":
            self._auth.set(True)
        elif kind in ("command/reply", "api/response"):
            if self._replies:
                self._replies.pop(0).set(frame)
        elif kind == "text/event-plain":
            headers, body = _event_headers(frame.body)
            event = FsEvent(headers, body, time.monotonic())
            if event.name == "BACKGROUND_JOB":
                self._jobs.setdefault(headers.get("Job-UUID", ""), AsyncResult()).set(body)
            self.events.append(event)
            self._changed.set()
            self._changed.clear()

    def _command(self, command: str, timeout: float = 10.0) -> Frame:
        slot = AsyncResult()
        self._replies.append(slot)
        self.sock.sendall(command.encode() + b"\n\n")
        frame: Frame = slot.get(timeout=timeout)
        return frame

    # -- commands
    def api(self, command: str, *, timeout: float = 15.0) -> str:
        return self._command(f"api {command}", timeout).body.decode("utf-8", errors="replace")

    def bgapi(self, command: str, *, timeout: float = 30.0) -> str:
        """Run ``bgapi`` and wait for its BACKGROUND_JOB (subscribed by ``event plain ALL``)."""
        job = str(uuidlib.uuid4())
        slot = self._jobs.setdefault(job, AsyncResult())
        reply = self._command(f"bgapi {command}\nJob-UUID: {job}", timeout)
        if not reply.ok:
            raise RuntimeError(f"bgapi {command}: {reply.reply_text}")
        return str(slot.get(timeout=timeout))

    def send_raw(self, command: str, timeout: float = 10.0) -> Frame:
        return self._command(command, timeout)

    # -- events
    def wait_for(self, predicate: Callable[[FsEvent], bool], *, timeout: float, start: int = 0,
                 what: str = "event") -> FsEvent:
        """The first event (from index ``start``) that matches, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            while seen < len(self.events):
                event = self.events[seen]
                seen += 1
                if predicate(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                raise TimeoutError(f"no {what} from FreeSWITCH within {timeout:.1f}s")
            self._changed.wait(timeout=min(left, 0.5))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        self._reader.kill(block=False)


# ---------------------------------------------------------------------------------------------- the caller

_numbers = itertools.count(1)


@dataclass
class Caller:
    """One loopback call into ``number`` in ``context``; the A leg is the caller."""

    esl: InboundEsl
    number: str
    context: str = "default"
    caller_number: str = "5551234"
    a_uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    b_uuid: str = ""
    _start: int = 0

    def place(self, *, timeout: float = 10.0) -> Caller:
        """Originate; the caller's leg then sends continuous silence (a phone line, not CNG)."""
        self._start = len(self.esl.events)
        variables = (f"origination_uuid={self.a_uuid},origination_caller_id_number={self.caller_number},"
                     "origination_caller_id_name=TestCaller")
        reply = self.esl.send_raw(f"bgapi originate {{{variables}}}loopback/{self.number}/{self.context} "
                                  "&playback(silence_stream://-1)")
        if not reply.ok:
            raise RuntimeError(f"originate: {reply.reply_text}")
        created = self.esl.wait_for(lambda e: e.name == "CHANNEL_CREATE" and e.uuid == self.a_uuid,
                                    timeout=timeout, start=self._start, what="CHANNEL_CREATE of the caller")
        self.b_uuid = created.get("variable_other_loopback_leg_uuid")
        return self

    # -- what the caller does
    def say(self, wav: Path | str, *, wait: bool = False, timeout: float = 60.0) -> FsEvent:
        """Speak a WAV into the call; returns its PLAYBACK_START (or, with ``wait``, its PLAYBACK_STOP)."""
        mark = len(self.esl.events)
        reply = self.esl.api(f"uuid_broadcast {self.a_uuid} {wav} aleg")
        if not reply.startswith("+OK"):
            raise RuntimeError(f"uuid_broadcast: {reply.strip()}")
        kind = "PLAYBACK_STOP" if wait else "PLAYBACK_START"
        return self.esl.wait_for(
            lambda e: e.name == kind and e.uuid == self.a_uuid and e.get("Playback-File-Path") == str(wav),
            timeout=timeout, start=mark, what=f"{kind} of {wav}")

    def press(self, digits: str) -> None:
        reply = self.esl.api(f"uuid_send_dtmf {self.a_uuid} {digits}")
        if not reply.startswith("+OK"):
            raise RuntimeError(f"uuid_send_dtmf: {reply.strip()}")

    def hangup(self) -> None:
        self.esl.api(f"uuid_kill {self.a_uuid}")

    # -- what FreeSWITCH saw
    def b_events(self, name: str | None = None) -> list[FsEvent]:
        return [e for e in self.esl.events[self._start:] if e.uuid == self.b_uuid and (name is None or e.name == name)]

    def executed(self) -> list[tuple[str, str]]:
        """(application, data) of every application the controller's leg ran, in order."""
        return [(e.app, e.app_data) for e in self.b_events("CHANNEL_EXECUTE")]

    def apps(self) -> list[str]:
        return [app for app, _ in self.executed()]

    def wait_app(self, app: str, *, nth: int = 1, timeout: float = 30.0, data: str | None = None) -> FsEvent:
        """The ``nth`` CHANNEL_EXECUTE of ``app`` on the controller's leg."""
        count = 0

        def match(e: FsEvent) -> bool:
            nonlocal count
            if e.name == "CHANNEL_EXECUTE" and e.uuid == self.b_uuid and e.app == app and (
                    data is None or data in e.app_data):
                count += 1
                return count >= nth
            return False

        return self.esl.wait_for(match, timeout=timeout, start=self._start, what=f"execute #{nth} of {app}")

    def wait_complete(self, app: str, *, nth: int = 1, timeout: float = 30.0) -> FsEvent:
        count = 0

        def match(e: FsEvent) -> bool:
            nonlocal count
            if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.uuid == self.b_uuid and e.app == app:
                count += 1
                return count >= nth
            return False

        return self.esl.wait_for(match, timeout=timeout, start=self._start, what=f"completion #{nth} of {app}")

    def wait_hangup(self, *, timeout: float = 60.0) -> FsEvent:
        """The controller leg's CHANNEL_HANGUP_COMPLETE (its cause is ``Hangup-Cause``)."""
        return self.esl.wait_for(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.uuid == self.b_uuid,
                                 timeout=timeout, start=self._start, what="hangup of the call")

    def hung_up(self) -> bool:
        return bool(self.b_events("CHANNEL_HANGUP_COMPLETE"))

    def wait_bridged_to(self, number: str, *, timeout: float = 30.0) -> FsEvent:
        """The moment the caller's call reached the person at ``number`` (the 1xxx stand-ins answer)."""
        return self.esl.wait_for(
            lambda e: e.name == "CHANNEL_EXECUTE" and e.get("Channel-Name") == f"loopback/{number}-b"
            and e.app == "set" and e.app_data == f"agent={number}",
            timeout=timeout, start=self._start, what=f"the call reaching {number}")

    def variable(self, name: str) -> str:
        return self.esl.api(f"uuid_getvar {self.b_uuid} {name}").strip()


# ---------------------------------------------------------------------------------------------- the instance


class FreeSwitch:
    """A private FreeSWITCH instance in ``root``, inbound ESL on ``127.0.0.1:esl_port``."""

    def __init__(self, root: Path, esl_port: int | None = None) -> None:
        self.root = Path(root)
        self.esl_port = esl_port or free_port()
        self.conf = self.root / "conf"
        self.recordings = self.root / "recordings"
        self.pid: int | None = None
        self._esl: InboundEsl | None = None

    def start(self, *, timeout: float = 60.0) -> FreeSwitch:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        if not self.conf.is_dir():
            shutil.copytree(CONF, self.conf)
        vars_xml = self.conf / "vars.xml"
        vars_xml.write_text(re.sub(r'data="esl_port=\d*"', f'data="esl_port={self.esl_port}"', vars_xml.read_text()))
        dirs = {name: self.root / name for name in
                ("log", "db", "run", "temp", "recordings", "storage", "cache", "sounds")}
        for folder in dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        args = [str(freeswitch_binary()), "-ncwait", "-nonat", "-nonatmap", "-nocal", "-conf", str(self.conf)]
        for name, folder in dirs.items():
            args += [f"-{name}", str(folder)]
        out = self.root / "log" / "start.out"
        with open(out, "wb") as f:
            result = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"FreeSWITCH did not start: {out.read_text(errors='replace')[-2000:]}")
        self.pid = int((dirs["run"] / "freeswitch.pid").read_text().strip())
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._esl = InboundEsl(self.esl_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(0.1)
        return self

    @property
    def esl(self) -> InboundEsl:
        assert self._esl is not None, "FreeSWITCH is not started"
        return self._esl

    def connect(self, events: str = "ALL") -> InboundEsl:
        """A new inbound connection of its own (the shared one is `esl`)."""
        return InboundEsl(self.esl_port, events=events)

    def stop(self) -> None:
        if self._esl is not None:
            self._esl.close()
            self._esl = None
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    # -- dialplan
    def install_dialplan(self, name: str, xml: str, *, layout: str = "default") -> Path:
        """Write ``xml`` as ``dialplan/default/<name>.xml`` (bare extensions of context ``default``) or,
        with ``layout="tenants"``, ``dialplan/tenants/<name>.xml`` (whole contexts), then ``reloadxml``."""
        folder = self.conf / "dialplan" / ("tenants" if layout == "tenants" else "default")
        path = folder / f"{name}.xml"
        path.write_text(xml)
        self.reloadxml()
        return path

    def clear_dialplans(self) -> None:
        for folder in ("default", "tenants"):
            for path in (self.conf / "dialplan" / folder).glob("*.xml"):
                path.unlink()
        self.reloadxml()

    def reloadxml(self) -> None:
        reply = self.esl.api("reloadxml")
        if "+OK" not in reply:
            raise RuntimeError(f"reloadxml failed: {reply.strip()}\n{self.log_tail()}")

    def call(self, number: str, context: str = "default", **kw: str) -> Caller:
        return Caller(self.esl, number, context, **kw).place()

    def hupall(self) -> None:
        self.esl.api("hupall NORMAL_CLEARING")

    def channels(self) -> int:
        reply = self.esl.api("show channels count")
        found = re.search(r"(\d+) total", reply)
        return int(found.group(1)) if found else 0

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.channels() == 0:
                return True
            gevent.sleep(0.1)
        return False

    def log_tail(self, chars: int = 4000) -> str:
        log = self.root / "log" / "freeswitch.log"
        return log.read_text(errors="replace")[-chars:] if log.is_file() else ""


@contextlib.contextmanager
def running_freeswitch(root: Path) -> Iterator[FreeSwitch]:
    fs = FreeSwitch(root).start()
    try:
        yield fs
    finally:
        fs.stop()

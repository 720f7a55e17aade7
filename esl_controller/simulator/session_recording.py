"""``record_session <path> [+<limit>] [{vars}]`` and ``stop_record_session <path>``: background recording.

FreeSWITCH's ``record_session`` attaches a media bug and returns at once; the file grows while
other applications (``playback``…) run, until ``stop_record_session``, the limit or hangup. The
simulator writes what the caller says with `ProgressiveWav` as FreeSWITCH 1.10.12 was measured to:
in 64 KiB steps unless ``enable_file_write_buffering=false``, and ~0.5 s behind the caller unless
``RECORD_PRE_BUFFER_FRAMES=0`` (each looked up in the ``{vars}`` first, then on the channel). With
both, a controller can follow the caller live (speech barge-in). ``RECORD_READ_ONLY=true`` is what
a controller sets to hear only the caller; the simulated line only carries the caller anyway.
"""

from __future__ import annotations

import weakref

import gevent

from esl_controller.simulator.audio import ProgressiveWav, write_buffer_bytes
from esl_controller.simulator.execution import AppHost, wait_sim

PROGRESS_STEP = 0.02   # one 20 ms frame: how often the simulated line is read into the file
PRE_BUFFER_LAG = 0.5   # seconds behind the caller without RECORD_PRE_BUFFER_FRAMES=0


def _brace_vars(text: str) -> dict[str, str]:
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        return {}
    pairs = (item.partition("=") for item in inner[1:-1].split(","))
    return {key.strip(): value for key, sep, value in pairs if sep}
_running: weakref.WeakKeyDictionary[object, dict[str, gevent.Greenlet]] = weakref.WeakKeyDictionary()


def record_session(host: AppHost, arg: str) -> None:
    parts = arg.split()
    path = parts[0] if parts else ""
    if not path:
        return None
    ch, clock, line = host.channel, host.clock, host.line
    rest = parts[1:]
    limit = float(rest.pop(0)[1:] or 0) if rest and rest[0].startswith("+") else 0.0
    options = _brace_vars(" ".join(rest))

    def var(name: str) -> str | None:
        return options.get(name, ch.vars.get(name))

    buffer_bytes = write_buffer_bytes(var("enable_file_write_buffering"))
    lag = 0.0 if (var("RECORD_PRE_BUFFER_FRAMES") or "").strip() == "0" else PRE_BUFFER_LAG
    target = host.record_path(path)
    stopped = {"flag": False}

    def run() -> None:
        writer = ProgressiveWav(target, buffer_bytes=buffer_bytes)
        start = clock.now()
        end = start + limit if limit > 0 else float("inf")
        try:
            while True:
                done = wait_sim(host, min(end, clock.now() + PROGRESS_STEP),
                                lambda: ch.hung_up or stopped["flag"]) or clock.now() >= end
                upto = clock.now() if done else max(start, clock.now() - lag)
                writer.append(line.captured(start, upto)[writer.samples:])
                if done:
                    return
        finally:
            writer.close()

    job = gevent.spawn(run)
    job.stopped = stopped  # type: ignore[attr-defined]
    _running.setdefault(ch, {})[path] = job
    ch.emit("RECORD_START", [("Record-File-Path", path)])
    return None


def stop_record_session(host: AppHost, arg: str) -> None:
    ch = host.channel
    jobs = _running.get(ch, {})
    paths = list(jobs) if arg.strip() in ("", "all") else [arg.split()[0]]
    for path in paths:
        job = jobs.pop(path, None)
        if job is None:
            continue
        job.stopped["flag"] = True  # type: ignore[attr-defined]
        ch.signal.notify()
        job.join(timeout=5)
        ch.emit("RECORD_STOP", [("Record-File-Path", path)])
    return None

"""``record_session <path>`` and ``stop_record_session <path>``: recording in the background.

FreeSWITCH's ``record_session`` attaches a media bug and returns at once; the file grows while
other applications (``playback``…) run, until ``stop_record_session`` or hangup. The simulator
writes what the caller says (``RECORD_READ_ONLY=true`` is what a controller sets to hear only
the caller; the simulated line only carries the caller anyway) with `ProgressiveWav`, every
``PROGRESS_STEP`` simulated seconds, so a controller can follow it (speech barge-in).
"""

from __future__ import annotations

import weakref

import gevent

from esl_controller.simulator.audio import ProgressiveWav
from esl_controller.simulator.execution import AppHost, wait_sim

PROGRESS_STEP = 0.02   # FreeSWITCH writes each 20 ms frame as it comes (no enable_file_write_buffering)
_running: weakref.WeakKeyDictionary[object, dict[str, gevent.Greenlet]] = weakref.WeakKeyDictionary()


def record_session(host: AppHost, arg: str) -> None:
    path = arg.split()[0] if arg.split() else ""
    if not path:
        return None
    ch, clock, line = host.channel, host.clock, host.line
    target = host.record_path(path)
    stopped = {"flag": False}

    def run() -> None:
        writer = ProgressiveWav(target)
        start = clock.now()
        try:
            while True:
                done = wait_sim(host, clock.now() + PROGRESS_STEP, lambda: ch.hung_up or stopped["flag"])
                writer.append(line.captured(start, clock.now())[writer.samples:])
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

"""``record <path> [max_seconds] [silence_threshold] [silence_seconds]``: a real WAV of what
the caller said.

The file (8 kHz mono 16-bit) holds the samples of the caller's speech segments that fall
inside the recording; silent time between segments is not written (a loopback leg sends CNG
frames there, trace ``f1``).  Like FreeSWITCH, the file is written while it records (header
sizes fixed at the end): in 64 KiB steps by default, every 20 ms frame as it comes after
``set enable_file_write_buffering=false`` (`audio.write_buffer_bytes`), so a controller can
follow it as it grows only in the second case.  The recording stops when:

* silence detection is on (threshold and seconds > 0) and that many seconds of quiet 20 ms
  frames passed, counted from the start and again after each voiced frame
  (``silence_hits_exhausted: true``);
* ``max_seconds`` passed (it stops 60 ms after the limit, as ``record_ms`` 3060 in ``f2``);
* the caller pressed a ``playback_terminators`` digit (``playback_terminator_used``; its DTMF
  event comes after the completion, trace ``f2``);
* ``uuid_break``, a transfer, or hangup: after a hangup the file is still written and the
  completion still sent, after CHANNEL_HANGUP.

It sets ``record_ms``, ``record_samples``, ``record_file_size`` (and ``record_record_file_size``),
``record_seconds`` and ``silence_hits_exhausted``, and fires RECORD_START / RECORD_STOP (which a
controller only receives when it subscribed to them).
"""

from __future__ import annotations

import math

from esl_controller.simulator.audio import RATE, ProgressiveWav, write_buffer_bytes
from esl_controller.simulator.execution import AppHost, wait_sim
from esl_controller.simulator.media import terminators_of
from esl_controller.simulator.records import Recording

MAX_LIMIT_SLACK = 0.06
PROGRESS_STEP = 0.02   # one 20 ms frame: how often the simulated line is read into the file


def record(host: AppHost, arg: str) -> None:
    ch, clock, line = host.channel, host.clock, host.line
    parts = arg.split()
    if not parts:
        return None
    path = parts[0]
    max_seconds = _number(parts, 1)
    threshold = int(_number(parts, 2))
    silence_seconds = _number(parts, 3)
    target = host.record_path(path)
    terminators = terminators_of(host)
    ch.vars.set("silence_hits_exhausted", "false")
    ch.vars.set("read_codec", "L16")
    ch.vars.set("read_rate", str(RATE))
    start = ch.app_started_at                     # the caller's timeline counts from the app's start
    ch.emit("RECORD_START", [("Record-File-Path", path)])
    limit = start + max_seconds + MAX_LIMIT_SLACK if max_seconds > 0 else math.inf
    stop, exhausted = "max_length", False
    writer = ProgressiveWav(target, buffer_bytes=write_buffer_bytes(ch.vars.get("enable_file_write_buffering")))
    while True:
        plan = line.plan_record(start, limit, threshold, silence_seconds)
        deadline = min(plan.stop_at, limit, clock.now() + PROGRESS_STEP)
        woke = wait_sim(host, deadline, lambda: bool(ch.dtmf) or not ch.media_ok or ch.break_flag)
        so_far = line.captured(start, min(clock.now(), limit, plan.stop_at))
        writer.append(so_far[writer.samples:])
        if ch.hung_up:
            stop = "hangup"
            break
        if not ch.media_ok:
            stop = "interrupted"
            break
        if ch.break_flag:
            ch.break_flag = False
            stop = "break"
            break
        if woke and ch.dtmf:
            dtmf = ch.dtmf.popleft()
            if dtmf.digit in terminators:
                ch.vars.set("playback_terminator_used", dtmf.digit)
                ch.dtmf_event(dtmf, defer=True)
                stop = "terminator"
                break
            ch.dtmf_event(dtmf)
            continue
        if not woke:
            plan = line.plan_record(start, limit, threshold, silence_seconds)
            if min(plan.stop_at, limit) <= clock.now():
                exhausted = plan.silence_exhausted
                stop = "silence" if exhausted else "max_length"
                break
    end = min(clock.now(), limit)
    if stop == "silence":
        end = min(end, line.plan_record(start, limit, threshold, silence_seconds).stop_at)
    writer.append(line.captured(start, end)[writer.samples:])
    size = writer.close()
    samples = writer.samples
    ms = samples * 1000 // RATE
    if exhausted:
        ch.vars.set("silence_hits_exhausted", "true")
    ch.vars.set("record_record_file_size", str(size))
    ch.vars.set("record_file_size", str(size))
    ch.vars.set("record_seconds", str(ms // 1000))
    ch.vars.set("record_ms", str(ms))
    ch.vars.set("record_samples", str(samples))
    ch.emit("RECORD_STOP", [("Record-File-Path", path)])
    ch.vars.set("read_codec", "L16")              # the channel's codec is restored after the recording
    ch.vars.set("read_rate", str(RATE))
    host.recorded(Recording(path, str(target), ms, samples, size, stop))
    return None


def _number(parts: list[str], index: int) -> float:
    if len(parts) <= index:
        return 0.0
    try:
        return float(parts[index])
    except ValueError:
        return 0.0

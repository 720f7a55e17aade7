"""Media applications: ``playback``, ``speak``, ``play_and_get_digits`` and ``sleep``.

Prompt lengths come from the WAV header (``silence_stream://N`` is N ms, ``tone_stream://``
0.5 s unless its ``%(on,off,…)`` segments or ``L=`` loops say otherwise, ``file_string://``
plays its parts in turn); ``speak`` takes about 65 ms per character.  ``playback_terminators``
(default ``*``, ``none`` for none) lets a DTMF cut a prompt: the playback still reports
``FILE PLAYED`` and sets ``playback_terminator_used`` (trace ``c2``).  That variable then stays
until someone unsets it or the next *playback* starts (FreeSWITCH clears it there, trace
``c2``; ``speak`` and ``record`` leave it alone).  ``uuid_break`` also gives
``FILE PLAYED``; hangup or transfer give ``PLAYBACK ERROR``; a missing file gives
``FILE NOT FOUND`` with no PLAYBACK_START/STOP (trace ``c1``).

``play_and_get_digits min max tries timeout terminators file invalid_file var regex
digit_timeout [transfer_on_failure]`` follows ``switch_play_and_get_digits``: each try clears
``read_result`` and the variable, plays the prompt (the first digit stops it), collects
digits, sets the variable and ``read_result``; input failing the regex becomes
``<var>_invalid``; after every failed try the invalid-input file plays; when all tries fail and
a transfer target was given, the call is transferred there (a literal ``None`` too).  The DTMF
events of accepted digits are delivered after the completion (trace ``d1``), those of
rejected input at once (trace ``d2``).
"""

from __future__ import annotations

import math
import re

from esl_controller.simulator.audio import RATE, wav_frames
from esl_controller.simulator.channel import Dtmf
from esl_controller.simulator.execution import AppHost, wait_sim
from esl_controller.simulator.records import Heard

SPEAK_MS_PER_CHAR = 65
DEFAULT_TONE_MS = 500
_TONE_SEGMENT = re.compile(r"%\(([^)]*)\)")


def media_length_ms(host: AppHost, spec: str) -> int | None:
    """Length of a playable thing in simulated ms; None when it cannot be found; -1 endless."""
    samples = media_samples(host, spec)
    return samples if samples is None or samples < 0 else samples * 1000 // RATE


def media_samples(host: AppHost, spec: str) -> int | None:
    """Length in 8 kHz samples; None when it cannot be found; -1 endless."""
    if spec.startswith("silence_stream://"):
        value = spec[len("silence_stream://"):].split(",")[0].strip()
        try:
            ms = int(value)
        except ValueError:
            return None
        return -1 if ms < 0 else ms * RATE // 1000
    if spec.startswith("tone_stream://"):
        ms = tone_length_ms(spec[len("tone_stream://"):])
        return -1 if ms < 0 else ms * RATE // 1000
    if spec.startswith("file_string://"):
        total = 0
        for part in spec[len("file_string://"):].split("!"):
            length = media_samples(host, part)
            if length is None:
                return None
            if length < 0:
                return -1
            total += length
        return total
    path = host.media_path(spec)
    if path is None:
        return None
    info = wav_frames(path)
    if info is None:
        return None
    frames, rate = info
    return frames * RATE // rate if rate else None


def tone_length_ms(body: str) -> int:
    loops = 1
    looped = False
    for part in body.split(";"):
        if part.startswith("L="):
            try:
                loops = int(part[2:])
                looped = True
            except ValueError:
                pass
    total = 0
    for segment in _TONE_SEGMENT.findall(body):
        numbers = segment.split(",")
        try:
            total += int(numbers[0]) + (int(numbers[1]) if len(numbers) > 1 else 0)
        except ValueError:
            continue
    if loops < 0:
        return -1
    if total:
        return total * loops
    return DEFAULT_TONE_MS * loops if looped else DEFAULT_TONE_MS


def terminators_of(host: AppHost) -> str:
    value = host.channel.vars.get("playback_terminators")
    if value is None:
        return "*"
    return "" if value.strip().lower() == "none" else value


def _interrupt_reason(host: AppHost) -> str | None:
    ch = host.channel
    if ch.hung_up:
        return "hangup"
    if not ch.media_ok:
        return "interrupted"
    if ch.break_flag:
        return "break"
    return None


def play(host: AppHost, spec: str, *, terminators: str, collect: list[Dtmf] | None = None,
         events: bool = True, kind: str = "playback", text: str | None = None,
         listen: bool = True) -> tuple[str, int, str | None]:
    """Play one prompt.  Returns ``(stop, played_ms, terminator)``.

    With ``collect`` (play_and_get_digits) the first digit of any kind stops the prompt and
    is appended to ``collect``; otherwise a terminator stops it and other digits only produce
    their DTMF event.  With ``listen=False`` DTMF is left queued for whoever reads next.
    """
    ch, clock = host.channel, host.clock
    total = (SPEAK_MS_PER_CHAR * len(text or "") * RATE // 1000) if kind == "speak" else media_samples(host, spec)
    length = None if total is None else (-1 if total < 0 else total * 1000 // RATE)
    if length is None or total is None:
        host.heard(Heard(kind, text or spec, 0, None, "not_found"))
        return "not_found", 0, None
    if kind == "playback":
        ch.vars.set("playback_terminator_used", None)
    if events:
        ch.emit("PLAYBACK_START", [("Playback-File-Path", spec)])
    start = clock.now()
    deadline = math.inf if length < 0 else start + length / 1000.0
    stop, terminator = "done", None
    while True:
        woke = wait_sim(host, deadline, lambda: (listen and bool(ch.dtmf)) or _interrupt_reason(host) is not None)
        reason = _interrupt_reason(host)
        if reason is not None:
            stop = reason
            break
        if woke and listen and ch.dtmf:
            dtmf = ch.dtmf.popleft()
            if collect is not None:
                collect.append(dtmf)
                if dtmf.digit in terminators:
                    terminator = dtmf.digit
                stop = "digit"
                break
            if dtmf.digit in terminators:
                terminator = dtmf.digit
                ch.vars.set("playback_terminator_used", dtmf.digit)
                ch.dtmf_event(dtmf, defer=True)
                stop = "terminator"
                break
            ch.dtmf_event(dtmf)
            continue
        if not woke:
            break
    if stop == "done" and total >= 0:
        samples = total
    else:
        samples = round((clock.now() - start) * RATE)
        if total >= 0:
            samples = min(samples, total)
    played = samples * 1000 // RATE
    if kind == "playback":
        ch.vars.set("playback_last_offset_pos", str(samples))
        ch.vars.set("playback_seconds", str(played // 1000))
        ch.vars.set("playback_ms", str(played))
        ch.vars.set("playback_samples", str(samples))
    if stop == "break":
        ch.break_flag = False
    if events:
        ch.emit("PLAYBACK_STOP", [("Playback-File-Path", spec),
                                  ("Playback-Status", "done" if stop == "done" else "break")])
    host.heard(Heard(kind, text or spec, played, None if length < 0 else length,
                     "terminator" if stop == "digit" and terminator else stop))
    return stop, played, terminator


def playback(host: AppHost, arg: str) -> str:
    stop, _, _ = play(host, arg.strip(), terminators=terminators_of(host))
    if stop == "not_found":
        return "FILE NOT FOUND"
    if stop in ("hangup", "interrupted"):
        return "PLAYBACK ERROR"
    return "FILE PLAYED"


def speak(host: AppHost, arg: str) -> None:
    parts = arg.split("|", 2)
    if len(parts) == 3:
        engine, voice, text = parts
    else:
        engine = host.channel.vars.get("tts_engine") or ""
        voice = host.channel.vars.get("tts_voice") or ""
        text = arg
    play(host, f"{engine}|{voice}", terminators=terminators_of(host), events=False, kind="speak", text=text)
    return None


def sleep(host: AppHost, arg: str) -> None:
    """``sleep <ms>``: the channel idles; DTMF is dequeued (and reported) as it arrives."""
    ch, clock = host.channel, host.clock
    try:
        ms = int(arg.strip() or "0")
    except ValueError:
        ms = 0
    deadline = clock.now() + ms / 1000.0
    while wait_sim(host, deadline, lambda: bool(ch.dtmf) or not ch.media_ok):
        if not ch.media_ok:
            break
        ch.drain_dtmf()
    return None


def play_and_get_digits(host: AppHost, arg: str) -> None:
    ch = host.channel
    argv = arg.split(" ", 10)
    if len(argv) < 5:
        return None
    min_digits = _int(argv[0], 0)
    max_digits = max(1, _int(argv[1], 1))
    tries = max(1, _int(argv[2], 1))
    timeout_ms = _int(argv[3], 5000)
    terminators = "" if argv[4].lower() == "none" else argv[4]
    prompt = argv[5] if len(argv) > 5 else ""
    invalid_file = argv[6] if len(argv) > 6 else ""
    var = argv[7] if len(argv) > 7 and argv[7] else ""
    regex = argv[8] if len(argv) > 8 else ""
    digit_timeout_ms = _int(argv[9], timeout_ms) if len(argv) > 9 else timeout_ms
    transfer_on_failure = argv[10] if len(argv) > 10 else ""
    for _ in range(tries):
        if not ch.media_ok:
            return None
        ch.vars.set("read_result", None)
        if var:
            ch.vars.set(var, None)
        pressed: list[Dtmf] = []
        digits, terminator = _read(host, prompt, min_digits, max_digits, timeout_ms, digit_timeout_ms,
                                   terminators, pressed)
        ok = (bool(digits) and len(digits) >= min_digits) or (terminator is not None and min_digits == 0)
        if var and digits:
            ch.vars.set(var, digits)
        ch.vars.set("read_result", "success" if ok else "failure")
        if ok and (not regex or not digits or re.search(regex, digits)):
            if var and digits:
                ch.vars.set(var, digits)
            for dtmf in pressed:
                ch.dtmf_event(dtmf, defer=True)
            return None
        if ok:
            ch.vars.set("read_result", "failure")
            if var:
                ch.vars.set(var, None)
                ch.vars.set(f"{var}_invalid", digits)
        for dtmf in pressed:
            ch.dtmf_event(dtmf)
        if not ch.media_ok:
            return None
        if invalid_file:
            play(host, invalid_file, terminators="", events=False, listen=False)
    if transfer_on_failure and ch.media_ok:
        parts = transfer_on_failure.split()
        ch.request_transfer(parts[0], parts[1] if len(parts) > 1 else "XML",
                            parts[2] if len(parts) > 2 else "default", by=host.origin,
                            reason="play_and_get_digits failure")
    return None


def _read(host: AppHost, prompt: str, min_digits: int, max_digits: int, timeout_ms: int,
          digit_timeout_ms: int, terminators: str, pressed: list[Dtmf]) -> tuple[str, str | None]:
    """One try of ``switch_ivr_read``: returns the digits and the terminator used (if any)."""
    ch, clock = host.channel, host.clock
    digits = ""
    if prompt:
        stop, _, _ = play(host, prompt, terminators=terminators, collect=pressed, events=False)
        if stop == "digit":
            digit = pressed[-1].digit
            if digit in terminators:
                return digits, digit
            digits += digit
    while len(digits) < max_digits and ch.media_ok:
        wait = (digit_timeout_ms if digits else timeout_ms) / 1000.0
        deadline = clock.now() + wait
        if not wait_sim(host, deadline, lambda: bool(ch.dtmf) or not ch.media_ok):
            break
        if not ch.media_ok:
            break
        dtmf = ch.dtmf.popleft()
        pressed.append(dtmf)
        if dtmf.digit in terminators:
            return digits, dtmf.digit
        digits += dtmf.digit
    return digits, None


def _int(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default

"""Hostile bytes on the Event Socket: only the package's `ProtocolError` may come out of the parser,
and a connection that receives them closes cleanly (every waiter wakes, the call is not left deaf).

Finding: ``Content-Length: ²`` passed ``str.isdigit()`` and killed the reader with a ValueError
from ``int()``. The fuzzes feed random bytes, the real FreeSWITCH traces split at random offsets,
and mutated frames of those traces (bytes flipped, cut, lengths replaced by non-ASCII digits).
"""

from __future__ import annotations

import socket
from pathlib import Path

import gevent
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trace_files import messages

from esl_controller.connection import EslConnection
from esl_controller.errors import CallGone, ProtocolError
from esl_controller.protocol import EslParser, Event, ascii_length, encode_command

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "esl-traces"
TRACES = {p.stem: [data for d, data in messages(p) if d == "<<<"] for p in sorted(FIXTURES.glob("*.txt"))}
STREAMS = {name: b"".join(frames) for name, frames in TRACES.items()}
# Characters str.isdigit() accepts that int() refuses, and digits of other scripts int() accepts.
NON_ASCII_DIGITS = ["²", "³", "¹", "①", "٣", "৫", "๒", "１"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_kw: object) -> None:
        self.events.append(event)

    info = warning

    def exception(self, event: str, **_kw: object) -> None:
        self.events.append(event)


def _touch(frames: list) -> None:
    """Read everything a consumer may read of each frame (lazy event parse included)."""
    for frame in frames:
        _ = frame.content_type, frame.reply_text, frame.ok, frame.is_reply
        event = frame.event
        if event is not None:
            _ = event.name, event.get("Application"), event.peek("Unique-ID")
            _ = event.headers, event.payload


def _parse_only_protocol_errors(chunks: list[bytes]) -> None:
    parser = EslParser()
    try:
        for chunk in chunks:
            _touch(parser.feed(chunk))
    except ProtocolError:
        return


def test_traces_are_here() -> None:
    assert len(STREAMS) >= 4 and all(STREAMS.values())


@pytest.mark.parametrize("digit", NON_ASCII_DIGITS)
def test_non_ascii_digits_are_not_a_length(digit: str) -> None:
    assert ascii_length(digit) is None
    with pytest.raises(ProtocolError, match="Content-Length"):
        EslParser().feed(f"Content-Type: api/response\nContent-Length: {digit}\n\n".encode())
    with pytest.raises(ProtocolError, match="Content-Length"):
        _ = Event(f"Event-Name: BACKGROUND_JOB\nContent-Length: {digit}\n\nabc".encode()).headers


def test_ascii_lengths_still_parse() -> None:
    assert ascii_length("0") == 0 and ascii_length("123") == 123 and ascii_length(b"42") == 42
    assert ascii_length("") is None and ascii_length("-1") is None and ascii_length("9" * 40) is None
    frames = EslParser().feed(b"Content-Type: api/response\nContent-Length: 3\n\n+OK")
    assert frames[0].body == b"+OK"


def test_a_connection_fed_a_bad_length_closes_and_wakes_its_waiters() -> None:
    ours, theirs = socket.socketpair()
    closed: list[str] = []
    log = _Log()
    conn = EslConnection(ours, on_event=lambda _e: None, on_disconnect_notice=lambda _f: None,
                         on_close=closed.append, log=log)
    conn.start()
    slot = conn.send_nowait(encode_command("api status"))
    theirs.recv(1024)
    theirs.sendall("Content-Type: api/response\nContent-Length: ²\n\n".encode())
    with pytest.raises(CallGone):
        slot.get(timeout=5)
    assert closed and closed[0].startswith("protocol error"), closed
    assert conn.join(timeout=5)
    assert "esl.protocol_error" in log.events
    theirs.close()


def test_an_event_with_a_bad_inner_length_closes_the_connection_too() -> None:
    ours, theirs = socket.socketpair()
    closed: list[str] = []

    def on_event(event: Event) -> None:
        _ = event.headers                       # what the session does with every event

    conn = EslConnection(ours, on_event=on_event, on_disconnect_notice=lambda _f: None,
                         on_close=closed.append, log=_Log())
    conn.start()
    body = "Event-Name: BACKGROUND_JOB\nContent-Length: ³\n\nabc".encode()
    theirs.sendall(f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body)
    with gevent.Timeout(5):
        while not closed:
            gevent.sleep(0.01)
    assert closed[0].startswith("protocol error")
    theirs.close()


# ---------------------------------------------------------------------------- fuzz

@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_fuzz_random_bytes_raise_only_protocol_errors(chunks: list[bytes]) -> None:
    _parse_only_protocol_errors(chunks)


@FUZZ
@given(st.sampled_from(sorted(STREAMS)), st.lists(st.integers(min_value=0), min_size=1, max_size=12))
def test_fuzz_real_traces_split_anywhere_parse_the_same(name: str, cuts: list[int]) -> None:
    stream = STREAMS[name]
    whole = EslParser().feed(stream)
    offsets = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *offsets], [*offsets, len(stream)], strict=True)]
    parser = EslParser()
    split = [frame for piece in pieces for frame in parser.feed(piece)]
    assert [(f.headers, f.body) for f in split] == [(f.headers, f.body) for f in whole]
    _touch(split)


def _mutations() -> st.SearchStrategy[bytes]:
    frames = [frame for name in sorted(TRACES) for frame in TRACES[name]]

    def flip(frame: bytes, at: int, value: int) -> bytes:
        at %= max(1, len(frame))
        return frame[:at] + bytes([value]) + frame[at + 1:]

    def cut(frame: bytes, at: int) -> bytes:
        return frame[: at % (len(frame) + 1)]

    def bad_length(frame: bytes, digit: str) -> bytes:
        return frame.replace(b"Content-Length: ", f"Content-Length: {digit}".encode(), 1)

    def insert(frame: bytes, at: int, junk: bytes) -> bytes:
        at %= len(frame) + 1
        return frame[:at] + junk + frame[at:]

    frame = st.sampled_from(frames)
    return st.one_of(
        st.builds(flip, frame, st.integers(min_value=0), st.integers(0, 255)),
        st.builds(cut, frame, st.integers(min_value=0)),
        st.builds(bad_length, frame, st.sampled_from([*NON_ASCII_DIGITS, "-1", "1e3", " 7", "99999999999"])),
        st.builds(insert, frame, st.integers(min_value=0),
                  st.sampled_from([b"\n\n", b":", b"%", b"%zz", b"\xff\xfe", "²".encode(), b"\x00"])),
    )


@FUZZ
@given(st.lists(_mutations(), min_size=1, max_size=4), st.integers(min_value=1, max_value=64))
def test_fuzz_mutated_frames_raise_only_protocol_errors(frames: list[bytes], step: int) -> None:
    stream = b"".join(frames)
    _parse_only_protocol_errors([stream[i:i + step] for i in range(0, len(stream), step)])

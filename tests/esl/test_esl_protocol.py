"""The sans-IO parser against the real FreeSWITCH 1.10 traces, whole and split at every byte."""

from __future__ import annotations

import pytest
from trace_files import TRACES, received, trace_paths

from esl_controller.errors import ProtocolError
from esl_controller.protocol import (
    EslParser,
    encode_api_response,
    encode_channel_data_reply,
    encode_command,
    encode_disconnect_notice,
    encode_event,
    encode_execute,
    encode_reply,
    url_encode,
)

PATHS = trace_paths()


def _summary(frames):
    out = []
    for f in frames:
        ev = f.event
        out.append((f.content_type, f.reply_text if f.is_reply else "", ev.name if ev else "",
                    tuple(sorted(ev.headers.items())) if ev else tuple(sorted(f.headers.items())),
                    ev.payload if ev else f.body))
    return out


def test_traces_are_present():
    assert len(PATHS) >= 28, f"traces missing under {TRACES}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_trace_parses_whole_and_byte_by_byte_to_the_same_frames(path):
    messages = received(path)
    data = b"".join(messages)
    whole = EslParser().feed(data)
    assert len(whole) == len(messages)
    parser = EslParser()
    trickled = []
    for i in range(len(data)):
        trickled += parser.feed(data[i:i + 1])
    assert _summary(trickled) == _summary(whole)
    assert parser.pending == 0 and not parser.mid_frame


def _distinct_frame_kinds():
    kinds = {}
    for path in PATHS:
        for raw in received(path):
            f = EslParser().feed(raw)[0]
            ev = f.event
            key = (f.content_type, f.headers.get("Content-Disposition"), "Event-Name" in f.headers,
                   ev is not None and bool(ev.payload))
            kinds.setdefault(key, raw)
    return list(kinds.values())


@pytest.mark.parametrize("raw", _distinct_frame_kinds())
def test_each_kind_of_frame_split_in_two_at_every_offset(raw):
    expected = _summary(EslParser().feed(raw))
    for k in range(1, len(raw)):
        parser = EslParser()
        frames = parser.feed(raw[:k]) + parser.feed(raw[k:])
        assert _summary(frames) == expected, k


def test_connect_reply_values_are_decoded_and_event_values_decoded_after_splitting():
    a1 = received(TRACES / "a1_handshake_myevents.txt")
    connect = EslParser().feed(a1[0])[0]
    assert connect.content_type == "command/reply"
    assert connect.reply_text == "+OK"
    assert connect.headers["Socket-Mode"] == "async"
    assert connect.headers["variable_domain_name"] == "tenant-a.example"
    assert connect.headers["variable_current_application_data"] == "127.0.0.1:8084 async full"
    # A value holding an encoded newline stays one header (greenswitch decoded before splitting).
    body = b"Event-Name: CUSTOM\nX-Note: line1%0AInjected: yes\n\n"
    frame = EslParser().feed(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body)[0]
    assert frame.event.headers["X-Note"] == "line1\nInjected: yes"
    assert "Injected" not in frame.event.headers


def test_background_job_payload_and_dtmf_digit():
    k2 = received(TRACES / "k2_errors_api_and_malformed.txt")
    jobs = [f.event for f in EslParser().feed(b"".join(k2)) if f.event and f.event.name == "BACKGROUND_JOB"]
    assert jobs[0].payload == b"-ERR no_such_command Command not found!\n"
    assert jobs[1].payload == b"tenant-a.example"
    c2 = received(TRACES / "c2_playback_interrupted.txt")
    digits = [f.event["DTMF-Digit"] for f in EslParser().feed(b"".join(c2)) if f.event and f.event.name == "DTMF"]
    assert digits == ["#", "5"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_encoders_rebuild_every_freeswitch_frame_byte_for_byte(path):
    from urllib.parse import unquote
    for raw in received(path):
        f = EslParser().feed(raw)[0]
        if f.content_type == "text/event-plain":
            block = f.body.split(b"\n\n")[0].decode()
            pairs = [(k, unquote(v)) for k, _, v in (line.partition(": ") for line in block.split("\n"))
                     if k != "Content-Length"]
            assert encode_event(pairs, f.event.payload) == raw
        elif f.content_type == "text/disconnect-notice":
            linger = f.headers["Content-Disposition"] == "linger"
            assert encode_disconnect_notice(f.headers["Controlled-Session-UUID"], linger=linger,
                                            channel_name=f.headers.get("Channel-Name", ""),
                                            linger_time=int(f.headers.get("Linger-Time", "-1"))) == raw
        elif f.content_type == "api/response":
            assert encode_api_response(f.body.decode()) == raw
        elif "Event-Name" in f.headers:
            pairs = [(k, v) for k, v in f.headers.items()
                     if k not in ("Content-Type", "Reply-Text", "Socket-Mode", "Control")]
            assert encode_channel_data_reply(pairs, f.headers["Socket-Mode"]) == raw
        else:
            extra = [(k, v) for k, v in f.headers.items() if k not in ("Content-Type", "Reply-Text")]
            assert encode_reply(f.headers["Reply-Text"], extra) == raw


def test_commands_match_the_traces_bytes():
    assert encode_command("connect") == b"connect\n\n"
    assert encode_command("sendmsg", [("call-command", "hangup"), ("hangup-cause", "USER_BUSY")]) == (
        b"sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n")
    data = encode_execute("answer", None, event_uuid="aaaaaaaa-0000-4000-8000-000000000001", event_lock=False)
    assert data == (b"sendmsg\ncall-command: execute\nexecute-app-name: answer\n"
                    b"Event-UUID: aaaaaaaa-0000-4000-8000-000000000001\n\n")


def test_newlines_cannot_inject_commands_and_go_in_a_body():
    with pytest.raises(ValueError):
        encode_command("api status\n\nexit")
    with pytest.raises(ValueError):
        encode_command("sendmsg", [("execute-app-arg", "x\ncall-command: hangup")])
    data = encode_execute("speak", "flite|kal|two\nlines", event_uuid="u")
    head, _, body = data.partition(b"\n\n")
    assert b"content-type: text/plain" in head and b"Content-Length: 19" in head
    assert body == b"flite|kal|two\nlines"


@pytest.mark.parametrize("garbage", [
    b"this is not esl\n\n",
    b"Content-Length: banana\n\n",
    b"Content-Length: 99999999999\n\n",
    b"Content-Type: text/event-plain\nContent-Length 12\n\n",
    b"x" * 70000,
])
def test_malformed_input_raises_protocol_error(garbage):
    with pytest.raises(ProtocolError):
        EslParser().feed(garbage)


def test_url_encode_matches_freeswitch_unsafe_set():
    assert url_encode("127.0.0.1:8084 async full") == "127.0.0.1%3A8084%20async%20full"
    assert url_encode("playback_terminators=#*") == "playback_terminators%3D%23*"
    assert url_encode("/srv/peer/audio/prompt_long.wav") == "/srv/peer/audio/prompt_long.wav"


@pytest.mark.parametrize("path", PATHS[:8], ids=lambda p: p.stem)
def test_peek_agrees_with_the_full_parse(path):
    from esl_controller.protocol import Event
    for frame in EslParser().feed(b"".join(received(path))):
        if frame.event is None:
            continue
        full = dict(frame.event.headers)
        for key in ("Event-Name", "Unique-ID", "Application-UUID", "DTMF-Digit", "Hangup-Cause", "Nope"):
            assert Event(frame.body).peek(key) == full.get(key), key

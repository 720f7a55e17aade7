"""Each known greenswitch defect, shown absent from our layer (real TCP, real server)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import gevent
import pytest
from raw_peer import CALL_UUID, RawPeer
from trace_replay import split_commands

from esl_controller.errors import CallGone, CommandError, CommandTimeout
from esl_controller.protocol import encode_api_response, encode_event, encode_reply
from esl_controller.server import EslServer
from esl_controller.session import CallSession, SessionSettings


def complete(app: str, data: str, app_uuid: str, response: str = "FILE PLAYED") -> bytes:
    return encode_event([("Event-Name", "CHANNEL_EXECUTE_COMPLETE"), ("Unique-ID", CALL_UUID),
                         ("Application", app), ("Application-Data", data),
                         ("Application-Response", response), ("Application-UUID", app_uuid)])


def event_uuid(cmd: bytes) -> str:
    return re.search(rb"Event-UUID: (\S+)", cmd).group(1).decode()


def run_call(body: Callable[[CallSession], object], respond=None, settings: SessionSettings | None = None):
    box: dict[str, object] = {}

    def handler(sock, address):
        session = CallSession(sock, address, settings=settings or SessionSettings(command_timeout=1.0))
        box["session"] = session
        try:
            session.start()
            box["result"] = body(session)
        except BaseException as exc:
            box["error"] = exc
        finally:
            session.finish()

    server = EslServer("127.0.0.1", 0, handler, max_calls=2)
    server.start()
    peer = RawPeer(server.address, respond) if respond else RawPeer(server.address)
    g = gevent.spawn(peer.run)
    try:
        server.calls.join(timeout=15)
        g.join(timeout=5)
    finally:
        server.stop(deadline=1)
    return box, peer


def test_replies_are_awaited_with_a_timeout():
    def respond(peer, cmd):
        return None if cmd.startswith(b"api ") else encode_reply("+OK")

    started = time.monotonic()
    box, _ = run_call(lambda s: s.api("status"), respond, SessionSettings(command_timeout=0.3))
    assert isinstance(box["error"], CommandTimeout)
    assert time.monotonic() - started < 10


def test_application_completion_is_awaited_with_a_timeout():
    box, _ = run_call(lambda s: s.execute("playback", "/x.wav", timeout=0.3))
    assert isinstance(box["error"], CommandTimeout)


def test_err_replies_are_raised():
    def respond(peer, cmd):
        if b"execute-app-name: answer" in cmd:
            return encode_reply(f"-ERR invalid session id [{CALL_UUID}]")
        if cmd.startswith(b"api "):
            return encode_api_response("-ERR no_such_command Command not found!\n")
        return encode_reply("+OK")

    box, _ = run_call(lambda s: s.answer(), respond)
    assert isinstance(box["error"], CommandError) and "invalid session id" in box["error"].reply
    box, _ = run_call(lambda s: s.api("no_such_command"), respond)
    assert isinstance(box["error"], CommandError)


def test_two_playbacks_in_a_row_are_told_apart_by_application_uuid():
    """Without event-lock FreeSWITCH nests them and completes the second first (trace b2)."""
    pending: list[bytes] = []

    def respond(peer, cmd):
        if b"execute-app-name: playback" in cmd:
            pending.append(cmd)
            if len(pending) == 2:
                first, second = pending
                gevent.spawn_later(0.05, peer.send,
                                   complete("playback", "/second.wav", event_uuid(second))
                                   + complete("playback", "/first.wav", event_uuid(first)))
        return encode_reply("+OK")

    def body(s):
        a = gevent.spawn(s.execute, "playback", "/first.wav", timeout=5)
        gevent.sleep(0.01)
        b = gevent.spawn(s.execute, "playback", "/second.wav", timeout=5)
        gevent.joinall([a, b], timeout=5)
        return a.value["Application-Data"], b.value["Application-Data"]

    box, _ = run_call(body, respond)
    assert box["result"] == ("/first.wav", "/second.wav")


def test_a_user_execute_complete_handler_does_not_break_blocking_helpers():
    seen = []

    def respond(peer, cmd):
        if b"execute-app-name: playback" in cmd:
            gevent.spawn_later(0.02, peer.send, complete("playback", "/p.wav", event_uuid(cmd)))
        return encode_reply("+OK")

    def body(s):
        s.on("CHANNEL_EXECUTE_COMPLETE", lambda ev: seen.append(ev["Application-UUID"]))
        s.on("CHANNEL_EXECUTE_COMPLETE", lambda ev: 1 / 0)   # a broken handler is logged, not fatal
        return s.playback("/p.wav", timeout=5)

    box, _ = run_call(body, respond)
    assert "error" not in box, box.get("error")
    assert box["result"].stop.value == "completed"
    assert len(seen) == 1


def test_concurrent_sends_are_whole_and_paired_in_order():
    """50 greenlets send at once, one with a 1 MB body; every command arrives intact, every reply pairs."""
    def respond(peer, cmd):
        if cmd.startswith(b"api echo "):
            return encode_api_response(cmd.split(b"\n")[0][9:].decode())
        if b"execute-app-name: speak" in cmd:
            head, _, body = cmd.partition(b"\n\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            assert len(body) == length
            gevent.spawn_later(0.01, peer.send, complete("speak", "", event_uuid(cmd), "_none_"))
        return encode_reply("+OK")

    def body(s):
        big = gevent.spawn(s.execute, "speak", "flite|kal|" + ("x" * 1_000_000) + "\nend", timeout=10)
        workers = [gevent.spawn(s.api, f"echo {i}") for i in range(50)]
        gevent.joinall([*workers, big], timeout=10)
        return [w.value for w in workers], big.successful()

    box, peer = run_call(body, respond, SessionSettings(command_timeout=5))
    assert "error" not in box, box.get("error")
    values, big_ok = box["result"]
    assert values == [str(i) for i in range(50)]
    assert big_ok
    assert sum(1 for c in peer.received if c.startswith(b"api echo")) == 50


def test_reader_survives_an_unexpected_reply():
    def respond(peer, cmd):
        if cmd.startswith(b"api first"):
            return encode_api_response("+OK first") + encode_reply("+OK nobody asked")
        if cmd.startswith(b"api second"):
            return encode_api_response("+OK second")
        return encode_reply("+OK")

    box, _ = run_call(lambda s: (s.api("first"), s.api("second")), respond)
    assert box["result"] == ("+OK first", "+OK second")


def test_peer_closing_mid_body_wakes_waiters_and_the_reader_stops():
    def respond(peer, cmd):
        if b"execute-app-name: playback" in cmd:
            def drop():
                peer.send(b"Content-Length: 500\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_EXEC")
                peer.sock.shutdown(socket.SHUT_RDWR)
            gevent.spawn_later(0.05, drop)
        return encode_reply("+OK")

    def body(s):
        try:
            s.playback("/p.wav", timeout=5)
        except CallGone as exc:
            assert s._conn.join(timeout=2), "reader still running after the peer closed"
            return exc.reason, s._conn.close_reason
        return None

    box, _ = run_call(body, respond)
    assert box["result"] == ("disconnected", "peer closed mid-frame")


def test_values_are_url_decoded_after_splitting_lines():
    def respond(peer, cmd):
        if b"execute-app-name: playback" in cmd:
            ev = complete("playback", "/p.wav", event_uuid(cmd))
            ev = ev.replace(b"Application-Response: FILE%20PLAYED",
                            b"Application-Response: FILE%20PLAYED%0AApplication-UUID: forged")
            ev = b"Content-Length: %d" % (len(ev.split(b"\n\n", 1)[1])) + ev[ev.index(b"\n"):]
            gevent.spawn_later(0.01, peer.send, ev)
        return encode_reply("+OK")

    box, _ = run_call(lambda s: s.execute("playback", "/p.wav", timeout=2), respond)
    assert "error" not in box, box.get("error")
    assert box["result"]["Application-Response"] == "FILE PLAYED\nApplication-UUID: forged"


def test_play_and_get_digits_never_sends_none_as_transfer_target():
    captured = []

    def respond(peer, cmd):
        if b"play_and_get_digits" in cmd:
            captured.append(cmd)
            arg = re.search(rb"execute-app-arg: (.*)", cmd).group(1).decode()
            var = arg.split(" ")[7]
            gevent.spawn_later(0.01, peer.send, encode_event([
                ("Event-Name", "CHANNEL_EXECUTE_COMPLETE"), ("Unique-ID", CALL_UUID),
                ("Application", "play_and_get_digits"), ("Application-Data", arg),
                ("Application-Response", "_none_"), ("Application-UUID", event_uuid(cmd)),
                ("variable_read_result", "success"), (f"variable_{var}", "42")]))
        return encode_reply("+OK")

    def body(s):
        a = s.play_and_get_digits("/p.wav", max_digits=2, timeout=5)
        b = s.play_and_get_digits("/p.wav", max_digits=2, timeout=5, transfer_on_failure="operator XML default")
        return a, b

    box, _ = run_call(body, respond)
    assert box["result"][0].digits == "42"
    first = re.search(rb"execute-app-arg: (.*)", captured[0]).group(1).decode().split(" ")
    assert "None" not in first and len(first) == 10
    second = re.search(rb"execute-app-arg: (.*)", captured[1]).group(1).decode()
    assert second.endswith("operator XML default")


@pytest.mark.slow
def test_max_calls_is_exact_under_a_burst_of_simultaneous_connections():
    """200 simultaneous calls with a limit of 100: exactly 100 run, 100 are handed back."""
    release = gevent.event.Event()

    def handler(sock, address):
        release.wait(timeout=10)

    server = EslServer("127.0.0.1", 0, handler, max_calls=100)
    server.start()
    handed_back = []

    def dial():
        s = socket.create_connection(server.address, timeout=10)
        buf = bytearray()
        try:
            s.settimeout(3)
            while True:
                data = s.recv(4096)
                if not data:
                    break
                buf += data
                cmds = split_commands(bytearray(buf))
                if [c.split(b"\n")[0] for c in cmds] == [b"connect", b"resume", b"exit"]:
                    handed_back.append(True)
                    break
        except OSError:
            pass
        finally:
            s.close()

    dialers = [gevent.spawn(dial) for _ in range(200)]
    gevent.joinall(dialers, timeout=8)
    try:
        assert server.accepted == 100
        assert server.rejected == 100
        assert len(handed_back) == 100
    finally:
        release.set()
        server.stop(deadline=2)

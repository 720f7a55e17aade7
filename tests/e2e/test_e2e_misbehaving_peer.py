"""A misbehaving peer on the same server does not disturb the calls running beside it."""

from __future__ import annotations

import socket

import gevent
from e2e_controller import TENANT_NAME, TENANT_UUID

from esl_controller.simulator import CallerScript, Press, WaitForApp


def _garbage(address):
    with socket.create_connection(address) as s:
        s.recv(100)                                   # our "connect"
        s.sendall(b"\x00\xffthis is not ESL at all\n\n\x01\x02" * 50)
        gevent.sleep(0.2)


def _half_frame_then_close(address):
    with socket.create_connection(address) as s:
        s.recv(100)
        s.sendall(b"Content-Length: 4000\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_")


def _oversized_header(address):
    with socket.create_connection(address) as s:
        s.recv(100)
        s.sendall(b"X-Big: " + b"a" * 200_000)
        gevent.sleep(0.2)


def _silent(address):
    with socket.create_connection(address) as s:
        s.recv(100)
        gevent.sleep(1.0)                            # never answers connect


def _reset(address):
    s = socket.create_connection(address)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()                                        # RST at once


def test_bad_peers_do_not_disturb_good_calls(controller):
    address = controller.server.address
    good = [controller.sim.place_call(socket_data=controller.socket_data, domain_uuid=TENANT_UUID,
                                      domain_name=TENANT_NAME,
                                      caller=CallerScript([WaitForApp("play_and_get_digits"), Press("1")]))
            for _ in range(5)]
    bad = [gevent.spawn(f, address) for f in (_garbage, _half_frame_then_close, _oversized_header, _silent, _reset)
           for _ in range(2)]
    outcomes = [call.wait(timeout=30) for call in good]
    gevent.joinall(bad, timeout=10)
    assert all(call.state.transferred_to.startswith("1001") for call in good), outcomes
    assert controller.server.calls.join(timeout=15), "a bad peer's call greenlet never ended"
    transferred = [r for r in controller.records if r.outcome == "transferred"]
    assert len(transferred) == 5
    assert all(r.outcome in ("error", "caller_hangup", "transferred") for r in controller.records)

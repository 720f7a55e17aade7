"""A minimal scripted FreeSWITCH peer for protocol-level tests: the test decides every byte.

It dials into the server, answers ``connect`` with the real CHANNEL_DATA reply of trace
``a1``, and then hands each received command to ``respond(peer, command) -> bytes | None``
(``None`` = send nothing).  The default answers ``+OK`` to everything.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from trace_files import TRACES, received
from trace_replay import split_commands

from esl_controller.protocol import encode_reply

CONNECT_REPLY = received(TRACES / "a1_handshake_myevents.txt")[0]
CALL_UUID = "e098698b-232b-4952-8aba-dfd20811d899"


def default_respond(peer: RawPeer, command: bytes) -> bytes | None:
    return encode_reply("+OK")


class RawPeer:
    def __init__(self, address: tuple[str, int],
                 respond: Callable[[RawPeer, bytes], bytes | None] = default_respond) -> None:
        self.address = address
        self.respond = respond
        self.received: list[bytes] = []
        self.sock: socket.socket | None = None
        self.closed = False

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def run(self) -> None:
        sock = socket.create_connection(self.address, timeout=15)
        self.sock = sock
        buf = bytearray()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
                for cmd in split_commands(buf):
                    self.received.append(cmd)
                    if cmd == b"connect\n\n":
                        sock.sendall(CONNECT_REPLY)
                        continue
                    answer = self.respond(self, cmd)
                    if answer:
                        sock.sendall(answer)
                    if cmd == b"exit\n\n":
                        return
        except OSError:
            return
        finally:
            self.closed = True
            sock.close()

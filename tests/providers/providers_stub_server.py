"""A loopback HTTP stub for cloud vendor tests: scripted replies, recorded requests.

``StubServer`` listens on 127.0.0.1 on a free port (``ThreadingHTTPServer`` in a thread).
Tests script replies per (method, path) with ``Reply`` objects: JSON, raw bytes, SSE
events, AWS event-stream frames, a delay (to trip timeouts) or an error status. Requests
are recorded (path, query, headers, body) so tests can assert the vendor's request shape.
"""

from __future__ import annotations

import binascii
import json
import struct
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    sse: list[str] | None = None               # raw SSE events, each "event: x\ndata: {...}"
    eventstream: list[tuple[str, dict[str, Any]]] | None = None   # AWS (event type, payload)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def aws_event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message (prelude, headers, payload, CRCs)."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        n, v = name.encode(), value.encode()
        headers += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


class StubServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._scripts: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._defaults: dict[tuple[str, str], Reply] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urllib.parse.unquote(parsed.path)
                stub.requests.append(Recorded(self.command, path, urllib.parse.parse_qs(parsed.query),
                                              {k.lower(): v for k, v in self.headers.items()}, body))
                reply = stub._next(self.command, path)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    stub._write(self, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Replies for the next requests to (method, path), in order; the last one repeats."""
        queue = self._scripts[(method, path)]
        queue.extend(replies)
        self._defaults[(method, path)] = replies[-1]

    def _next(self, method: str, path: str) -> Reply:
        queue = self._scripts.get((method, path))
        if queue:
            return queue.popleft()
        return self._defaults.get((method, path)) or Reply(404, json={"error": {"message": f"no route {path}"}})

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.sse is not None or reply.eventstream is not None:
            handler.send_response(reply.status)
            if reply.sse is not None:
                handler.send_header("Content-Type", "text/event-stream")
                chunks = [(e.rstrip("\n") + "\n\n").encode() for e in reply.sse]
            else:
                handler.send_header("Content-Type", "application/vnd.amazon.eventstream")
                chunks = [aws_event(t, p) for t, p in reply.eventstream or []]
            handler.send_header("Transfer-Encoding", "chunked")
            for k, v in reply.headers.items():
                handler.send_header(k, v)
            handler.end_headers()
            for chunk in chunks:
                handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
            return
        if reply.json is not None:
            data = json.dumps(reply.json).encode()
            ctype = reply.content_type or "application/json"
        else:
            data = reply.body or b""
            ctype = reply.content_type or "application/octet-stream"
        handler.send_response(reply.status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(data)))
        for k, v in reply.headers.items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

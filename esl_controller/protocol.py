"""The Event Socket wire format, sans I/O: bytes in, frames out; commands and frames to bytes.

Why this is ours and not greenswitch's ``ESLProtocol``: greenswitch URL-decodes the whole
header block *before* splitting it into lines (so a value holding ``%0A`` becomes a new
header), reads with ``readline`` on a socket file (it cannot be fed recorded bytes, so it
cannot be tested split at every offset), raises ``KeyError`` on a frame without
``Content-Type`` and kills its reader, and spins when the peer closes mid-body.  None of that
can be fixed by overriding a method, so the parser lives here; greenswitch keeps its exception
hierarchy (see `errors`) and serves as the benchmark baseline.

Framing, as the traces in ``shared/fixtures/esl-traces`` show it:

* a frame is a header block ended by an empty line, then ``Content-Length`` bytes of body;
* ``command/reply`` has no body and carries its result in ``Reply-Text``; the ``connect``
  reply is a serialized CHANNEL_DATA event whose header values are URL-encoded;
* ``text/event-plain`` bodies are themselves a header block (URL-encoded values) and may
  carry their own ``Content-Length`` body (BACKGROUND_JOB);
* ``api/response`` and ``text/disconnect-notice`` bodies are plain text.

Header values are split into lines first and URL-decoded afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from esl_controller.errors import ProtocolError

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024

# FreeSWITCH's switch_url_encode() "urlunsafe" set, plus control characters.
_URL_UNSAFE = frozenset(b'\r\n "#%&+:;<=>?@[\\]^`{|}')
_ENCODE_TABLE = {b: f"%{b:02X}" for b in range(256) if b in _URL_UNSAFE or b < 32 or b == 127}


def url_encode(value: str) -> str:
    """Encode a header value the way FreeSWITCH does in plain events."""
    if not any(ord(c) in _ENCODE_TABLE for c in value):
        return value
    return "".join(_ENCODE_TABLE.get(ord(c), c) if ord(c) < 256 else c for c in value)


def _decode(value: str) -> str:
    return unquote(value) if "%" in value else value


def ascii_length(value: str | bytes) -> int | None:
    """A length header's value as an int when it is ASCII digits only, else None.

    ``str.isdigit()`` also accepts superscripts and other scripts' digits (``"²"``), which
    ``int()`` then refuses with a ValueError: only ``0``–``9`` are a length on the wire.
    """
    if not value or len(value) > 18 or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def parse_header_block(block: bytes, *, decode: bool) -> dict[str, str]:
    """Split a header block into a dict; values URL-decoded after the split when ``decode``."""
    headers: dict[str, str] = {}
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("utf-8", errors="replace")
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        if value.startswith(" "):
            value = value[1:]
        headers[key] = _decode(value) if decode else value
    return headers


class Event:
    """A FreeSWITCH event (``text/event-plain``), parsed lazily.

    Most events are only routed by a handful of headers; the full parse of ~120 headers
    happens once, on first access.
    """

    __slots__ = ("_body", "_end", "_headers", "_payload")

    def __init__(self, raw: bytes) -> None:
        self._body = raw
        self._end = -2                 # where the header block ends (-2: not searched yet)
        self._headers: dict[str, str] | None = None
        self._payload = b""

    def _parse(self) -> dict[str, str]:
        raw = self._body
        end = raw.find(b"\n\n")
        block, rest = (raw, b"") if end < 0 else (raw[:end], raw[end + 2:])
        headers = parse_header_block(block, decode=True)
        length = headers.get("Content-Length")
        if length is not None:
            size = ascii_length(length)
            if size is None or size > len(rest):
                raise ProtocolError(f"event body Content-Length {length[:20]!r} does not match")
            self._payload = rest[:size]
        self._headers = headers
        return headers

    @property
    def headers(self) -> dict[str, str]:
        return self._headers if self._headers is not None else self._parse()

    @property
    def payload(self) -> bytes:
        """The event's own body (e.g. a BACKGROUND_JOB result)."""
        if self._headers is None:
            self._parse()
        return self._payload

    def peek(self, key: str) -> str | None:
        """One header's value without parsing the whole event (most events are routed by two or
        three headers and never read again)."""
        if self._headers is not None:
            return self._headers.get(key)
        raw = self._body
        needle = key.encode() + b": "
        if raw.startswith(needle):
            start = len(needle)
        else:
            end = self._end
            if end == -2:
                end = self._end = raw.find(b"\n\n")
            pos = raw.find(b"\n" + needle, 0, end if end >= 0 else len(raw))
            if pos < 0:
                return None
            start = pos + 1 + len(needle)
        stop = raw.find(b"\n", start)
        value = raw[start: stop if stop >= 0 else len(raw)].decode("utf-8", errors="replace")
        return _decode(value)

    @property
    def name(self) -> str:
        return self.peek("Event-Name") or ""

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.peek(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> str:
        return self.headers[key]

    def __contains__(self, key: object) -> bool:
        return key in self.headers

    def __repr__(self) -> str:
        return f"Event({self.name!r}, app={self.get('Application')!r})"


class Frame:
    """One ESL frame: outer headers and body bytes."""

    __slots__ = ("_event", "body", "headers")

    def __init__(self, headers: dict[str, str], body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self._event: Event | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def is_reply(self) -> bool:
        return self.content_type in ("command/reply", "api/response")

    @property
    def reply_text(self) -> str:
        """The command result: ``Reply-Text`` or the api/response body, without trailing newline."""
        if self.content_type == "api/response":
            return self.body.decode("utf-8", errors="replace").rstrip("\n")
        return self.headers.get("Reply-Text", "").rstrip("\n")

    @property
    def ok(self) -> bool:
        return not self.reply_text.startswith("-ERR")

    @property
    def event(self) -> Event | None:
        if self.content_type != "text/event-plain":
            return None
        if self._event is None:
            self._event = Event(self.body)
        return self._event

    def __repr__(self) -> str:
        return f"Frame({self.content_type!r}, {len(self.body)} bytes)"


_EVENT_TAIL = b"\nContent-Type: text/event-plain"
_OK_REPLY = b"Content-Type: command/reply\nReply-Text: +OK"


def _common_outer_block(block: bytes) -> dict[str, str] | None:
    """The two outer blocks most frames have (an event's, a bare ``+OK``), without a general parse."""
    if block.startswith(b"Content-Length: ") and block.endswith(_EVENT_TAIL):
        length = block[16: len(block) - len(_EVENT_TAIL)]
        if length.isdigit():
            return {"Content-Length": length.decode(), "Content-Type": "text/event-plain"}
    elif block == _OK_REPLY:
        return {"Content-Type": "command/reply", "Reply-Text": "+OK"}
    return None


class EslParser:
    """Incremental ESL frame parser: ``feed(bytes) -> list[Frame]``.

    It keeps no reference to sockets; a frame split at any byte offset parses the same.
    Malformed input raises `ProtocolError` and the parser must not be used again.
    """

    __slots__ = ("_buf", "_headers", "_need", "_scanned", "max_body", "max_header")

    def __init__(self, *, max_header: int = MAX_HEADER_BYTES, max_body: int = MAX_BODY_BYTES) -> None:
        self._buf = bytearray()
        self._headers: dict[str, str] | None = None
        self._need = 0
        self._scanned = 0  # bytes of the current header block already searched for the blank line
        self.max_header = max_header
        self.max_body = max_body

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    @property
    def mid_frame(self) -> bool:
        """True when the bytes received so far end inside a frame."""
        return self._headers is not None or bool(self._buf.strip(b"\n"))

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        while True:
            if self._headers is None:
                # Tolerate stray newlines between frames.
                start = 0
                while start < len(buf) and buf[start] == 10:
                    start += 1
                if start:
                    del buf[:start]
                end = buf.find(b"\n\n", self._scanned)
                if end < 0:
                    if len(buf) > self.max_header:
                        raise ProtocolError(f"header block longer than {self.max_header} bytes")
                    self._scanned = max(0, len(buf) - 1)
                    return frames
                self._scanned = 0
                if end > self.max_header:
                    raise ProtocolError(f"header block longer than {self.max_header} bytes")
                block = bytes(buf[:end])
                del buf[: end + 2]
                headers = _common_outer_block(block)
                if headers is None:
                    decode_outer = b"\nEvent-Name: " in block or block.startswith(b"Event-Name: ")
                    headers = parse_header_block(block, decode=decode_outer)
                length = headers.get("Content-Length")
                if length is None:
                    frames.append(Frame(headers))
                    continue
                need = ascii_length(length)
                if need is None:
                    raise ProtocolError(f"bad Content-Length {length[:20]!r}")
                if need > self.max_body:
                    raise ProtocolError(f"body of {need} bytes exceeds {self.max_body}")
                self._headers, self._need = headers, need
            if len(buf) < self._need:
                return frames
            body = bytes(buf[: self._need])
            del buf[: self._need]
            frames.append(Frame(self._headers, body))
            self._headers, self._need = None, 0


# --------------------------------------------------------------------------- encoding

def _check_line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} may not contain a newline: {value[:60]!r}")
    return value


def encode_command(command: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                   body: str | None = None) -> bytes:
    """Bytes for a command sent to FreeSWITCH (``connect``, ``api …``, ``sendmsg`` + headers).

    Newlines in the command or a header value would inject extra headers or commands, so
    they are refused; multi-line arguments go in ``body``.
    """
    lines = [_check_line(command, "command")]
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        lines.append(f"{_check_line(key, 'header name')}: {_check_line(str(value), key)}")
    if body is not None:
        data = body.encode("utf-8")
        lines.append(f"Content-Length: {len(data)}")
        return ("\n".join(lines) + "\n\n").encode("utf-8") + data
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_execute(app: str, arg: str | None, *, event_uuid: str, event_lock: bool = True,
                   loops: int | None = None) -> bytes:
    """A ``sendmsg`` that executes one application, tagged with our ``Event-UUID``."""
    headers = [("call-command", "execute"), ("execute-app-name", app)]
    body = None
    if arg:
        if "\n" in arg:
            body = arg
            headers.append(("content-type", "text/plain"))
        else:
            headers.append(("execute-app-arg", arg))
    if loops is not None:
        headers.append(("loops", str(loops)))
    if event_lock:
        headers.append(("event-lock", "true"))
    headers.append(("Event-UUID", event_uuid))
    return encode_command("sendmsg", headers, body)


# FreeSWITCH-side frames (used by the simulator and by tests).

def encode_reply(text: str, extra: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = ["Content-Type: command/reply", f"Reply-Text: {text}"]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_api_response(text: str) -> bytes:
    data = text.encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def encode_event(headers: Iterable[tuple[str, str]], payload: bytes = b"") -> bytes:
    """A ``text/event-plain`` frame; header values URL-encoded the way FreeSWITCH does."""
    lines = [f"{k}: {url_encode(v)}" for k, v in headers]
    if payload:
        lines.append(f"Content-Length: {len(payload)}")
        body = ("\n".join(lines) + "\n\n").encode("utf-8") + payload
    else:
        body = ("\n".join(lines) + "\n\n").encode("utf-8")
    return f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body


def encode_channel_data_reply(headers: Iterable[tuple[str, str]], socket_mode: str = "async",
                              control: str = "full") -> bytes:
    """The ``connect`` reply: CHANNEL_DATA as URL-encoded outer headers, no body."""
    lines = [f"{k}: {url_encode(v)}" for k, v in headers]
    lines += ["Content-Type: command/reply", "Reply-Text: %2BOK%0A",
              f"Socket-Mode: {socket_mode}", f"Control: {control}"]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


DISCONNECT_BODY = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def encode_disconnect_notice(session_uuid: str, *, linger: bool, channel_name: str = "",
                             linger_time: int = -1) -> bytes:
    if linger:
        return (f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {session_uuid}\n"
                f"Content-Disposition: linger\nChannel-Name: {channel_name}\n"
                f"Linger-Time: {linger_time}\nContent-Length: 0\n\n").encode()
    return (f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {session_uuid}\n"
            f"Content-Disposition: disconnect\nContent-Length: {len(DISCONNECT_BODY)}\n\n").encode() \
        + DISCONNECT_BODY

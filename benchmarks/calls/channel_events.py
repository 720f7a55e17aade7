"""The FreeSWITCH frames the load generator sends, built from real traces and rendered per call fast.

Header sets come from the recorded FreeSWITCH 1.10 traces in ``tests/fixtures/esl-traces``
(``c1`` connect reply, answer and playback; ``d1`` play_and_get_digits; ``i1`` the caller
hangup sequence), so each event is the ~3 KB, ~100-header frame a controller really parses.
The per-call values (channel uuid, the ``Event-UUID`` echoed as ``Application-UUID``, the
application's name and data, the digits variable) become slots.

Every template is encoded once with the project's own encoders (`encode_event`,
`encode_channel_data_reply`), split at its slots, and rendered by joining byte chunks with the
URL-encoded values; ``check()`` proves a render equals the encoder's output byte for byte, so
the fast path cannot drift from the protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from esl_controller.protocol import (
    EslParser,
    Event,
    encode_channel_data_reply,
    encode_disconnect_notice,
    encode_event,
    url_encode,
)

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
TRACES = FIXTURES / "esl-traces"

# Slot tokens: letters only, so url_encode leaves them alone; they never occur in the traces.
CALL = "QXSLOTCALLQX"
APP_UUID = "QXSLOTAPPUUIDQX"
APP_NAME = "QXSLOTAPPNAMEQX"
APP_DATA = "QXSLOTAPPDATAQX"
DIGITS_VAR = "QXSLOTDIGITSVARQX"
SLOTS = (CALL, APP_UUID, APP_NAME, APP_DATA, DIGITS_VAR)

_APP_NAME_KEYS = ("Application", "variable_current_application")
_APP_DATA_KEYS = ("Application-Data", "variable_current_application_data")


def trace_messages(path: Path) -> list[tuple[str, bytes]]:
    """``(direction, bytes)`` per message of a trace, rebuilt as the traces' README describes."""
    out: list[tuple[str, bytes]] = []
    cur: tuple[str, int, list[str]] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#--- "):
            if cur is not None:
                out.append((cur[0], ("\n".join(cur[2]) + "\n").encode()[: cur[1]]))
            _, direction, size, *_ = line.split()
            cur = (direction, int(size), [])
        elif cur is not None and line[:4] in (">>> ", "<<< "):
            cur[2].append(line[4:])
        elif line.startswith("# "):
            if cur is not None:
                out.append((cur[0], ("\n".join(cur[2]) + "\n").encode()[: cur[1]]))
            cur = None
    if cur is not None:
        out.append((cur[0], ("\n".join(cur[2]) + "\n").encode()[: cur[1]]))
    return out


def _frames(name: str) -> list:
    path = TRACES / name
    if not path.is_file():
        raise FileNotFoundError(f"FreeSWITCH trace {path} not found (tests/fixtures/esl-traces)")
    parser = EslParser()
    frames = []
    for direction, data in trace_messages(path):
        if direction == "<<<":
            frames.extend(parser.feed(data))
    return frames


class Template:
    """One frame with slots: rendered by joining pre-encoded chunks with URL-encoded values."""

    __slots__ = ("_chunks", "_order", "headers", "kind")

    def __init__(self, headers: list[tuple[str, str]], kind: str = "event") -> None:
        self.headers = headers
        self.kind = kind
        sample = encode_event(headers) if kind == "event" else encode_channel_data_reply(headers)
        if kind == "event":
            sample = sample[sample.index(b"\n\n") + 2:]        # the body; the outer header is per render
        text = sample.decode("utf-8")
        chunks: list[bytes] = []
        order: list[int] = []
        pos = 0
        while True:
            best = None
            for index, token in enumerate(SLOTS):
                at = text.find(token, pos)
                if at >= 0 and (best is None or at < best[0]):
                    best = (at, index)
            if best is None:
                break
            chunks.append(text[pos:best[0]].encode())
            order.append(best[1])
            pos = best[0] + len(SLOTS[best[1]])
        chunks.append(text[pos:].encode())
        self._chunks = chunks
        self._order = order

    def render(self, values: tuple[bytes, ...]) -> bytes:
        """``values``: the slots' values in `SLOTS` order, already passed through `slot_values`."""
        chunks = self._chunks
        parts = [chunks[0]]
        for i, slot in enumerate(self._order):
            parts.append(values[slot])
            parts.append(chunks[i + 1])
        body = b"".join(parts)
        if self.kind != "event":
            return body
        return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body

    def check(self, values: tuple[str, ...]) -> None:
        """Assert the fast render equals the project encoder's output for these values."""
        filled = []
        for key, value in self.headers:
            for index, token in enumerate(SLOTS):
                key = key.replace(token, values[index])
                value = value.replace(token, values[index])
            filled.append((key, value))
        expected = encode_event(filled) if self.kind == "event" else encode_channel_data_reply(filled)
        got = self.render(slot_values(*values))
        if got != expected:
            raise AssertionError(f"template render differs from the encoder: {got[:120]!r} vs {expected[:120]!r}")


# Printable ASCII that url_encode leaves alone: such values skip the (slow) per-character scan.
_PLAIN = re.compile(r"[A-Za-z0-9!$'()*,\-./_~]*")


def encode_value(value: str) -> bytes:
    """`url_encode(value)` as bytes, fast for the common plain values (uuids, paths)."""
    if _PLAIN.fullmatch(value):
        return value.encode()
    return url_encode(value).encode()


def slot_values(call: str, app_uuid: str = "", app: str = "", data: str = "",
                digits_var: str = "") -> tuple[bytes, ...]:
    """Slot values for `Template.render`: header values URL-encoded as FreeSWITCH does, the
    digits variable (part of a header name) as is."""
    return (encode_value(call), encode_value(app_uuid), encode_value(app), encode_value(data), digits_var.encode())


def _slotted(event: Event, call_uuid: str, *, app_slots: bool) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in event.headers.items():
        if key == "Content-Length":
            continue
        if value == call_uuid:
            value = CALL
        elif app_slots and key in _APP_NAME_KEYS:
            value = APP_NAME
        elif app_slots and key in _APP_DATA_KEYS:
            value = APP_DATA
        elif app_slots and key == "Application-UUID":
            value = APP_UUID
        out.append((key, value))
    return out


def _pick(frames: list, name: str, app: str | None = None, nth: int = 0) -> Event:
    seen = 0
    for frame in frames:
        event = frame.event
        if event is None or event.name != name:
            continue
        if app is not None and event.get("Application") != app:
            continue
        if seen == nth:
            return event
        seen += 1
    raise LookupError(f"no {name} {app or ''} event #{nth} in the trace")


@dataclass(frozen=True, slots=True)
class SwitchFrames:
    """Every frame a simulated call sends, as templates."""

    connect_reply: Template
    execute: Template            # CHANNEL_EXECUTE of any application
    complete: Template           # CHANNEL_EXECUTE_COMPLETE of an application without a result
    answer: Template             # CHANNEL_ANSWER
    playback_done: Template      # playback COMPLETE, FILE PLAYED
    digits_done: Template        # play_and_get_digits COMPLETE with variable_<var>: 1, read_result success
    hangup_before: list[Template]    # CHANNEL_HANGUP
    running_app_broken: Template     # the running app's COMPLETE after hangup (PLAYBACK ERROR)
    hangup_after: list[Template]     # UNPARK, socket COMPLETE, STATE x2, HANGUP_COMPLETE
    channel_name: str

    def linger_notice(self, call_uuid: str, linger_time: int) -> bytes:
        return encode_disconnect_notice(call_uuid, linger=True, channel_name=self.channel_name,
                                        linger_time=linger_time)

    @staticmethod
    def disconnect_notice(call_uuid: str) -> bytes:
        return encode_disconnect_notice(call_uuid, linger=False)


def load_switch_frames() -> SwitchFrames:
    c1, d1, i1 = _frames("c1_playback_to_completion.txt"), _frames("d1_play_and_get_digits_collected.txt"), \
        _frames("i1_caller_hangup_mid_playback_linger.txt")

    connect = c1[0].headers
    c1_uuid = connect["Unique-ID"]
    data_headers = [(k, CALL if v == c1_uuid else v) for k, v in connect.items()
                    if k not in ("Content-Type", "Reply-Text", "Socket-Mode", "Control")]

    d1_uuid = d1[0].headers["Unique-ID"]
    digits_done = []
    for key, value in _slotted(_pick(d1, "CHANNEL_EXECUTE_COMPLETE", "play_and_get_digits"), d1_uuid,
                               app_slots=True):
        if key == "variable_acct_digits":
            key, value = f"variable_{DIGITS_VAR}", "1"
        digits_done.append((key, value))

    i1_uuid = i1[0].headers["Unique-ID"]
    after_hangup = False
    before: list[Template] = []
    after: list[Template] = []
    broken: Template | None = None
    for frame in i1:
        event = frame.event
        if event is None:
            continue
        if event.name == "CHANNEL_HANGUP":
            after_hangup = True
            before.append(Template(_slotted(event, i1_uuid, app_slots=False)))
        elif after_hangup and event.name == "CHANNEL_EXECUTE_COMPLETE" and event.get("Application") == "playback":
            broken = Template(_slotted(event, i1_uuid, app_slots=True))
        elif after_hangup:
            after.append(Template(_slotted(event, i1_uuid, app_slots=False)))
    if broken is None or not before or not after:
        raise LookupError("trace i1 does not hold the expected hangup sequence")

    frames = SwitchFrames(
        connect_reply=Template(data_headers, kind="connect"),
        execute=Template(_slotted(_pick(c1, "CHANNEL_EXECUTE", "answer"), c1_uuid, app_slots=True)),
        complete=Template(_slotted(_pick(c1, "CHANNEL_EXECUTE_COMPLETE", "answer"), c1_uuid, app_slots=True)),
        answer=Template(_slotted(_pick(c1, "CHANNEL_ANSWER"), c1_uuid, app_slots=False)),
        playback_done=Template(_slotted(_pick(c1, "CHANNEL_EXECUTE_COMPLETE", "playback"), c1_uuid,
                                        app_slots=True)),
        digits_done=Template(digits_done),
        hangup_before=before,
        running_app_broken=broken,
        hangup_after=after,
        channel_name=connect.get("Channel-Name", ""),
    )
    sample = ("8d0c4a52-3d1e-4f43-9a47-5b1d2a7c9e10", "0f5b1c5e-8f1e-4d1c-b5b4-1a2b3c4d5e6f", "play_and_get_digits",
              r"1 1 1 5000 # /p/menu.wav silence_stream://250 ivr_digits_7 \d+ 3000", "ivr_digits_7")
    for template in (frames.connect_reply, frames.execute, frames.complete, frames.answer, frames.playback_done,
                     frames.digits_done, frames.running_app_broken, *frames.hangup_before, *frames.hangup_after):
        template.check(sample)
    return frames

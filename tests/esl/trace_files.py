"""Reads the recorded FreeSWITCH 1.10 ESL traces of ``tests/fixtures/esl-traces``.

Each message is returned as ``(direction, bytes, note)`` where direction is ``">>>"`` for
what the controller sent and ``"<<<"`` for what FreeSWITCH sent, rebuilt byte for byte as
the traces' README describes.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRACES = FIXTURES / "esl-traces"
AUDIO = FIXTURES / "audio"


def trace_paths() -> list[Path]:
    return sorted(TRACES.glob("*.txt"))


def messages(path: Path) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    cur: list | None = None

    def flush() -> None:
        if cur is not None:
            data = ("\n".join(cur[2]) + "\n").encode()[: cur[1]]
            out.append((cur[0], data))

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#--- "):
            flush()
            _, direction, n, *_ = line.split()
            cur = [direction, int(n), []]
        elif cur is not None and line[:4] in (">>> ", "<<< "):
            cur[2].append(line[4:])
        elif line.startswith("# "):
            flush()
            cur = None
    flush()
    return out


def received(path: Path) -> list[bytes]:
    """What FreeSWITCH sent, message by message."""
    return [data for d, data in messages(path) if d == "<<<"]


def sent(path: Path) -> list[bytes]:
    """What the controller sent, message by message."""
    return [data for d, data in messages(path) if d == ">>>"]

"""Streamed text → whole sentences, so TTS can speak an AI answer sentence by sentence.

``sentences(deltas)`` takes text deltas (strings or ``LLMChunk``s, as ``LLMProvider.stream``
yields them) and yields each sentence as soon as it is complete, so the caller hears the
first sentence while the model is still writing the rest. A sentence ends at ``.``, ``!``,
``?`` followed by whitespace, right after ``。！？``, or at a newline; very short fragments ("Dr.",
"1.") are held back and joined to the next piece. Whatever remains is yielded at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
_MIN_CHARS = 12


def sentences(deltas: Iterable[Any], *, min_chars: int = _MIN_CHARS) -> Iterator[str]:
    buffer = ""
    for delta in deltas:
        buffer += delta if isinstance(delta, str) else (getattr(delta, "text", "") or "")
        start = 0
        for match in _END.finditer(buffer):
            piece = buffer[start:match.start()].strip()
            if len(piece) >= min_chars:
                yield piece
                start = match.end()
        buffer = buffer[start:]
    tail = buffer.strip()
    if tail:
        yield tail

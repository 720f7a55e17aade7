"""Streamed text → whole sentences, as soon as each is complete (`SentenceSplitter`).

The secretary's answers are handed out sentence by sentence: the telephone synthesizes and plays
the first one while the rest is written, a chat channel may send or buffer them. A short first
piece is kept with the next so speech gets natural units; a long first sentence is cut after its
first clause so the first audio is ready sooner.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")
_ABBREVIATIONS = ("dr.", "mr.", "mrs.", "ms.", "st.", "e.g.", "i.e.", "etc.", "a.m.", "p.m.", "no.", "vs.")
_CLAUSE = re.compile(r"(?<=[,;:])\s+")


class SentenceSplitter:
    """Feed streamed text; get back whole sentences as soon as they are complete.

    The first piece of an answer is what the caller waits for, and synthesis time grows with its
    length: a long first sentence (over `first_max` characters) is cut after its first clause
    (a comma, semicolon or colon past `min_chars`), so the first audio is ready sooner.
    """

    def __init__(self, min_chars: int = 12, first_max: int = 60) -> None:
        self.min_chars = min_chars
        self.first_max = first_max
        self._buffer = ""
        self._first = True

    def _split_first(self, sentences: list[str]) -> list[str]:
        if not self._first or not sentences:
            return sentences
        self._first = False
        head = sentences[0]
        if len(head) > self.first_max:
            for match in _CLAUSE.finditer(head):
                if self.min_chars * 2 <= match.start() and len(head) - match.end() >= self.min_chars:
                    return [head[:match.start()], head[match.end():], *sentences[1:]]
        return sentences

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        out: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            candidate = self._buffer[start:match.start()].strip()
            last = candidate.rsplit(" ", 1)[-1].lower() if candidate else ""
            if not candidate or last in _ABBREVIATIONS or len(candidate) < self.min_chars:
                continue
            out.append(candidate)
            start = match.end()
        self._buffer = self._buffer[start:]
        return self._split_first(out)

    def flush(self) -> list[str]:
        rest = " ".join(self._buffer.split())
        self._buffer = ""
        return self._split_first([rest] if rest else [])


def sentences_of(text: str) -> list[str]:
    """A whole text cut into its sentences (no first-clause cut, no minimum length)."""
    splitter = SentenceSplitter(min_chars=1, first_max=len(text) + 1)
    return [*splitter.feed(text), *splitter.flush()]

"""Cutting a long reply into WhatsApp messages of at most 1,600 characters, on sentence boundaries.

Sentences are packed greedily (`rag.secretary.sentences.sentences_of`); a single sentence longer
than the limit is cut at the last space before it (a word longer than the limit, at the limit).
"""

from __future__ import annotations

from rag.secretary.sentences import sentences_of

LIMIT = 1600


def _cut(sentence: str, limit: int) -> list[str]:
    out = []
    rest = sentence
    while len(rest) > limit:
        at = rest.rfind(" ", 0, limit + 1)
        at = at if at > 0 else limit
        out.append(rest[:at].rstrip())
        rest = rest[at:].lstrip()
    if rest:
        out.append(rest)
    return out


def split_message(text: str, limit: int = LIMIT) -> list[str]:
    """The parts of `text`, each at most `limit` characters, in order."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for sentence in sentences_of(text):
        for piece in _cut(sentence, limit):
            candidate = f"{current} {piece}" if current else piece
            if len(candidate) <= limit:
                current = candidate
            else:
                parts.append(current)
                current = piece
    if current:
        parts.append(current)
    return parts

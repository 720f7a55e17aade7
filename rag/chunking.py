"""Cutting sections into chunks: whole sentences, under a size, with overlap, headings kept.

`chunk_document(doc, settings)` returns `DocChunk`s in reading order. Rules:
- a chunk never crosses a section boundary (so it belongs to one heading path);
- a chunk holds whole sentences up to `max_chars`; a single sentence longer than that is cut at
  word boundaries (the only case where a sentence is split);
- consecutive chunks of a section overlap by their last `overlap_sentences` sentences (at most
  `overlap_chars` characters), so an answer that straddles a cut is still found whole;
- a short section stays a chunk of its own: its heading goes into what is embedded (below), so
  "Address" followed by one line is found by "where are you?".

`embedding_text(chunk)` is what gets embedded: the title and heading path, then the text, so a
question about "opening hours" finds the text under the heading "Opening hours" even when the
text never says it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.documents import ExtractedDocument, Section

# A sentence ends at . ! ? (optionally followed by quotes or a bracket) before whitespace and a
# capital, a digit or an opening quote; common abbreviations do not end sentences.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "st.", "ave.", "no.", "e.g.", "i.e.", "etc.", "vs.", "approx.",
                  "mon.", "tue.", "wed.", "thu.", "fri.", "sat.", "sun.", "jan.", "feb.", "mar.", "apr.",
                  "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.", "a.m.", "p.m.", "inc.",
                  "ltd.", "co.", "blvd.", "rd.", "ste.", "u.s.")


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    max_chars: int = 700
    overlap_sentences: int = 1
    overlap_chars: int = 200

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise ValueError("max_chars must be at least 100")
        if self.overlap_chars >= self.max_chars:
            raise ValueError("overlap_chars must be smaller than max_chars")


@dataclass(frozen=True, slots=True)
class DocChunk:
    ordinal: int
    text: str
    headings: tuple[str, ...]
    page: int | None
    title: str

    @property
    def heading(self) -> str:
        return " › ".join(self.headings)

    def meta(self) -> dict[str, object]:
        meta: dict[str, object] = {"heading": self.heading, "headings": list(self.headings)}
        if self.page is not None:
            meta["page"] = self.page
        return meta


def embedding_text(text: str, heading: str = "", title: str = "") -> str:
    """The text that is embedded for a chunk: title and headings give it its context."""
    parts = [title] if title else []
    if heading and not heading.startswith(title or "\0"):
        parts.append(heading)
    elif heading:
        parts = [heading]
    head = " › ".join(parts)
    return f"{head}\n{text}" if head else text


def split_sentences(text: str) -> list[str]:
    """Sentences of a text (paragraph breaks always end a sentence)."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(flat):
            candidate = flat[start:match.start()].strip()
            last_word = candidate.rsplit(" ", 1)[-1].lower()
            if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last_word):
                continue
            if candidate:
                sentences.append(candidate)
            start = match.end()
        tail = flat[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def _cut_long(sentence: str, limit: int) -> list[str]:
    """A sentence longer than `limit`, cut at word boundaries."""
    parts: list[str] = []
    current = ""
    for word in sentence.split(" "):
        while len(word) > limit:  # a "word" longer than a chunk (a URL, garbage): hard cut
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


def chunk_section(section: Section, settings: ChunkSettings) -> list[str]:
    """The chunk texts of one section."""
    sentences: list[str] = []
    for sentence in split_sentences(section.text):
        sentences += _cut_long(sentence, settings.max_chars) if len(sentence) > settings.max_chars else [sentence]
    chunks: list[str] = []
    current: list[str] = []
    fresh = 0  # sentences in `current` that are not overlap from the previous chunk
    for sentence in sentences:
        size = sum(len(s) + 1 for s in current) + len(sentence)
        if current and size > settings.max_chars and fresh:
            chunks.append(" ".join(current))
            overlap: list[str] = []
            for previous in reversed(current[-settings.overlap_sentences:] if settings.overlap_sentences else []):
                if sum(len(s) + 1 for s in overlap) + len(previous) > settings.overlap_chars:
                    break
                if sum(len(s) + 1 for s in overlap) + len(previous) + len(sentence) + 1 > settings.max_chars:
                    break
                overlap.insert(0, previous)
            current, fresh = overlap, 0
        current.append(sentence)
        fresh += 1
    if current and fresh:
        chunks.append(" ".join(current))
    return chunks


def chunk_document(doc: ExtractedDocument, settings: ChunkSettings | None = None) -> list[DocChunk]:
    """Every chunk of a document, numbered in reading order."""
    settings = settings or ChunkSettings()
    out: list[DocChunk] = []
    for section in doc.sections:
        for text in chunk_section(section, settings):
            out.append(DocChunk(len(out), text, section.headings, section.page, doc.title))
    return out

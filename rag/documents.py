"""Reading a tenant's documents: .txt, .md, .html and .pdf files → titled sections of plain text.

`read_document(path, limits)` returns an `ExtractedDocument`: a title and `Section`s (the heading
path above the text, the text, the PDF page). Headings are kept (markdown `#` lines, HTML
`<h1>`…`<h6>`, short title-like lines of a text file or PDF page) so chunks can say where they
come from.

Hostile input is refused with a precise `IngestError` before it can hurt:
- files larger than `max_file_bytes`, PDFs with more than `max_pages`, extracted text longer than
  `max_chars` (`DocumentTooLarge`); a PDF stream that inflates past pypdf's decompression limit
  (a zip bomb) is `DocumentTooLarge` too, and so is a whole PDF whose pages inflate past
  `max_pdf_total_bytes` together, or that takes longer than `max_pdf_seconds` to read (a
  many-page bomb: 200 pages of 15 MB streams took 234 s and ended in a MemoryError), or that runs
  out of memory;
- binary data posing as text: a NUL byte anywhere, or many control characters (`NotText`);
- bytes that are not UTF-8 (or UTF-16 with a BOM): `NotText` naming the offset of the first bad
  byte, unless an explicit `encoding` is given;
- corrupt or encrypted PDFs, unparsable files (`DocumentUnreadable`); nothing left (`EmptyDocument`).
"""

from __future__ import annotations

import codecs
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import DocumentTooLarge, DocumentUnreadable, EmptyDocument, NotText, UnsupportedDocument

SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
            ".html": "html", ".htm": "html", ".pdf": "pdf"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MD_SETEXT = re.compile(r"^(=+|-+)\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_MD_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_MD_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one document may weigh."""

    max_file_bytes: int = 20 * 1024 * 1024
    max_pages: int = 500
    max_chars: int = 2_000_000
    max_control_ratio: float = 0.01
    max_pdf_stream_bytes: int = 16 * 1024 * 1024   # one inflated PDF stream (zip bombs)
    max_pdf_total_bytes: int = 64 * 1024 * 1024    # every page's inflated content streams together
    max_pdf_seconds: float = 60.0                  # reading one whole PDF


@dataclass(frozen=True, slots=True)
class Section:
    """Text under a heading path (outermost first); `page` is 1-based for PDFs."""

    headings: tuple[str, ...]
    text: str
    page: int | None = None

    @property
    def heading(self) -> str:
        return " › ".join(self.headings)


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    path: Path
    kind: str
    title: str
    sha256: str
    sections: list[Section] = field(default_factory=list)

    @property
    def chars(self) -> int:
        return sum(len(s.text) for s in self.sections)


def document_kind(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UnsupportedDocument(f"unsupported file type {path.suffix or '(none)'!r}; "
                                  f"supported: {', '.join(sorted(SUFFIXES))}", path=str(path))
    return kind


def read_document(path: str | Path, limits: Limits | None = None, *, encoding: str | None = None) -> ExtractedDocument:
    """Extract a document; raise an `IngestError` subclass when it cannot or must not be read."""
    limits = limits or Limits()
    p = Path(path)
    kind = document_kind(p)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise DocumentUnreadable("not a regular file", path=str(p))
        if size > limits.max_file_bytes:
            raise DocumentTooLarge(f"file is {size} bytes, the limit is {limits.max_file_bytes}", path=str(p))
        data = p.read_bytes()
    except OSError as e:
        raise DocumentUnreadable(f"cannot read: {e.strerror or e}", path=str(p)) from e
    digest = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        title, sections = _pdf(data, p, limits)
    else:
        text = decode_text(data, p, limits, encoding)
        if kind == "html":
            title, sections = _html(text, p)
        elif kind == "markdown":
            title, sections = _markdown(text)
        else:
            title, sections = _plain(text)
    sections = [s for s in sections if s.text.strip()]
    total = sum(len(s.text) for s in sections)
    if total > limits.max_chars:
        raise DocumentTooLarge(f"{total} characters of text, the limit is {limits.max_chars}", path=str(p))
    if not sections:
        raise EmptyDocument("no text found", path=str(p))
    return ExtractedDocument(p, kind, title or p.stem.replace("_", " ").replace("-", " "), digest, sections)


def decode_text(data: bytes, path: Path, limits: Limits, encoding: str | None = None) -> str:
    """Bytes of a text file → str, refusing binary data and undecodable bytes."""
    if encoding is None:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            encoding = "utf-16"
        else:
            if b"\x00" in data:
                raise NotText(f"binary data (NUL bytes, the first at offset {data.index(0)}) in a text file",
                              path=str(path))
            encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except LookupError as e:
        raise NotText(f"unknown encoding {encoding!r}", path=str(path)) from e
    except UnicodeDecodeError as e:
        raise NotText(f"not valid {e.encoding} text (bad byte 0x{data[e.start]:02x} at offset {e.start}); "
                      "convert it to UTF-8 or give its encoding (ivr docs ingest --encoding latin-1)",
                      path=str(path)) from e
    if "\x00" in text:      # whatever the encoding: a NUL is never text
        raise NotText(f"binary data (NUL bytes, the first at character {text.index(chr(0))}) in a text file",
                      path=str(path))
    if text:
        controls = len(_CONTROL.findall(text[:200_000]))
        if controls / min(len(text), 200_000) > limits.max_control_ratio:
            raise NotText(f"looks like binary data ({controls} control characters)", path=str(path))
    if len(text) > limits.max_chars * 4:
        raise DocumentTooLarge(f"{len(text)} characters, the limit is {limits.max_chars}", path=str(path))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _looks_like_heading(line: str, next_blank: bool) -> bool:
    """A short line without closing punctuation, alone in its paragraph (or ending in ':')."""
    words = line.split()
    if not words or len(line) > 60 or len(words) > 8 or line.rstrip()[-1] in ".,;!?":
        return False
    if line.rstrip().endswith(":"):
        return True
    return next_blank and line[:1].isupper()


def _paragraph_sections(lines: list[str], headings: tuple[str, ...] = (), page: int | None = None,
                        detect_headings: bool = True) -> list[Section]:
    """Plain lines → sections; a short title-like line followed by a blank line starts a section."""
    sections: list[Section] = []
    body: list[str] = []
    current = headings

    def flush() -> None:
        text = _join_paragraphs(body)
        if text:
            sections.append(Section(current, text, page))
        body.clear()

    for i, raw in enumerate(lines):
        line = raw.strip()
        # A PDF page has no blank lines: its first line is the page's heading when it looks like one.
        next_blank = i + 1 >= len(lines) or not lines[i + 1].strip() or (page is not None and i == 0)
        prev_blank = i == 0 or not lines[i - 1].strip()
        if detect_headings and line and prev_blank and _looks_like_heading(line, next_blank):
            flush()
            current = (*headings, line.rstrip(":").strip())
            continue
        body.append(line)
    flush()
    return sections


def _join_paragraphs(lines: list[str]) -> str:
    """Lines → paragraphs separated by blank lines; wrapped lines joined with spaces."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(p for p in paragraphs if p.strip())


def _plain(text: str) -> tuple[str, list[Section]]:
    return "", _paragraph_sections(text.split("\n"))


def _md_inline(line: str) -> str:
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_EMPHASIS.sub(r"\2", line)
    if line.lstrip().startswith(">"):
        line = line.lstrip()[1:].strip()
    if "|" in line and line.strip().startswith("|"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        line = ", ".join(c for c in cells if c)
    return line


def _markdown(text: str) -> tuple[str, list[Section]]:
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    title = ""
    in_fence = False
    lines = text.split("\n")

    def headings() -> tuple[str, ...]:
        return tuple(h for _, h in stack)

    def flush() -> None:
        joined = _join_paragraphs(body)
        if joined:
            sections.append(Section(headings(), joined))
        body.clear()

    def push(level: int, heading: str) -> None:
        nonlocal title
        flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
        if level == 1 and not title:
            title = heading

    for i, raw in enumerate(lines):
        line = raw.rstrip()
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            body.append(line.strip())
            continue
        match = _MD_HEADING.match(line)
        if match:
            push(len(match.group(1)), _md_inline(match.group(2)).strip())
            continue
        if i + 1 < len(lines) and line.strip() and _MD_SETEXT.match(lines[i + 1].strip()) \
                and not _MD_LIST.match(line):
            push(1 if lines[i + 1].strip().startswith("=") else 2, _md_inline(line).strip())
            continue
        if _MD_SETEXT.match(line.strip()) and i > 0 and lines[i - 1].strip():
            continue
        if _MD_TABLE_RULE.match(line) and "-" in line:
            continue
        item = _MD_LIST.match(line)
        if item:
            # Each list item is its own line of text: end the previous one as a sentence.
            if body and body[-1]:
                body.append("")
            body.append(_md_inline(line[item.end():]).strip())
            body.append("")
            continue
        body.append(_md_inline(line).strip())
    flush()
    return title, sections


_HTML_BLOCKS = ("p", "li", "td", "th", "dd", "dt", "pre", "blockquote", "address", "figcaption", "caption")
_HTML_DROP = ("script", "style", "noscript", "template", "svg", "iframe", "object", "head", "nav", "form")


def _html(text: str, path: Path) -> tuple[str, list[Section]]:
    try:
        from bs4 import BeautifulSoup
    except ImportError as e:  # pragma: no cover - a declared dependency (extra "docs")
        raise DocumentUnreadable("beautifulsoup4 is not installed (pip install .[docs])", path=str(path)) from e
    soup = BeautifulSoup(text, "html.parser")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    for tag in soup.find_all(list(_HTML_DROP)):
        tag.decompose()
    root = soup.body or soup
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []

    def flush() -> None:
        joined = "\n\n".join(b for b in body if b)
        if joined:
            sections.append(Section(tuple(h for _, h in stack), joined))
        body.clear()

    wanted = [f"h{i}" for i in range(1, 7)] + list(_HTML_BLOCKS)
    for element in root.find_all(wanted):
        if element.find_parent(list(_HTML_BLOCKS)) is not None:
            continue  # its text is part of the enclosing block
        name = element.name or ""
        words = " ".join(element.get_text(" ", strip=True).split())
        if not words:
            continue
        if len(name) == 2 and name[0] == "h" and name[1].isdigit():
            flush()
            level = int(name[1])
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, words))
            if level == 1 and not title:
                title = words
        else:
            body.append(words)
    flush()
    if not sections:
        # No block elements: fall back to the page's visible text.
        return title, _paragraph_sections(root.get_text("\n").split("\n"), detect_headings=False)
    return title, sections


def _pdf(data: bytes, path: Path, limits: Limits) -> tuple[str, list[Section]]:
    import io

    try:
        from pypdf import PdfReader, apply_configuration
        from pypdf.errors import FileNotDecryptedError, LimitReachedError, PyPdfError
    except ImportError as e:  # pragma: no cover - a declared dependency (extra "docs")
        raise DocumentUnreadable("pypdf is not installed (pip install .[docs])", path=str(path)) from e
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise DocumentUnreadable("not a PDF file (no %PDF header)", path=str(path))
    try:
        with apply_configuration(zlib_maximum_output_length=limits.max_pdf_stream_bytes):
            return _pdf_pages(PdfReader(io.BytesIO(data)), path, limits)
    except LimitReachedError as e:
        raise DocumentTooLarge(f"a PDF stream inflates past the decompression limit (zip bomb?): {e}",
                               path=str(path)) from e
    except FileNotDecryptedError as e:
        raise DocumentUnreadable("the PDF is encrypted", path=str(path)) from e
    except MemoryError as e:
        raise DocumentTooLarge("the PDF needs more memory than this machine has to read", path=str(path)) from e
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as e:
        raise DocumentUnreadable(f"corrupt PDF: {type(e).__name__}: {e}", path=str(path)) from e


def _pdf_pages(reader: Any, path: Path, limits: Limits) -> tuple[str, list[Section]]:
    if reader.is_encrypted:
        raise DocumentUnreadable("the PDF is encrypted", path=str(path))
    pages = len(reader.pages)
    if pages > limits.max_pages:
        raise DocumentTooLarge(f"{pages} pages, the limit is {limits.max_pages}", path=str(path))
    meta = reader.metadata
    title = str(meta.title).strip() if meta is not None and meta.title else ""
    sections: list[Section] = []
    total = 0
    inflated = 0
    started = time.monotonic()
    for number, page in enumerate(reader.pages, 1):
        if time.monotonic() - started > limits.max_pdf_seconds:
            raise DocumentTooLarge(f"reading the PDF took longer than {limits.max_pdf_seconds:g} s "
                                   f"(stopped at page {number} of {pages})", path=str(path))
        contents = page.get_contents()
        if contents is not None:
            inflated += len(contents.get_data())   # inflate here: extract_text() hides pypdf's limit errors
            if inflated > limits.max_pdf_total_bytes:
                raise DocumentTooLarge(f"the PDF's pages inflate to more than {limits.max_pdf_total_bytes} bytes "
                                       f"(by page {number} of {pages}; a PDF bomb?)", path=str(path))
        text = page.extract_text() or ""
        total += len(text)
        if total > limits.max_chars:
            raise DocumentTooLarge(f"more than {limits.max_chars} characters of text", path=str(path))
        sections += _paragraph_sections(text.replace("\r", "\n").split("\n"), page=number)
    if not title:
        title = next((s.headings[0] for s in sections if s.headings), "")
    return title, sections

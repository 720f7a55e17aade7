"""Reading documents (txt, md, html, pdf), hostile files refused with a clear reason, and chunking."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import pytest
from rag_harness import KNOWLEDGE

from rag.chunking import ChunkSettings, chunk_document, embedding_text, split_sentences
from rag.documents import ExtractedDocument, Limits, Section, read_document
from rag.errors import DocumentTooLarge, DocumentUnreadable, EmptyDocument, NotText, UnsupportedDocument


def test_markdown_keeps_heading_paths() -> None:
    doc = read_document(KNOWLEDGE / "hours.md")
    assert doc.kind == "markdown" and doc.title == "Harbor Street Dental: opening hours"
    headings = [s.headings for s in doc.sections]
    assert ("Harbor Street Dental: opening hours", "Regular hours") in headings
    regular = next(s for s in doc.sections if s.headings[-1] == "Regular hours")
    assert "On Saturdays we are open from 9 am to 1 pm." in regular.text


def test_html_drops_scripts_and_navigation_and_keeps_headings() -> None:
    doc = read_document(KNOWLEDGE / "prices.html")
    text = " ".join(s.text for s in doc.sections)
    assert doc.title == "Prices and treatments"
    assert "not text" not in text and "Home" not in text
    crowns = next(s for s in doc.sections if s.headings[-1] == "Fillings and crowns")
    assert "A porcelain crown costs 950 dollars" in crowns.text


def test_text_file_title_like_lines_become_headings() -> None:
    doc = read_document(KNOWLEDGE / "location.txt")
    assert [s.headings for s in doc.sections] == [("Address",), ("Parking",), ("Public transport",),
                                                   ("Accessibility",)]


def test_pdf_pages_text_and_metadata_title() -> None:
    doc = read_document(KNOWLEDGE / "new-patients.pdf")
    assert doc.kind == "pdf" and doc.title == "New patients"
    assert [(s.headings, s.page) for s in doc.sections] == [(("New patients",), 1), (("Our dentists",), 2)]
    assert "Dr. James Chen treats children" in doc.sections[1].text


def test_the_committed_pdf_is_what_the_script_makes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_pdf", KNOWLEDGE / "make_pdf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build_pdf() == (KNOWLEDGE / "new-patients.pdf").read_bytes()


@pytest.mark.parametrize(("name", "data", "error", "words"), [
    ("binary.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50, NotText, "NUL bytes"),
    ("latin.txt", "Caf\xe9 opening hours".encode("latin-1"), NotText, "bad byte 0xe9 at offset 3"),
    ("controls.md", bytes(range(1, 9)) * 40 + b"hello", NotText, "control characters"),
    ("empty.md", b"   \n\n  ", EmptyDocument, "no text"),
    ("data.csv", b"a,b\n1,2\n", UnsupportedDocument, "unsupported file type '.csv'"),
    ("fake.pdf", b"this is not a pdf at all", DocumentUnreadable, "no %PDF header"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", DocumentUnreadable, "corrupt PDF"),
])
def test_hostile_files_are_refused_clearly(tmp_path: Path, name: str, data: bytes, error: type[Exception],
                                           words: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(error, match=words.replace("(", r"\(").replace(".", r"\.")) as caught:
        read_document(path)
    assert str(path) in str(caught.value)


def test_explicit_encoding_reads_legacy_text(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Caf\xe9 opens at noon.".encode("latin-1"))
    from rag.documents import decode_text

    assert decode_text(path.read_bytes(), path, Limits(), "latin-1") == "Café opens at noon."


def test_utf16_with_bom_is_text(tmp_path: Path) -> None:
    path = tmp_path / "u16.txt"
    path.write_bytes("\ufeffWe open at nine on Mondays.".encode("utf-16-le"))
    assert "We open at nine" in read_document(path).sections[0].text


def test_size_limits(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * 3000)
    with pytest.raises(DocumentTooLarge, match="limit is 1000"):
        read_document(big, Limits(max_file_bytes=1000))
    with pytest.raises(DocumentTooLarge, match="characters"):
        read_document(big, Limits(max_chars=500))
    with pytest.raises(DocumentTooLarge, match="2 pages, the limit is 1"):
        read_document(KNOWLEDGE / "new-patients.pdf", Limits(max_pages=1))


def _pdf_with_stream(stream: bytes) -> bytes:
    """A one-page PDF whose content stream is `stream`, Flate-compressed."""
    packed = zlib.compress(stream, 9)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def test_pdf_zip_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(_pdf_with_stream(b" " * 90_000_000))      # ~90 MB inflated from ~90 kB
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(DocumentTooLarge, match="zip bomb"):
        read_document(bomb)


def test_sentences_split_without_breaking_abbreviations() -> None:
    assert split_sentences("Dr. Lopez works Mon. to Fri. She does crowns. Call 555 0199! Thanks") == [
        "Dr. Lopez works Mon. to Fri. She does crowns.", "Call 555 0199!", "Thanks"]


def test_chunks_keep_whole_sentences_with_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i} in some detail." for i in range(30)]
    doc = ExtractedDocument(Path("x.md"), "markdown", "X", "0", [Section(("Topics",), " ".join(sentences))])
    settings = ChunkSettings(max_chars=200, overlap_sentences=1, overlap_chars=100)
    chunks = chunk_document(doc, settings)
    assert len(chunks) > 5 and all(len(c.text) <= 200 for c in chunks)
    for chunk in chunks:
        assert chunk.headings == ("Topics",)
        for piece in split_sentences(chunk.text):
            assert piece in sentences               # no sentence is ever cut
    for before, after in itertools.pairwise(chunks):
        assert split_sentences(before.text)[-1] == split_sentences(after.text)[0]   # one sentence of overlap
    covered = {s for c in chunks for s in split_sentences(c.text)}
    assert covered == set(sentences)


def test_a_sentence_longer_than_a_chunk_is_cut_at_words() -> None:
    long = "word " * 100
    doc = ExtractedDocument(Path("x.txt"), "text", "X", "0", [Section((), long)])
    chunks = chunk_document(doc, ChunkSettings(max_chars=120, overlap_chars=40))
    assert all(len(c.text) <= 120 for c in chunks) and all(not c.text.startswith(" ") for c in chunks)
    assert " ".join(c.text for c in chunks).split() == long.split()


def test_embedding_text_carries_the_headings() -> None:
    assert embedding_text("We open at nine.", "Hours › Saturday", "Clinic") == \
        "Clinic › Hours › Saturday\nWe open at nine."
    assert embedding_text("We open at nine.", "Clinic › Saturday", "Clinic") == "Clinic › Saturday\nWe open at nine."
    assert embedding_text("We open at nine.") == "We open at nine."

"""Document ingestion is confined to what was asked and bounded for whole documents.

Findings: a folder holding ``shadow.txt -> /etc/shadow`` and ``passwd.md -> /etc/passwd`` got both
files' text stored as a tenant's chunks (a symlink given as an argument too); a 3.1 MB PDF of 200
pages of 15 MB inflated streams ran 234 s and ended in a MemoryError (the limit was per stream);
NUL bytes after the first 64 KB of a text file were stored; the encoding refusal suggested
``--encoding latin-1``, an option ``ivr docs ingest`` did not have.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rag_fakes import HashEmbeddings
from rag_harness import make_database

from rag.documents import Limits, read_document
from rag.errors import DocumentTooLarge, NotText
from rag.faiss_index import FaissIndex
from rag.ingest import Ingester
from scripts.docs_commands import docs


@pytest.fixture
def store(tmp_path: Path) -> Any:
    engine, stores = make_database(tmp_path, "dental.example")
    stores["dental.example"].engine_url = str(engine.url)
    return stores["dental.example"]


def _ingester(tmp_path: Path, store: Any, **kw: Any) -> Ingester:
    return Ingester(store, FaissIndex(tmp_path / "rag", store.tenant_id), HashEmbeddings({}), **kw)


def test_links_out_of_the_folder_and_links_as_arguments_are_refused(tmp_path: Path, store: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The root password is hunter2.\n")
    kb = tmp_path / "kb"
    (kb / "sub").mkdir(parents=True)
    (kb / "hours.md").write_text("# Hours\n\nWe open at nine on weekdays.\n")
    (kb / "shadow.txt").symlink_to("/etc/shadow")
    (kb / "passwd.md").symlink_to("/etc/passwd")
    (kb / "secret.txt").symlink_to(outside / "secret.txt")
    (kb / "escape").symlink_to(outside, target_is_directory=True)
    (kb / "sub" / "alias.md").symlink_to(kb / "hours.md")          # stays inside: read
    (tmp_path / "link.txt").symlink_to(outside / "secret.txt")
    reports: dict[str, Any] = {}
    for r in _ingester(tmp_path, store).ingest([kb, tmp_path / "link.txt"]):
        reports.setdefault(Path(r.path).name, r)       # sub/alias.md is stored as the hours.md it names
    for name in ("shadow.txt", "passwd.md", "secret.txt"):
        assert reports[name].status == "failed" and "leaves" in reports[name].error, reports[name]
    assert reports["link.txt"].status == "failed" and "symbolic link" in reports["link.txt"].error
    assert reports["hours.md"].status == "added" and "alias.md" not in reports
    assert "escape" not in reports
    stored = " ".join(c.text for c in store.chunks())
    assert "hunter2" not in stored and "root:" not in stored
    assert "nine on weekdays" in stored


def _pdf(pages: int, inflated_bytes: int) -> bytes:
    """A PDF of `pages` pages, each with its own content stream inflating to `inflated_bytes`."""
    stream = zlib.compress(b"0 0 m\n" * (inflated_bytes // 6), 9)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + b" ".join(f"{3 + 2 * i} 0 R".encode() for i in range(pages))
               + f"] /Count {pages} >>".encode()]
    for i in range(pages):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R >>".encode())
        objects.append(f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream
                       + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_a_many_page_pdf_bomb_is_bounded_as_a_whole(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pdf"
    path.write_bytes(_pdf(pages=40, inflated_bytes=4 * 1024 * 1024))      # each stream is under the limit
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(DocumentTooLarge, match="inflate to more than 20971520 bytes") as caught:
        read_document(path, Limits(max_pdf_total_bytes=20 * 1024 * 1024))
    assert "by page 6 of 40" in str(caught.value)


def test_a_pdf_that_takes_too_long_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "slow.pdf"
    path.write_bytes(_pdf(pages=3, inflated_bytes=1000))
    with pytest.raises(DocumentTooLarge, match="took longer than"):
        read_document(path, Limits(max_pdf_seconds=1e-9))


def test_nul_bytes_anywhere_are_refused(tmp_path: Path) -> None:
    late = tmp_path / "late.txt"
    late.write_bytes(b"Opening hours are nine to five.\n" * 3000 + b"\x00tail")
    assert late.stat().st_size > 65536
    with pytest.raises(NotText, match="NUL bytes, the first at offset 96000"):
        read_document(late)
    wide = tmp_path / "wide.txt"
    wide.write_bytes("hello\x00world".encode("utf-16"))
    with pytest.raises(NotText, match="NUL bytes"):
        read_document(wide)
    with pytest.raises(NotText, match="NUL bytes"):
        read_document(late, encoding="latin-1")


def test_the_encoding_hint_is_an_option_that_exists(tmp_path: Path, store: Any) -> None:
    store.set_provider("embeddings", "rag_fakes:HashEmbeddings", settings={"model": "hash-v1"})
    notes = tmp_path / "notes.txt"
    notes.write_bytes("Le caf\xe9 ouvre \xe0 neuf heures.\n".encode("latin-1"))
    base = ["--url", store.engine_url, "--index-dir", str(tmp_path / "rag")]
    runner = CliRunner()
    refused = runner.invoke(docs, ["ingest", "dental.example", str(notes), *base])
    assert refused.exit_code == 1 and "ivr docs ingest --encoding latin-1" in refused.stderr
    added = runner.invoke(docs, ["ingest", "dental.example", str(notes), "--encoding", "latin-1", *base])
    assert added.exit_code == 0, added.output
    assert "added" in added.stdout
    assert "café ouvre à neuf heures" in " ".join(c.text for c in store.chunks())

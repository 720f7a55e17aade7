"""Writes `new-patients.pdf`, the example knowledge base's PDF, with no PDF library.

Run: ``python examples/knowledge/make_pdf.py`` (the output is committed; tests read it). The file
is a minimal PDF 1.4: one page per section, Helvetica text lines, an uncompressed content stream
and a correct cross-reference table, so any reader (pypdf included) extracts its text.
"""

from __future__ import annotations

from pathlib import Path

TITLE = "New patients"
PAGES = [
    ("New patients",
     ["Welcome to Harbor Street Dental. New patients are always welcome.",
      "Your first visit takes about one hour and includes a full check-up and X-rays.",
      "Please arrive 15 minutes early to fill in the health questionnaire.",
      "Bring a photo ID, your insurance card and a list of your medicines."]),
    ("Our dentists",
     ["Dr. Maria Lopez is our senior dentist and specialises in crowns and implants.",
      "Dr. James Chen treats children and anxious patients.",
      "Our hygienist, Sarah Kim, does cleanings and gum care."]),
]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(heading: str, lines: list[str]) -> bytes:
    ops = ["BT", "/F1 18 Tf", "72 740 Td", f"({_escape(heading)}) Tj", "/F1 11 Tf", "0 -30 Td"]
    for line in lines:
        ops += [f"({_escape(line)}) Tj", "0 -18 Td"]
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def build_pdf() -> bytes:
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(PAGES))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(PAGES)} >>".encode())
    font_id = 3 + 2 * len(PAGES)
    info_id = font_id + 1
    for i, (heading, lines) in enumerate(PAGES):
        content_id = page_ids[i] + 1
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode())
        stream = _content(heading, lines)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    objects.append(f"<< /Title ({_escape(TITLE)}) /Producer (make_pdf.py) >>".encode())
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {info_id} 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def main() -> None:
    target = Path(__file__).with_name("new-patients.pdf")
    target.write_bytes(build_pdf())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes welcome.pdf: one US Letter page of plain text in PDF's standard fonts,
the document the README's quick start reads. Its text is welcome.txt.

    python3 examples/make_welcome.py
"""
from pathlib import Path

HERE = Path(__file__).resolve().parent
TITLE = "Welcome to pagefleet"
BODY = """pagefleet turns PDFs and images into text. Documents are rasterized
page by page, every page is read by a fleet of OCR workers running
PP-OCR models on ONNX Runtime, and the results are assembled per job
with the text, the boxes of every line and their confidence.

Each page image is scaled to fit a pixel budget before anything else
is allocated for it, so a poster or an image bomb cannot exhaust the
memory of a worker. Pages that cannot be read fail on their own, with
a clear message, and the rest of the document carries on.

Workers acknowledge a page only after its result is safely published.
A worker that dies loses nothing: the queue delivers the page again.
Version 0.1, page 1 of 1.""".splitlines()


def esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def main() -> None:
    ops = ["BT", "/F2 22 Tf", "72 700 Td", f"({esc(TITLE)}) Tj", "/F1 11 Tf", "14 TL", "0 -34 Td"]
    for line in BODY:
        ops.append(f"({esc(line)}) Tj T*" if line else "T*")
    ops.append("ET")
    content = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    (HERE / "welcome.pdf").write_bytes(bytes(out))
    (HERE / "welcome.txt").write_text(TITLE + "\n" + "\n".join(l for l in BODY if l) + "\n")


if __name__ == "__main__":
    main()

"""Reading PDFs back in tests with real tools: pdftotext, pdffonts, pdftoppm (poppler) and pypdf.

Every PDF a test checks can be saved with `save_artifact`: the PDF and a PNG of its first page go
to test-artifacts/pdf/ (git-ignored) so anyone can look at what was printed.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import tempfile
from io import BytesIO
from pathlib import Path

from pypdf import PdfReader

# The PostgreSQL run keeps its own copies: both runs may go at once (scripts/run-tests.sh).
ARTIFACTS = (Path(__file__).resolve().parent.parent / "test-artifacts"
             / ("postgresql" if os.environ.get("TEST_DATABASE_URL") else "") / "pdf")


def pdf_text(pdf: bytes, page: int | None = None) -> str:
    args = ["pdftotext", "-enc", "UTF-8"]  # reading order: a table cell's lines stay together
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run([*args, "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode("utf-8")


def pdf_words(pdf: bytes, page: int = 1) -> list[tuple[str, float, float, float]]:
    """(word, left x, top y, right x) in points of every word pdftotext finds on a page."""
    out = subprocess.run(["pdftotext", "-bbox", "-f", str(page), "-l", str(page), "-", "-"], input=pdf,
                         capture_output=True, check=True).stdout.decode("utf-8")
    pattern = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)"[^>]*>([^<]*)</word>'
    return [(html.unescape(word), float(x), float(y), float(right)) for x, y, right, word in re.findall(pattern, out)]


def flat(text: str) -> str:
    """Text without spaces and line breaks (table cells and wrapped lines split words)."""
    return re.sub(r"\s+", "", text)


def pdf_fonts(pdf: bytes) -> str:
    return subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


def page_count(pdf: bytes) -> int:
    return len(PdfReader(BytesIO(pdf)).pages)


def save_artifact(pdf: bytes, name: str, *, dpi: int = 60) -> Path:
    """Write <name>.pdf and <name>-1.png (first page); return the PNG path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                    str(ARTIFACTS / f"{name}.pdf"), str(ARTIFACTS / f"{name}-1")], check=True)
    return ARTIFACTS / f"{name}-1.png"


def decode_qr_codes(pdf: bytes, page: int = 1, dpi: int = 200) -> list[str]:
    """Render a page and read every QR code on it with zbar."""
    from PIL import Image
    from pyzbar.pyzbar import ZBarSymbol, decode

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile",
                        "-", f"{tmp}/page"], input=pdf, capture_output=True, check=True)
        image = Image.open(f"{tmp}/page.png")
        image.load()
    return [s.data.decode() for s in decode(image, symbols=[ZBarSymbol.QRCODE])]

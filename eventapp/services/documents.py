"""Printable documents (PDF) rendered from Jinja templates by WeasyPrint.

Programme (しおり), rosters (名簿), tickets (受付票) and name badges (名札). Templates live in
templates/pdf/ and share templates/pdf/print.css. Everything is drawn with IPAex Gothic (a single
4 MB TTF: subsetting it per document is ~10× cheaper than a Noto CJK collection).

WeasyPrint only ever sees a `RestrictedFetcher`: data: images (the QR codes we generate), the app's
own static files and the print stylesheet. Anything else (file:// elsewhere, http(s) to other hosts)
is refused and the render carries on without it.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..formatting import format_datetime, kana_sort_key, to_jst
from ..models import Answer, Event, Registration
from ..models.base import utcnow
from ..urls import external_url
from . import exports
from .errors import ValidationFailed
from .tickets import qr_svg

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PDF_TEMPLATE_DIR = PROJECT_ROOT / "templates" / "pdf"
FONT_FILE = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")
# Above this many pages a roster is rendered in chunks on worker processes and joined (see roster_pdf).
PARALLEL_PAGES = 12
CHUNK_PAGES = 3

_render_lock = threading.Lock()  # Pango/fontconfig objects are shared between renders


# --------------------------------------------------------------------------- URL fetcher


class RestrictedFetcher:
    """A WeasyPrint URL fetcher that serves only data: images and files under `roots`.

    `public_static` maps `<PUBLIC_BASE_URL>/static/…` onto the static folder without any network
    access. Refused URLs are remembered in `refused` (tests and logs read it).
    """

    IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml)[;,]", re.I)

    def __init__(self, roots: Iterable[Path], public_static: tuple[str, Path] | None = None) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self.public_static = public_static
        self.refused: list[str] = []
        self.fetched: list[str] = []

    def _refuse(self, url: str, why: str):
        from weasyprint.urls import URLFetchingError

        self.refused.append(url)
        log.info("PDF render: refused to fetch %s (%s)", url[:200], why)
        raise URLFetchingError(f"refused: {why}")

    def _file(self, url: str, path: Path):
        from weasyprint.urls import URLFetcherResponse

        try:
            resolved = path.resolve()
        except OSError:
            return self._refuse(url, "bad path")
        if not any(resolved.is_relative_to(root) for root in self.roots) or not resolved.is_file():
            return self._refuse(url, "outside the allowed folders")
        self.fetched.append(url)
        mime = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=resolved.read_bytes(), headers={"Content-Type": mime})

    def fetch(self, url: str, headers: dict | None = None):
        from weasyprint.urls import URLFetcherResponse

        if url.startswith("data:"):
            if not self.IMAGE_DATA.match(url):
                return self._refuse(url, "data: URI that is not an image")
            header, _, payload = url.partition(",")
            mime = header[5:].split(";")[0]
            body = base64.b64decode(payload) if header.endswith(";base64") else unquote(payload).encode()
            self.fetched.append(header)
            return URLFetcherResponse(url, body=body, headers={"Content-Type": mime})
        parts = urlsplit(url)
        if parts.scheme == "file" and not parts.netloc:
            return self._file(url, Path(unquote(parts.path)))
        if parts.scheme in ("http", "https") and self.public_static:
            prefix, folder = self.public_static
            if url.startswith(prefix) and ".." not in parts.path:
                return self._file(url, folder / unquote(url[len(prefix):].split("?")[0]))
        return self._refuse(url, "not an allowed URL")

    __call__ = fetch


def make_fetcher() -> RestrictedFetcher:
    static = Path(current_app.static_folder or PROJECT_ROOT / "static")
    prefix = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/static/"
    return RestrictedFetcher([static, PDF_TEMPLATE_DIR], public_static=(prefix, static))


# --------------------------------------------------------------------------- rendering


@lru_cache(maxsize=1)
def _font_config():
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


_css_cache: dict[str, tuple[float, object]] = {}


def _stylesheets(doc: str, fetcher: RestrictedFetcher) -> list:
    """print.css plus the document's own sheet, each parsed once per process (again if edited).

    One small sheet per document keeps WeasyPrint's cascade cheap: every element is matched
    against every rule, which mattered for 1,000-row rosters.
    """
    from weasyprint import CSS

    sheets = []
    for name in ("print", doc):
        path = PDF_TEMPLATE_DIR / f"{name}.css"
        if not path.exists():  # a document may need nothing beyond print.css
            continue
        mtime = path.stat().st_mtime
        cached = _css_cache.get(name)
        if cached is None or cached[0] != mtime:
            cached = (mtime, CSS(filename=str(path), url_fetcher=fetcher, font_config=_font_config()))
            _css_cache[name] = cached
        sheets.append(cached[1])
    return sheets


@lru_cache(maxsize=1)
def _font_codepoints() -> frozenset[int]:
    """Code points IPAex Gothic can draw; anything else would print as a box (豆腐)."""
    try:
        from fontTools.ttLib import TTFont

        with TTFont(str(FONT_FILE), lazy=True) as font:
            return frozenset(font.getBestCmap())
    except (OSError, ImportError):  # font missing: keep the text, fontconfig picks a fallback
        return frozenset()


# Fast path: ASCII, Latin-1, common punctuation, kana, CJK ideographs and full-width forms are all in
# IPAex; only the rest (emoji, rare symbols) is looked up in the font's cmap.
_RARE = re.compile(r"[^\x00-\xff\u2010-\u203b\u3000-\u30ff\u4e00-\u9fa0\uff01-\uff9f]")
_INVISIBLE = {0x200D, 0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))  # joiners, variation selectors, skin tones


def printable(text: str) -> str:
    """Replace characters the font lacks with 〓 (the customary 'missing glyph' mark) so nothing prints as a box."""
    codepoints = _font_codepoints()
    if not codepoints:
        return text

    def fix(match: re.Match) -> str:
        cp = ord(match.group())
        if cp in codepoints:
            return match.group()
        return "" if cp in _INVISIBLE else "〓"

    return _RARE.sub(fix, text)


@dataclass
class RenderResult:
    pdf: bytes
    refused: list[str] = field(default_factory=list)
    pages: int = 0


def render_html(html: str, doc: str, *, fetcher: RestrictedFetcher | None = None) -> RenderResult:
    """Turn an HTML string (already rendered from a templates/pdf template) into a PDF."""
    from weasyprint import HTML

    fetcher = fetcher or make_fetcher()
    with _render_lock:
        document = HTML(string=printable(html), base_url=str(PDF_TEMPLATE_DIR) + "/",
                        url_fetcher=fetcher).render(stylesheets=_stylesheets(doc, fetcher), font_config=_font_config())
        pdf = document.write_pdf()
    return RenderResult(pdf=pdf, refused=list(fetcher.refused), pages=len(document.pages))


def render_document(template: str, *, fetcher: RestrictedFetcher | None = None, **context) -> RenderResult:
    """Render templates/pdf/<template>.html with print.css and <template>.css (if present) to a PDF."""
    # Documents are Japanese whatever language the requesting page was shown in.
    with force_locale("ja"):
        html = render_template(f"pdf/{template}.html", **context)
    return render_html(html, template, fetcher=fetcher)


def qr_data_uri(data: str) -> str:
    svg = qr_svg(data, scale=4)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _printed_at(now: datetime | None) -> str:
    return format_datetime(now or utcnow())


# --------------------------------------------------------------------------- programme and ticket


def programme_pdf(event: Event, *, now: datetime | None = None) -> RenderResult:
    url = external_url("public.event_detail", slug=event.slug)
    return render_document("programme", event=event, event_url=url, qr=qr_data_uri(url),
                           organiser=event.organiser_name or current_app.config["ORGANISER_NAME"],
                           printed_at=_printed_at(now))


def ticket_pdf(registration: Registration, *, now: datetime | None = None) -> RenderResult:
    if registration.status != "confirmed":
        raise ValidationFailed({}, "参加が確定したお申し込みのみ受付票を発行できます。")
    event = registration.event
    return render_document(
        "ticket", registration=registration, event=event, person=registration.person,
        qr=qr_data_uri(registration.ticket_code),
        manage_url=external_url("public.manage", token=registration.manage_token),
        organiser=event.organiser_name or current_app.config["ORGANISER_NAME"], printed_at=_printed_at(now),
    )


# --------------------------------------------------------------------------- rosters

YES_NO = {"yes": "はい", "no": "いいえ"}
NOTE_LIMIT = 160  # a roster cell is a reminder; the full answers are in the CSV export
CELL_LIMIT = 80
# Relative column widths on paper, by header; unknown headers (question labels) get DEFAULT_WEIGHT.
WEIGHTS = {"氏名": 16, "ふりがな": 16, "居住地": 9, "都道府県": 9, "電話番号": 17, "メールアドレス": 24,
           "備考": 30, "事務局メモ": 18, "乗車": 7}
DEFAULT_WEIGHT = 12


def _clip(text: object, limit: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _notes(registration: Registration) -> str:
    """受付用 備考: every non-empty answer, then the staff note, clipped to fit a row."""
    parts = [f"{a.question_label}: {YES_NO.get(a.value, a.value)}" for a in registration.answers if a.value]
    if registration.staff_note:
        parts.append(registration.staff_note)
    return _clip(" / ".join(parts), NOTE_LIMIT)


def _print_columns(event: Event, preset: str) -> tuple[str, list[exports.Column], bool]:
    """(title, columns, has tick box) for a printed roster.

    The column presets are the CSV exports' (services/exports.py), adapted to paper: numbering is
    done by the template, the ticket code is left out (the QR is on the ticket) and the export's
    受付 column becomes one tick box per event day. 受付用 follows the reception desk's sheet:
    No, 氏名, ふりがな, 居住地, tick box(es), 備考 gathered from the answers.
    """
    if preset not in ROSTER_PRESETS:
        raise ValidationFailed({"preset": "名簿の種類を選んでください。"}, "名簿の種類が正しくありません。")
    title = exports.PRESETS[preset][0]
    if preset == "reception":
        return title, [exports.NAME, exports.FURIGANA, exports.Column("居住地", lambda r: r.person.prefecture),
                       exports.Column("備考", _notes)], True
    columns = exports.preset_columns(event, preset)
    tick = any(c is exports.CHECK for c in columns) or preset == "bus"
    skip = (exports.NO, exports.TICKET, exports.CHECK, exports.STATUS)
    return title, [c for c in columns if all(c is not s for s in skip)], tick


ROSTER_PRESETS = ("reception", "bus", "lodging", "insurance")
SORTS = {"kana": "五十音順", "signup": "申込順"}


@dataclass
class RosterData:
    event: Event
    title: str
    sort: str
    columns: list[dict]
    tick_days: list[str]
    rows: list[list[str]]
    note: str


def roster_data(event: Event, preset: str = "reception", sort: str = "kana") -> RosterData:
    """Confirmed participants as printable rows (strings), sorted 五十音順 or in sign-up order."""
    if sort not in SORTS:
        raise ValidationFailed({"sort": "並び順を選んでください。"}, "並び順が正しくありません。")
    title, columns, tick = _print_columns(event, preset)
    registrations = list(db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status == "confirmed")
        .options(selectinload(Registration.person),
                 selectinload(Registration.answers).selectinload(Answer.question))
    ).scalars().all())
    note = ""
    if preset == "bus" and any(q.key == "bus" for q in event.questions):
        # The bus company needs the riders only.
        registrations = [r for r in registrations
                         if any(a.question is not None and a.question.key == "bus" and a.value == "yes"
                                for a in r.answers)]
        note = "送迎バス利用者のみ"
    if sort == "kana":
        registrations.sort(key=lambda r: (kana_sort_key(r.person.furigana), r.id))
    else:
        registrations.sort(key=lambda r: (r.created_at, r.id))

    tick_days: list[str] = []
    if tick:
        label = "乗車" if preset == "bus" else "受付"
        days = event.days
        if len(days) > 1:
            tick_days = [f"{i}日目\n{to_jst(d.starts_at):%-m/%-d}" for i, d in enumerate(days, 1)]
        else:
            tick_days = [label]
    weights = [WEIGHTS.get(c.header, DEFAULT_WEIGHT) for c in columns]
    # Tick columns are 11 mm each, No is 10 mm; the text columns share the rest of the 190 mm line.
    text_mm = 190 - 10 - 11 * len(tick_days)
    widths = [{"label": c.header, "width": round(text_mm * w / sum(weights), 1),
               "css": "m" if c.header in ("備考", "事務局メモ") else "w" if c.header == "電話番号" else ""} for c, w in zip(columns, weights, strict=True)]
    rows = [[_clip(c.value(r), NOTE_LIMIT if c.header == "備考" else CELL_LIMIT) for c in columns]
            for r in registrations]
    return RosterData(event=event, title=title, sort=sort, columns=widths, tick_days=tick_days, rows=rows,
                      note=note)


# Page geometry of roster.css, in mm: what is left for table rows on an A4 page under the header.
ROSTER_BODY_MM = 297 - 22 - 14 - 2
ROW_PADDING_MM = 2.3  # cell padding + border
PT = 0.3528  # mm per point


def _text_mm(text: str, size_pt: float) -> float:
    """Rough printed width: full-width characters are 1 em, ASCII and half-width kana about 0.6 em."""
    em = size_pt * PT
    return sum(em * (0.6 if ord(ch) < 0x2000 or 0xFF61 <= ord(ch) <= 0xFF9F else 1.0) for ch in text)


def _row_mm(row: list[str], columns: list[dict]) -> float:
    height = 9 * 1.35 * PT  # one line
    for value, column in zip(row, columns, strict=True):
        if not value or column["css"] == "w":
            continue
        size, leading = (7.5, 1.3) if column["css"] == "m" else (9, 1.35)
        # 15 % slack for line breaks that cannot fall mid-word.
        lines = int(_text_mm(value, size) * 1.15 // max(column["width"] - 2.8, 1)) + 1
        height = max(height, lines * size * leading * PT)
    return height + ROW_PADDING_MM


def paginate(data: RosterData) -> list[list[tuple[int, list[str]]]]:
    """Split the numbered rows into pages by estimated height (conservative, so a page never overflows).

    Laying out each page as its own table keeps WeasyPrint linear in the number of rows (one long
    table is quadratic: 1,000 rows took minutes), and makes page numbers known before rendering,
    which is what lets big rosters render in parallel chunks.
    """
    head_lines = 2
    available = ROSTER_BODY_MM - head_lines * 8 * 1.2 * PT - ROW_PADDING_MM
    pages: list[list[tuple[int, list[str]]]] = [[]]
    used = 0.0
    for number, row in enumerate(data.rows, start=1):
        height = _row_mm(row, data.columns)
        if pages[-1] and used + height > available:
            pages.append([])
            used = 0.0
        pages[-1].append((number, row))
        used += height
    return pages


def _roster_html(data: RosterData, printed_at: str, pages: list, *, page_offset: int = 0,
                 total_pages: int | None = None) -> str:
    with force_locale("ja"):
        return render_template("pdf/roster.html", data=data, event=data.event, pages=pages,
                               printed_at=printed_at, page_offset=page_offset, total_pages=total_pages)


def roster_pdf(event: Event, preset: str = "reception", sort: str = "kana", *,
               now: datetime | None = None, parallel: bool | None = None) -> RenderResult:
    """A roster: header with event, date and 印刷日時; `n / N` footer; table header on every page."""
    data = roster_data(event, preset, sort)
    printed_at = _printed_at(now)
    pages = paginate(data)
    if parallel is None:
        parallel = len(pages) > PARALLEL_PAGES and (os.cpu_count() or 1) > 1
    if not parallel:
        return render_html(_roster_html(data, printed_at, pages), "roster")
    return _roster_parallel(data, printed_at, pages)


def _roster_parallel(data: RosterData, printed_at: str, pages: list) -> RenderResult:
    """Big rosters: render chunks of whole pages on worker processes, then join them with pypdf.

    Each chunk is told its page offset and the total so the `n / N` footer stays right. Should a
    chunk come back with more pages than planned (the height estimate was wrong), the roster is
    rendered again in one process, where the numbering is WeasyPrint's own.
    """
    from pypdf import PdfReader, PdfWriter

    total = len(pages)
    size = max(CHUNK_PAGES, -(-total // 8))
    jobs = [(_roster_html(data, printed_at, pages[start:start + size], page_offset=start, total_pages=total),
             len(pages[start:start + size])) for start in range(0, total, size)]
    static = Path(current_app.static_folder or PROJECT_ROOT / "static")
    prefix = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/static/"
    try:
        results = list(_pool().map(_render_chunk, [(html, str(static), prefix) for html, _n in jobs]))
    except (BrokenProcessPool, OSError):
        # A worker died (or processes cannot be started here): drop the pool, render in this process.
        log.exception("roster worker pool failed; rendering in one piece")
        shutdown_pool()
        return render_html(_roster_html(data, printed_at, pages), "roster")
    if any(got != expected for (_pdf, got), (_html, expected) in zip(results, jobs, strict=True)):
        log.warning("roster chunk overflowed its pages; rendering in one piece")
        return render_html(_roster_html(data, printed_at, pages), "roster")
    writer = PdfWriter()
    for pdf, _pages in results:
        writer.append(PdfReader(BytesIO(pdf)))
    writer.add_metadata({"/Title": f"{data.title} — {data.event.title}"})
    out = BytesIO()
    writer.write(out)
    return RenderResult(pdf=out.getvalue(), pages=total)


_pool_lock = threading.Lock()
_executor: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    """Worker processes kept for the life of the web worker: WeasyPrint's start-up is paid once."""
    global _executor
    with _pool_lock:
        if _executor is None:
            import multiprocessing

            # forkserver: children do not inherit the parent's DB connections or locks.
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["weasyprint", "eventapp.services.documents"])
            _executor = ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=ctx)
        return _executor


def shutdown_pool() -> None:
    global _executor
    with _pool_lock:
        if _executor is not None:
            _executor.shutdown(wait=True, cancel_futures=True)
            _executor = None


def pool_pids() -> list[int]:
    """Worker process ids (the benchmark reads their CPU time and peak memory)."""
    return list(getattr(_executor, "_processes", None) or {})


def _render_chunk(args: tuple[str, str, str]) -> tuple[bytes, int]:
    html, static, prefix = args
    fetcher = RestrictedFetcher([Path(static), PDF_TEMPLATE_DIR], public_static=(prefix, Path(static)))
    result = render_html(html, "roster", fetcher=fetcher)
    return result.pdf, result.pages


# --------------------------------------------------------------------------- badges

BADGES_PER_PAGE = 10  # A4, 2 columns × 5 rows of 91 × 55 mm (business-card size)


def badges_pdf(event: Event, sort: str = "kana", *, now: datetime | None = None) -> RenderResult:
    """Name badges (名札), 10 per A4 sheet with trim marks: furigana, large name, prefecture."""
    if sort not in SORTS:
        raise ValidationFailed({"sort": "並び順を選んでください。"}, "並び順が正しくありません。")
    registrations = db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status == "confirmed")
        .options(selectinload(Registration.person))
    ).scalars().all()
    if sort == "kana":
        registrations = sorted(registrations, key=lambda r: (kana_sort_key(r.person.furigana), r.id))
    else:
        registrations = sorted(registrations, key=lambda r: (r.created_at, r.id))
    people = [r.person for r in registrations]
    pages = [people[i:i + BADGES_PER_PAGE] for i in range(0, len(people), BADGES_PER_PAGE)] or [[]]
    return render_document("badges", event=event, pages=pages, name_size=name_size,
                           printed_at=_printed_at(now))


def name_size(name: str) -> str:
    """A CSS class that keeps a name on a 91 mm badge: shorter names print larger."""
    n = len(name or "")
    if n <= 6:
        return "name-xl"
    if n <= 9:
        return "name-l"
    if n <= 14:
        return "name-m"
    return "name-s"

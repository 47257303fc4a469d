"""Printable documents (PDF) rendered from Jinja templates by WeasyPrint.

Programme (しおり), rosters (名簿), tickets (受付票) and name badges (名札). Templates live in
templates/pdf/ and share templates/pdf/print.css. Everything is drawn with IPAex Gothic (a single
4 MB TTF: subsetting it per document is ~10× cheaper than a Noto CJK collection); glyphs it lacks (rare
name kanji such as 𠮷 or 﨑, ideographic variation sequences) come from IPAmj明朝, see FALLBACK_FONT_FILE.

WeasyPrint only ever sees a `RestrictedFetcher`: data: images (the QR codes we generate), the app's
own static files and the print stylesheet. Anything else (file:// elsewhere, http(s) to other hosts)
is refused and the render carries on without it.
"""

from __future__ import annotations

import base64
import gc
import logging
import mimetypes
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import select

from ..extensions import db
from ..formatting import answer_text, format_datetime, is_important, kana_sort_key, to_jst
from ..models import Answer, Event, Payment, Person, Question, Registration
from ..models.base import utcnow
from ..urls import external_url
from . import exports, payments
from .errors import ValidationFailed
from .tickets import qr_svg

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PDF_TEMPLATE_DIR = PROJECT_ROOT / "templates" / "pdf"
FONT_FILE = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")
# The fallback for the name kanji IPAex lacks (𠮷, 﨑, 邉 variants, IVS): IPAmj明朝 (Debian fonts-ipamj-mincho),
# the font of the MJ character set Japanese registries use for names. print.css lists it after IPAex,
# so Pango takes it per glyph; only the few glyphs used are embedded.
FALLBACK_FONT_FILE = Path("/usr/share/fonts/truetype/ipamj/ipamjm.ttf")
# Above this many pages a roster is rendered in two halves on two processes and joined (see roster_pdf).
PARALLEL_PAGES = 8

_render_lock = threading.Lock()  # Pango/fontconfig objects are shared between renders
RENDERS: Counter[str] = Counter()  # renders per template in this process (tests and the PDF cache's checks)


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
def _font_advances() -> dict[int, float]:
    """Advance width (in em) of every code point IPAex Gothic can draw; anything else would print as a box."""
    try:
        from fontTools.ttLib import TTFont

        with TTFont(str(FONT_FILE), lazy=True) as font:
            per_em = font["head"].unitsPerEm
            metrics = font["hmtx"].metrics
            advances = {cp: metrics[glyph][0] / per_em for cp, glyph in font.getBestCmap().items()}
    except (OSError, ImportError, KeyError):  # font missing: keep the text, fontconfig picks a fallback
        return {}
    # Variation selectors take no room: they pick the form of the character before them.
    advances.update(dict.fromkeys(_SELECTORS, 0.0))
    return advances


@lru_cache(maxsize=1)
def _fallback_codepoints() -> frozenset[int]:
    """Code points the fallback font can draw. Read on first need only (0.3 s for its 54,000 entries):
    most documents have no character IPAex lacks. Its glyphs are full-width, as text_width_mm assumes."""
    try:
        from fontTools.ttLib import TTFont

        with TTFont(str(FALLBACK_FONT_FILE), lazy=True) as font:
            return frozenset(font.getBestCmap())
    except (OSError, ImportError, KeyError):
        return frozenset()


# Fast path: ASCII, Latin-1, common punctuation, kana, CJK ideographs and full-width forms are all in
# IPAex; only the rest (emoji, rare symbols) is looked up in the font's cmap.
_RARE = re.compile(r"[^\x00-\xff\u2010-\u203b\u3000-\u30ff\u4e00-\u9fa0\uff01-\uff9f]")
_INVISIBLE = {0x200D, 0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))  # joiners, emoji selectors, skin tones
# Standardised and ideographic variation selectors (葛 + U+E0100 is the 葛 of a family register): kept,
# so text extraction and search give the name back as entered; the font draws the variant if it has it.
_SELECTORS = frozenset(range(0xFE00, 0xFE0E)) | frozenset(range(0xE0100, 0xE01F0))


def printable(text: str) -> str:
    """Replace characters neither font has with 〓 (the customary 'missing glyph' mark) so nothing prints
    as a box; characters only the fallback font (IPAmj明朝) has are kept: they are people's names."""
    codepoints = _font_advances()
    if not codepoints:
        return text

    def fix(match: re.Match) -> str:
        cp = ord(match.group())
        if cp in codepoints:
            return match.group()
        if cp in _INVISIBLE:
            return ""
        return match.group() if cp in _fallback_codepoints() else "〓"

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
    with _render_lock, _gc_paused():
        document = HTML(string=printable(html), base_url=str(PDF_TEMPLATE_DIR) + "/",
                        url_fetcher=fetcher).render(stylesheets=_stylesheets(doc, fetcher), font_config=_font_config())
        pdf = document.write_pdf()
    return RenderResult(pdf=pdf, refused=list(fetcher.refused), pages=len(document.pages))


@contextmanager
def _gc_paused():
    """No cyclic garbage collection during a render: WeasyPrint allocates hundreds of thousands of
    objects, and each collection then walks everything the process holds (a web worker's app,
    the roster's ORM objects). The cycles left behind are collected when it is switched back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def render_document(template: str, *, fetcher: RestrictedFetcher | None = None, **context) -> RenderResult:
    """Render templates/pdf/<template>.html with print.css and <template>.css (if present) to a PDF."""
    # Documents are Japanese whatever language the requesting page was shown in.
    with force_locale("ja"):
        html = render_template(f"pdf/{template}.html", **context)
    RENDERS[template] += 1
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
        "ticket", registration=registration, event=event,
        qr=qr_data_uri(registration.ticket_code),
        manage_url=external_url("public.manage", token=registration.manage_token),
        organiser=event.organiser_name or current_app.config["ORGANISER_NAME"], printed_at=_printed_at(now),
    )


def receipt_pdf(payment: Payment, *, now: datetime | None = None) -> RenderResult:
    """領収書 for a payment: 宛名, 金額, 但し書き, 発行日, issuer (and 登録番号 if set), the receipt
    number; 「再発行」 once staff reissued it; the 収入印紙 box for cash of 50,000円 or more."""
    if payment.kind != "payment" or payment.receipt_number is None:
        raise ValidationFailed({}, "支払の記録にだけ領収書を発行できます。")
    event = payment.registration.event
    config = current_app.config
    return render_document(
        "receipt", payment=payment, event=event, amount=f"¥{payment.amount_yen:,}-",
        purpose=payments.purpose(event), method=payments.METHOD_LABELS[payment.method],
        issued_on=now or utcnow(), paid_on=payment.paid_at,
        reissued=payment.receipt_reissued_count > 0, needs_stamp=payments.needs_stamp(payment),
        issuer=event.organiser_name or config["ORGANISER_NAME"], address=config.get("ORGANISER_ADDRESS", ""),
        registration_number=payments.invoice_registration_number(),
    )


# --------------------------------------------------------------------------- rosters

NOTE_LIMIT = 160  # a roster cell is a reminder; the full answers are in the CSV export
CELL_LIMIT = 80
# Relative column widths on paper, by header; unknown headers (question labels) get DEFAULT_WEIGHT.
WEIGHTS = {"氏名": 16, "ふりがな": 16, "居住地": 7.5, "都道府県": 9, "電話番号": 17, "メールアドレス": 24,
           "備考": 31.5, "事務局メモ": 18, "乗車": 7}
DEFAULT_WEIGHT = 12
# 受付用: the phone column (a 090-0000-0000 number on one line) is taken out of 備考, so that 氏名 and
# ふりがな keep their widths: a furigana that wraps costs the row its shared line (see _group_blocks).
RECEPTION_WEIGHTS = {**WEIGHTS, "電話番号": 12, "備考": WEIGHTS["備考"] - 12}


def _clip(text: object, limit: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# 受付用 備考 names an answer by a short word, not its full question on every row: the keys rosters
# know by name, else the question's text cut short (see short_label).
SHORT_LABELS = {"dietary": "食事", "bus": "バス", "lodging": "宿泊"}
SHORT_LABEL_LIMIT = 8
IMPORTANT_MARK = "★"  # 重要 answers (allergies…) go first with this mark; the header explains it
_LABEL_NOISE = re.compile(r"[(（【\[].*?[)）】\]]|(されますか|しますか|ですか|ますか)?[?？。、:：\s]*$")


def short_label(key: str | None, label: str) -> str:
    """A question as a short word for a roster cell: `dietary` → 食事; otherwise its text without
    brackets and the trailing 「…しますか?」, cut at SHORT_LABEL_LIMIT characters."""
    if key in SHORT_LABELS:
        return SHORT_LABELS[key]
    text = _LABEL_NOISE.sub("", label).strip() or label.strip()
    return text if len(text) <= SHORT_LABEL_LIMIT else text[: SHORT_LABEL_LIMIT - 1] + "…"


def _notes(registration: Registration) -> str:
    """受付用 備考: the non-empty answers by short label (重要 ones first, marked ★), then the staff
    note, clipped to fit a row."""
    important, others = [], []
    for a in registration.answers:
        if not a.value.strip():
            continue
        q = a.question
        text = f"{short_label(q.key if q else None, a.question_label)}: {answer_text(a)}"
        (important if is_important(q) else others).append(text)
    parts = [IMPORTANT_MARK + t for t in important] + others
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
        # The phone number is for calling the ones who have not arrived yet.
        return title, [exports.NAME, exports.FURIGANA, exports.Column("居住地", lambda r: r.prefecture),
                       exports.PHONE, exports.Column("備考", _notes)], True
    columns = exports.preset_columns(event, preset)
    tick = any(c is exports.CHECK for c in columns) or preset == "bus"
    skip = (exports.NO, exports.TICKET, exports.CHECK, exports.STATUS)
    return title, [c for c in columns if all(c is not s for s in skip)], tick


ROSTER_PRESETS = ("reception", "bus", "lodging", "insurance")
SORTS = {"kana": "五十音順", "signup": "申込順"}


# A roster reads a few columns of each registration (its attendee), the contact address and its answers: they are loaded as
# plain rows into these stand-ins (the attributes the export columns read), which is several times
# cheaper than ORM objects with their identity map, and runs before either process can start drawing.
@dataclass(slots=True)
class _RosterPerson:
    email: str | None  # the contact address; the attendee's details are the registration's


@dataclass(slots=True)
class _RosterQuestion:
    key: str
    kind: str
    important: bool


@dataclass(slots=True)
class _RosterAnswer:
    question_label: str
    value: str
    question: _RosterQuestion | None


@dataclass(slots=True)
class _RosterRegistration:
    id: int
    created_at: datetime
    staff_note: str
    name: str
    furigana: str
    phone: str
    prefecture: str
    person: _RosterPerson
    answers: list[_RosterAnswer] = field(default_factory=list)


def _roster_rows(event: Event) -> list[_RosterRegistration]:
    """The event's confirmed registrations with their attendee, the contact address and answers (in
    answer order), as plain rows."""
    confirmed = (Registration.event_id == event.id, Registration.status == "confirmed")
    registrations = {
        rid: _RosterRegistration(rid, created_at, staff_note, name, furigana, phone, prefecture, _RosterPerson(email))
        for rid, created_at, staff_note, name, furigana, phone, prefecture, email in db.session.execute(
            select(Registration.id, Registration.created_at, Registration.staff_note, Registration.name,
                   Registration.furigana, Registration.phone, Registration.prefecture, Person.email)
            .join(Person, Person.id == Registration.person_id).where(*confirmed))
    }
    questions: dict[str, _RosterQuestion] = {}
    for rid, label, value, key, kind, important in db.session.execute(
        select(Answer.registration_id, Answer.question_label, Answer.value, Question.key, Question.kind,
               Question.important)
        .join(Registration, Registration.id == Answer.registration_id)
        .outerjoin(Question, Question.id == Answer.question_id).where(*confirmed).order_by(Answer.id)
    ):
        question = None if key is None else questions.setdefault(key, _RosterQuestion(key, kind, important))
        registrations[rid].answers.append(_RosterAnswer(label, value, question))
    return list(registrations.values())


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
    registrations = _roster_rows(event)
    note = ""
    if preset == "bus" and any(q.key == "bus" for q in event.questions):
        # The bus company needs the riders only.
        registrations = [r for r in registrations
                         if any(a.question is not None and a.question.key == "bus" and a.value == "yes"
                                for a in r.answers)]
        note = "送迎バス利用者のみ"
    if preset == "reception" and any(is_important(q) for q in event.active_questions):
        note = f"{IMPORTANT_MARK}は重要な回答"
    if sort == "kana":
        registrations.sort(key=lambda r: (kana_sort_key(r.furigana), r.id))
    else:
        registrations.sort(key=lambda r: (r.created_at, r.id))

    tick_days: list[str] = []
    if tick:
        label = "乗車" if preset == "bus" else "受付"
        days = event.days
        if len(days) > 1:
            tick_days = [f"{i}日目 {to_jst(d.starts_at):%-m/%-d}" for i, d in enumerate(days, 1)]
        else:
            tick_days = [label]
    weights = [(RECEPTION_WEIGHTS if preset == "reception" else WEIGHTS).get(c.header, DEFAULT_WEIGHT)
               for c in columns]
    # The number and tick columns have fixed widths; the text columns share the rest of the line.
    text_mm = ROSTER_WIDTH_MM - NO_MM - TICK_MM * len(tick_days)
    widths = [{"label": c.header, "width": round(text_mm * w / sum(weights), 1),
               "css": "m" if c.header in ("備考", "事務局メモ") else ""} for c, w in zip(columns, weights, strict=True)]
    _snap_to_px(widths)
    with force_locale("ja"):  # answers read はい/いいえ: documents are Japanese (see render_document)
        rows = [[printable(_clip(c.value(r), NOTE_LIMIT if c.header == "備考" else CELL_LIMIT)) for c in columns]
                for r in registrations]
    return RosterData(event=event, title=title, sort=sort, columns=widths, tick_days=tick_days, rows=rows,
                      note=note)


# Roster geometry (mm), shared with roster.css through the template: fixed-pitch rows under a header.
ROSTER_WIDTH_MM = 190
ROW_MM = 7.8  # two 3.9 mm lines
ROWS_PER_PAGE = 30
TICK_MM = 11
PX_MM = 25.4 / 96  # mm per CSS px
NO_MM = 34 * PX_MM  # 9 mm, as whole px: the columns' text starts are tab stops (see _tab_line)
PT = 0.3528  # mm per point
CELL_PAD_MM = 1.2
RULE_MM = 0.25
BORDER = "#555"


def _svg_uri(width: float, height: float, shapes: str) -> str:
    """A data: URI for an SVG drawn in millimetres (user units = mm)."""
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
           f'width="{width:g}mm" height="{height:g}mm">{shapes}</svg>')
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _grid(heads: list[tuple[str, float, float, str]], ticks: list[float]) -> dict[str, str]:
    """Background images for the table: the header's column rules, and one row (column rules,
    bottom rule, tick boxes) that the body repeats downwards.

    Rules and tick boxes as one repeated image cost WeasyPrint one pattern a page; as boxes,
    borders or a repeating gradient they cost it a box, a border or a gradient stop per row.
    """
    inner = ROSTER_WIDTH_MM - 2 * RULE_MM  # the body's padding box, where the columns are placed

    def rules(height: float) -> str:  # one path per colour: each SVG element costs a little per page
        return "".join(f"M{x:g} 0h{RULE_MM}v{height:g}h-{RULE_MM}z" for _, x, _, _ in heads[1:])

    boxes = "".join(f"M{x + 3.3:g} 1.7h4.4v4.4h-4.4z" for x in ticks)
    row = (f'<path d="M0 {ROW_MM - RULE_MM:g}h{inner:g}v{RULE_MM}h-{inner:g}z" fill="#888"/>'
           f'<path d="{rules(ROW_MM)}" fill="{BORDER}"/>'
           + (f'<path d="{boxes}" fill="none" stroke="#111" stroke-width="0.3"/>' if boxes else ""))
    return {"head": _svg_uri(inner, HEAD_MM, f'<path d="{rules(HEAD_MM)}" fill="{BORDER}"/>'),
            "row": _svg_uri(inner, ROW_MM, row), "inner": f"{inner:g}"}


HEAD_MM = 8  # the table header's height


def text_width_mm(text: str, size_pt: float) -> float:
    """Printed width from IPAex Gothic's own advance widths (no kerning in this font)."""
    advances = _font_advances()
    return sum(advances.get(ord(ch), 1.0) for ch in text) * size_pt * PT


def wrap(text: str, width_mm: float, size_pt: float, max_lines: int) -> list[str]:
    """Break text into at most `max_lines` lines that fit `width_mm`; the last one ends in … if cut.

    Done here rather than by WeasyPrint so that every row has the same height: the roster is then
    drawn as one text block per column and page (see roster.html), far cheaper than table cells.
    """
    advances = _font_advances()
    limit = width_mm / (size_pt * PT)  # in em
    lines: list[str] = []
    for paragraph in (text or "").splitlines() or [""]:
        line, used = "", 0.0
        for ch in paragraph:
            w = advances.get(ord(ch), 1.0)
            if used + w > limit and line:
                lines.append(line)
                line, used = "", 0.0
                if ch == " ":
                    continue
            line += ch
            used += w
        lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and sum(advances.get(ord(c), 1.0) for c in last) + 1.0 > limit:
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last + "…"]
    return lines


@dataclass
class RosterBlock:
    """One absolutely positioned text block of a roster page (see roster.html)."""

    x: float  # left edge, mm
    top: float
    width: float
    height: float
    css: str  # "" | "n" (number) | "m" (small type)
    line_mm: float  # line height: ROW_MM / lines per row, so every row has the same pitch
    lines: list[str]


def _blocks(x: float, width: float, css: str, size_pt: float, max_lines: int, values: list[str],
            top: float = 0.0) -> list[RosterBlock]:
    """Blocks for one column: each run of consecutive rows wrapped to the same number of lines is
    one block with that many lines a row, so every entry is centred in its row."""
    wrapped = [[line or "\u00a0" for line in wrap(v, width - 2 * CELL_PAD_MM, size_pt, max_lines)] for v in values]
    blocks: list[RosterBlock] = []
    start = 0
    for end in range(1, len(wrapped) + 1):
        if end == len(wrapped) or len(wrapped[end]) != len(wrapped[start]):
            k = len(wrapped[start])
            blocks.append(RosterBlock(x, top + start * ROW_MM, width, (end - start) * ROW_MM, css, ROW_MM / k,
                                      [line for w in wrapped[start:end] for line in w]))
            start = end
    return blocks


# Adjacent 9 pt columns share one line a row: a line costs WeasyPrint far more than a few extra
# glyphs, and one line instead of three makes a page much cheaper. Each entry after the first is
# reached with blank glyphs of known widths (U+3000, U+2002, U+0020) to just short of its column,
# then tabs to the exact pixel (`tab-size: 1px`). Tabs come last and span at most a few pixels
# because WeasyPrint draws a tab's advance 2.4 % wider than Pango laid it out (1024 vs 1000
# units): across a whole column that would drift by up to 2 px, across 4 px by 0.1 px.
# The columns' edges are whole pixels apart so that every entry starts on a tab stop.
MAIN_PT = 9
HEAD_PT = 7.5
TAB_PX = 1
_PADS = [("\u3000", 1.0), ("\u2002", 0.5), (" ", None)]  # None: the font's own space width


def _snap_to_px(columns: list[dict]) -> None:
    """Make the text columns' widths whole pixels (but the last one's, which takes up the
    difference) so that their entries and headings start on tab stops (moves an edge < 0.14 mm)."""
    if len(columns) < 2:
        return
    total = sum(m["width"] for m in columns)
    for m in columns[:-1]:
        m["width"] = round(m["width"] / PX_MM) * PX_MM
    columns[-1]["width"] = total - sum(m["width"] for m in columns[:-1])


def _tab_line(cells: list[str], offsets: list[int], size_pt: float = MAIN_PT) -> str:
    """One line of several columns; `offsets` are the entries' starts in px from the first one."""
    advances = _font_advances()
    em_px = size_pt / 72 * 96
    pads = [(ch, (width or advances.get(ord(ch), 0.27)) * em_px) for ch, width in _PADS]
    line, pen = "", 0.0
    for text, offset in zip(cells, offsets, strict=True):
        if offset:
            for ch, width in pads:  # blanks, widest first, leaving 1 to 4.3 px
                count = max(0, int((offset - pen - 1) // width))
                line += ch * count
                pen += count * width
            # A tab moves the pen to the next whole pixel after it (Pango skips a stop closer
            # than one of its units, 1/1024 px).
            line += "\t" * (offset - int(pen + 2 / 1024))
            pen = float(offset)
        line += text
        pen += sum(advances.get(ord(ch), 1.0) for ch in text) * em_px
    return line


def _column_groups(columns: list[dict]) -> list[list[int]]:
    """Column indexes grouped into runs of adjacent 9 pt columns (merged) and single others."""
    groups: list[list[int]] = []
    for index, meta in enumerate(columns):
        if meta["css"] == "" and groups and len(groups[-1]) and columns[groups[-1][-1]]["css"] == "":
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _group_blocks(data: RosterData, group: list[int], xs: list[float], rows: list[list[str]],
                  first_number: int | None = None) -> list[RosterBlock]:
    """Blocks for a run of 9 pt columns (led by the row number when `first_number` is given):
    runs of rows whose entries all fit on one line become one tab-aligned block; rows with a
    wrapped entry keep a block per column."""
    metas = [data.columns[i] for i in group]
    fits = [all(len(wrap(row[i], m["width"] - 2 * CELL_PAD_MM, MAIN_PT, 2)) == 1 for i, m in zip(group, metas, strict=True))
            for row in rows]
    numbers = [] if first_number is None else [str(first_number + i) for i in range(len(rows))]
    # Runs of rows alike: fitting or not, and (numbered) with as many digits.
    keys = [(fit, len(numbers[i]) if numbers else 0) for i, fit in enumerate(fits)]
    offsets = [round((x - xs[0]) / PX_MM) for x in xs]
    right = xs[-1] + metas[-1]["width"]
    pad_px = CELL_PAD_MM / PX_MM
    blocks: list[RosterBlock] = []
    start = 0
    for end in range(1, len(rows) + 1):
        if end < len(rows) and keys[end] == keys[start]:
            continue
        top = start * ROW_MM
        cells = [[row[i] for i in group] for row in rows[start:end]]
        if fits[start] and numbers:
            # The numbers are right-aligned in their column: the block starts where this run's
            # numbers (same digits, same width: IPAex digits are tabular) begin, give or take
            # 0.5 px so that the first column is a whole number of px (a tab stop) further on.
            number_px = text_width_mm(numbers[start], MAIN_PT) / PX_MM
            first_px = xs[0] / PX_MM + pad_px
            # A number too wide for the padded column (1000 and up) starts 0.5 mm in from its rule.
            number_left = max(NO_MM / PX_MM - pad_px - number_px, 0.5 / PX_MM)
            lead = round(first_px - number_left)
            left = (first_px - lead - pad_px) * PX_MM
            lines = [_tab_line([number, *row], [0] + [lead + o for o in offsets])
                     for number, row in zip(numbers[start:end], cells, strict=True)]
            blocks.append(RosterBlock(left, top, right - left, (end - start) * ROW_MM, "", ROW_MM, lines))
        elif fits[start]:
            lines = [_tab_line(row, offsets) or "\u00a0" for row in cells]
            blocks.append(RosterBlock(xs[0], top, right - xs[0], (end - start) * ROW_MM, "", ROW_MM, lines))
        else:
            if numbers:
                blocks.append(RosterBlock(0, top, NO_MM, (end - start) * ROW_MM, "n", ROW_MM, numbers[start:end]))
            for i, m, x in zip(group, metas, xs, strict=True):
                blocks += _blocks(x, m["width"], "", MAIN_PT, 2, [row[i] for row in rows[start:end]], top)
        start = end
    return blocks


def _head_lines(heads: list[tuple[str, float, float, str]]) -> tuple[str, list]:
    """The column headings as two tab-aligned lines (text columns' headings on the first, tick
    columns' day and date centred over their boxes) when each fits its column, as they do for
    the presets; else (no lines, a box per heading)."""
    lines: list[tuple[list[str], list[int]]] = [([], []), ([], [])]
    for label, x, width, css in heads:
        if css == "t":  # "1日目 1/5" prints as two centred lines
            parts = label.split(" ")
            if len(parts) > 2 or any(text_width_mm(p, HEAD_PT) > width - 0.6 for p in parts):
                return "", heads
            for line, part in zip(lines, parts, strict=False):
                line[0].append(part)
                line[1].append(round((x + (width - text_width_mm(part, HEAD_PT)) / 2 - CELL_PAD_MM) / PX_MM))
        elif len(wrap(label, width - 2 * CELL_PAD_MM, HEAD_PT, 2)) == 1:
            lines[0][0].append(label)
            lines[0][1].append(round(x / PX_MM))
        else:
            return "", heads
    return "\n".join(_tab_line(cells, offsets, HEAD_PT) for cells, offsets in lines if cells), []


def paginate(data: RosterData) -> list[dict]:
    """Lay the roster out into pages of ROWS_PER_PAGE fixed-height rows drawn as text blocks.

    WeasyPrint spends its time per box and per line (a 1,000-row table took minutes as one table
    and ~0.5 s a page as one table per page here), so the roster is drawn as columns of
    pre-wrapped lines with no table cells, adjacent columns sharing lines where they can (see
    _tab_line); tick boxes and rules are background images.
    Page numbers are known before rendering, which lets big rosters render in parallel chunks.
    """
    xs, x = [], NO_MM
    for meta in data.columns:
        xs.append(x)
        x += meta["width"]
    heads = [("No", 0.0, NO_MM, "")] + [(m["label"], mx, m["width"], "") for m, mx in zip(data.columns, xs, strict=True)]
    ticks = []
    for label in data.tick_days:
        heads.append((label, x, TICK_MM, "t"))
        ticks.append(x)
        x += TICK_MM
    head_lines, head_boxes = _head_lines(heads)
    groups = _column_groups(data.columns)
    pages = []
    for start in range(0, max(len(data.rows), 1), ROWS_PER_PAGE):
        rows = data.rows[start:start + ROWS_PER_PAGE]
        # The row numbers share the first column's lines when that is a 9 pt column.
        numbered = bool(data.columns) and data.columns[0]["css"] == ""
        blocks = [] if numbered else [RosterBlock(0, 0, NO_MM, len(rows) * ROW_MM, "n", ROW_MM,
                                                  [str(start + i + 1) for i in range(len(rows))])]
        for group in groups:
            if len(group) > 1 or (numbered and group[0] == 0):
                blocks += _group_blocks(data, group, [xs[i] for i in group], rows,
                                        start + 1 if numbered and group[0] == 0 else None)
                continue
            meta = data.columns[group[0]]
            small = meta["css"] == "m"
            blocks += _blocks(xs[group[0]], meta["width"], meta["css"], 6.5 if small else MAIN_PT,
                              3 if small else 2, [row[group[0]] for row in rows])
        pages.append({"heads": heads, "head_lines": head_lines, "head_boxes": head_boxes, "blocks": blocks,
                      "rows": len(rows), "ticks": ticks})
    return pages


def _roster_html(data: RosterData, printed_at: str, pages: list, *, page_offset: int = 0,
                 total_pages: int | None = None) -> str:
    first = pages[0]
    order = f"{SORTS[data.sort]}・{len(data.rows)}名" + (f"({data.note})" if data.note else "")
    printed = f"印刷日時 {printed_at}"
    # The header's side parts get their printed width (measured here) so that WeasyPrint places
    # them without a flex or shrink-to-fit layout on every page.
    head = {"doc_mm": round(text_width_mm(data.title, 13) + 0.6, 1),
            "printed_mm": round(max(text_width_mm(order, 8.5), text_width_mm(printed, 8.5)) + 0.6, 1),
            "order": order, "printed": printed}
    with force_locale("ja"):
        return render_template("pdf/roster.html", data=data, event=data.event, pages=pages, head=head,
                               grid=_grid(first["heads"], first["ticks"]), page_offset=page_offset,
                               total_pages=total_pages, row_mm=ROW_MM, width_mm=ROSTER_WIDTH_MM, head_mm=HEAD_MM,
                               tab_px=TAB_PX)


def roster_pdf(event: Event, preset: str = "reception", sort: str = "kana", *,
               now: datetime | None = None, parallel: bool | None = None) -> RenderResult:
    """A roster: header with event, date and 印刷日時; `n / N` footer; table header on every page."""
    # No collection while the rows are built and laid out (see _gc_paused): a big roster then
    # collects while it waits for its worker (_roster_parallel) instead of before handing it the HTML.
    with _gc_paused():
        data = roster_data(event, preset, sort)
        printed_at = _printed_at(now)
        pages = paginate(data)
        if parallel is None:
            parallel = len(pages) > PARALLEL_PAGES and (os.cpu_count() or 1) > 1
        if parallel and len(pages) > 1:
            return _roster_parallel(data, printed_at, pages)
    return render_html(_roster_html(data, printed_at, pages), "roster")


def _roster_parallel(data: RosterData, printed_at: str, pages: list) -> RenderResult:
    """Big rosters: the second half of the pages on a worker process while this process renders
    the first half, then both joined (join_pdfs).

    One worker rather than a pool of two keeps memory down (each WeasyPrint process holds about
    140 MB) while both cores work. Each half is told its page offset and the total so the `n / N`
    footer stays right; if either comes back with a different page count than planned, or the
    worker fails, the roster is rendered again in one process.
    """
    total = len(pages)
    # This process also loaded the data and joins the halves, and renders a page slightly slower
    # than the fresh worker (measured): it takes a little less than half.
    split = max(1, round(total * 0.48))
    static = Path(current_app.static_folder or PROJECT_ROOT / "static")
    prefix = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/static/"
    try:
        # The worker's half first, so that it starts as early as possible.
        second_html = _roster_html(data, printed_at, pages[split:], page_offset=split, total_pages=total)
        future = _pool().submit(_render_chunk, (second_html, str(static), prefix))
        first = render_html(_roster_html(data, printed_at, pages[:split], total_pages=total), "roster")
        if not future.done():  # this render's garbage, collected while the worker finishes
            gc.collect(0)
        second_pdf, second_pages = future.result()
    except (BrokenProcessPool, OSError):
        # The worker died (or processes cannot be started here): drop it, render in this process.
        log.exception("roster worker failed; rendering in one piece")
        shutdown_pool()
        return render_html(_roster_html(data, printed_at, pages), "roster")
    if first.pages != split or second_pages != total - split:
        log.warning("roster halves came out with unplanned page counts; rendering in one piece")
        return render_html(_roster_html(data, printed_at, pages), "roster")
    return RenderResult(pdf=join_pdfs([first.pdf, second_pdf]), pages=total)


def join_pdfs(pdfs: list[bytes]) -> bytes:
    """Concatenate PDFs: poppler's pdfunite when installed (0.1 s for a 1,000-row roster), else pypdf
    (about 2 s for the same: it rewrites every object)."""
    pdfunite = shutil.which("pdfunite")
    if pdfunite:
        with tempfile.TemporaryDirectory(prefix="eventapp-pdf-") as tmp:
            names = []
            for index, pdf in enumerate(pdfs):
                names.append(os.path.join(tmp, f"{index}.pdf"))
                Path(names[-1]).write_bytes(pdf)
            out = os.path.join(tmp, "joined.pdf")
            done = subprocess.run([pdfunite, *names, out], capture_output=True, timeout=60)
            if done.returncode == 0:
                return Path(out).read_bytes()
            log.warning("pdfunite failed (%s); joining with pypdf", done.stderr[:200])
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(PdfReader(BytesIO(pdf)), import_outline=False)
    out_buffer = BytesIO()
    writer.write(out_buffer)
    return out_buffer.getvalue()


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
            _executor = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
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
    ).scalars().all()
    if sort == "kana":
        registrations = sorted(registrations, key=lambda r: (kana_sort_key(r.furigana), r.id))
    else:
        registrations = sorted(registrations, key=lambda r: (r.created_at, r.id))
    # A badge shows the registration's attendee (two attendees of one address each get their own name).
    pages = [registrations[i:i + BADGES_PER_PAGE] for i in range(0, len(registrations), BADGES_PER_PAGE)] or [[]]
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

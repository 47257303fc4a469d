"""Presentation helpers (JST dates, yen, 五十音 sort keys), registered as Jinja filters."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

JST = ZoneInfo("Asia/Tokyo")
WEEKDAYS_JA = "月火水木金土日"
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

KIND_LABELS = {
    "online_seminar": _l("オンラインセミナー"),
    "onsite_seminar": _l("セミナー(会場)"),
    "fieldwork": _l("フィールドワーク"),
    "matching_session": _l("マッチング会"),
}
YES_NO_LABELS = {"yes": _l("はい"), "no": _l("いいえ")}
STATUS_LABELS = {"confirmed": _l("参加確定"), "waitlisted": _l("キャンセル待ち"), "cancelled": _l("キャンセル済み"),
                 "applied": _l("抽選応募中"), "not_selected": _l("落選")}


def to_jst(value: datetime) -> datetime:
    return value.astimezone(JST)


def _english() -> bool:
    locale = get_locale()
    return locale is not None and locale.language == "en"


def english_mode() -> bool:
    """The request is shown in English (`?lang=en`, docs/i18n.md)."""
    return _english()


def format_date(value: datetime | date, *, with_year: bool = True) -> str:
    """`2025年11月8日(土)` (or `Sat 8 Nov 2025` in English)."""
    d = to_jst(value) if isinstance(value, datetime) else value
    if _english():
        year = f" {d.year}" if with_year else ""
        return f"{WEEKDAYS_EN[d.weekday()]} {d.day} {MONTHS_EN[d.month - 1]}{year}"
    year = f"{d.year}年" if with_year else ""
    return f"{year}{d.month}月{d.day}日({WEEKDAYS_JA[d.weekday()]})"


def format_time(value: datetime) -> str:
    return to_jst(value).strftime("%H:%M")


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"{format_date(value)} {format_time(value)}"


def format_range(start: datetime, end: datetime) -> str:
    """`2025年8月25日(月) 19:00 〜 20:00`, or `2025年11月8日(土) 13:00 〜 11月9日(日) 12:00`."""
    s, e = to_jst(start), to_jst(end)
    dash = " – " if _english() else " 〜 "  # the wave dash reads as Japanese punctuation
    if s.date() == e.date():
        return f"{format_datetime(s)}{dash}{format_time(e)}"
    return f"{format_datetime(s)}{dash}{format_date(e, with_year=s.year != e.year)} {format_time(e)}"


def format_yen(amount: int) -> str:
    if amount == 0:
        return "Free" if _english() else "無料"
    return f"¥{amount:,}" if _english() else f"{amount:,}円"


# A reading all in Latin letters (the English form's "Maria Fernanda"): sorted after every kana reading.
_LATIN_READING = re.compile(r"^[A-Za-z\u00c0-\u024f][A-Za-z\u00c0-\u024f '.\-・ー]*$")


def kana_sort_key(furigana: str) -> str:
    """五十音順 key: katakana folded to hiragana, voiced marks ignored at the first level.

    Three groups, in this order: kana (and anything else, by code point as before), then readings in
    Latin letters A–Z (case and accents ignored at the first level), then empty readings (docs/i18n.md)."""
    text = unicodedata.normalize("NFKC", furigana or "").strip()
    if not text:
        return "\x03"
    if _LATIN_READING.match(text):
        folded = "".join(ch for ch in unicodedata.normalize("NFD", text.casefold()) if not unicodedata.combining(ch))
        return "\x02" + folded + "\x00" + text
    text = "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in text)
    base = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in base if ch not in "\u3099\u309a")
    return "\x01" + unicodedata.normalize("NFC", stripped) + "\x00" + text


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


_DAY_NUMBER = re.compile(r"^\s*(?:第\s*)?(\d+|[０-９]+)\s*日目[\s・:：、,\-—]*")


def day_title_rest(title: str | None, number: int) -> str:
    """A day's title without a leading 「N日目」 of the same day: headings print 「1日目 11/8(土) 花巻」,
    not 「1日目 11/8(土) 1日目 花巻」 (staff naturally title their days 「1日目 花巻」)."""
    title = (title or "").strip()
    match = _DAY_NUMBER.match(title)
    if match and int(unicodedata.normalize("NFKC", match.group(1))) == number:
        return title[match.end():].strip()
    return title


def answer_display(question_kind: str | None, value: str | None) -> str:
    """An answer as people read it, in the current language: a yes/no answer is stored as
    `yes`/`no` and shown as はい/いいえ (Yes/No); choice and text answers are their own text.
    `question_kind` is None when the question was deleted: a bare yes/no is then still a yes/no."""
    value = value or ""
    if question_kind in ("yesno", None) and value in YES_NO_LABELS:
        return str(YES_NO_LABELS[value])
    return value


def answer_text(answer: object) -> str:
    """`answer_display` for an Answer (or a roster stand-in with `.question` and `.value`)."""
    question = getattr(answer, "question", None)
    return answer_display(getattr(question, "kind", None), getattr(answer, "value", ""))


def is_important(question: object | None) -> bool:
    """重要 answers are highlighted at the door and on the 受付用 roster: the `dietary` question
    (allergies, food) always, and any question staff flagged 重要."""
    return question is not None and (getattr(question, "key", "") == "dietary" or bool(getattr(question, "important", False)))


def quoted(title: object) -> str:
    """A title quoted in a sentence: 「…」 (its own 「」 become 『』, never 「「…」」), or “…” in English."""
    from .services.text import denest_quotes

    text = str(title or "")
    return f"“{text}”" if _english() else denest_quotes(f"「{text}」")


def register_filters(app: Flask) -> None:
    from .services.text import single_line
    from .urls import external_url

    app.jinja_env.globals["external_url"] = external_url
    # `Subject: {{ event.title|oneline }}`: the first line of a mail template is its subject, and a
    # stored line break would move the rest of a title into the body.
    app.jinja_env.filters["oneline"] = single_line
    app.jinja_env.filters.update(
        jst=to_jst, date_ja=format_date, time_ja=format_time, datetime_ja=format_datetime,
        range_ja=format_range, yen=format_yen, kind_label=kind_label,
        status_label=lambda s: str(STATUS_LABELS.get(s, s)), day_title_rest=day_title_rest,
        answer=answer_text, quoted=quoted,
    )
    app.jinja_env.globals["payment_status"] = _payment_status  # mails: say how to pay only while unpaid
    app.jinja_env.globals["answer_display"] = answer_display  # (kind, value), where only the kind is at hand


def _payment_status(registration: object) -> str:
    from .services.payments import status_of

    return status_of(registration)

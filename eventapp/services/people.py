"""Participant data: validation, normalisation (email, furigana) and find-or-create by email."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import bindparam, insert, select

from ..database import column_values, insert_or_skip
from ..extensions import db
from ..models import ATTENDEE_FIELDS, IWATE_RELATIONS, Person
from .errors import ValidationFailed
from .text import search_keys

PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県", "海外",
)

IWATE_RELATION_LABELS = {"origin": "岩手県出身", "connected": "ゆかりがある", "none": "特になし"}

MAX_NAME = 100
MAX_TEXT = 2000
# Hiragana, the prolonged sound mark and the iteration marks; katakana is converted before the check.
_FURIGANA_RE = re.compile(r"^[\u3041-\u3096\u309d\u309e\u30fc ]+$")
# The English form's optional name reading: kana (folded to hiragana like furigana), Latin letters
# (accented ones too), ・, ー, spaces, and the apostrophe, hyphen and full stop of Latin names.
_READING_RE = re.compile(r"^[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u3041-\u3096\u309d\u309e\u30fb\u30fc '.\-]+$")
_PHONE_RE = re.compile(r"^\+?[0-9][0-9\-]{8,18}[0-9]$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class PersonData:
    name: str
    furigana: str
    email: str
    phone: str = ""
    prefecture: str = ""
    iwate_relation: str = "none"
    occupation: str = ""
    skills: str = ""


# CJK compatibility ideographs (隆 U+F9DC, 﨑 U+FA11, …): NFKC would fold some into another code point,
# but in a name the form as registered is the one people expect on their badge.
_COMPAT_IDEOGRAPHS = re.compile(r"([\uf900-\ufaff\U0002f800-\U0002fa1f]+)")


def nfkc(text: str) -> str:
    """NFKC (full-width digits and letters, half-width kana) that keeps compatibility ideographs as typed."""
    parts = _COMPAT_IDEOGRAPHS.split(text)
    return "".join(part if n % 2 else unicodedata.normalize("NFKC", part) for n, part in enumerate(parts))


def clean_text(value: object, *, multiline: bool = False) -> str:
    """NFKC-normalised text (see nfkc) without control or bidi-override characters."""
    text = nfkc(str(value or ""))
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return "\n".join(_CONTROL_RE.sub("", line) for line in text.split("\n")).strip()
    return _CONTROL_RE.sub("", text).strip()


def normalise_furigana(value: str) -> str:
    """Half-width and full-width katakana become hiragana; spaces fold to one ASCII space."""
    text = unicodedata.normalize("NFKC", value or "").strip()
    text = "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in text)
    text = text.replace("\u30fd", "\u309d").replace("\u30fe", "\u309e")
    return re.sub(r"\s+", " ", text)


def is_kana_reading(furigana: str) -> bool:
    """A stored reading in kana (the Japanese form's ふりがな); False for '' and Latin-letter readings."""
    return bool(_FURIGANA_RE.match(furigana or ""))


def normalise_email(value: str) -> str:
    """Validated, with the domain lower-cased; the local part is lower-cased too (one person per inbox)."""
    # test_environment: also the reserved `.test` domain, like any other well-formed address (the API
    # schema says `format: email`; refusing one would contradict it). Still no DNS lookups.
    result = validate_email((value or "").strip(), check_deliverability=False, test_environment=True)
    return result.normalized.lower()


def normalise_phone(value: str) -> str:
    text = unicodedata.normalize("NFKC", value or "").strip()
    if _PHONE_RE.match(text):  # already well formed: kept as given (the API schema promises so)
        return text
    return re.sub(r"[\s()ー−‐]", "-", text).replace("--", "-")


def validate_person(raw: dict, *, email_required: bool = True, latin_reading: bool = False) -> PersonData:
    """Check raw input (form or JSON) and return normalised data, or raise ValidationFailed.

    `email_required=False` (a walk-in at the door): an empty address is allowed and gives `email=""`.
    `latin_reading=True` (the English form): the reading is optional ('' stored) and may be in Latin
    letters or kana with ・ (マリア・フェルナンダ, "Maria Fernanda"); otherwise ふりがな in kana, required."""
    errors: dict[str, str] = {}
    name = clean_text(raw.get("name"))
    name = re.sub(r"\s+", " ", name)
    if not name:
        errors["name"] = _("氏名を入力してください。")
    elif len(name) > MAX_NAME:
        errors["name"] = _("氏名は%(max)s文字以内で入力してください。", max=MAX_NAME)

    furigana = normalise_furigana(clean_text(raw.get("furigana")))
    if latin_reading:
        if furigana and not _READING_RE.match(furigana):
            errors["furigana"] = _("読み方は、カタカナ・ひらがなまたはローマ字で入力してください。")
        elif len(furigana) > MAX_NAME:
            errors["furigana"] = _("読み方は%(max)s文字以内で入力してください。", max=MAX_NAME)
    elif not furigana:
        errors["furigana"] = _("ふりがなを入力してください。")
    elif not _FURIGANA_RE.match(furigana):
        errors["furigana"] = _("ふりがなは、ひらがなまたはカタカナで入力してください。")
    elif len(furigana) > MAX_NAME:
        errors["furigana"] = _("ふりがなは%(max)s文字以内で入力してください。", max=MAX_NAME)

    email = ""
    raw_email = clean_text(raw.get("email"))
    if not raw_email:
        if email_required:
            errors["email"] = _("メールアドレスを入力してください。")
    else:
        try:
            email = normalise_email(raw_email)
        except EmailNotValidError:
            errors["email"] = _("メールアドレスの形式が正しくありません。")
        if len(raw_email) > 254:
            errors["email"] = _("メールアドレスが長すぎます。")

    phone = normalise_phone(clean_text(raw.get("phone")))
    if phone and not _PHONE_RE.match(phone):
        errors["phone"] = _("電話番号は数字とハイフンで入力してください(例: 090-1234-5678)。")

    prefecture = clean_text(raw.get("prefecture"))
    if prefecture and prefecture not in PREFECTURES:
        errors["prefecture"] = _("お住まいの都道府県を一覧から選んでください。")

    relation = clean_text(raw.get("iwate_relation")) or "none"
    if relation not in IWATE_RELATIONS:
        errors["iwate_relation"] = _("岩手とのご関係を一覧から選んでください。")

    occupation = clean_text(raw.get("occupation"), multiline=True)
    skills = clean_text(raw.get("skills"), multiline=True)
    for field, value in (("occupation", occupation), ("skills", skills)):
        if len(value) > MAX_TEXT:
            errors[field] = _("%(max)s文字以内で入力してください。", max=MAX_TEXT)

    if errors:
        raise ValidationFailed(errors)
    return PersonData(name=name, furigana=furigana, email=email, phone=phone, prefecture=prefecture,
                      iwate_relation=relation, occupation=occupation, skills=skills)


_BY_EMAIL = select(Person).where(Person.email == bindparam("email"))  # built once: run on every sign-up
# A new person is one INSERT … RETURNING giving back the persistent object (why: see the sign-up's
# inserts in registration.py). ON CONFLICT DO NOTHING: a known address inserts nothing and the person
# is read instead (also when a sign-up for another event, which does not share the event lock,
# committed the address a moment ago).
_INSERT_PERSON = select(Person).from_statement(insert_or_skip(Person.__table__, conflict="email"))


def attendee_values(data: PersonData) -> dict[str, str]:
    """The attendee columns of a registration or person row from validated sign-up data, with their
    search keys (the bulk inserts skip the ORM hook that keeps them, models.person.keep_search_keys)."""
    values = {field: getattr(data, field) for field in ATTENDEE_FIELDS}
    return values | search_keys(data.name, data.furigana, data.phone)


def find_or_create_person(data: PersonData) -> tuple[Person, bool]:
    """The person (contact identity) with this email, or a new one (inserted at once).
    Returns (person, created).

    A known address is returned unchanged: nobody has proved they own it, so a sign-up may not
    rewrite what the address's other registrations, or staff, see. The attendee's details go onto
    the registration instead (`attendee_values`)."""
    values = {"email": data.email or None, **attendee_values(data)}
    # Insert first: in a sign-up rush most addresses are new, and then this is the only statement.
    # Without an address (a walk-in who gave none) there is nobody to match: always a new person.
    created = db.session.scalars(_INSERT_PERSON, column_values(Person.__table__, values)).one_or_none()
    if created is not None:
        return created, True
    return db.session.execute(_BY_EMAIL, {"email": data.email}).scalar_one(), False


_INSERT_PEOPLE = insert(Person).returning(Person, sort_by_parameter_order=True)


def create_people_without_email(people: list[PersonData]) -> list[Person]:
    """New contact identities without an address (companions), in one multi-row INSERT … RETURNING.

    Nobody can be matched without an address, so each is a person of its own: the one-active-
    registration-per-person-and-event index holds for companions just as for everyone else."""
    if not people:
        return []
    rows = [column_values(Person.__table__, {"email": None, **attendee_values(data)}) for data in people]
    return list(db.session.scalars(_INSERT_PEOPLE, rows))

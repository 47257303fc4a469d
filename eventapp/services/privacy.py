"""The privacy notice shown before sign-up (個人情報の取扱い)."""

from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import PrivacyNotice

DEFAULT_NOTICE = PrivacyNotice(
    version="2025-04",
    purpose=(
        "ご登録いただいた個人情報は、本イベントの運営(参加者の受付、連絡、名簿・保険・送迎の手配)、"
        "遠恋複業課の関連イベントのご案内、参加状況の統計(個人を特定しない形)に利用します。"
        "法令に基づく場合を除き、ご本人の同意なく第三者に提供することはありません。"
        "ただし、フィールドワークの旅行保険・送迎の手配に必要な範囲で、委託先に提供します。"
    ),
    body=(
        "取得する情報: 氏名、ふりがな、メールアドレス、電話番号、お住まいの都道府県、岩手とのご関係、"
        "ご職業・スキル、イベントごとの設問への回答。\n"
        "保存期間: イベント終了後1年を経過した時点で、個人を特定できる情報を削除(匿名化)します。\n"
        "開示・訂正・削除のご請求は下記の窓口までご連絡ください。"
    ),
    contact="岩手県 遠恋複業課 事務局 (メール: info@example.jp)",
    purpose_en=(
        "The personal data you register is used to run this event (registration, contacting you, the "
        "participant list, insurance and transport arrangements), to tell you about related events of the "
        "Enren Fukugyo Office, and for statistics that identify nobody. "
        "It is not given to third parties without your consent except where the law requires, apart from "
        "what contractors need to arrange the fieldwork's travel insurance and transport."
    ),
    body_en=(
        "Data collected: name, name reading, email address, phone number, prefecture of residence, relation "
        "to Iwate, occupation and skills, and your answers to each event's questions.\n"
        "Retention: one year after the event ends, the data that identifies you is deleted (anonymised).\n"
        "To ask for disclosure, correction or deletion, please contact the office below."
    ),
    contact_en="Iwate Prefecture, Enren Fukugyo Office (email: info@example.jp)",
)


def current_notice() -> PrivacyNotice:
    """The newest published notice, or the built-in one before an admin has published any."""
    notice = db.session.execute(
        select(PrivacyNotice).order_by(PrivacyNotice.published_at.desc(), PrivacyNotice.id.desc()).limit(1)
    ).scalar_one_or_none()
    return notice or DEFAULT_NOTICE


# The version of `current_notice()` (what a sign-up records), without loading the texts; the
# sign-up reads it as a column of its event query.
NOTICE_VERSION = (select(PrivacyNotice.version)
                  .order_by(PrivacyNotice.published_at.desc(), PrivacyNotice.id.desc()).limit(1))


# Whether that notice has an English text (the sign-up records which text was shown).
NOTICE_HAS_ENGLISH = (select((PrivacyNotice.purpose_en != "") & (PrivacyNotice.body_en != ""))
                      .order_by(PrivacyNotice.published_at.desc(), PrivacyNotice.id.desc()).limit(1))


def consent_language(form_language: str, has_english: bool) -> str:
    """The text of the notice a form in `form_language` shows: 'en' when English mode and the version
    has an English text, otherwise 'ja' (an English form then notes that the notice is in Japanese)."""
    return "en" if form_language == "en" and has_english else "ja"


ANONYMOUS_NAME = "匿名"
ANONYMOUS_FURIGANA = "とくめい"


def anonymise_person(person_id: int, *, reason: str = "request", actor: str | None = None):
    """Wipe what identifies a person; registrations (and so counts and attendance) stay.

    Name → 匿名, furigana → とくめい, email → NULL, phone/occupation/skills, answers and staff notes wiped.
    """
    from ..models import Answer, Person, Registration
    from ..models.base import utcnow
    from . import audit
    from .errors import NotFound

    person = db.session.get(Person, person_id)
    if person is None:
        raise NotFound("person_not_found", "参加者が見つかりません。")
    if person.anonymised_at is not None:
        return person
    person.name, person.furigana, person.email = ANONYMOUS_NAME, ANONYMOUS_FURIGANA, None
    person.phone = person.occupation = person.skills = ""
    person.anonymised_at = utcnow()
    registration_ids = select(Registration.id).where(Registration.person_id == person.id)
    for answer in db.session.execute(select(Answer).where(Answer.registration_id.in_(registration_ids))).scalars():
        answer.value = ""
    for registration in db.session.execute(select(Registration).where(Registration.person_id == person.id)).scalars():
        registration.staff_note = ""
        # The attendee as given on each registration identifies the person as much as the person row.
        registration.name, registration.furigana = ANONYMOUS_NAME, ANONYMOUS_FURIGANA
        registration.phone = registration.occupation = registration.skills = ""
    db.session.flush()
    audit.record("anonymise", "person", person.id, f"参加者ID {person.id} を匿名化({reason})",
                 {"reason": reason}, actor=actor)
    return person


def expired_people(retention_days: int, now=None) -> list[int]:
    """Ids of not-yet-anonymised people whose events all ended more than `retention_days` ago."""
    from datetime import timedelta

    from sqlalchemy import func

    from ..models import Event, Person, Registration
    from ..models.base import utcnow

    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    last_end = (select(Registration.person_id, func.max(Event.ends_at).label("last_end"))
                .join(Event, Event.id == Registration.event_id).group_by(Registration.person_id).subquery())
    return list(db.session.execute(
        select(Person.id).join(last_end, last_end.c.person_id == Person.id)
        .where(Person.anonymised_at.is_(None), last_end.c.last_end < cutoff).order_by(Person.id)
    ).scalars().all())


def purge_expired(retention_days: int, now=None) -> int:
    """Anonymise everyone past retention; running it again does nothing new (safe daily from cron)."""
    ids = expired_people(retention_days, now)
    for person_id in ids:
        anonymise_person(person_id, reason=f"保存期間({retention_days}日)経過", actor="purge-expired")
    return len(ids)


def publish_notice(purpose: str, body: str, contact: str, version: str | None = None, *,
                   english: dict[str, str] | None = None) -> PrivacyNotice:
    """A new version of the privacy notice; registrations keep the version (and language) they accepted.

    `english`: optional {"purpose", "body", "contact"} in English; purpose and body come together (an
    English notice without its body would not be the notice), the contact falls back to the Japanese."""
    from ..models.base import utcnow
    from . import audit
    from .errors import ValidationFailed
    from .people import clean_text

    purpose, body, contact = (clean_text(v, multiline=True) for v in (purpose, body, contact))
    errors = {}
    for field, value in (("purpose", purpose), ("body", body), ("contact", contact)):
        if not value:
            errors[field] = "入力してください。"
        elif len(value) > 20000:
            errors[field] = "長すぎます。"
    english = {key: clean_text((english or {}).get(key), multiline=True) for key in ("purpose", "body", "contact")}
    for key, value in english.items():
        if len(value) > 20000:
            errors[f"{key}_en"] = "長すぎます。"
    if bool(english["purpose"]) != bool(english["body"]):
        missing = "body_en" if english["purpose"] else "purpose_en"
        errors[missing] = "英語版は利用目的と本文の両方を入力してください(英語版なしなら両方とも空欄に)。"
    now = utcnow()
    version = clean_text(version) or now.strftime("%Y-%m-%d")
    base, n = version, 2
    while db.session.execute(select(PrivacyNotice.id).where(PrivacyNotice.version == version)).first():
        version = f"{base}-{n}"
        n += 1
    if len(version) > 32:
        errors["version"] = "版の名前は32文字以内にしてください。"
    if errors:
        raise ValidationFailed(errors)
    notice = PrivacyNotice(version=version, purpose=purpose, body=body, contact=contact, published_at=now,
                           purpose_en=english["purpose"], body_en=english["body"], contact_en=english["contact"])
    db.session.add(notice)
    db.session.flush()
    audit.record("privacy_notice", "privacy_notice", notice.id, f"個人情報の取扱いを改定(版 {version}"
                 + ("・英語版あり)" if notice.has_english else ")"))
    return notice

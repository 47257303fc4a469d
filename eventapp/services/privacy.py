"""The privacy notice shown before sign-up (個人情報の取扱い)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, union, update

from ..extensions import db
from ..models import (
    Answer,
    AuditEntry,
    Event,
    MyPageLink,
    OutboxMessage,
    Person,
    PrivacyNotice,
    Registration,
)
from ..models.base import utcnow

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


PURGE_BATCH = 500  # people anonymised per transaction by purge-expired
SAMPLE = 10  # person ids shown by a dry run


def _anonymise(ids: list[int], *, reason: str, actor: str | None, now: datetime) -> list[int]:
    """Wipe what identifies these people, set-based (a few statements whatever their number); their
    registrations (and so counts and attendance) stay. Returns the ids of the outbox messages that
    concerned them, whose mail files the caller removes once the transaction is committed.

    Name → 匿名, furigana → とくめい, email and calendar feed → NULL, phone/occupation/skills, search
    keys, answers and staff notes wiped, マイページ links deleted. Their mail (outbox rows linked to
    one of their registrations or addressed to them) is deleted, except the sent mails that are the
    app's record of having mailed (mail.RECORD_KINDS), which keep only kind, status and dates."""
    from . import audit, mail

    if not ids:
        return []
    people, registrations = Person.__table__, Registration.__table__
    outbox, answers = OutboxMessage.__table__, Answer.__table__
    db.session.flush()  # pending ORM changes first: the statements below bypass the unit of work
    emails = list(db.session.execute(select(people.c.email).where(people.c.id.in_(ids),
                                                                  people.c.email.is_not(None))).scalars())
    their_registrations = select(registrations.c.id).where(registrations.c.person_id.in_(ids))
    # Two indexed look-ups (registration_id, to_addr), not one OR that scans the outbox.
    theirs = select(outbox.c.id).where(outbox.c.registration_id.in_(their_registrations))
    if emails:
        theirs = union(theirs, select(outbox.c.id).where(outbox.c.to_addr.in_(emails)))
    message_ids = list(db.session.execute(theirs).scalars())
    if message_ids:
        mine = outbox.c.id.in_(message_ids)
        db.session.execute(delete(outbox).where(mine, ~mail.is_record(outbox)))
        db.session.execute(update(outbox).where(mine, mail.is_record(outbox)).values(**mail.BLANK_MAIL))
    db.session.execute(update(answers).where(answers.c.registration_id.in_(their_registrations)).values(value=""))
    # The attendee as given on each registration identifies the person as much as the person row;
    # prefecture and Iwate relation stay for the statistics.
    db.session.execute(update(registrations).where(registrations.c.person_id.in_(ids)).values(
        name=ANONYMOUS_NAME, furigana=ANONYMOUS_FURIGANA, phone="", occupation="", skills="", staff_note="",
        search_name="", search_phone="", updated_at=now))
    db.session.execute(update(people).where(people.c.id.in_(ids)).values(
        name=ANONYMOUS_NAME, furigana=ANONYMOUS_FURIGANA, email=None, phone="", occupation="", skills="",
        search_name="", search_phone="", calendar_token=None, anonymised_at=now, updated_at=now))
    db.session.execute(delete(MyPageLink.__table__).where(MyPageLink.__table__.c.person_id.in_(ids)))
    user = audit.current_user() if actor is None else None
    db.session.execute(insert(AuditEntry.__table__), [{
        "user_id": user.id if user else None, "actor": actor or (user.email if user else "system"),
        "action": "anonymise", "object_type": "person", "object_id": person_id,
        "summary": f"参加者ID {person_id} を匿名化({reason})", "details": {"reason": reason}, "at": now,
    } for person_id in ids])
    db.session.expire_all()  # loaded people and registrations show the wiped values
    return message_ids


def anonymise_person(person_id: int, *, reason: str = "request", actor: str | None = None):
    """Wipe what identifies a person (see `_anonymise`); their mail files go at once."""
    from .errors import NotFound
    from .mail import remove_mail_files

    person = db.session.get(Person, person_id)
    if person is None:
        raise NotFound("person_not_found", "参加者が見つかりません。")
    if person.anonymised_at is not None:
        return person
    remove_mail_files(_anonymise([person_id], reason=reason, actor=actor, now=utcnow()))
    return person


def _expired(retention_days: int, now: datetime | None):
    """Not-yet-anonymised people with a registration, none of whose events ended within
    `retention_days` (NOT EXISTS: the database stops at the first recent event of each person)."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    registered = select(Registration.id).where(Registration.person_id == Person.id)
    recent = (select(Registration.id).join(Event, Event.id == Registration.event_id)
              .where(Registration.person_id == Person.id, Event.ends_at >= cutoff))
    return select(Person.id).where(Person.anonymised_at.is_(None), registered.exists(), ~recent.exists())


def expired_people(retention_days: int, now: datetime | None = None) -> list[int]:
    """Ids of not-yet-anonymised people whose events all ended more than `retention_days` ago."""
    return list(db.session.execute(_expired(retention_days, now).order_by(Person.id)).scalars())


@dataclass(frozen=True)
class PurgePlan:
    """What purge-expired would do (--dry-run)."""

    people: int
    registrations: int
    mails: int  # outbox rows of those people (by registration or address)
    sample: list[int]  # the first person ids


def plan_purge(retention_days: int, now: datetime | None = None) -> PurgePlan:
    expired = _expired(retention_days, now).subquery()
    registrations = select(Registration.id).where(Registration.person_id.in_(select(expired.c.id)))
    emails = select(Person.email).where(Person.id.in_(select(expired.c.id)), Person.email.is_not(None))
    count = lambda stmt: db.session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()  # noqa: E731
    return PurgePlan(
        people=count(select(expired.c.id)),
        registrations=count(registrations),
        mails=count(union(select(OutboxMessage.id).where(OutboxMessage.registration_id.in_(registrations)),
                          select(OutboxMessage.id).where(OutboxMessage.to_addr.in_(emails)))),
        sample=list(db.session.execute(select(expired.c.id).order_by(expired.c.id).limit(SAMPLE)).scalars()))


def purge_expired(retention_days: int, now: datetime | None = None, *, batch_size: int = PURGE_BATCH,
                  commit: Callable[[], None] | None = None) -> int:
    """Anonymise everyone past retention, `batch_size` people at a time. After each batch `commit` is
    called (the CLI commits there, so no transaction holds thousands of people and a run that is
    stopped resumes where it was: anonymised people are no longer expired), then their mail files are
    removed. Audit entries are written in bulk, one per person. Without `commit` everything stays in
    the caller's transaction. Running it again does nothing new (safe daily from cron). Returns the
    number of people anonymised."""
    from .mail import remove_mail_files

    now = now or utcnow()
    reason = f"保存期間({retention_days}日)経過"
    # The ids once (one anti-join, ~0.1 s at 50,000 people: cheaper than one per batch); each batch
    # checks its own ids again, so someone who signed up again meanwhile is left alone.
    candidates = expired_people(retention_days, now)
    done = 0
    for start in range(0, len(candidates), batch_size):
        chunk = candidates[start:start + batch_size]
        # FOR UPDATE (PostgreSQL): a sign-up of one of them that inserts its registration after this
        # check waits for the batch's commit (the foreign key's row lock) instead of slipping in between.
        ids = list(db.session.execute(_expired(retention_days, now).where(Person.id.in_(chunk))
                                      .order_by(Person.id).with_for_update(of=Person)).scalars())
        message_ids = _anonymise(ids, reason=reason, actor="purge-expired", now=now)
        if commit is not None:
            commit()
        remove_mail_files(message_ids)
        done += len(ids)
    return done


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

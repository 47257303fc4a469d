"""Announcements of future events to people who opted in (特定電子メール法), and their consent.

Consent (see docs/security.md, 特定電子メール法):
- Only the mailbox's owner can opt in. Ticking 「次回以降のイベントのお知らせを受け取る」 at sign-up
  writes no consent: it mails the address a signed confirmation link (OPT_IN_MAIL); consent is
  recorded when that link's page is confirmed (POST). In マイページ (mailbox proven by the sign-in
  link) the choice applies at once. An unverified sign-up thus never changes anyone's consent.
- The record (`announcement_consents`) keeps the wording version agreed to, when, and where from;
  every change is also in the audit log.
- Withdrawal: a one-click link in every announcement (no login), the RFC 8058 List-Unsubscribe
  POST, or マイページ. It takes effect at once: announcements still queued for the address are
  suppressed at sending time (`mail_suppression`). Transactional mail is never affected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from flask import Flask, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import AnnouncementConsent, Attendance, CheckIn, Event, OutboxMessage, Person, Registration
from ..models.base import utcnow
from ..urls import external_url
from . import audit, mail, text
from .errors import DomainError, NotFound, ValidationFailed
from .fiscal import fiscal_year_bounds
from .people import PREFECTURES

# The wording a person agrees to; a new wording gets a new version (records keep the one agreed to).
ANNOUNCEMENT_CONSENT_VERSION = "2026-12"
# Lazy: pages show it in the reader's language (the English text is a translation of this version).
ANNOUNCEMENT_CONSENT_LABEL = lazy_gettext("次回以降のイベントのお知らせを受け取る")
ANNOUNCEMENT_CONSENT_TEXT = lazy_gettext(
    "岩手県 遠恋複業課 事務局から、今後のセミナー・フィールドワーク・マッチング会のご案内をメールでお送りします。"
    "配信はいつでも、お知らせメール内のリンクまたはマイページから停止できます。"
    "お申し込みの確認やリマインダーなど、お申し込みに関するメールは停止後も届きます。"
)
OPT_IN_MAIL = "announcement_opt_in"
ANNOUNCEMENT_MAIL = "announcement"
OPT_IN_SALT = "announcement-opt-in"
OPT_IN_MAX_AGE = timedelta(days=30)
# At most one confirmation mail per address in this time, however many sign-ups tick the box (a
# stranger signing someone's address up for several events must not fill their inbox).
OPT_IN_QUIET = timedelta(hours=24)
INTRO_LIMIT = 2000
# Audience filter: attended events of these groups (check-in or attendance row on a confirmed registration).
ATTENDED_GROUPS = {
    "fieldwork": ("フィールドワーク", ("fieldwork",)),
    "seminar": ("セミナー(オンライン・会場)", ("online_seminar", "onsite_seminar")),
    "matching": ("マッチング会", ("matching_session",)),
}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=OPT_IN_SALT)


def consent_for(person: Person | None) -> AnnouncementConsent | None:
    if person is None or person.id is None:
        return None
    return db.session.execute(
        select(AnnouncementConsent).where(AnnouncementConsent.person_id == person.id)).scalar_one_or_none()


def is_subscribed(person: Person | None) -> bool:
    consent = consent_for(person)
    return consent is not None and consent.is_active


# --- opting in -----------------------------------------------------------------------------------

def request_opt_in(registration: Registration) -> OutboxMessage | None:
    """A sign-up ticked the box: mail the address a confirmation link (nothing is recorded yet).

    Nothing is sent when the address has no mailbox (walk-ins) or is already subscribed."""
    person = registration.person
    if person is None or not person.email or is_subscribed(person):
        return None
    recent = db.session.execute(select(OutboxMessage.id).where(
        OutboxMessage.kind == OPT_IN_MAIL, OutboxMessage.to_addr == person.email,
        OutboxMessage.created_at > utcnow() - OPT_IN_QUIET).limit(1)).first()
    if recent is not None:
        return None
    token = _serializer().dumps({"p": person.id, "e": person.email, "r": registration.id})
    return mail.queue(OPT_IN_MAIL, person.email, OPT_IN_MAIL, {
        "registration": registration, "event": registration.event, "person": person,
        "confirm_url": external_url("public.announcement_opt_in", token=token),
        "consent_label": ANNOUNCEMENT_CONSENT_LABEL, "consent_text": ANNOUNCEMENT_CONSENT_TEXT,  # lazy: Japanese in the mail
        "max_age_days": OPT_IN_MAX_AGE.days,
    }, registration=registration)


def check_opt_in_token(token: str) -> tuple[Person, int | None]:
    """The person a confirmation link was mailed to (still holding that address), and the sign-up."""
    invalid = NotFound("opt_in_link_invalid",
                       _("このリンクは無効か、有効期限が切れています。マイページからお知らせの受け取りを設定できます。"))
    try:
        data = _serializer().loads(token, max_age=int(OPT_IN_MAX_AGE.total_seconds()))
    except (SignatureExpired, BadSignature):
        raise invalid from None
    if not isinstance(data, dict) or not isinstance(data.get("p"), int):
        raise invalid
    person = db.session.get(Person, data["p"])
    # The address must still be the one the link was mailed to (anonymised or merged people: no).
    if person is None or person.anonymised_at is not None or not person.email or person.email != data.get("e"):
        raise invalid
    registration_id = data.get("r") if isinstance(data.get("r"), int) else None
    return person, registration_id


def confirm_opt_in(token: str, *, now: datetime | None = None) -> AnnouncementConsent:
    """The mailbox's owner confirmed on the page of the mailed link: record the consent."""
    person, registration_id = check_opt_in_token(token)
    if registration_id is not None and db.session.get(Registration, registration_id) is None:
        registration_id = None
    return _opt_in(person, "signup", registration_id=registration_id, now=now)


def set_from_mypage(person: Person, wanted: bool, *, now: datetime | None = None) -> AnnouncementConsent | None:
    """マイページ's choice (the mailbox is proven by its sign-in link): applies at once."""
    if wanted:
        return _opt_in(person, "mypage", now=now)
    consent = consent_for(person)
    if consent is not None and consent.is_active:
        _withdraw(consent, "mypage", now or utcnow())
    return consent


def _opt_in(person: Person, source: str, *, registration_id: int | None = None,
            now: datetime | None = None) -> AnnouncementConsent:
    now = now or utcnow()
    consent = consent_for(person)
    if consent is not None and consent.is_active and consent.consent_version == ANNOUNCEMENT_CONSENT_VERSION:
        return consent  # already agreed to this wording: the first record stands
    values = {"status": "active", "consent_version": ANNOUNCEMENT_CONSENT_VERSION, "consented_at": now,
              "source": source, "registration_id": registration_id, "withdrawn_at": None, "withdrawn_via": ""}
    if consent is None:
        consent = AnnouncementConsent(person_id=person.id, **values)
        try:
            with db.session.begin_nested():  # two clicks at once: the unique person_id lets one win
                db.session.add(consent)
        except IntegrityError:
            return consent_for(person)
    else:
        # The unsubscribe token is kept on a renewed consent: links in older announcements still work.
        for name, value in values.items():
            setattr(consent, name, value)
        db.session.flush()
    audit.record("announcement_consent", "person", person.id,
                 f"お知らせの受け取りに同意({ANNOUNCEMENT_CONSENT_VERSION}, {source})",
                 {"version": ANNOUNCEMENT_CONSENT_VERSION, "source": source, "registration_id": registration_id},
                 actor=f"participant:{person.id}")
    return consent


# --- unsubscribing -------------------------------------------------------------------------------

def consent_by_token(token: str) -> AnnouncementConsent:
    consent = db.session.execute(select(AnnouncementConsent).where(
        AnnouncementConsent.unsubscribe_token == token[:64])).scalar_one_or_none() if token else None
    if consent is None:
        raise NotFound("unsubscribe_link_invalid", _("配信停止のリンクが見つかりません。"))
    return consent


def unsubscribe(token: str, *, via: str = "link", now: datetime | None = None) -> AnnouncementConsent:
    """Stop announcements for the token's person; repeating it changes nothing."""
    consent = consent_by_token(token)
    if consent.is_active:
        _withdraw(consent, via, now or utcnow())
    return consent


def _withdraw(consent: AnnouncementConsent, via: str, now: datetime) -> None:
    consent.status, consent.withdrawn_at, consent.withdrawn_via = "withdrawn", now, via
    db.session.flush()
    audit.record("announcement_unsubscribe", "person", consent.person_id, f"お知らせの配信停止({via})",
                 {"via": via}, actor=f"participant:{consent.person_id}")


def mail_suppression(message: OutboxMessage) -> str | None:
    """Mail hook: an announcement goes out only while its address belongs to a subscribed person."""
    if message.kind != ANNOUNCEMENT_MAIL:
        return None  # transactional mail is never held back by unsubscribing
    subscribed = db.session.execute(
        select(AnnouncementConsent.id).join(Person, Person.id == AnnouncementConsent.person_id).where(
            Person.email == message.to_addr, Person.anonymised_at.is_(None),
            AnnouncementConsent.status == "active")
    ).first()
    return None if subscribed else "unsubscribed"


# --- staff: announcing an event ------------------------------------------------------------------

@dataclass(frozen=True)
class AudienceFilter:
    attended: tuple[str, ...] = ()  # keys of ATTENDED_GROUPS; empty: everyone subscribed
    prefecture: str = ""
    fiscal_year: int | None = None  # attended in this 年度 (with `attended`, of those kinds)

    def describe(self) -> dict:
        return {"attended": list(self.attended), "prefecture": self.prefecture, "fiscal_year": self.fiscal_year}


def parse_filter(values: dict) -> AudienceFilter:
    """The staff form's filter (`attended` may be a list); raises ValidationFailed."""
    errors: dict[str, str] = {}
    attended = values.get("attended") or []
    attended = [attended] if isinstance(attended, str) else list(attended)
    if any(key not in ATTENDED_GROUPS for key in attended):
        errors["attended"] = "参加歴の種類を選択肢から選んでください。"
    prefecture = str(values.get("prefecture") or "").strip()
    if prefecture and prefecture not in PREFECTURES:
        errors["prefecture"] = "都道府県を選択肢から選んでください。"
    raw_year = str(values.get("fiscal_year") or "").strip()
    year = None
    if raw_year:
        if not raw_year.isascii() or not raw_year.isdigit() or not 2000 <= int(raw_year) <= 2100:
            errors["fiscal_year"] = "年度は西暦の4桁(例: 2026)で入力してください。"
        else:
            year = int(raw_year)
    if errors:
        raise ValidationFailed(errors)
    return AudienceFilter(tuple(k for k in ATTENDED_GROUPS if k in attended), prefecture, year)


def audience(event: Event, flt: AudienceFilter) -> list[Person]:
    """Subscribed people with an address matching the filter, without those already signed up for `event`."""
    stmt = (select(Person).join(AnnouncementConsent, AnnouncementConsent.person_id == Person.id)
            .where(AnnouncementConsent.status == "active", Person.email.is_not(None), Person.anonymised_at.is_(None)))
    if flt.prefecture:
        stmt = stmt.where(Person.prefecture == flt.prefecture)
    if flt.attended or flt.fiscal_year is not None:
        attended_reg = (select(Registration.id).join(Event, Event.id == Registration.event_id).where(
            Registration.person_id == Person.id, Registration.status == "confirmed",
            exists().where(CheckIn.registration_id == Registration.id, CheckIn.undone_at.is_(None),
                           CheckIn.duplicate_of_id.is_(None))
            | exists().where(Attendance.registration_id == Registration.id)))
        if flt.attended:
            kinds = [kind for key in flt.attended for kind in ATTENDED_GROUPS[key][1]]
            attended_reg = attended_reg.where(Event.kind.in_(kinds))
        if flt.fiscal_year is not None:
            start, end = fiscal_year_bounds(flt.fiscal_year)
            attended_reg = attended_reg.where(Event.starts_at >= start, Event.starts_at < end)
        stmt = stmt.where(attended_reg.exists())
    already = select(Registration.id).where(Registration.event_id == event.id, Registration.person_id == Person.id,
                                            Registration.status != "cancelled")
    stmt = stmt.where(~already.exists())
    return list(db.session.execute(stmt.order_by(Person.id)).scalars())


def sender_identity() -> dict[str, str]:
    """Who sends announcements, as 特定電子メール法 requires it shown: name, postal address, contact."""
    config = current_app.config
    return {"name": config.get("ORGANISER_NAME", ""), "address": config.get("ORGANISER_ADDRESS", ""),
            "contact": config.get("ORGANISER_CONTACT", "")}


def announcement_context(event: Event, person: Person, consent: AnnouncementConsent, intro: str) -> dict:
    return {"event": event, "person": person, "intro": intro, "sender": sender_identity(),
            "event_url": external_url("public.event_detail", slug=event.slug),
            "unsubscribe_url": external_url("public.announcement_unsubscribe", token=consent.unsubscribe_token),
            "mypage_url": external_url("mypage.request_link")}


def unsubscribe_headers(consent: AnnouncementConsent) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe with the RFC 8058 one-click POST (and a mailto: when configured)."""
    url = external_url("public.announcement_unsubscribe", token=consent.unsubscribe_token)
    targets = [f"<{url}>"]
    if mailto := current_app.config.get("ANNOUNCEMENT_UNSUBSCRIBE_MAILTO"):
        targets.append(f"<mailto:{mailto}?subject={quote('unsubscribe ' + consent.unsubscribe_token)}>")
    return {"List-Unsubscribe": ", ".join(targets), "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def check_can_announce(event: Event, now: datetime | None = None) -> None:
    now = now or utcnow()
    if event.status != "published" or event.ends_at <= now:
        raise DomainError("event_not_announceable", "お知らせできるのは公開中で終了前のイベントだけです。")
    sender = sender_identity()
    if not all(sender.values()):
        # 特定電子メール法: no announcement without the sender's name, postal address and contact.
        raise DomainError("sender_not_configured", "送信者の表示(ORGANISER_NAME・ORGANISER_ADDRESS・"
                                                   "ORGANISER_CONTACT)が設定されていないため送信できません。")


def clean_intro(raw: object) -> str:
    errors: dict[str, str] = {}
    intro = text.check(errors, "intro", raw, limit=INTRO_LIMIT, multiline=True)
    if errors:
        raise ValidationFailed(errors)
    return intro


def announce(event_id: int, flt: AudienceFilter, intro: str, *, expected: int | None,
             now: datetime | None = None) -> int:
    """Queue one announcement per person of the audience; `expected` is the count staff confirmed
    (a different count now refuses, so nobody is mailed who was not in the preview). Returns the count."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    check_can_announce(event, now)
    intro = clean_intro(intro)
    people = audience(event, flt)
    if expected is None or expected != len(people):
        raise DomainError("audience_changed", f"送信先が確認時から変わりました(現在 {len(people)} 名)。"
                                              "人数を確認してからもう一度送信してください。")
    if not people:
        raise DomainError("audience_empty", "送信先がいません。")
    consents = dict(db.session.execute(select(AnnouncementConsent.person_id, AnnouncementConsent).where(
        AnnouncementConsent.person_id.in_([p.id for p in people]))).all())
    for person in people:
        consent = consents[person.id]
        mail.queue(ANNOUNCEMENT_MAIL, person.email, ANNOUNCEMENT_MAIL,
                   announcement_context(event, person, consent, intro), headers=unsubscribe_headers(consent))
    audit.record("announce", "event", event.id, f"{event.title}: お知らせを{len(people)}名に送信",
                 {"filter": flt.describe(), "recipients": len(people), "person_ids": [p.id for p in people],
                  "intro": intro})
    return len(people)


def preview(event: Event, flt: AudienceFilter, intro: str) -> tuple[list[Person], tuple[str, str] | None]:
    """The audience and the mail as the first of them would get it (subject, body)."""
    people = audience(event, flt)
    if not people:
        return people, None
    consent = consent_for(people[0])
    return people, mail.render(ANNOUNCEMENT_MAIL, announcement_context(event, people[0], consent, intro))


def init_app(app: Flask) -> None:
    app.extensions["eventapp_mail_suppress"] = mail_suppression

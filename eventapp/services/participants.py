"""The per-event participant list and what staff do with it (phone sign-ups, moves, notes, mail)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError
from sqlalchemy import delete, func, or_, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from ..extensions import db
from ..formatting import kana_sort_key
from ..models import ATTENDEE_FIELDS, Answer, CheckIn, Event, Invitation, Outcome, Person, Registration, User
from ..models.base import utcnow
from . import audit, mail, text
from .capacity import Counts, counts_for, lock_event
from .errors import DomainError, NotFound, ValidationFailed
from .people import clean_text, is_kana_reading, normalise_email, validate_person
from .registration import (
    SignupRequest,
    SignupResult,
    apply_attendee_changes,
    sign_up,
    validate_answers,
    waitlist_position,
)

SORTS = ("kana", "signup")
STATUS_FILTERS = ("active", "confirmed", "waitlisted", "applied", "not_selected", "cancelled", "all")


@dataclass(frozen=True)
class ParticipantList:
    rows: list[Registration]
    counts: Counts
    cancelled: int
    waitlist_positions: dict[int, int]
    # (question id, label) for the answer filter: active questions, then removed ones not re-added
    filter_questions: tuple[tuple[int, str], ...] = ()
    total: int = 0       # rows matching the filters, over all pages
    page: int = 1
    pages: int = 1
    per_page: int = 0


def filter_questions(event: Event) -> tuple[tuple[int, str], ...]:
    """Questions to filter by, each listed once: a question removed and added again (same key or text)
    is one entry, not two; removed ones that still matter for old answers come last, marked."""
    active = list(event.active_questions)
    seen = {q.key for q in active} | {q.label for q in active}
    options = [(q.id, q.label) for q in active]
    for question in event.questions:
        if not question.is_active and question.key not in seen and question.label not in seen:
            seen |= {question.key, question.label}
            options.append((question.id, f"{question.label}(削除済み)"))
    return tuple(options)


def _fold(value: str) -> str:
    """Case/width/kana-insensitive text for searching (カタカナ ≡ ひらがな, ＡＢＣ ≡ abc)."""
    return text.search_fold(value)


def registrations_for(event_id: int) -> list[Registration]:
    return list(db.session.execute(
        select(Registration).where(Registration.event_id == event_id)
        .options(selectinload(Registration.person), selectinload(Registration.answers))
        .order_by(Registration.created_at, Registration.id)
    ).scalars().all())


PARTICIPANTS_PER_PAGE = 100


def participant_list(event: Event, *, q: str = "", status: str = "active", question_id: int | None = None,
                     answer: str = "", sort: str = "kana", page: int = 1) -> ParticipantList:
    """Search the attendee's name/furigana and the contact email, filter by status and by one question's
    answer, sort 五十音順 (the attendee's furigana) or by time; PARTICIPANTS_PER_PAGE rows a page.

    Status and answer filters are SQL conditions. The rows' keys (id, name, furigana, email, time) come in
    one query of small tuples, bounded by the event's size, because the search folds text (NFKC, カタカナ ≡
    ひらがな) and 五十音順 ignores voiced marks at the first level, which neither database can do; only the
    page's registrations are then loaded as objects, with their person and answers."""
    conditions = [Registration.event_id == event.id]
    if status == "active":
        conditions.append(Registration.status != "cancelled")
    elif status in ("confirmed", "waitlisted", "applied", "not_selected", "cancelled"):
        conditions.append(Registration.status == status)
    if question_id:
        wanted = clean_text(answer)
        answered = select(Answer.id).where(Answer.registration_id == Registration.id, Answer.question_id == question_id)
        if wanted:
            answered = answered.where(Answer.value == wanted)
        conditions.append(answered.exists())
    keys = db.session.execute(select(Registration.id, Registration.name, Registration.furigana, Person.email,
                                     Registration.created_at).join(Person, Person.id == Registration.person_id)
                              .where(*conditions)).all()
    needle = _fold(q)
    if needle:
        keys = [k for k in keys if needle in _fold(k.name) or needle in _fold(k.furigana) or needle in _fold(k.email or "")]
    if sort == "signup":
        keys.sort(key=lambda k: (k.created_at, k.id))
    else:
        keys.sort(key=lambda k: (kana_sort_key(k.furigana), k.id))
    per_page = PARTICIPANTS_PER_PAGE
    pages = max(1, -(-len(keys) // per_page))
    page = min(max(page, 1), pages)
    page_ids = [k.id for k in keys[(page - 1) * per_page:page * per_page]]
    loaded = {r.id: r for r in db.session.execute(
        select(Registration).where(Registration.id.in_(page_ids))
        .options(joinedload(Registration.person), selectinload(Registration.answers))).unique().scalars()
    } if page_ids else {}
    cancelled = db.session.execute(select(func.count()).where(
        Registration.event_id == event.id, Registration.status == "cancelled")).scalar()
    positions = dict(db.session.execute(select(
        Registration.id, func.row_number().over(order_by=(Registration.waitlisted_at, Registration.id))).where(
        Registration.event_id == event.id, Registration.status == "waitlisted")).all())
    return ParticipantList(rows=[loaded[i] for i in page_ids], counts=counts_for(event.id), cancelled=cancelled,
                           waitlist_positions=positions, filter_questions=filter_questions(event),
                           total=len(keys), page=page, pages=pages, per_page=per_page)


def get_registration(registration_id: int, event_id: int | None = None) -> Registration:
    registration = db.session.get(Registration, registration_id)
    if registration is None or (event_id is not None and registration.event_id != event_id):
        raise NotFound("registration_not_found", "お申し込みが見つかりません。")
    return registration


def register_on_behalf(event_id: int, person_input: dict, answers: dict, *, companions: list[dict] | None = None,
                       notify: bool = True) -> SignupResult:
    """A phone sign-up: staff may add people to drafts and closed events; consent is given by phone."""
    try:
        result = sign_up(event_id, SignupRequest(person=person_input, answers=answers, consent=True, source="staff",
                                                 companions=companions or [], staff_override=True,
                                                 notify=notify and bool(person_input.get("email"))))
    except DomainError as exc:
        if exc.code != "duplicate":
            raise
        # Staff may know what an anonymous caller is not told (and no mail goes out to the address).
        raise DomainError("duplicate", "このメールアドレスでは既にこのイベントに申し込まれています。"
                                       "参加者一覧でご確認ください。") from None
    registration = result.registration
    audit.record("register", "registration", registration.id,
                 f"{registration.name} を「{registration.event.title}」に代理申込({registration.status})"
                 + (f" 同行者{len(result.companions)}名" if result.companions else ""),
                 {"event_id": event_id, "person_id": registration.person_id,
                  "companions": [c.id for c in result.companions]})
    return result


def confirm_waitlisted(registration_id: int, *, now: datetime | None = None) -> bool:
    """Move a waitlisted person to confirmed, even past capacity, together with their group: a group
    (a lead and companions still waiting) takes seats together, as promotion does, so staff cannot split
    a family by confirming one of them. Returns True if the event is now over capacity."""
    registration = get_registration(registration_id)
    event = lock_event(registration.event_id)
    db.session.refresh(registration)
    if registration.status != "waitlisted":
        raise DomainError("not_waitlisted", "キャンセル待ちの方だけを参加確定にできます。")
    lead_id = registration.lead_registration_id or registration.id
    group = db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status == "waitlisted",
                                   or_(Registration.id == lead_id, Registration.lead_registration_id == lead_id))
        .order_by(Registration.id)).scalars().all()
    now = now or utcnow()
    for member in group:
        member.status = "confirmed"
        member.confirmed_at = now
    # Not "registration_promoted" (「キャンセルが出たため」): here staff gave the seat, maybe past capacity.
    # One mail to the lead's address listing the companions confirmed with them.
    lead = next((r for r in group if r.id == lead_id), None)
    if lead is not None:
        mail.queue_registration_mail("registration_confirmed_by_staff", lead,
                                     companions=[r for r in group if r is not lead])
    else:  # the lead is no longer waiting (cancelled, or confirmed earlier): each companion its own mail
        for member in group:
            mail.queue_registration_mail("registration_confirmed_by_staff", member)
    db.session.flush()
    confirmed = counts_for(event.id).confirmed
    over = confirmed > event.capacity
    names = "、".join(r.name for r in group)
    audit.record("confirm", "registration", registration.id,
                 f"{names}: キャンセル待ち → 参加確定({confirmed}/{event.capacity}名)",
                 {"event_id": event.id, "over_capacity": over, "group": [r.id for r in group]})
    return over


def cancel_on_behalf(registration_id: int) -> Registration:
    from .registration import cancel

    registration = cancel(registration_id, by="staff")
    audit.record("cancel", "registration", registration.id,
                 f"{registration.name} の「{registration.event.title}」申込を事務局がキャンセル",
                 {"event_id": registration.event_id})
    return registration


def set_note(registration_id: int, note: str) -> Registration:
    registration = get_registration(registration_id)
    note = clean_text(note, multiline=True)
    if len(note) > 2000:
        raise ValidationFailed({"staff_note": "メモは2000文字以内で入力してください。"})
    registration.staff_note = note
    audit.record("note", "registration", registration.id, f"{registration.name}: メモを更新")
    return registration


def resend_confirmation(registration_id: int) -> None:
    """Send the mail that matches the current status again (lost mail, changed address)."""
    registration = get_registration(registration_id)
    if not registration.person.email:
        raise DomainError("no_email", "この方にはメールアドレスの登録がありません(当日参加で未記入、または匿名化済み)。")
    kind = {"confirmed": "registration_confirmed", "waitlisted": "registration_waitlisted",
            "cancelled": "registration_cancelled", "applied": "registration_applied",
            "not_selected": "lottery_not_selected"}[registration.status]
    mail.queue_registration_mail(kind, registration, waitlist_position=waitlist_position(registration))
    audit.record("resend", "registration", registration.id, f"{registration.name}: 確認メールを再送")


def person_history(person_id: int) -> tuple[Person, list[Registration], dict[int, int]]:
    """A person, their registrations (newest first) and days attended per registration (check-ins)."""
    person = db.session.get(Person, person_id)
    if person is None:
        raise NotFound("person_not_found", "参加者が見つかりません。")
    registrations = db.session.execute(
        select(Registration).where(Registration.person_id == person_id)
        .options(selectinload(Registration.event)).order_by(Registration.created_at.desc())
    ).scalars().all()
    attended: dict[int, int] = {}
    if registrations:
        attended = dict(db.session.execute(
            select(CheckIn.registration_id, func.count()).where(
                CheckIn.registration_id.in_([r.id for r in registrations]), CheckIn.undone_at.is_(None),
                CheckIn.duplicate_of_id.is_(None)).group_by(CheckIn.registration_id)
        ).all())
    return person, list(registrations), attended


SEARCH_LIMIT = 50  # people shown for one search; "more" says there are others (type more of the name)
MAX_NEEDLE = 100  # a search text longer than any name is cut (it would match nothing longer anyway)
# Digits with the separators people type in phone numbers: such a search text is a phone number.
_PHONE_QUERY = re.compile(r"^\+?[0-9()\-\s\u30fc\u2010\u2212]+$")
_NAMES_SEPARATOR = "\x1f"  # between the attendee names aggregated in SQL (never in a validated name)


@dataclass(frozen=True)
class PersonHit:
    """One person found: contact details, their number of registrations and the other attendee names
    they signed up under (a family address, say)."""

    id: int
    name: str
    furigana: str
    email: str | None
    prefecture: str
    registrations: int
    other_attendees: tuple[str, ...]


@dataclass(frozen=True)
class PeopleSearch:
    hits: list[PersonHit]
    more: bool  # more people match than are shown
    by_phone: bool  # the search text was read as a phone number


def _contains(column, needle: str):
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"%{escaped}%", escape="\\")


def search_people(q: str, limit: int | None = None) -> PeopleSearch:
    """People across all events whose contact name, furigana or email, or the name or furigana of one of
    their registrations' attendees, contains the search text (カタカナ ≡ ひらがな, width, case and
    spaces ignored); a phone-shaped text (090-1234) matches the digits of their phone numbers.

    All in SQL on the stored search keys (models.person, indexed), `limit` people in furigana order:
    one statement for the people, their registration counts and attendee names (default SEARCH_LIMIT)."""
    limit = limit or SEARCH_LIMIT
    needle = text.search_fold(q)[:MAX_NEEDLE]
    if not needle:
        return PeopleSearch([], False, False)
    digits = text.phone_digits(q) if _PHONE_QUERY.match(clean_text(q)) else ""
    # One arm per indexed column (an OR of two columns could use neither index).
    by_email = select(Person.id).where(_contains(Person.email, needle))
    if digits:
        matches = union(select(Person.id).where(_contains(Person.search_phone, digits)), by_email,
                        select(Registration.person_id).where(_contains(Registration.search_phone, digits)))
    else:
        matches = union(select(Person.id).where(_contains(Person.search_name, needle)), by_email,
                        select(Registration.person_id).where(_contains(Registration.search_name, needle)))
    # Anonymised people have blank keys; the condition also keeps out an anonymised person's address match.
    shown = (select(Person.id, Person.furigana).where(Person.id.in_(matches), Person.anonymised_at.is_(None))
             .order_by(Person.furigana, Person.id).limit(limit + 1).cte("shown"))  # a CTE: computed once
    per_person = (select(Registration.person_id, func.count().label("n"),
                         func.aggregate_strings(Registration.name, _NAMES_SEPARATOR).label("names"))
                  .where(Registration.person_id.in_(select(shown.c.id))).group_by(Registration.person_id)
                  .subquery())
    rows = db.session.execute(
        select(Person.id, Person.name, Person.furigana, Person.email, Person.prefecture,
               func.coalesce(per_person.c.n, 0), per_person.c.names)
        .join(shown, shown.c.id == Person.id).outerjoin(per_person, per_person.c.person_id == Person.id)
        .order_by(shown.c.furigana, shown.c.id)).all()
    hits = [PersonHit(pid, name, furigana, email, prefecture, count,
                      tuple(dict.fromkeys(n for n in (names or "").split(_NAMES_SEPARATOR) if n and n != name)))
            for pid, name, furigana, email, prefecture, count, names in rows[:limit]]
    hits.sort(key=lambda h: (kana_sort_key(h.furigana), h.id))  # 五十音順 within the page
    return PeopleSearch(hits, len(rows) > limit, bool(digits))


ATTENDEE_LABELS = {"name": "氏名", "furigana": "ふりがな", "phone": "電話番号", "prefecture": "都道府県",
                   "iwate_relation": "岩手とのご関係", "occupation": "ご職業", "skills": "スキル・経験"}


def update_registration_details(registration_id: int, person_input: dict, answers_input: dict, *,
                                staff_user: User | None = None) -> dict:
    """Staff correct one registration's attendee details and answers (the e-mail address is the
    person's and not changed here). Validated like a sign-up, except that staff may leave a
    required answer empty. Returns the changes ({} if none); each change is audit-logged with
    its before and after values."""
    registration = db.session.get(Registration, registration_id, with_for_update=True, populate_existing=True)
    if registration is None:
        raise NotFound("registration_not_found", "お申し込みが見つかりません。")
    if registration.person.anonymised_at is not None:  # a deletion request is not undone by a correction
        raise DomainError("anonymised", "匿名化済みの参加者のお申し込みは修正できません。")
    raw = {name: person_input.get(name, "") for name in ATTENDEE_FIELDS}
    errors: dict[str, str] = {}
    try:
        # A reading given in the English form (Latin letters, or none) may stay so in a correction.
        data = validate_person(raw, email_required=False, latin_reading=not is_kana_reading(registration.furigana))
    except ValidationFailed as exc:
        errors.update(exc.fields)
    answers, answer_errors = validate_answers(registration.event, answers_input or {}, require=False)
    errors.update(answer_errors)
    if errors:
        raise ValidationFailed(errors)
    changes = apply_attendee_changes(registration, data, answers)
    if changes:
        labels = {f"answers.{q.key}": q.label for q in registration.event.questions}
        names = "、".join(ATTENDEE_LABELS.get(k) or labels.get(k, k) for k in changes)
        audit.record("update", "registration", registration.id,
                     f"{registration.name}(「{registration.event.title}」): 参加者情報を修正({names})",
                     {"event_id": registration.event_id, "person_id": registration.person_id, "changes": changes},
                     user=staff_user)
    return changes


@dataclass(frozen=True)
class MergePlan:
    """What merging `merge` into `keep` does: the registrations that move (with their check-ins,
    attendance, preferences, timetable slots and survey answers, which hang on the registration),
    the invitations and matching outcomes that move, and what stands in the way."""

    keep: Person
    merge: Person
    registrations: list[Registration]
    invitations: list[Invitation]
    outcomes: list[Outcome]
    # Invitations of `merge` to a matching session `keep` is invited to as well: dropped (keep's stays).
    duplicate_invitations: list[Invitation]
    # Events both have an active registration for: the merge is refused until one is cancelled.
    conflicts: list[Event]
    # Organisations both have a matching outcome with: refused too (staff decide which record is right).
    outcome_conflicts: list[str]

    @property
    def blocked(self) -> bool:
        return bool(self.conflicts or self.outcome_conflicts)


def find_person_by_email(email: str) -> Person:
    try:
        address = normalise_email(clean_text(email)[:254])
    except EmailNotValidError:  # a malformed address is simply "not found"
        address = ""
    person = db.session.execute(select(Person).where(Person.email == address)).scalar_one_or_none() \
        if address else None
    if person is None:
        raise NotFound("person_not_found", "このメールアドレスの参加者は見つかりません。")
    return person


def _plan(keep: Person, merge: Person) -> MergePlan:
    if keep.id == merge.id:
        raise DomainError("merge_same_person", "同じ参加者どうしは統合できません。")
    if keep.anonymised_at is not None or merge.anonymised_at is not None:
        raise DomainError("merge_anonymised", "匿名化済みの参加者は統合できません。")
    registrations = list(db.session.execute(
        select(Registration).where(Registration.person_id == merge.id)
        .options(selectinload(Registration.event)).order_by(Registration.created_at, Registration.id)
    ).scalars())
    kept_active = set(db.session.execute(select(Registration.event_id).where(
        Registration.person_id == keep.id, Registration.status != "cancelled")).scalars())
    conflicts = [r.event for r in registrations if r.is_active and r.event_id in kept_active]
    invitations = list(db.session.execute(select(Invitation).where(Invitation.person_id == merge.id)).scalars())
    kept_invited = set(db.session.execute(select(Invitation.matching_event_id).where(
        Invitation.person_id == keep.id)).scalars())
    outcomes = list(db.session.execute(select(Outcome).where(Outcome.person_id == merge.id)
                                       .options(selectinload(Outcome.organisation))).scalars())
    kept_orgs = set(db.session.execute(select(Outcome.organisation_id).where(Outcome.person_id == keep.id)).scalars())
    return MergePlan(
        keep=keep, merge=merge, registrations=registrations,
        invitations=[i for i in invitations if i.matching_event_id not in kept_invited],
        duplicate_invitations=[i for i in invitations if i.matching_event_id in kept_invited],
        outcomes=[o for o in outcomes if o.organisation_id not in kept_orgs],
        conflicts=conflicts,
        outcome_conflicts=[o.organisation.name for o in outcomes if o.organisation_id in kept_orgs])


def merge_preview(keep_id: int, merge_email: str) -> MergePlan:
    """What `merge_people` would do with the person of `merge_email` (read only)."""
    keep = db.session.get(Person, keep_id)
    if keep is None:
        raise NotFound("person_not_found", "参加者が見つかりません。")
    return _plan(keep, find_person_by_email(merge_email))


def _refusal(plan: MergePlan) -> DomainError:
    parts = []
    if plan.conflicts:
        parts.append("両方のメールアドレスで申し込まれているイベントがあります: "
                     + "、".join(f"「{e.title}」" for e in plan.conflicts)
                     + "。どちらかのお申し込みをキャンセルしてから統合してください。")
    if plan.outcome_conflicts:
        parts.append("両方にマッチングの記録がある団体があります: " + "、".join(plan.outcome_conflicts)
                     + "。どちらかの記録を整理してから統合してください。")
    return DomainError("merge_conflict", "".join(parts))


def merge_people(keep_id: int, merge_id: int, *, staff_user: User | None = None) -> MergePlan:
    """Merge person `merge_id` (e.g. a mistyped address) into `keep_id`: every registration moves
    (their check-ins, attendance, preferences, timetable slots and survey answers hang on the
    registration and move with it; the attendee details stay as given), and so do invitations and
    matching outcomes. The merged person row is then deleted: its address no longer exists in
    the app (its calendar feed URL stops working); the audit entry keeps its id and address.

    Refused (DomainError `merge_conflict`, naming the events) when both have an active registration
    for the same event, or an outcome with the same organisation. Both people's rows are locked
    (SELECT … FOR UPDATE, in id order; on SQLite the request holds the write lock)."""
    if keep_id == merge_id:
        raise DomainError("merge_same_person", "同じ参加者どうしは統合できません。")
    people = {p.id: p for p in db.session.execute(
        select(Person).where(Person.id.in_([keep_id, merge_id])).order_by(Person.id)
        .with_for_update().execution_options(populate_existing=True)).scalars()}
    if keep_id not in people or merge_id not in people:
        raise NotFound("person_not_found", "参加者が見つかりません。")
    keep, merge = people[keep_id], people[merge_id]
    # The registrations of both, locked too: a cancellation or sign-up in between cannot change the answer.
    db.session.execute(select(Registration.id).where(Registration.person_id.in_([keep_id, merge_id]))
                       .with_for_update())
    plan = _plan(keep, merge)
    if plan.blocked:
        raise _refusal(plan)
    details = {
        "merged_person_id": merge.id, "merged_email": merge.email, "kept_email": keep.email,
        "registrations": [r.id for r in plan.registrations],
        "invitations": [i.id for i in plan.invitations],
        "dropped_invitations": [i.id for i in plan.duplicate_invitations],
        "outcomes": [o.id for o in plan.outcomes],
    }
    try:
        with db.session.begin_nested():  # a sign-up that slipped in still meets the unique indexes
            if plan.duplicate_invitations:
                db.session.execute(delete(Invitation).where(
                    Invitation.id.in_([i.id for i in plan.duplicate_invitations])))
            db.session.execute(update(Registration).where(Registration.person_id == merge.id)
                               .values(person_id=keep.id))
            db.session.execute(update(Invitation).where(Invitation.person_id == merge.id).values(person_id=keep.id))
            db.session.execute(update(Outcome).where(Outcome.person_id == merge.id).values(person_id=keep.id))
    except IntegrityError as exc:
        raise DomainError("merge_conflict", "統合中に同じイベントへの申込が重なりました。もう一度お試しください。") from exc
    db.session.expire_all()
    merged = db.session.get(Person, merge_id)
    db.session.delete(merged)
    db.session.flush()
    audit.record("merge", "person", keep_id,
                 f"{details['merged_email'] or merge_id} を {details['kept_email'] or keep_id} に統合"
                 f"(申込{len(details['registrations'])}件を移動)", details, user=staff_user)
    return plan

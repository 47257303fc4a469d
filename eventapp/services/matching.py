"""Matching sessions: linked earlier events, access rules, invitations, ranked preferences,
the saved timetable, outcomes and a person's journey."""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select

from ..extensions import db
from ..formatting import format_datetime, kana_sort_key
from ..models import (
    ATTENDEE_FIELDS,
    Event,
    EventOrganisation,
    Invitation,
    MatchingLink,
    MatchingSettings,
    Organisation,
    Outcome,
    Person,
    Preference,
    Registration,
    TimetableSlot,
    User,
)
from ..models.base import utcnow
from ..models.matching import ACCESS_RULES, LINK_SCOPES, MATCHED_STATUSES, OUTCOME_STATUSES
from ..models.organisation import PROJECT_TYPES
from . import attendance, mail
from .errors import DomainError, NotFound, ValidationFailed
from .fiscal import fiscal_year, fiscal_year_bounds
from .people import clean_text, normalise_email
from .timetable import Meeting, build_timetable, validate_timetable

MAX_PREFERENCES = 5
SEMINAR_KINDS = ("online_seminar", "onsite_seminar")
NOT_ELIGIBLE_MESSAGE = ("このマッチング会は、対象のフィールドワーク・セミナーに参加された方のみお申し込みいただけます。"
                        "参加されたのにお申し込みできない場合は、事務局へご連絡ください。")


# ---------------------------------------------------------------- settings and links

def settings_for(event_id: int) -> MatchingSettings:
    """The session's settings; a session without a row is open to all with 4 rounds."""
    settings = db.session.get(MatchingSettings, event_id)
    return settings or MatchingSettings(event_id=event_id, access_rule="open", rounds=4, org_capacity_per_round=1,
                                        minutes_per_round=15)


def _matching_event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    if event.kind != "matching_session":
        raise DomainError("not_matching_session", "マッチング会ではないイベントです。")
    return event


def configure(event_id: int, *, access_rule: str, attendees_from: datetime | None = None,
              others_from: datetime | None = None, rounds: int = 4, org_capacity_per_round: int = 1,
              minutes_per_round: int = 15, links: list[tuple[str, int | None]] | None = None) -> MatchingSettings:
    """Set the access rule, the timetable shape and (when given) the linked earlier events."""
    event = _matching_event(event_id)
    errors: dict[str, str] = {}
    if access_rule not in ACCESS_RULES:
        errors["access_rule"] = "申込条件を選んでください。"
    if access_rule == "priority":
        if attendees_from is None:
            errors["attendees_from"] = "参加者の先行受付開始日時を入力してください。"
        if others_from is None:
            errors["others_from"] = "一般受付開始日時を入力してください。"
        if attendees_from and others_from and others_from < attendees_from:
            errors["others_from"] = "一般受付開始は先行受付開始より後にしてください。"
    for name, value in (("rounds", rounds), ("org_capacity_per_round", org_capacity_per_round)):
        if not isinstance(value, int) or not 1 <= value <= 20:
            errors[name] = "1〜20の数で入力してください。"
    if not isinstance(minutes_per_round, int) or not 1 <= minutes_per_round <= 120:
        errors["minutes_per_round"] = "1〜120分で入力してください。"
    if links is not None:
        for scope, linked_id in links:
            if scope not in LINK_SCOPES or (scope == "event") != (linked_id is not None):
                errors["links"] = "対象イベントの指定が正しくありません。"
            elif linked_id is not None:
                linked = db.session.get(Event, linked_id)
                if linked is None or linked.id == event.id or linked.kind == "matching_session":
                    errors["links"] = "対象イベントにはフィールドワークかセミナーを選んでください。"
    if access_rule != "open" and links is not None and not links:
        errors["links"] = "参加者優先・参加者限定にするには、対象イベントを1つ以上選んでください。"
    if errors:
        raise ValidationFailed(errors)
    settings = db.session.get(MatchingSettings, event_id)
    if settings is None:
        settings = MatchingSettings(event_id=event_id)
        db.session.add(settings)
    settings.access_rule = access_rule
    settings.attendees_from = attendees_from if access_rule == "priority" else None
    settings.others_from = others_from if access_rule == "priority" else None
    settings.rounds, settings.org_capacity_per_round = rounds, org_capacity_per_round
    settings.minutes_per_round = minutes_per_round
    if links is not None:
        db.session.execute(delete(MatchingLink).where(MatchingLink.matching_event_id == event_id))
        for scope, linked_id in dict.fromkeys(links):
            db.session.add(MatchingLink(matching_event_id=event_id, scope=scope, linked_event_id=linked_id))
    db.session.flush()
    return settings


def links_for(event_id: int) -> list[MatchingLink]:
    return list(db.session.execute(
        select(MatchingLink).where(MatchingLink.matching_event_id == event_id).order_by(MatchingLink.id)
    ).scalars().all())


def linked_events(matching_event: Event) -> list[Event]:
    """The earlier events whose attendees count for this session (resolved now, so a fieldwork added
    later in the same fiscal year counts too)."""
    result: dict[int, Event] = {}
    year_start, year_end = fiscal_year_bounds(fiscal_year(matching_event.starts_at))
    for link in links_for(matching_event.id):
        if link.scope == "event" and link.linked_event is not None:
            result[link.linked_event.id] = link.linked_event
            continue
        kinds = ("fieldwork",) if link.scope == "fy_fieldwork" else SEMINAR_KINDS
        events = db.session.execute(select(Event).where(
            Event.kind.in_(kinds), Event.status != "cancelled", Event.starts_at >= year_start,
            Event.starts_at < year_end, Event.starts_at < matching_event.starts_at)).scalars().all()
        result.update({e.id: e for e in events})
    return sorted(result.values(), key=lambda e: e.starts_at)


def matching_sessions_linked_to(event: Event) -> list[Event]:
    """Upcoming matching sessions for which attending `event` counts."""
    sessions = db.session.execute(select(Event).where(
        Event.kind == "matching_session", Event.status == "published", Event.starts_at > event.starts_at)
    ).scalars().all()
    return [s for s in sessions if event.id in {e.id for e in linked_events(s)}]


# ---------------------------------------------------------------- eligibility

@dataclass(frozen=True)
class Eligibility:
    allowed: bool
    reason: str          # open | attendee | override | not_yet | attendees_only | priority_wait
    message: str = ""


def _person_by_email(email: str) -> Person | None:
    try:
        email = normalise_email(email)
    except Exception:
        return None
    return db.session.execute(select(Person).where(Person.email == email)).scalar_one_or_none()


def is_attendee(matching_event: Event, person_id: int) -> bool:
    ids = [e.id for e in linked_events(matching_event)]
    return person_id in attendance.attended_person_ids(ids) if ids else False


def eligibility(event: Event, person_email: str, now: datetime | None = None) -> Eligibility:
    now = now or utcnow()
    settings = settings_for(event.id)
    if settings.access_rule == "open":
        return Eligibility(True, "open")
    person = _person_by_email(person_email)
    if person is not None:
        override = db.session.execute(select(Invitation).where(
            Invitation.matching_event_id == event.id, Invitation.person_id == person.id,
            Invitation.reason == "override")).scalar_one_or_none()
        if override is not None:
            return Eligibility(True, "override")
    attendee = person is not None and is_attendee(event, person.id)
    if settings.access_rule == "attendees_only":
        if attendee:
            return Eligibility(True, "attendee")
        return Eligibility(False, "attendees_only", NOT_ELIGIBLE_MESSAGE)
    # priority
    if attendee:
        if now >= settings.attendees_from:
            return Eligibility(True, "attendee")
        return Eligibility(False, "not_yet", f"先行受付は{format_datetime(settings.attendees_from)}から始まります。")
    if now >= settings.others_from:
        return Eligibility(True, "open")
    return Eligibility(False, "priority_wait",
                       "ただいまは対象のフィールドワーク・セミナーに参加された方の先行受付期間です。"
                       f"どなたでもお申し込みいただける一般受付は{format_datetime(settings.others_from)}から始まります。")


def check_eligibility(event: Event, person_email: str, now: datetime | None = None) -> None:
    """Called by registration.register for matching sessions; raises a DomainError with a clear message."""
    result = eligibility(event, person_email, now)
    if not result.allowed:
        raise DomainError("not_eligible", result.message)  # 409 like the other "cannot sign up now" refusals


def grant_override(event_id: int, person_email: str, *, user: User | None = None) -> Invitation:
    """Staff let one person sign up whatever the access rule (e.g. attended but was not checked in)."""
    _matching_event(event_id)
    person = _person_by_email(person_email)
    if person is None:
        raise ValidationFailed({"email": "このメールアドレスの参加者は登録されていません。"})
    invitation = _invitation(event_id, person.id)
    if invitation is None:
        invitation = Invitation(matching_event_id=event_id, person_id=person.id, token=_token())
        db.session.add(invitation)
    invitation.reason = "override"
    invitation.by_user_id = user.id if user else None
    db.session.flush()
    return invitation


# ---------------------------------------------------------------- invitations

def _token() -> str:
    return secrets.token_urlsafe(24)


def _invitation(event_id: int, person_id: int) -> Invitation | None:
    return db.session.execute(select(Invitation).where(
        Invitation.matching_event_id == event_id, Invitation.person_id == person_id)).scalar_one_or_none()


def finalise_attendance_and_invite(event_id: int, *, user: User | None = None,
                                   now: datetime | None = None) -> list[Invitation]:
    """「出席を確定して招待メールを送る」: mark the event's attendance final, then invite its attendees to
    every upcoming matching session it is linked to. Safe to repeat: nobody is invited twice."""
    now = now or utcnow()
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    if event.kind == "matching_session":
        raise DomainError("is_matching_session", "マッチング会の出席からは招待を送りません。")
    if now < event.starts_at:
        raise DomainError("not_started", "イベント開始前には出席を確定できません。")
    state = attendance.state_for(event_id, create=True)
    state.finalised_at = now
    state.finalised_by_id = user.id if user else None
    # The invitation greets the attendee as they signed up for the attended event (one address may
    # have brought someone else than its first sign-up); the person is only the mailbox.
    attended_ids = attendance.attended_registration_ids([event_id])
    names = dict(db.session.execute(select(Registration.person_id, Registration.name).where(
        Registration.id.in_(attended_ids)).order_by(Registration.id)).all()) if attended_ids else {}
    person_ids = set(names)
    invitations: list[Invitation] = []
    for session in matching_sessions_linked_to(event):
        if session.starts_at <= now:
            continue
        registered = set(db.session.execute(select(Registration.person_id).where(
            Registration.event_id == session.id, Registration.status != "cancelled")).scalars().all())
        for person_id in sorted(person_ids - registered):
            if _invitation(session.id, person_id) is not None:
                continue
            person = db.session.get(Person, person_id)
            if person is None or not person.email:
                continue
            invitation = Invitation(matching_event_id=session.id, person_id=person_id, token=_token(),
                                    reason="attendee", created_at=now, sent_at=now,
                                    by_user_id=user.id if user else None)
            db.session.add(invitation)
            db.session.flush()
            mail.queue("matching_invitation", person.email, "matching_invitation", {
                "person": person, "attendee_name": names[person_id], "event": session, "attended": event,
                "invitation": invitation,
                "settings": settings_for(session.id),
                "organisations": event_organisation_list(session.id),
            })
            invitations.append(invitation)
    db.session.flush()
    return invitations


def invitation_by_token(token: str) -> Invitation:
    invitation = None
    if token and len(token) <= 64:
        invitation = db.session.execute(select(Invitation).where(Invitation.token == token)).scalar_one_or_none()
    if invitation is None:
        raise NotFound("invitation_not_found", "招待リンクが見つかりません。メールのリンクをご確認ください。")
    return invitation


def invited_attendee(invitation: Invitation) -> dict[str, str]:
    """What the invitation's sign-up form is pre-filled with: the attendee of the address's latest
    attended registration (the one invited), else the person's contact details (a staff override)."""
    person = invitation.person
    regs = db.session.execute(select(Registration).where(Registration.person_id == person.id)
                              .order_by(Registration.created_at.desc(), Registration.id.desc())).scalars().all()
    attended = attendance.attended_registration_ids(list({r.event_id for r in regs})) if regs else set()
    came = next((r for r in regs if r.id in attended), None)
    return came.attendee if came is not None else {f: getattr(person, f) for f in ATTENDEE_FIELDS}


def invitations_for(event_id: int) -> list[Invitation]:
    return list(db.session.execute(select(Invitation).where(Invitation.matching_event_id == event_id)
                                   .order_by(Invitation.created_at, Invitation.id)).scalars().all())


# ---------------------------------------------------------------- preferences

def event_organisation_list(event_id: int) -> list[Organisation]:
    links = db.session.execute(select(EventOrganisation).where(EventOrganisation.event_id == event_id)
                               ).scalars().all()
    return sorted((link.organisation for link in links), key=lambda o: kana_sort_key(o.furigana or o.name))


def parse_preferences(event: Event, raw: list[str | int | None]) -> list[int]:
    """Organisation ids in rank order from form fields `pref_1`… (blanks skipped); validated."""
    allowed = {o.id for o in event_organisation_list(event.id)}
    chosen: list[int] = []
    for value in raw:
        if value in (None, ""):
            continue
        try:
            org_id = int(value)
        except (TypeError, ValueError):
            raise ValidationFailed({"preferences": "希望する団体は一覧から選んでください。"}) from None
        if org_id not in allowed:
            raise ValidationFailed({"preferences": "希望する団体は一覧から選んでください。"})
        if org_id in chosen:
            raise ValidationFailed({"preferences": "同じ団体を複数の順位に選ぶことはできません。"})
        chosen.append(org_id)
    if len(chosen) > MAX_PREFERENCES:
        raise ValidationFailed({"preferences": f"希望は{MAX_PREFERENCES}団体までです。"})
    if allowed and not chosen:
        raise ValidationFailed({"preferences": "話を聞きたい団体を1つ以上選んでください。"})
    return chosen


def set_preferences(registration: Registration, organisation_ids: list[int]) -> list[Preference]:
    db.session.execute(delete(Preference).where(Preference.registration_id == registration.id))
    db.session.flush()
    prefs = [Preference(registration_id=registration.id, organisation_id=org_id, rank=i + 1)
             for i, org_id in enumerate(organisation_ids)]
    db.session.add_all(prefs)
    db.session.flush()
    return prefs


def preferences_of(registration_id: int) -> list[Preference]:
    return list(db.session.execute(select(Preference).where(Preference.registration_id == registration_id)
                                   .order_by(Preference.rank)).scalars().all())


@dataclass
class PreferenceMatrix:
    registrations: list[Registration]
    organisations: list[Organisation]
    ranks: dict[tuple[int, int], int]           # (registration id, organisation id) → rank
    demand: dict[int, dict[int, int]]           # organisation id → rank → count

    def preferences(self) -> dict[int, list[int]]:
        result: dict[int, list[int]] = {}
        for reg in self.registrations:
            ranked = sorted(((rank, org) for (r, org), rank in self.ranks.items() if r == reg.id))
            result[reg.id] = [org for _, org in ranked]
        return result


def preference_matrix(event_id: int) -> PreferenceMatrix:
    _matching_event(event_id)
    registrations = db.session.execute(select(Registration).where(
        Registration.event_id == event_id, Registration.status == "confirmed")).scalars().all()
    registrations = sorted(registrations, key=lambda r: kana_sort_key(r.furigana))
    orgs = {o.id: o for o in event_organisation_list(event_id)}
    ranks: dict[tuple[int, int], int] = {}
    demand: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    if registrations:
        rows = db.session.execute(select(Preference).where(
            Preference.registration_id.in_([r.id for r in registrations]))).scalars().all()
        for p in rows:
            ranks[(p.registration_id, p.organisation_id)] = p.rank
            demand[p.organisation_id][p.rank] += 1
            orgs.setdefault(p.organisation_id, p.organisation)
    return PreferenceMatrix(registrations, sorted(orgs.values(), key=lambda o: kana_sort_key(o.furigana or o.name)),
                            ranks, {k: dict(v) for k, v in demand.items()})


# ---------------------------------------------------------------- timetable

def generate_timetable(event_id: int) -> list[TimetableSlot]:
    """Replace the saved timetable with a fresh plan from the confirmed participants' preferences."""
    settings = settings_for(event_id)
    matrix = preference_matrix(event_id)
    plan = build_timetable(matrix.preferences(), settings.rounds, settings.org_capacity_per_round)
    db.session.execute(delete(TimetableSlot).where(TimetableSlot.event_id == event_id))
    db.session.flush()
    slots = [TimetableSlot(event_id=event_id, round=m.round, registration_id=m.participant,
                           organisation_id=m.organisation, table_no=m.table) for m in plan.meetings]
    db.session.add_all(slots)
    db.session.flush()
    return slots


def saved_timetable(event_id: int) -> list[TimetableSlot]:
    return list(db.session.execute(select(TimetableSlot).where(TimetableSlot.event_id == event_id)
                                   .order_by(TimetableSlot.round, TimetableSlot.id)).scalars().all())


def set_slot(event_id: int, registration_id: int, round_no: int, organisation_id: int | None) -> None:
    """Hand-edit one cell (participant × round); refuses a change that would double-book anybody."""
    settings = settings_for(event_id)
    matrix = preference_matrix(event_id)
    if registration_id not in {r.id for r in matrix.registrations}:
        raise NotFound("registration_not_found", "参加者が見つかりません。")
    slots = saved_timetable(event_id)
    meetings = [Meeting(s.round, s.registration_id, s.organisation_id, 0, s.table_no) for s in slots
                if not (s.registration_id == registration_id and s.round == round_no)]
    prefs = matrix.preferences()
    if organisation_id is not None:
        meetings.append(Meeting(round_no, registration_id, organisation_id, 0))
    problems = validate_timetable(meetings, prefs, settings.rounds, settings.org_capacity_per_round)
    if problems:
        raise DomainError("timetable_clash", problems[0], status=422)
    for s in slots:
        if s.registration_id == registration_id and s.round == round_no:
            db.session.delete(s)
    db.session.flush()
    if organisation_id is not None:
        used = {s.table_no for s in slots if s.round == round_no and s.organisation_id == organisation_id
                and s.registration_id != registration_id}
        table = next(t for t in range(1, settings.org_capacity_per_round + 1) if t not in used)
        db.session.add(TimetableSlot(event_id=event_id, round=round_no, registration_id=registration_id,
                                     organisation_id=organisation_id, table_no=table))
    db.session.flush()


# ---------------------------------------------------------------- outcomes

def record_outcome(person_id: int, organisation_id: int, *, status: str, matching_event_id: int | None = None,
                   matched_on: date | None = None, project_type: str | None = None,
                   description: str = "") -> Outcome:
    """Create or move on the outcome of a person × organisation."""
    errors: dict[str, str] = {}
    if status not in OUTCOME_STATUSES:
        errors["status"] = "状況を選んでください。"
    org = db.session.get(Organisation, organisation_id)
    if org is None:
        errors["organisation_id"] = "団体を選んでください。"
    if db.session.get(Person, person_id) is None:
        raise NotFound("person_not_found", "参加者が見つかりません。")
    description = clean_text(description, multiline=True)
    if status in MATCHED_STATUSES:
        project_type = project_type or (org.project_type if org else None)
        if matched_on is None:
            errors["matched_on"] = "マッチング成立日を入力してください。"
        if project_type not in PROJECT_TYPES:
            errors["project_type"] = "プロジェクトの型を選んでください。"
    elif project_type not in (None, "", *PROJECT_TYPES):
        errors["project_type"] = "プロジェクトの型を選んでください。"
    if len(description) > 2000:
        errors["description"] = "2000文字以内で入力してください。"
    if errors:
        raise ValidationFailed(errors)
    outcome = db.session.execute(select(Outcome).where(
        Outcome.person_id == person_id, Outcome.organisation_id == organisation_id)).scalar_one_or_none()
    if outcome is None:
        outcome = Outcome(person_id=person_id, organisation_id=organisation_id)
        db.session.add(outcome)
    outcome.status = status
    if matching_event_id is not None:
        outcome.matching_event_id = matching_event_id
    if status in MATCHED_STATUSES:
        outcome.matched_on, outcome.project_type = matched_on, project_type
    else:
        outcome.matched_on, outcome.project_type = None, project_type or None
    if description or status not in MATCHED_STATUSES:
        outcome.description = description
    db.session.flush()
    return outcome


def outcomes_for_event(event_id: int) -> list[Outcome]:
    return list(db.session.execute(select(Outcome).where(Outcome.matching_event_id == event_id)
                                   .order_by(Outcome.id)).scalars().all())


def outcomes_for_person(person_id: int) -> list[Outcome]:
    return list(db.session.execute(select(Outcome).where(Outcome.person_id == person_id)
                                   .order_by(Outcome.id)).scalars().all())


@dataclass
class JourneyStep:
    stage: str                 # seminar | fieldwork | matching_session | match
    event: Event | None
    attended: bool
    registration: Registration | None = None
    outcome: Outcome | None = None


def person_journey(person_id: int) -> list[JourneyStep]:
    """Seminars → fieldwork → matching sessions → matches, in time order."""
    regs = db.session.execute(select(Registration).where(
        Registration.person_id == person_id, Registration.status != "cancelled")).scalars().all()
    attended_ids = attendance.attended_registration_ids(list({r.event_id for r in regs}))
    steps = []
    for reg in sorted(regs, key=lambda r: r.event.starts_at):
        kind = reg.event.kind
        stage = "seminar" if kind in SEMINAR_KINDS else kind
        steps.append(JourneyStep(stage, reg.event, reg.id in attended_ids, reg))
    for outcome in outcomes_for_person(person_id):
        steps.append(JourneyStep("match" if outcome.is_match else "talk", outcome.matching_event,
                                 outcome.is_match, None, outcome))
    return steps


def count_matches() -> int:
    return db.session.execute(select(func.count()).select_from(Outcome).where(
        Outcome.status.in_(MATCHED_STATUSES))).scalar_one()

"""Demo data for organisations, matching sessions and the yearly report.

The three organisations are the programme's published examples; the matching history is
synthetic but consistent with the published figures: FY2018 5 matches, about 20 a year after,
FY2024 28, FY2025 32 — 158 in total with 81 organisations. Idempotent (keyed by names/emails,
and the history is only added once).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from .extensions import db
from .formatting import JST
from .models import (
    Attendance,
    Event,
    EventOrganisation,
    MatchingLink,
    MatchingSettings,
    Organisation,
    Outcome,
    Person,
    Preference,
    Registration,
    SurveyResponse,
)
from .models.organisation import IWATE_MUNICIPALITIES
from .services.fiscal import fiscal_year

PUBLISHED_ORGS = [
    {"name": "かんたはうす運営組合", "furigana": "かんたはうすうんえいくみあい", "municipality": "花巻市",
     "description": "花巻市東和町でぶどう栽培とワイン醸造に取り組む運営組合。",
     "challenges": "地域産ぶどうの販路拡大とブランド化", "project_type": "fan_community"},
    {"name": "さともり株式会社", "furigana": "さともりかぶしきがいしゃ", "municipality": "大槌町",
     "description": "大槌町の森と里山を舞台に、自然体験と地域づくりを手がける会社。",
     "challenges": "地域の自然資源を活かした観光コンテンツの造成", "project_type": "business"},
    {"name": "夏油古民家カフェ kobiru", "furigana": "げとうこみんかかふぇ こびる", "municipality": "北上市",
     "description": "夏油温泉への道沿いで古民家を改装したカフェを営む。",
     "challenges": "地域資源の発信力の弱さ、集客面での苦戦", "project_type": "fan_community"},
]
MATCHES_PER_YEAR = {2018: 5, 2019: 19, 2020: 19, 2021: 18, 2022: 19, 2023: 18, 2024: 28, 2025: 32}
TOTAL_ORGANISATIONS = 81
HISTORY_PREFIX = "過去参加者"
FIELDS = ["地域産品のEC・販路開拓", "SNS発信とファンづくり", "観光コンテンツの企画", "業務のデジタル化",
          "採用・人材育成の仕組みづくり", "商品パッケージのデザイン", "イベント企画・運営", "移住・関係人口の受け皿づくり"]
DESCRIPTIONS = {
    "fan_community": ["地域産ワインの認知拡大とファン獲得を両立するコミュニティ形成",
                      "オンラインのファンクラブ運営と首都圏でのイベント企画", "SNSでの発信と来訪者コミュニティの立ち上げ"],
    "business": ["自然体験ツアーの商品設計と販売チャネルの開拓", "ECサイトの改善と首都圏向け販路の開拓",
                 "業務フローのデジタル化と受発注管理の仕組みづくり"],
}


def _org(data: dict) -> Organisation:
    org = db.session.execute(select(Organisation).where(Organisation.name == data["name"])).scalar_one_or_none()
    if org is None:
        org = Organisation(**data)
        db.session.add(org)
    return org


def _organisations() -> list[Organisation]:
    orgs = [_org(d) for d in PUBLISHED_ORGS]
    for n in range(1, TOTAL_ORGANISATIONS - len(PUBLISHED_ORGS) + 1):
        municipality = IWATE_MUNICIPALITIES[(n * 7) % len(IWATE_MUNICIPALITIES)]
        # Roughly the programme's mix: fewer fan-community hosts, but they convert better.
        project_type = "fan_community" if n % 5 in (0, 2) else "business"
        orgs.append(_org({
            "name": f"{municipality}の受入団体{n:02d}", "furigana": "", "municipality": municipality,
            "description": "(デモデータ)過去にマッチング会へ参加した受入団体。",
            "challenges": FIELDS[n % len(FIELDS)], "project_type": project_type}))
    db.session.flush()
    return orgs


def _events_by_prefix(prefix: str) -> list[Event]:
    return list(db.session.execute(select(Event).where(Event.slug.like(f"{prefix}%"))
                                   .order_by(Event.starts_at)).scalars().all())


def _link(event: Event, org: Organisation, role: str) -> None:
    exists = db.session.execute(select(EventOrganisation.id).where(
        EventOrganisation.event_id == event.id, EventOrganisation.organisation_id == org.id)).first()
    if not exists:
        db.session.add(EventOrganisation(event_id=event.id, organisation_id=org.id, role=role))


def _attendance(now: datetime) -> None:
    """Past demo events: most confirmed people attended (every fifth did not: the no-shows)."""
    past = db.session.execute(select(Event).where(Event.ends_at < now, Event.slug.not_like("history-%"))).scalars()
    for event in past:
        regs = db.session.execute(select(Registration).where(
            Registration.event_id == event.id, Registration.status == "confirmed").order_by(Registration.id)).scalars()
        for i, reg in enumerate(regs):
            if i % 5 == 4:
                continue
            if not db.session.execute(select(Attendance.id).where(Attendance.registration_id == reg.id)).first():
                db.session.add(Attendance(registration_id=reg.id, source="staff", recorded_at=event.ends_at))
            if i % 3 != 2 and not db.session.execute(
                    select(SurveyResponse.id).where(SurveyResponse.registration_id == reg.id)).first():
                db.session.add(SurveyResponse(registration_id=reg.id, satisfaction=5 - (i % 4 == 3),
                                              would_join_again=i % 6 != 5, submitted_at=event.ends_at + timedelta(days=2),
                                              comment="受入団体の方と直接話せてよかったです。" if i % 4 == 0 else ""))


def _history(orgs: list[Organisation], sessions: list[Event]) -> None:
    if db.session.execute(select(func.count()).select_from(Outcome)).scalar_one():
        return  # already loaded (or real data present): never add a second history
    demo_people = {p.email: p for p in db.session.execute(select(Person)).scalars()}
    session_2025 = next((s for s in sessions if fiscal_year(s.starts_at) == 2025 and s.ends_at < datetime.now(JST)),
                        None)
    person_no = 0
    org_cursor = 0

    def history_person() -> Person:
        nonlocal person_no
        person_no += 1
        email = f"alumni{person_no:03d}@example.invalid"
        person = db.session.execute(select(Person).where(Person.email == email)).scalar_one_or_none()
        if person is None:
            person = Person(email=email, name=f"{HISTORY_PREFIX}{person_no:03d}", furigana="かこのさんかしゃ",
                            iwate_relation="none", calendar_token=None)
            db.session.add(person)
        return person

    # The 2025 session's real demo participants: a few talks and two matches with the published organisations.
    named = orgs[:3]
    year_2025_from_demo = 0
    if session_2025 is not None:
        regs = db.session.execute(select(Registration).where(
            Registration.event_id == session_2025.id, Registration.status == "confirmed")
            .order_by(Registration.id)).scalars().all()
        for i, reg in enumerate(regs):
            org = named[i % 3]
            matched = i in (0, 2)
            db.session.add(Outcome(
                person_id=reg.person_id, organisation_id=org.id, matching_event_id=session_2025.id,
                status="ongoing" if matched else ("proposed" if i % 2 else "met"),
                matched_on=date(2026, 1, 15 + i) if matched else None,
                project_type=org.project_type if matched else None,
                description=DESCRIPTIONS[org.project_type][0] if matched else ""))
            year_2025_from_demo += matched
    del demo_people

    for year, matches in MATCHES_PER_YEAR.items():
        if year == 2025:
            matches -= year_2025_from_demo
        for k in range(matches):
            org = orgs[3 + org_cursor % (len(orgs) - 3)] if year < 2025 or k % 4 else named[k % 3]
            org_cursor += 1
            person = history_person()
            month = 6 + (k % 10)  # June … March
            matched_on = date(year + (month > 12), (month - 1) % 12 + 1, 1 + k % 27)
            status = "ended" if year < 2023 else ("ongoing" if k % 3 else "matched")
            db.session.add(Outcome(person=person, organisation_id=org.id, status=status, matched_on=matched_on,
                                   project_type=org.project_type,
                                   description=DESCRIPTIONS[org.project_type][k % 3]))
        # Talks that did not (yet) lead to a match: business talks convert less often.
        for k in range(matches + matches // 2):
            org = orgs[3 + (org_cursor + k * 7) % (len(orgs) - 3)]
            if org.project_type == "fan_community" and k % 3:
                continue
            person = history_person()
            db.session.add(Outcome(person=person, organisation_id=org.id, status="met" if k % 2 else "proposed",
                                   created_at=datetime(year, 10, 1, tzinfo=JST)))
    db.session.flush()


def load_matching_demo(today: date | None = None) -> str:
    now = datetime.now(JST)
    orgs = _organisations()
    kantahouse, satomori, kobiru = orgs[:3]
    for event in _events_by_prefix("hanamaki-grape-fieldwork"):
        _link(event, kantahouse, "host")
    for event in _events_by_prefix("geto-onsen-fieldwork"):
        _link(event, kobiru, "host")
    sessions = _events_by_prefix("matching-")
    for session in sessions:
        for org in (kantahouse, satomori, kobiru):
            _link(session, org, "host")
        if db.session.get(MatchingSettings, session.id) is None:
            opens = session.starts_at - timedelta(days=28)
            db.session.add(MatchingSettings(event_id=session.id, access_rule="priority", attendees_from=opens,
                                            others_from=opens + timedelta(days=14), rounds=3,
                                            org_capacity_per_round=2, minutes_per_round=15))
            db.session.add(MatchingLink(matching_event_id=session.id, scope="fy_fieldwork"))
    db.session.flush()
    _attendance(now)
    # Ranked preferences of the demo participants of each session.
    for session in sessions:
        regs = db.session.execute(select(Registration).where(Registration.event_id == session.id)
                                  .order_by(Registration.id)).scalars().all()
        for i, reg in enumerate(regs):
            if db.session.execute(select(Preference.id).where(Preference.registration_id == reg.id)).first():
                continue
            ranked = [orgs[(i + j) % 3] for j in range(3)]
            db.session.add_all(Preference(registration_id=reg.id, organisation_id=o.id, rank=r + 1)
                               for r, o in enumerate(ranked))
    db.session.flush()
    _history(orgs, sessions)
    matches = db.session.execute(select(func.count()).select_from(Outcome).where(
        Outcome.status.in_(("matched", "ongoing", "ended")))).scalar_one()
    return f"matching demo: {len(orgs)} organisations, {matches} matches"

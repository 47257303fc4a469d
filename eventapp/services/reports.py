"""The programme's yearly report (年度 = April–March in JST): events, sign-ups, attendance, surveys,
the funnel seminar → fieldwork → matching session → match, matches by project type, organisations.

Figures are computed in Python from plain queries: a year has at most a few thousand rows, and one
readable definition per figure matters more here than pushing every count into SQL.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from sqlalchemy import select

from ..extensions import db
from ..formatting import KIND_LABELS
from ..models import Event, EventOrganisation, Outcome, Registration, SurveyResponse
from ..models.base import utcnow
from ..models.event import EVENT_KINDS
from ..models.matching import MATCHED_STATUSES
from ..models.organisation import PROJECT_TYPE_LABELS, PROJECT_TYPES
from .attendance import attended_registration_ids
from .errors import NotFound
from .events import YEARS
from .fiscal import fiscal_year, fiscal_year_bounds

SEMINAR_KINDS = ("online_seminar", "onsite_seminar")
FUNNEL_STAGES = ("seminar", "fieldwork", "matching_session", "match")
FUNNEL_LABELS = {"seminar": "セミナー参加", "fieldwork": "フィールドワーク参加", "matching_session": "マッチング会参加",
                 "match": "マッチング成立"}
# What each funnel figure counts, printed next to it (page, CSV, PDF): "match" also counts people who
# were matched without a session this year, so it can exceed the stage before it; the second column
# (funnel_through) never grows from one stage to the next.
FUNNEL_DEFINITIONS = {
    "seminar": "この年度にセミナー(オンライン・会場)に出席した人の実人数",
    "fieldwork": "この年度にフィールドワークに出席した人の実人数",
    "matching_session": "この年度にマッチング会に出席した人の実人数",
    "match": "この年度にマッチングが成立した人の実人数(マッチング会を経ない成立も含むため、前の段階より多いことがあります)",
}
FUNNEL_THROUGH_DEFINITION = "前の段階もすべて経た人: 同じ年度にそれより前のすべての段階にも出席した人(段階が進むほど減るか同じ)"
# The programme publishes its totals since it began matching (FY2018): "158 matches, 81 organisations".
CUMULATIVE_FROM = 2018


@dataclass
class YearReport:
    year: int
    events_by_kind: dict[str, int]
    signups: int
    confirmed: int
    cancelled: int
    attended: int
    ended_confirmed: int
    participants: int
    repeat_in_year: int
    repeat_across_years: int
    survey_responses: int
    survey_average: float | None
    survey_would_join_again: int
    funnel: dict[str, int]            # distinct people reaching each stage in the year
    funnel_through: dict[str, int]    # …who also reached every earlier stage in the year
    talks_by_type: dict[str, int]
    matches_by_type: dict[str, int]
    organisations_engaged: int
    cumulative_matches: int           # matches from FY CUMULATIVE_FROM up to this year
    cumulative_organisations: int = 0  # organisations engaged (talk, match or event) over the same years
    matches_by_year: dict[int, int] = field(default_factory=dict)
    cumulative_from: int = CUMULATIVE_FROM

    @property
    def events_total(self) -> int:
        return sum(self.events_by_kind.values())

    @property
    def matches(self) -> int:
        return sum(self.matches_by_type.values())

    @property
    def attendance_rate(self) -> float | None:
        return self.attended / self.ended_confirmed if self.ended_confirmed else None

    @property
    def no_show_rate(self) -> float | None:
        return 1 - self.attendance_rate if self.ended_confirmed else None

    def conversion(self, project_type: str) -> float | None:
        talks = self.talks_by_type.get(project_type, 0)
        return self.matches_by_type.get(project_type, 0) / talks if talks else None


def outcome_year(outcome: Outcome) -> int:
    """The year a talk counts in: its matching session, else the match date, else when it was recorded."""
    if outcome.matching_event is not None:
        return fiscal_year(outcome.matching_event.starts_at)
    if outcome.matched_on is not None:
        return fiscal_year(outcome.matched_on)
    return fiscal_year(outcome.created_at)


def _match_year(outcome: Outcome) -> int:
    return fiscal_year(outcome.matched_on)


def available_years(now: datetime | None = None) -> list[int]:
    years = {fiscal_year(now or utcnow())}
    years |= {fiscal_year(s) for s in db.session.execute(
        select(Event.starts_at).where(Event.status == "published")).scalars()}
    years |= {fiscal_year(d) for d in db.session.execute(
        select(Outcome.matched_on).where(Outcome.matched_on.is_not(None))).scalars()}
    return sorted(years)


def year_report(year: int, *, now: datetime | None = None) -> YearReport:
    if not YEARS[0] <= year <= YEARS[1]:  # /staff/reports/9999.csv, /0.csv: no 年度 any event can be in
        raise NotFound("year_not_found", "その年度の報告はありません。")
    now = now or utcnow()
    start, end = fiscal_year_bounds(year)
    events = db.session.execute(select(Event).where(
        Event.status == "published", Event.starts_at >= start, Event.starts_at < end)).scalars().all()
    event_ids = [e.id for e in events]
    by_id = {e.id: e for e in events}
    events_by_kind = {k: 0 for k in EVENT_KINDS}
    for e in events:
        events_by_kind[e.kind] += 1

    regs = db.session.execute(select(Registration).where(Registration.event_id.in_(event_ids))).scalars().all() \
        if event_ids else []
    attended_ids = attended_registration_ids(event_ids)
    attended_regs = [r for r in regs if r.id in attended_ids]
    ended_confirmed = [r for r in regs if r.status == "confirmed" and by_id[r.event_id].ends_at <= now]

    # People attending more than one event this year; and this year's attendees who attended before.
    per_person = Counter(r.person_id for r in attended_regs)
    people = set(per_person)
    earlier_people: set[int] = set()
    if people:
        earlier_events = db.session.execute(select(Event.id).where(
            Event.status == "published", Event.starts_at < start)).scalars().all()
        earlier_att = attended_registration_ids(list(earlier_events))
        if earlier_att:
            earlier_people = set(db.session.execute(select(Registration.person_id).where(
                Registration.id.in_(earlier_att))).scalars().all())

    surveys = db.session.execute(select(SurveyResponse).where(
        SurveyResponse.registration_id.in_([r.id for r in regs]))).scalars().all() if regs else []

    outcomes = db.session.execute(select(Outcome)).scalars().all()
    year_outcomes = [o for o in outcomes if outcome_year(o) == year]
    year_matches = [o for o in outcomes if o.status in MATCHED_STATUSES and _match_year(o) == year]

    stage_people: dict[str, set[int]] = {s: set() for s in FUNNEL_STAGES}
    for r in attended_regs:
        kind = by_id[r.event_id].kind
        stage_people["seminar" if kind in SEMINAR_KINDS else kind].add(r.person_id)
    stage_people["match"] = {o.person_id for o in year_matches}
    funnel = {s: len(p) for s, p in stage_people.items()}
    through: dict[str, int] = {}
    running: set[int] | None = None
    for stage in FUNNEL_STAGES:
        running = set(stage_people[stage]) if running is None else running & stage_people[stage]
        through[stage] = len(running)

    def type_of(o: Outcome) -> str:
        return o.project_type or o.organisation.project_type

    talks_by_type = {t: 0 for t in PROJECT_TYPES}
    for o in year_outcomes:
        talks_by_type[type_of(o)] += 1
    matches_by_type = {t: 0 for t in PROJECT_TYPES}
    for o in year_matches:
        matches_by_type[type_of(o)] += 1

    def engaged_in(years: range) -> set[int]:
        """Organisations with a talk or a match counted in one of `years`, or hosting one of its events."""
        first, _ = fiscal_year_bounds(years.start)
        _, last = fiscal_year_bounds(years.stop - 1)
        orgs = {o.organisation_id for o in outcomes if outcome_year(o) in years}
        orgs |= {o.organisation_id for o in outcomes if o.status in MATCHED_STATUSES and _match_year(o) in years}
        orgs |= set(db.session.execute(select(EventOrganisation.organisation_id).join(
            Event, Event.id == EventOrganisation.event_id).where(
            Event.status == "published", Event.starts_at >= first, Event.starts_at < last)).scalars().all())
        return orgs

    engaged = engaged_in(range(year, year + 1))
    since = range(CUMULATIVE_FROM, year + 1) if year >= CUMULATIVE_FROM else range(year, year + 1)

    matches_by_year: dict[int, int] = defaultdict(int)
    for o in outcomes:
        if o.status in MATCHED_STATUSES:
            matches_by_year[_match_year(o)] += 1

    return YearReport(
        year=year, events_by_kind=events_by_kind, signups=len(regs),
        confirmed=sum(1 for r in regs if r.status == "confirmed"),
        cancelled=sum(1 for r in regs if r.status == "cancelled"),
        attended=sum(1 for r in ended_confirmed if r.id in attended_ids),
        ended_confirmed=len(ended_confirmed), participants=len(people),
        repeat_in_year=sum(1 for n in per_person.values() if n > 1),
        repeat_across_years=len(people & earlier_people),
        survey_responses=len(surveys),
        survey_average=(sum(s.satisfaction for s in surveys) / len(surveys)) if surveys else None,
        survey_would_join_again=sum(1 for s in surveys if s.would_join_again),
        funnel=funnel, funnel_through=through, talks_by_type=talks_by_type, matches_by_type=matches_by_type,
        organisations_engaged=len(engaged),
        cumulative_matches=sum(n for y, n in matches_by_year.items() if y in since),
        cumulative_organisations=len(engaged_in(since)),
        matches_by_year=dict(sorted(matches_by_year.items())),
    )


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def report_rows(report: YearReport) -> list[tuple[str, str, str]]:
    """(区分, 項目, 値) rows shared by the CSV and the tests."""
    y = f"{report.year}年度"
    rows = [(y, "開催イベント数(合計)", str(report.events_total))]
    rows += [(y, f"開催イベント数({KIND_LABELS[k]})", str(n)) for k, n in report.events_by_kind.items()]
    rows += [
        (y, "申込数", str(report.signups)), (y, "参加確定", str(report.confirmed)),
        (y, "キャンセル", str(report.cancelled)), (y, "出席率", _pct(report.attendance_rate)),
        (y, "無断欠席率(ノーショー率)", _pct(report.no_show_rate)), (y, "参加者数(実人数)", str(report.participants)),
        (y, "年度内に複数回参加した人", str(report.repeat_in_year)),
        (y, "前年度以前にも参加した人", str(report.repeat_across_years)),
        (y, "アンケート回答数", str(report.survey_responses)),
        (y, "満足度(平均・5段階)", "" if report.survey_average is None else f"{report.survey_average:.2f}"),
        (y, "また参加したい", str(report.survey_would_join_again)),
    ]
    for stage in FUNNEL_STAGES:
        rows.append((y, f"ファネル: {FUNNEL_LABELS[stage]}", str(report.funnel[stage])))
    for stage in FUNNEL_STAGES:
        rows.append((y, f"ファネル(前段階も経た人): {FUNNEL_LABELS[stage]}", str(report.funnel_through[stage])))
    for t in PROJECT_TYPES:
        label = PROJECT_TYPE_LABELS[t]
        rows += [(y, f"面談数({label})", str(report.talks_by_type[t])),
                 (y, f"マッチング成立({label})", str(report.matches_by_type[t])),
                 (y, f"成立率({label})", _pct(report.conversion(t)))]
    rows += [(y, "マッチング成立(合計)", str(report.matches)), (y, "関わった団体数", str(report.organisations_engaged))]
    since = cumulative_label(report)
    rows += [(since, "累計マッチング成立数", str(report.cumulative_matches)),
             (since, "累計 関わった団体数", str(report.cumulative_organisations))]
    rows += [("年度別", f"{year}年度 マッチング成立", str(n)) for year, n in report.matches_by_year.items()]
    rows += [("定義", f"ファネル: {FUNNEL_LABELS[stage]}", FUNNEL_DEFINITIONS[stage]) for stage in FUNNEL_STAGES]
    rows += [("定義", "ファネル(前段階も経た人)", FUNNEL_THROUGH_DEFINITION),
             ("定義", "関わった団体数", "面談・マッチング成立があった団体と、開催したイベントに受入団体として関わった団体の数")]
    return rows


def cumulative_years(report: YearReport) -> str:
    return f"{min(report.cumulative_from, report.year)}〜{report.year}年度"


def cumulative_label(report: YearReport) -> str:
    return f"累計({cumulative_years(report)})"


def report_csv(report: YearReport) -> bytes:
    """UTF-8 with BOM and CRLF, so Japanese Excel opens it correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["区分", "項目", "値"])
    writer.writerows(report_rows(report))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def bar_chart_svg(items: list[tuple[str, float]], *, title: str, unit: str = "", width: int = 560,
                  highlight: str | None = None) -> str:
    """A horizontal bar chart as inline SVG (no JavaScript, prints as is)."""
    bar_h, gap, label_w, top = 22, 8, 150, 30
    height = top + len(items) * (bar_h + gap) + 10
    peak = max((v for _, v in items), default=0) or 1
    plot_w = width - label_w - 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="100%" aria-label="{escape(title)}">',
             f'<title>{escape(title)}</title>',
             f'<text x="0" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = 0 if value <= 0 else max(2, round(plot_w * value / peak))
        fill = "#c0392b" if highlight is not None and label == highlight else "#2f6f9f"
        shown = f"{value:g}{unit}"
        parts += [f'<text x="{label_w - 6}" y="{y + 16}" font-size="12" text-anchor="end">{escape(label)}</text>',
                  f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{fill}"/>',
                  f'<text x="{label_w + w + 6}" y="{y + 16}" font-size="12">{escape(shown)}</text>']
    parts.append("</svg>")
    return "".join(parts)


def template_context(report: YearReport) -> dict:
    """What templates/matching/_report_body.html needs besides the charts (page and PDF alike)."""
    return {"report": report, "project_types": PROJECT_TYPE_LABELS, "funnel_labels": FUNNEL_LABELS,
            "funnel_definitions": FUNNEL_DEFINITIONS, "through_definition": FUNNEL_THROUGH_DEFINITION,
            "since_years": cumulative_years(report)}

"""The programme's yearly report (年度 = April–March in JST): events, sign-ups, attendance, surveys,
the funnel seminar → fieldwork → matching session → match, matches by project type, organisations.

Figures are aggregates computed by the database (docs/performance.md): the history grows every year,
and the report must stay a handful of small queries at 100× today's data.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal_column,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.orm import aliased

from ..database import is_sqlite
from ..extensions import db
from ..formatting import KIND_LABELS
from ..models import Event, EventOrganisation, Organisation, Outcome, Registration, SurveyResponse
from ..models.base import utcnow
from ..models.event import EVENT_KINDS
from ..models.matching import MATCHED_STATUSES
from ..models.organisation import PROJECT_TYPE_LABELS, PROJECT_TYPES
from .attendance import attended_clause
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
    """The year a talk counts in: its matching session, else the match date, else when it was recorded.
    (The report counts the same rule in SQL: _talk_in_years.)"""
    if outcome.matching_event is not None:
        return fiscal_year(outcome.matching_event.starts_at)
    if outcome.matched_on is not None:
        return fiscal_year(outcome.matched_on)
    return fiscal_year(outcome.created_at)


def _fiscal_year_sql(column, *, instant: bool):
    """SQL for fiscal_year(): an instant (naive UTC in the database) is shifted to JST first; then
    1 April → the same year, January–March → the year before."""
    if is_sqlite():
        modifiers = ["'+9 hours'", "'-3 months'"] if instant else ["'-3 months'"]
        return cast(func.strftime(literal_column("'%Y'"), column, *map(literal_column, modifiers)), Integer)
    shifted = column + literal_column("interval '9 hours'") if instant else column
    return cast(extract("year", shifted - literal_column("interval '3 months'")), Integer)


def _date_bounds(first: int, last: int) -> tuple[date, date]:
    return date(first, 4, 1), date(last + 1, 4, 1)


def _matched_in(first: int, last: int) -> ColumnElement[bool]:
    since, until = _date_bounds(first, last)
    return and_(Outcome.status.in_(MATCHED_STATUSES), Outcome.matched_on >= since, Outcome.matched_on < until)


def _talk_in_years(session, first: int, last: int) -> ColumnElement[bool]:
    """outcome_year(o) in first..last; `session` is Event outer-joined on the outcome's matching session."""
    start, end = fiscal_year_bounds(first)[0], fiscal_year_bounds(last)[1]
    since, until = _date_bounds(first, last)
    no_session = Outcome.matching_event_id.is_(None)
    return or_(
        and_(Outcome.matching_event_id.is_not(None), session.starts_at >= start, session.starts_at < end),
        and_(no_session, Outcome.matched_on.is_not(None), Outcome.matched_on >= since, Outcome.matched_on < until),
        and_(no_session, Outcome.matched_on.is_(None), Outcome.created_at >= start, Outcome.created_at < end),
    )


def available_years(now: datetime | None = None) -> list[int]:
    years = {fiscal_year(now or utcnow())}
    event_years = select(_fiscal_year_sql(Event.starts_at, instant=True).label("fy")).where(
        Event.status == "published").subquery()
    match_years = select(_fiscal_year_sql(Outcome.matched_on, instant=False).label("fy")).where(
        Outcome.matched_on.is_not(None)).subquery()
    for sub in (event_years, match_years):
        years |= set(db.session.execute(select(sub.c.fy).distinct()).scalars())
    return sorted(years)


def year_report(year: int, *, now: datetime | None = None) -> YearReport:
    """Every figure is an aggregate in SQL (COUNT … FILTER, GROUP BY, EXISTS): the queries return a few
    rows whatever the size of the history, and none sends another query's result back as parameters."""
    if not YEARS[0] <= year <= YEARS[1]:  # /staff/reports/9999.csv, /0.csv: no 年度 any event can be in
        raise NotFound("year_not_found", "その年度の報告はありません。")
    now = now or utcnow()
    if not is_sqlite():
        # The correlated EXISTS make PostgreSQL's cost estimate large enough to JIT-compile the plan:
        # measured at L data, 1.06 s of compiling for a 0.3 s query. Off for this transaction only.
        db.session.execute(text("SET LOCAL jit = off"))
    start, end = fiscal_year_bounds(year)
    in_year = (Event.status == "published", Event.starts_at >= start, Event.starts_at < end)
    execute = db.session.execute

    events_by_kind = {k: 0 for k in EVENT_KINDS}
    events_by_kind.update(execute(select(Event.kind, func.count()).where(*in_year).group_by(Event.kind)).all())

    attended = attended_clause()
    confirmed = Registration.status == "confirmed"
    ended = Event.ends_at <= now
    year_regs = select().select_from(Registration).join(Event, Event.id == Registration.event_id).where(*in_year)
    signups, confirmed_n, cancelled, ended_confirmed = execute(year_regs.add_columns(
        func.count(), func.count().filter(confirmed), func.count().filter(Registration.status == "cancelled"),
        func.count().filter(confirmed, ended))).one()

    # One row per person who attended this year: how often, and which funnel stages.
    stage = case((Event.kind.in_(SEMINAR_KINDS), "seminar"), else_=Event.kind)
    per_person = year_regs.where(attended).add_columns(
        Registration.person_id.label("person_id"), func.count().label("n"),
        func.count().filter(ended).label("n_ended"),  # attended registrations of events already over
        *[func.max(case((stage == s, 1), else_=0)).label(s) for s in FUNNEL_STAGES[:3]],
    ).group_by(Registration.person_id).subquery()
    earlier_reg, earlier_event = aliased(Registration), aliased(Event)
    attended_before = select(earlier_reg.id).join(earlier_event, earlier_event.id == earlier_reg.event_id).where(
        earlier_reg.person_id == per_person.c.person_id, earlier_event.status == "published",
        earlier_event.starts_at < start, attended_clause(earlier_reg)).exists()
    matched_this_year = select(Outcome.id).where(Outcome.person_id == per_person.c.person_id,
                                                 _matched_in(year, year)).exists()
    seminar, fieldwork, session_ = (per_person.c[s] == 1 for s in FUNNEL_STAGES[:3])
    (attended_n, participants, repeat_in_year, repeat_across_years, *stage_counts) = execute(select(
        func.coalesce(func.sum(per_person.c.n_ended), 0), func.count(), func.count().filter(per_person.c.n > 1),
        func.count().filter(attended_before),
        func.count().filter(seminar), func.count().filter(fieldwork), func.count().filter(session_),
        func.count().filter(seminar, fieldwork), func.count().filter(seminar, fieldwork, session_),
        func.count().filter(seminar, fieldwork, session_, matched_this_year),
    ).select_from(per_person)).one()
    match_people = execute(select(func.count(distinct(Outcome.person_id))).where(_matched_in(year, year))).scalar()
    funnel = dict(zip(FUNNEL_STAGES, [*stage_counts[:3], match_people], strict=True))
    through = dict(zip(FUNNEL_STAGES, [stage_counts[0], *stage_counts[3:]], strict=True))

    survey_count, survey_sum, would_join_again = execute(year_regs.join(
        SurveyResponse, SurveyResponse.registration_id == Registration.id).add_columns(
        func.count(), func.sum(SurveyResponse.satisfaction),
        func.count().filter(SurveyResponse.would_join_again.is_(True)))).one()

    project_type = func.coalesce(Outcome.project_type, Organisation.project_type)
    session = aliased(Event)
    talks_by_type = {t: 0 for t in PROJECT_TYPES}
    talks_by_type.update(execute(select(project_type, func.count()).select_from(Outcome).join(
        Organisation, Organisation.id == Outcome.organisation_id).outerjoin(
        session, session.id == Outcome.matching_event_id).where(_talk_in_years(session, year, year)).group_by(
        project_type)).all())
    matches_by_type = {t: 0 for t in PROJECT_TYPES}
    matches_by_type.update(execute(select(project_type, func.count()).select_from(Outcome).join(
        Organisation, Organisation.id == Outcome.organisation_id).where(_matched_in(year, year)).group_by(
        project_type)).all())

    def engaged_in(first: int, last: int) -> int:
        """Organisations with a talk or a match counted in first..last, or hosting one of its events."""
        talk_orgs = select(Outcome.organisation_id).outerjoin(session, session.id == Outcome.matching_event_id).where(
            _talk_in_years(session, first, last))
        match_orgs = select(Outcome.organisation_id).where(_matched_in(first, last))
        host_orgs = select(EventOrganisation.organisation_id).join(Event, Event.id == EventOrganisation.event_id).where(
            Event.status == "published", Event.starts_at >= fiscal_year_bounds(first)[0],
            Event.starts_at < fiscal_year_bounds(last)[1])
        orgs = union(talk_orgs, match_orgs, host_orgs).subquery()
        return execute(select(func.count()).select_from(orgs)).scalar()

    since = CUMULATIVE_FROM if year >= CUMULATIVE_FROM else year
    match_years = select(_fiscal_year_sql(Outcome.matched_on, instant=False).label("fy")).where(
        Outcome.status.in_(MATCHED_STATUSES)).subquery()
    matches_by_year = dict(execute(select(match_years.c.fy, func.count()).group_by(match_years.c.fy).order_by(
        match_years.c.fy)).all())

    return YearReport(
        year=year, events_by_kind=events_by_kind, signups=signups, confirmed=confirmed_n, cancelled=cancelled,
        attended=int(attended_n), ended_confirmed=ended_confirmed, participants=participants,
        repeat_in_year=repeat_in_year, repeat_across_years=repeat_across_years,
        survey_responses=survey_count,
        survey_average=(survey_sum / survey_count) if survey_count else None,
        survey_would_join_again=would_join_again,
        funnel=funnel, funnel_through=through, talks_by_type=talks_by_type, matches_by_type=matches_by_type,
        organisations_engaged=engaged_in(year, year),
        cumulative_matches=sum(n for y, n in matches_by_year.items() if since <= y <= year),
        cumulative_organisations=engaged_in(since, year),
        matches_by_year=matches_by_year,
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

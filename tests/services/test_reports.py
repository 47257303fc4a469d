"""The yearly report on a small, fully known data set (FY2030 = April 2030 – March 2031, JST)."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Registration
from eventapp.services import attendance, matching, organisations, reports, surveys
from eventapp.services.registration import cancel
from tests.conftest import jst, make_event, make_registration
from tests.pdf_support import flat, pdf_text, save_artifact
from tests.services.test_matching import attend, make_org
from tests.staff_support import login, make_user

LATER = jst(2032, 1, 1)


@pytest.fixture
def known_year(ctx):
    fan = make_org("かんたはうす運営組合")
    fan2 = make_org("夏油古民家カフェ kobiru", municipality="北上市")
    biz = make_org("さともり株式会社", municipality="大槌町", project_type="business")

    earlier = make_event(kind="fieldwork", starts_at=jst(2029, 10, 1, 9), slug="fw-2029")
    seminar = make_event(kind="online_seminar", starts_at=jst(2030, 8, 25, 19), slug="sem-2030", online_url="https://x.test")
    fieldwork = make_event(kind="fieldwork", starts_at=jst(2030, 10, 19, 9), slug="fw-2030")
    session = make_event(kind="matching_session", starts_at=jst(2030, 12, 6, 14), slug="ms-2030")
    # 1 April 00:00 JST is 31 March 15:00 UTC: this seminar belongs to FY2031, not FY2030.
    make_event(kind="online_seminar", starts_at=jst(2031, 4, 1, 0, 0), slug="sem-2031")
    organisations.link_event(fieldwork.id, fan.id)

    def reg(event, who):
        return make_registration(event, email=f"{who}@example.com", now=event.starts_at - timedelta(days=7))

    attend(reg(earlier, "c"))                      # C also attended the year before
    a_sem, _b_sem = reg(seminar, "a"), reg(seminar, "b")
    attend(a_sem, online=True)                     # B is a no-show
    a_fw, c_fw, _d_fw, e_fw = reg(fieldwork, "a"), reg(fieldwork, "c"), reg(fieldwork, "d"), reg(fieldwork, "e")
    attend(a_fw)
    attend(c_fw)                                   # D is a no-show
    cancel(e_fw.id, by="staff", now=fieldwork.starts_at - timedelta(days=3))
    a_ms = reg(session, "a")
    attendance.mark(a_ms.id, True)

    surveys.submit(a_fw, {"satisfaction": "5", "would_join_again": "yes"}, now=fieldwork.ends_at)
    surveys.submit(c_fw, {"satisfaction": "3", "would_join_again": "no"}, now=fieldwork.ends_at)

    matching.record_outcome(a_ms.person_id, fan.id, status="matched", matching_event_id=session.id,
                            matched_on=date(2031, 1, 10))
    matching.record_outcome(c_fw.person_id, biz.id, status="met", matching_event_id=session.id)
    f = make_registration(earlier, email="f@example.com", now=earlier.starts_at - timedelta(days=7))
    # Matches without a session count by their date: 31 March is still FY2030, 1 April is FY2031.
    matching.record_outcome(f.person_id, fan2.id, status="ongoing", matched_on=date(2031, 3, 31))
    matching.record_outcome(f.person_id, fan.id, status="matched", matched_on=date(2031, 4, 1))
    matching.record_outcome(f.person_id, biz.id, status="ended", matched_on=date(2029, 5, 1))
    db.session.commit()
    return reports.year_report(2030, now=LATER)


def test_events_signups_and_attendance(known_year):
    r = known_year
    assert r.events_by_kind == {"online_seminar": 1, "onsite_seminar": 0, "fieldwork": 1, "matching_session": 1}
    assert (r.signups, r.confirmed, r.cancelled) == (7, 6, 1)
    assert (r.attended, r.ended_confirmed) == (4, 6)
    assert r.attendance_rate == pytest.approx(4 / 6)
    assert r.no_show_rate == pytest.approx(2 / 6)
    assert (r.participants, r.repeat_in_year, r.repeat_across_years) == (2, 1, 1)
    assert (r.survey_responses, r.survey_average, r.survey_would_join_again) == (2, 4.0, 1)


def test_funnel_matches_and_conversion_by_type(known_year):
    r = known_year
    assert r.funnel == {"seminar": 1, "fieldwork": 2, "matching_session": 1, "match": 2}
    assert r.funnel_through == {"seminar": 1, "fieldwork": 1, "matching_session": 1, "match": 1}
    assert r.matches_by_type == {"business": 0, "fan_community": 2}
    assert r.talks_by_type == {"business": 1, "fan_community": 2}
    assert r.conversion("fan_community") == 1.0 and r.conversion("business") == 0.0
    assert r.organisations_engaged == 3
    assert r.matches == 2 and r.cumulative_matches == 3
    assert r.matches_by_year == {2029: 1, 2030: 2, 2031: 1}


def test_next_year_starts_on_1_april_jst(known_year):
    r = reports.year_report(2031, now=LATER)
    assert r.events_by_kind["online_seminar"] == 1
    assert r.matches == 1 and r.cumulative_matches == 4


def test_csv_opens_in_excel_and_chart_is_svg(known_year):
    data = reports.report_csv(known_year)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["区分", "項目", "値"]
    values = {row[1]: row[2] for row in rows[1:] if row[0] == "2030年度"}
    assert values["出席率"] == "66.7%"
    assert values["成立率(ファンコミュニティ型)"] == "100.0%"
    since = {row[1]: row[2] for row in rows[1:] if row[0] == "累計(2018〜2030年度)"}
    assert since == {"累計マッチング成立数": "3", "累計 関わった団体数": "3"}
    definitions = {row[1]: row[2] for row in rows[1:] if row[0] == "定義"}
    assert "マッチング会を経ない成立も含む" in definitions["ファネル: マッチング成立"]
    svg = reports.bar_chart_svg([("<b>", 3), ("x", 0)], title="テスト")
    assert svg.startswith("<svg") and "&lt;b&gt;" in svg and "<b>" not in svg


def test_cumulative_figures_count_from_fy2018(known_year):
    """The programme's published totals start in FY2018: an older match is in the yearly chart only."""
    old_org = make_org("平成の受入団体")
    person_id = db.session.execute(select(Registration.person_id)).scalars().first()
    matching.record_outcome(person_id, old_org.id, status="ended", matched_on=date(2017, 6, 1))
    db.session.commit()
    r = reports.year_report(2030, now=LATER)
    assert r.matches_by_year[2017] == 1
    assert (r.cumulative_matches, r.cumulative_organisations) == (3, 3)  # as before: 2017 is not counted
    assert r.organisations_engaged == 3


def test_report_pdf_has_the_pages_tables_and_charts_from_page_1(known_year, client):
    """The PDF is the page's tables and charts (one template), the first table on page 1."""
    login(client, make_user("staff").email)
    page = client.get("/staff/reports?year=2030").get_data(as_text=True)
    response = client.get("/staff/reports/2030.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    save_artifact(response.data, "annual-report", dpi=70)
    first = flat(pdf_text(response.data, page=1))
    assert "イベントと参加" in first and "開催イベント数3" in first and "申込数7" in first
    text = flat(pdf_text(response.data))
    body = page[page.index('<section class="card report-part">'):]
    headings = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h2>(.*?)</h2>", body)]
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<th[^>]*>(.*?)</th>", body)]
    chart_titles = re.findall(r"<title>(.*?)</title>", body)
    assert len(headings) == 4 and len(chart_titles) == 4 and "ファンコミュニティ型" in cells
    for expected in (*headings, *cells, *chart_titles, *reports.FUNNEL_DEFINITIONS.values()):
        assert flat(html.unescape(expected)) in text, expected
    assert "累計マッチング成立数3" in text and "累計関わった団体数3" in text

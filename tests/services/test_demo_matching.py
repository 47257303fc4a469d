"""Demo data: the published organisations and a history consistent with the published figures."""

from __future__ import annotations

from sqlalchemy import func, select

from eventapp.demo import load_demo_data
from eventapp.extensions import db
from eventapp.models import EventOrganisation, Organisation, Outcome
from eventapp.services import reports


def test_demo_history_matches_the_published_figures_and_is_idempotent(ctx):
    load_demo_data()
    db.session.commit()
    load_demo_data()
    db.session.commit()
    assert db.session.execute(select(func.count()).select_from(Organisation)).scalar_one() == 81
    kobiru = db.session.execute(select(Organisation).where(Organisation.name == "夏油古民家カフェ kobiru")).scalar_one()
    assert kobiru.municipality == "北上市" and "集客" in kobiru.challenges
    hosted = {link.event.slug.rsplit("-", 1)[0] for link in db.session.execute(
        select(EventOrganisation).where(EventOrganisation.organisation_id == kobiru.id)).scalars()}
    assert "geto-onsen-fieldwork" in hosted
    by_year = reports.year_report(2025).matches_by_year
    assert by_year[2018] == 5 and by_year[2024] == 28 and by_year[2025] == 32
    assert all(17 <= by_year[y] <= 22 for y in range(2019, 2024))
    assert sum(by_year.values()) == 158
    assert db.session.execute(select(func.count()).select_from(Outcome)).scalar_one() > 158  # talks too
    report = reports.year_report(2025)
    # The programme's published totals since FY2018: 158 matches, 81 organisations engaged.
    assert report.cumulative_matches == 158
    assert report.cumulative_organisations == 81
    rows = {(section, label): value for section, label, value in reports.report_rows(report)}
    assert rows[("累計(2018〜2025年度)", "累計マッチング成立数")] == "158"
    assert rows[("累計(2018〜2025年度)", "累計 関わった団体数")] == "81"
    # The programme's finding: fan-community projects convert better than business ones.
    assert report.conversion("fan_community") > report.conversion("business")

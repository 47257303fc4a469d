"""Staff screens: organisations, matching-session setup, preference matrix and timetable, outcomes,
attendance (codes, marking, final → invitations, survey), and the yearly report."""

from __future__ import annotations

from datetime import date

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..auth.decorators import role_required
from ..extensions import db
from ..formatting import format_datetime
from ..models import Event, Person, Registration
from ..models.base import utcnow
from ..models.matching import ACCESS_RULE_LABELS, LINK_SCOPE_LABELS, OUTCOME_STATUS_LABELS
from ..models.organisation import EVENT_ORG_ROLE_LABELS, IWATE_MUNICIPALITIES, PROJECT_TYPE_LABELS
from ..params import parse_int
from ..services import attendance, audit, matching, organisations, reports, surveys
from ..services.errors import DomainError, ValidationFailed
from ..services.fiscal import fiscal_year
from ..staff.forms import parse_datetime
from . import bp


def _event(event_id: int, kind: str | None = None) -> Event:
    event = db.session.get(Event, event_id)
    if event is None or (kind and event.kind != kind):
        abort(404)
    return event


def _int(value, default: int | None = None) -> int | None:
    return parse_int(value, default)  # bounded: an id of 2**64 is no id, not an OverflowError


# ---------------------------------------------------------------- organisations

@bp.get("/organisations")
@role_required("staff")
def organisation_list():
    q = request.args.get("q", "").strip()
    return render_template("matching/organisation_list.html", orgs=organisations.list_organisations(q), q=q)


def _org_form(org, values, errors, status=200):
    return render_template("matching/organisation_form.html", org=org, values=values, errors=errors,
                           limits=organisations.LIMITS,  # maxlength = the columns' lengths
                           municipality_options=[(m, m) for m in IWATE_MUNICIPALITIES], project_types=PROJECT_TYPE_LABELS,
                           roles=EVENT_ORG_ROLE_LABELS,
                           events=db.session.execute(select(Event).order_by(Event.starts_at.desc())).scalars().all(),
                           outcomes=[] if org is None else matching_outcomes_for_org(org.id)), status


def matching_outcomes_for_org(org_id: int):
    from ..models import Outcome
    return db.session.execute(select(Outcome).where(Outcome.organisation_id == org_id).order_by(Outcome.id)
                              ).scalars().all()


@bp.route("/organisations/new", methods=["GET", "POST"])
@role_required("staff")
def organisation_new():
    if request.method == "GET":
        return _org_form(None, {"project_type": "fan_community"}, {})
    try:
        org = organisations.create_organisation(request.form)
        audit.record("create", "organisation", org.id, f"団体「{org.name}」を登録")
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        return _org_form(None, request.form, exc.fields, 422)
    flash("団体を登録しました。", "success")
    return redirect(url_for("matching.organisation_edit", organisation_id=org.id), code=303)


@bp.route("/organisations/<int:organisation_id>", methods=["GET", "POST"])
@role_required("staff")
def organisation_edit(organisation_id: int):
    org = organisations.get(organisation_id)
    if request.method == "GET":
        values = {k: getattr(org, k) for k in organisations.TEXT_FIELDS}
        return _org_form(org, values, {})
    try:
        organisations.update_organisation(org.id, request.form)
        audit.record("update", "organisation", org.id, f"団体「{org.name}」を変更")
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        return _org_form(org, request.form, exc.fields, 422)
    flash("保存しました。", "success")
    return redirect(url_for("matching.organisation_edit", organisation_id=org.id), code=303)


@bp.post("/organisations/<int:organisation_id>/delete")
@role_required("staff")
def organisation_delete(organisation_id: int):
    org = organisations.get(organisation_id)
    name = org.name
    try:
        organisations.delete_organisation(org.id)
        audit.record("delete", "organisation", organisation_id, f"団体「{name}」を削除")
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("matching.organisation_edit", organisation_id=organisation_id), code=303)
    flash("削除しました。", "success")
    return redirect(url_for("matching.organisation_list"), code=303)


@bp.post("/organisations/<int:organisation_id>/events")
@role_required("staff")
def organisation_link(organisation_id: int):
    event_id = _int(request.form.get("event_id"))
    back = request.form.get("back") or url_for("matching.organisation_edit", organisation_id=organisation_id)
    try:
        if request.form.get("remove"):
            organisations.unlink_event(event_id, organisation_id)
        else:
            organisations.link_event(event_id or 0, organisation_id, request.form.get("role", "host"))
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message if not isinstance(exc, ValidationFailed) else "役割を選んでください。", "error")
    if not back.startswith("/staff/"):
        back = url_for("matching.organisation_edit", organisation_id=organisation_id)
    return redirect(back, code=303)


# ---------------------------------------------------------------- matching sessions

@bp.get("/matching")
@role_required("staff")
def session_list():
    sessions = db.session.execute(select(Event).where(Event.kind == "matching_session")
                                  .order_by(Event.starts_at.desc())).scalars().all()
    others = db.session.execute(select(Event).where(Event.kind != "matching_session", Event.status == "published")
                                .order_by(Event.starts_at.desc()).limit(30)).scalars().all()
    return render_template("matching/session_list.html", sessions=sessions, others=others,
                           settings={s.id: matching.settings_for(s.id) for s in sessions},
                           access_labels=ACCESS_RULE_LABELS, final={e.id: attendance.is_final(e.id) for e in others})


def _setup_page(event, values, errors, status=200):
    candidates = db.session.execute(select(Event).where(
        Event.kind != "matching_session", Event.status != "cancelled", Event.starts_at < event.starts_at)
        .order_by(Event.starts_at.desc()).limit(50)).scalars().all()
    return render_template(
        "matching/session_setup.html", event=event, values=values, errors=errors,
        settings=matching.settings_for(event.id), links=matching.links_for(event.id),
        linked=matching.linked_events(event), candidates=candidates, access_labels=ACCESS_RULE_LABELS,
        scope_labels=LINK_SCOPE_LABELS, event_orgs=organisations.event_organisations(event.id),
        all_orgs=organisations.list_organisations(), roles=EVENT_ORG_ROLE_LABELS,
        invitations=matching.invitations_for(event.id), fiscal_year=fiscal_year(event.starts_at)), status


@bp.route("/matching/<int:event_id>", methods=["GET", "POST"])
@role_required("staff")
def session_setup(event_id: int):
    event = _event(event_id, "matching_session")
    settings = matching.settings_for(event.id)
    if request.method == "GET":
        values = {"access_rule": settings.access_rule, "rounds": settings.rounds,
                  "org_capacity_per_round": settings.org_capacity_per_round,
                  "minutes_per_round": settings.minutes_per_round,
                  "attendees_from": settings.attendees_from, "others_from": settings.others_from}
        return _setup_page(event, values, {})
    form = request.form
    errors: dict[str, str] = {}
    dates = {}
    for name in ("attendees_from", "others_from"):
        try:
            dates[name] = parse_datetime(form.get(name, ""))
        except ValueError:
            errors[name] = "日時は 2026-05-01T10:00 の形で入力してください。"
    links = [("event", i) for i in (_int(v) for v in form.getlist("linked_event_id")) if i]
    links += [(scope, None) for scope in form.getlist("scope") if scope in ("fy_fieldwork", "fy_seminar")]
    if not errors:
        try:
            matching.configure(event.id, access_rule=form.get("access_rule", ""), **dates,
                               rounds=_int(form.get("rounds"), 0), minutes_per_round=_int(form.get("minutes_per_round"), 0),
                               org_capacity_per_round=_int(form.get("org_capacity_per_round"), 0), links=links)
            audit.record("update", "event", event.id, f"マッチング会「{event.title}」の申込条件を変更")
            db.session.commit()
            flash("保存しました。", "success")
            return redirect(url_for("matching.session_setup", event_id=event.id), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
    return _setup_page(event, form, errors, 422)


@bp.post("/matching/<int:event_id>/organisations")
@role_required("staff")
def session_add_organisation(event_id: int):
    event = _event(event_id, "matching_session")
    try:
        organisations.link_event(event.id, _int(request.form.get("organisation_id"), 0), "host")
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("matching.session_setup", event_id=event.id), code=303)


@bp.post("/matching/<int:event_id>/override")
@role_required("staff")
def session_override(event_id: int):
    event = _event(event_id, "matching_session")
    try:
        invitation = matching.grant_override(event.id, request.form.get("email", ""), user=current_user)
        audit.record("update", "event", event.id, f"マッチング会「{event.title}」の申込を個別に許可",
                     {"person_id": invitation.person_id})
        db.session.commit()
        flash("この方の申し込みを許可しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(next(iter(exc.fields.values()), exc.message), "error")
    return redirect(url_for("matching.session_setup", event_id=event.id), code=303)


@bp.route("/matching/<int:event_id>/timetable", methods=["GET", "POST"])
@role_required("staff")
def session_timetable(event_id: int):
    event = _event(event_id, "matching_session")
    if request.method == "POST":
        try:
            if request.form.get("action") == "generate":
                matching.generate_timetable(event.id)
                flash("タイムテーブルを作成しました。", "success")
            else:
                org_id = _int(request.form.get("organisation_id"))
                matching.set_slot(event.id, _int(request.form.get("registration_id"), 0),
                                  _int(request.form.get("round"), 0), org_id or None)
                flash("変更しました。", "success")
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        return redirect(url_for("matching.session_timetable", event_id=event.id), code=303)
    return _timetable_page(event, "matching/timetable.html")


def _timetable_page(event, template):
    matrix = matching.preference_matrix(event.id)
    slots = matching.saved_timetable(event.id)
    grid = {(s.registration_id, s.round): s for s in slots}
    settings = matching.settings_for(event.id)
    per_org = {}
    for s in slots:
        per_org.setdefault((s.organisation_id, s.round), []).append(s)
    return render_template(template, event=event, matrix=matrix, grid=grid, per_org=per_org, settings=settings,
                           rounds=range(1, settings.rounds + 1), slots=slots)


@bp.get("/matching/<int:event_id>/timetable/print")
@role_required("staff")
def session_timetable_print(event_id: int):
    return _timetable_page(_event(event_id, "matching_session"), "matching/timetable_print.html")


@bp.route("/matching/<int:event_id>/outcomes", methods=["GET", "POST"])
@role_required("staff")
def session_outcomes(event_id: int):
    event = _event(event_id, "matching_session")
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        try:
            matched_on = date.fromisoformat(form["matched_on"]) if form.get("matched_on") else None
        except ValueError:
            matched_on = None
            errors["matched_on"] = "日付は 2026-02-01 の形で入力してください。"
        if not errors:
            try:
                outcome = matching.record_outcome(
                    _int(form.get("person_id"), 0), _int(form.get("organisation_id"), 0), status=form.get("status", ""),
                    matching_event_id=event.id, matched_on=matched_on, project_type=form.get("project_type") or None,
                    description=form.get("description", ""))
                audit.record("update", "outcome", outcome.id,
                             f"面談結果: {outcome.person.name} × {outcome.organisation.name} → {outcome.status_label}")
                db.session.commit()
                flash("記録しました。", "success")
                return redirect(url_for("matching.session_outcomes", event_id=event.id), code=303)
            except DomainError as exc:
                db.session.rollback()
                errors = exc.fields or {"status": exc.message}
    matrix = matching.preference_matrix(event.id)
    return render_template("matching/outcomes.html", event=event, matrix=matrix,
                           outcomes=matching.outcomes_for_event(event.id), errors=errors,
                           values=request.form if errors else {}, statuses=OUTCOME_STATUS_LABELS,
                           project_types=PROJECT_TYPE_LABELS), 422 if errors else 200


@bp.get("/people/<int:person_id>/journey")
@role_required("staff")
def person_journey(person_id: int):
    person = db.session.get(Person, person_id) or abort(404)
    return render_template("matching/journey.html", person=person, steps=matching.person_journey(person.id),
                           statuses=OUTCOME_STATUS_LABELS, now=utcnow())


# ---------------------------------------------------------------- attendance and survey

@bp.get("/attendance/<int:event_id>")
@role_required("staff")
def attendance_page(event_id: int):
    event = _event(event_id)
    regs = db.session.execute(select(Registration).where(
        Registration.event_id == event.id, Registration.status == "confirmed")).scalars().all()
    from ..formatting import kana_sort_key
    regs = sorted(regs, key=lambda r: kana_sort_key(r.furigana))
    return render_template("matching/attendance.html", event=event, registrations=regs,
                           attended=attendance.attended_registration_ids(event.id),
                           state=attendance.state_for(event.id), sessions=matching.matching_sessions_linked_to(event),
                           survey=surveys.results(event.id))


@bp.post("/attendance/<int:event_id>")
@role_required("staff")
def attendance_action(event_id: int):
    event = _event(event_id)
    action = request.form.get("action")
    try:
        if action == "code":
            code = attendance.new_attendance_code(event.id)
            flash(f"出席コードを発行しました: {code}", "success")
        elif action in ("mark", "unmark"):
            attendance.mark(_int(request.form.get("registration_id"), 0), action == "mark", user=current_user)
        elif action == "finalise":
            invitations = matching.finalise_attendance_and_invite(event.id, user=current_user)
            audit.record("message", "event", event.id, f"「{event.title}」の出席を確定し、招待メールを{len(invitations)}件送信")
            flash(f"出席を確定しました。招待メールを{len(invitations)}件送ります。", "success")
        elif action == "survey":
            sent = surveys.send_requests(event.id)
            audit.record("message", "event", event.id, f"「{event.title}」のアンケート依頼を{sent}件送信")
            flash(f"アンケートの依頼を{sent}件送ります。", "success")
        else:
            abort(400)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("matching.attendance_page", event_id=event.id), code=303)


# ---------------------------------------------------------------- report

@bp.get("/reports")
@role_required("staff")
def report():
    years = reports.available_years()
    year = _int(request.args.get("year"), years[-1])
    if year not in years:
        year = years[-1]
    data = reports.year_report(year)
    return render_template("matching/report.html", years=years, year=year, charts=_charts(data),
                           **reports.template_context(data))


def _charts(data: reports.YearReport) -> dict[str, str]:
    from ..formatting import KIND_LABELS
    return {
        "kinds": reports.bar_chart_svg([(str(KIND_LABELS[k]), n) for k, n in data.events_by_kind.items()],
                                       title="開催イベント数(種類別)", unit="回"),
        "funnel": reports.bar_chart_svg([(reports.FUNNEL_LABELS[s], data.funnel[s]) for s in reports.FUNNEL_STAGES],
                                        title="ファネル(実人数)", unit="人"),
        "types": reports.bar_chart_svg(
            [(PROJECT_TYPE_LABELS[t], round((data.conversion(t) or 0) * 100, 1)) for t in PROJECT_TYPE_LABELS],
            title="型別の成立率(面談→マッチング成立)", unit="%"),
        "years": reports.bar_chart_svg([(f"{y}年度", n) for y, n in data.matches_by_year.items()],
                                       title="年度別マッチング成立数", unit="件", highlight=f"{data.year}年度"),
    }


@bp.get("/reports/<int:year>.csv")
@role_required("staff")
def report_csv(year: int):
    data = reports.year_report(year)
    audit.record("export", "report", year, f"{year}年度 事業報告をCSVで出力")
    db.session.commit()
    return Response(reports.report_csv(data), content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename=\"report-FY{year}.csv\"; filename*=UTF-8''report-FY{year}.csv"})


@bp.get("/reports/<int:year>.pdf")
@role_required("staff")
def report_pdf(year: int):
    from ..services import documents

    data = reports.year_report(year)
    result = documents.render_document("annual_report", charts=_charts(data), printed_at=format_datetime(utcnow()),
                                       **reports.template_context(data))
    return Response(result.pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="report-FY{year}.pdf"'})


@bp.get("/matching/<int:event_id>/timetable.pdf")
@role_required("staff")
def session_timetable_pdf(event_id: int):
    from ..services import documents

    event = _event(event_id, "matching_session")
    matrix = matching.preference_matrix(event.id)
    slots = matching.saved_timetable(event.id)
    settings = matching.settings_for(event.id)
    per_org: dict = {}
    for s in slots:
        per_org.setdefault((s.organisation_id, s.round), []).append(s)
    result = documents.render_document(
        "matching_timetable", event=event, matrix=matrix, settings=settings, per_org=per_org,
        grid={(s.registration_id, s.round): s for s in slots}, rounds=range(1, settings.rounds + 1),
        printed_at=format_datetime(utcnow()))
    return Response(result.pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="timetable-{event.id}.pdf"'})

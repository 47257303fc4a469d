"""Announcement consent pages reached from mails: confirming an opt-in, and unsubscribing (no login).

Both answer GET with a page and one button (mail scanners prefetch links and must not act on them);
the POST acts. The unsubscribe POST is exempt from CSRF on purpose: RFC 8058 one-click unsubscribe
has the mail client POST `List-Unsubscribe=One-Click` to the URL with no cookie and no form token.
What authorises it is the 192-bit token in the URL, which only the mailbox holds; a forged cross-site
POST would need that token, and all it could do is stop announcements (never transactional mail).
"""

from __future__ import annotations

from flask import Response, render_template, request
from flask_babel import gettext as _

from ..extensions import csrf, db
from ..services import announcements
from ..services.errors import DomainError
from . import bp


def _private(response: Response | str, status: int = 200) -> Response:
    response = Response(response, status=status) if isinstance(response, str) else response
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL is the key
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.route("/announcements/confirm/<token>", methods=["GET", "POST"])
def announcement_opt_in(token: str):
    """The link mailed after a sign-up that ticked 「お知らせを受け取る」: the POST records the consent."""
    try:
        if request.method == "GET":
            person, _registration_id = announcements.check_opt_in_token(token)
            return _private(render_template(
                "public/announcement_opt_in.html", email=person.email, done=False,
                label=announcements.ANNOUNCEMENT_CONSENT_LABEL, text=announcements.ANNOUNCEMENT_CONSENT_TEXT,
                version=announcements.ANNOUNCEMENT_CONSENT_VERSION))
        consent = announcements.confirm_opt_in(token)
        email = consent.person.email
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return _private(render_template("mypage/link_invalid.html", message=exc.message, action_label=_("マイページ")), exc.status)
    return _private(render_template("public/announcement_opt_in.html", email=email, done=True,
                                    label=announcements.ANNOUNCEMENT_CONSENT_LABEL,
                                    text=announcements.ANNOUNCEMENT_CONSENT_TEXT,
                                    version=announcements.ANNOUNCEMENT_CONSENT_VERSION))


@bp.route("/announcements/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058 one-click POST carries no CSRF token; the URL's secret token authorises it (see above)
def announcement_unsubscribe(token: str):
    try:
        if request.method == "GET":
            consent = announcements.consent_by_token(token)
            return _private(render_template("public/announcement_unsubscribe.html", done=not consent.is_active,
                                            token=token))
        # A mail client's one-click POST (body List-Unsubscribe=One-Click) or the page's button.
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        announcements.unsubscribe(token, via="one_click" if one_click else "link")
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return _private(render_template("mypage/link_invalid.html", message=exc.message, action_label=_("マイページ")), exc.status)
    return _private(render_template("public/announcement_unsubscribe.html", done=True, token=token))

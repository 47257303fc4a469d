"""Host organisations, matching sessions, attendance, outcomes, surveys and the yearly report.

`bp` holds the staff screens (/staff/organisations, /staff/matching, /staff/attendance, /staff/reports);
`public_bp` the participant side (invitation link, 出席コード, survey).
"""

from flask import Blueprint

bp = Blueprint("matching", __name__, url_prefix="/staff")
public_bp = Blueprint("matching_public", __name__, cli_group="matching")


@public_bp.app_context_processor
def _template_helpers() -> dict:
    # Small hooks used by shared templates (event page, sign-up, manage page) without changing their views.
    from ..services import matching, organisations

    return {"event_organisation_links": organisations.event_organisations,
            "matching_organisations": matching.event_organisation_list,
            "matching_settings": matching.settings_for}


from . import cli, public_views, staff_views  # noqa: E402,F401

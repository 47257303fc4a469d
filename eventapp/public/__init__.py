from flask import Blueprint

bp = Blueprint("public", __name__)

from . import calendar_views, document_views, seo_views, views  # noqa: E402,F401

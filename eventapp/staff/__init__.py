"""Back-office pages for the 事務局: dashboard, events, participants, exports, accounts, audit, privacy."""

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff")

from . import accounts, announcements, dashboard, events, mails, outbox, participants, payments  # noqa: E402,F401

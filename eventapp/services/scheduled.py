"""Mail that falls due at a time rather than after a change (join URLs, reminders, scheduled staff mail).

Each pass is `pass(now) -> int` (how many mails it queued) and must be safe to run twice at once: it
claims what it queues with a conditional UPDATE or a unique row, so cron's `send-mail` beside the
`send-mail --watch` process (or two of them) queues every mail once. The runner commits after each pass
(passes never commit), so one failing pass does not hold back the others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import current_app

from ..extensions import db

ScheduledPass = Callable[[datetime], int]

# How often the watching sender runs the passes (cron's `send-mail` runs them on every call).
SCHEDULED_EVERY_S = 30.0


def passes() -> list[tuple[str, ScheduledPass]]:
    """The passes in the order they run; imported here so the mail module does not import them all."""
    from .join_url_notices import queue_join_url_mails
    from .lottery import draw_due_lotteries
    from .reminders import queue_due_reminders
    from .staff_mail import send_due_staff_mails

    # The draw first: its result mails go out in the same run.
    return [("lottery", draw_due_lotteries), ("join_url", queue_join_url_mails), ("reminders", queue_due_reminders),
            ("staff_mail", send_due_staff_mails)]


def run_scheduled(now: datetime) -> dict[str, int]:
    """Run every pass once; returns how many mails each queued (a failed pass counts 0 and is logged)."""
    queued: dict[str, int] = {}
    for name, run in passes():
        try:
            queued[name] = run(now)
            db.session.commit()
        except Exception:  # one broken pass must not stop the others or the sender
            db.session.rollback()
            current_app.logger.exception("scheduled mail pass %s failed", name)
            queued[name] = 0
    return queued

"""`flask --app eventapp matching send-surveys`: cron job for the post-event survey."""

from __future__ import annotations

from datetime import timedelta

import click

from ..database import try_cluster_lock, write_intent
from ..extensions import db
from ..services import surveys
from . import public_bp


@public_bp.cli.command("send-surveys")
@click.option("--days", default=3, show_default=True, help="Events that ended within this many days.")
def send_surveys_command(days: int) -> None:
    with write_intent():
        # Two servers running this cron job at once would both see nobody asked yet: one runs.
        if not try_cluster_lock("send-surveys"):
            click.echo("send-surveys: already running on another server; skipped")
            db.session.rollback()
            return
        sent = surveys.send_due(within=timedelta(days=days))
        db.session.commit()
    click.echo(f"survey requests queued: {sent}")

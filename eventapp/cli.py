"""Command-line tasks: `flask --app eventapp <command>`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask

from .database import cluster_lock, write_intent
from .extensions import db
from .services.errors import DomainError


def register(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.argument("email")
    @click.option("--role", type=click.Choice(["admin", "staff", "checkin"]), required=True)
    @click.option("--password", default=None, help="At least 10 characters, not a common password, not containing the e-mail or the app name; generated if omitted.")
    @click.option("--name", default="")
    def create_user_command(email: str, role: str, password: str | None, name: str) -> None:
        """Create a staff account."""
        from .services.accounts import create_user

        with write_intent():
            try:
                user, password = create_user(email, role, password, name)
                db.session.commit()
            except DomainError as exc:
                raise click.ClickException(f"{exc.message} {' '.join(exc.fields.values())}") from exc
        click.echo(f"created {user.email} ({user.role}); password: {password}")

    @app.cli.command("create-token")
    @click.argument("email")
    def create_token_command(email: str) -> None:
        """Print a new API token for a staff account (only its hash is stored)."""
        from .services.accounts import create_token

        with write_intent():
            try:
                token = create_token(email)
                db.session.commit()
            except DomainError as exc:
                raise click.ClickException(exc.message) from exc
        click.echo(token)

    @app.cli.command("demo-data")
    def demo_data_command() -> None:
        """Load the programme's real events and upcoming copies (safe to run again)."""
        from .demo import load_demo_data

        with write_intent():
            summary = load_demo_data()
            db.session.commit()
        click.echo(summary)

    @app.cli.command("purge-expired")
    @click.option("--days", type=int, default=None, help="Retention in days (default: RETENTION_DAYS, 365).")
    @click.option("--mail-days", type=int, default=None,
                  help="Days sent mail is kept in the outbox (default: MAIL_RETENTION_DAYS, 90).")
    @click.option("--batch-size", type=click.IntRange(1, 10000), default=None,
                  help="People anonymised per transaction (default 500).")
    @click.option("--dry-run", is_flag=True, help="Print what would be done (counts, sample ids); write nothing.")
    def purge_expired_command(days: int | None, mail_days: int | None, batch_size: int | None,
                              dry_run: bool) -> None:
        """Anonymise people whose events all ended more than N days ago, with their mails, and prune old
        sent mail (safe to run daily from cron; a stopped run resumes where it was)."""
        from flask import current_app

        from . import idempotency
        from .services.mail import prune_mail
        from .services.mypage import purge_links
        from .services.privacy import PURGE_BATCH, plan_purge, purge_expired

        days = days if days is not None else current_app.config["RETENTION_DAYS"]
        mail_days = mail_days if mail_days is not None else current_app.config["MAIL_RETENTION_DAYS"]
        if days < 0 or mail_days < 0:
            raise click.ClickException("--days and --mail-days must be 0 or more")
        if dry_run:
            plan = plan_purge(days)
            old_mail = prune_mail(mail_days, dry_run=True)
            db.session.rollback()
            sample = ", ".join(map(str, plan.sample)) + (" …" if plan.people > len(plan.sample) else "")
            click.echo(f"dry run: would anonymise {plan.people} people (retention {days} days) with "
                       f"{plan.registrations} registrations and {plan.mails} mails"
                       + (f"; first ids: {sample}" if plan.sample else ""))
            click.echo(f"dry run: would delete {old_mail} sent mails older than {mail_days} days; nothing written")
            return
        batches = 0

        def commit() -> None:
            nonlocal batches
            db.session.commit()
            batches += 1

        # write_intent: every batch's transaction takes SQLite's write lock at BEGIN. The cluster lock
        # outlives the batches' commits: a second server's cron run skips instead of racing this one.
        with write_intent(), cluster_lock("purge-expired") as held:
            if not held:
                click.echo("purge-expired: already running on another server; skipped")
                return
            count = purge_expired(days, batch_size=batch_size or PURGE_BATCH, commit=commit)
            mails = prune_mail(mail_days, commit=db.session.commit)
            links = purge_links()  # マイページ sign-in links whose sessions have ended
            keys = idempotency.purge_expired()  # sign-up retry keys older than 24 hours
            db.session.commit()
        click.echo(f"anonymised {count} people (retention {days} days); removed {links} old sign-in links")
        click.echo(f"committed {batches} batches of at most {batch_size or PURGE_BATCH} people")
        click.echo(f"deleted {mails} sent mails older than {mail_days} days")
        click.echo(f"deleted {keys} expired idempotency keys")

    @app.cli.command("backup")
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
    def backup_command(path: Path, overwrite: bool) -> None:
        """Copy the SQLite database to PATH while the app keeps running (PostgreSQL: use pg_dump)."""
        from .services.backup import backup_sqlite

        try:
            result = backup_sqlite(db.engine, path, overwrite=overwrite)
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"backup written to {result.path} ({result.size_bytes} bytes, integrity {result.integrity})")

    @app.cli.command("send-mail")
    @click.option("--watch", is_flag=True, help="Keep running and send new mail within --interval seconds "
                  "(the sender process for MAIL_DELIVERY=sender).")
    @click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 3600))
    def send_mail_command(watch: bool, interval: float) -> None:
        """Send queued mail that is due (from cron every minute, or --watch as a service)."""
        from .models.base import utcnow
        from .services.mail import deliver_due
        from .services.mail import watch as watch_outbox
        from .services.scheduled import run_scheduled

        if not watch:
            queued = sum(run_scheduled(utcnow()).values())
            sent, failed = deliver_due(limit=1000)
            click.echo(f"queued {queued} scheduled, sent {sent}, failed {failed}")
            return
        import signal
        import threading

        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        click.echo(f"send-mail: watching the outbox every {interval:g} s (SIGTERM to stop)")
        sent = watch_outbox(interval_s=interval, stop=stop)
        click.echo(f"send-mail: stopped after sending {sent}")

    @app.cli.command("draw-lotteries")
    def draw_lotteries_command() -> None:
        """Draw every lottery whose draw time has passed and that is not drawn (safe from cron every
        minute, and twice at once; `send-mail` runs the same pass)."""
        from .models.base import utcnow
        from .services.lottery import draw_due_lotteries

        drawn = draw_due_lotteries(utcnow())
        db.session.commit()
        click.echo(f"drew lotteries: {drawn} applications decided")

    @app.cli.command("send-reminders")
    def send_reminders_command() -> None:
        """Queue the reminder and waiting-list mails due now (one pass; `send-mail` runs it too)."""
        from .models.base import utcnow
        from .services.reminders import queue_due_reminders

        queued = queue_due_reminders(utcnow())
        db.session.commit()
        click.echo(f"queued {queued} reminder mails (sent by send-mail)")

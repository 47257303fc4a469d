#!/bin/sh
# Nightly backup of the eventapp database into DIR (default /var/backups/eventapp), kept BACKUP_KEEP_DAYS
# (default 14) days. PostgreSQL: pg_dump --format=custom (a consistent snapshot while the app runs);
# SQLite: `flask --app eventapp backup` (online backup API + integrity check). Restore: docs/operations.md.
#   deploy/eventapp-backup.sh [DIR]      (reads DATABASE_URL from the environment, e.g. the systemd EnvironmentFile)
set -eu
dir=${1:-/var/backups/eventapp}
keep=${BACKUP_KEEP_DAYS:-14}
here=$(cd "$(dirname "$0")/.." && pwd)
stamp=$(date +%Y-%m-%dT%H%M)
umask 077  # backups hold personal data
mkdir -p "$dir"
case "${DATABASE_URL:-}" in
  postgres://*|postgresql://*|postgresql+psycopg://*)
    # pg_dump takes libpq URLs; the app also accepts SQLAlchemy's postgresql+psycopg:// spelling.
    url=$(printf '%s' "$DATABASE_URL" | sed 's#^postgresql+psycopg://#postgresql://#')
    out="$dir/eventapp-$stamp.dump"
    pg_dump --format=custom --file="$out.partial" "$url"
    mv "$out.partial" "$out"
    ;;
  ""|sqlite:*)
    out="$dir/eventapp-$stamp.sqlite3"
    "$here/.venv/bin/flask" --app eventapp backup "$out"
    ;;
  *)
    echo "eventapp-backup: unsupported DATABASE_URL scheme" >&2
    exit 2
    ;;
esac
echo "eventapp-backup: wrote $out"
find "$dir" -maxdepth 1 -name 'eventapp-*' -type f -mtime +"$keep" -print -delete

#!/usr/bin/env bash
# The whole pytest suite, once on SQLite and once on PostgreSQL (a throwaway server is started
# unless TEST_DATABASE_URL is given). Extra arguments go to pytest.
#
# Both runs go at once (TEST_SERIAL=1: one after the other): each pytest is a single process and much
# of a run waits on gunicorn, Chromium and PostgreSQL, so two cores finish both in little more than
# the longer one. The SQLite run's output is printed when it ends, not interleaved.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python

pg_dir=""
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  pg_dir=$(mktemp -d /tmp/eventapp-pg.XXXXXX)
  trap 'scripts/pg-test-server.sh stop "$pg_dir"' EXIT
  TEST_DATABASE_URL=$(scripts/pg-test-server.sh start "$pg_dir") || { echo "could not start PostgreSQL"; exit 1; }
fi

run_sqlite() { env -u TEST_DATABASE_URL "$py" -m pytest "$@"; }
run_pg() { TEST_DATABASE_URL=$TEST_DATABASE_URL "$py" -m pytest "$@"; }

if [ "${TEST_SERIAL:-0}" = 1 ]; then
  echo "=== pytest on SQLite ==="
  run_sqlite "$@"; sqlite_rc=$?
  echo "=== pytest on PostgreSQL ($TEST_DATABASE_URL) ==="
  run_pg "$@"; pg_rc=$?
else
  sqlite_log=$(mktemp /tmp/eventapp-sqlite-run.XXXXXX)
  run_sqlite "$@" >"$sqlite_log" 2>&1 &
  sqlite_pid=$!
  echo "=== pytest on PostgreSQL ($TEST_DATABASE_URL), SQLite alongside ==="
  run_pg "$@"; pg_rc=$?
  wait "$sqlite_pid"; sqlite_rc=$?
  echo "=== pytest on SQLite ==="
  cat "$sqlite_log"
  rm -f "$sqlite_log"
fi

echo "SQLite: exit $sqlite_rc; PostgreSQL: exit $pg_rc"
[ $sqlite_rc -eq 0 ] && [ $pg_rc -eq 0 ]

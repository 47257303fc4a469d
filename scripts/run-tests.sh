#!/usr/bin/env bash
# The whole pytest suite, once on SQLite and once on PostgreSQL (a throwaway server is started
# unless TEST_DATABASE_URL is given). Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python

echo "=== pytest on SQLite ==="
env -u TEST_DATABASE_URL "$py" -m pytest "$@"
sqlite_rc=$?

pg_dir=""
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  pg_dir=$(mktemp -d /tmp/eventapp-pg.XXXXXX)
  trap 'scripts/pg-test-server.sh stop "$pg_dir"' EXIT
  TEST_DATABASE_URL=$(scripts/pg-test-server.sh start "$pg_dir") || { echo "could not start PostgreSQL"; exit 1; }
fi
echo "=== pytest on PostgreSQL ($TEST_DATABASE_URL) ==="
TEST_DATABASE_URL=$TEST_DATABASE_URL "$py" -m pytest "$@"
pg_rc=$?

echo "SQLite: exit $sqlite_rc; PostgreSQL: exit $pg_rc"
[ $sqlite_rc -eq 0 ] && [ $pg_rc -eq 0 ]

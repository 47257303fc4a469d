#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite, built from the machine's own binaries.
#   scripts/pg-test-server.sh start DIR   → prints the database URL on stdout
#   scripts/pg-test-server.sh stop DIR
set -euo pipefail
action=$1
dir=$2

pgbin=""
if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
  pgbin=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
else
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$pgbin" ] || [ ! -x "$pgbin/pg_ctl" ]; then
  echo "PostgreSQL server binaries (pg_ctl, initdb) not found. Install the 'postgresql' Debian package" \
       "or set TEST_DATABASE_URL." >&2
  exit 1
fi

# initdb refuses to run as root: run the server as the 'postgres' system user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$pgbin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || as_owner "$pgbin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
    as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
       -c synchronous_commit=off -c full_page_writes=off" >/dev/null
    "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -q -c "CREATE DATABASE eventapp_test" >/dev/null
    echo "$port" > "$dir/port"
    echo "postgresql://postgres@127.0.0.1:$port/eventapp_test"
    ;;
  stop)
    if [ -d "$dir/data" ]; then as_owner "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

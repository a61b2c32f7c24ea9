#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL 15, or against the one named
# by the environment.
#
#   scripts/with-postgres.sh [--env VAR] [--keep-log] -- CMD ARGS...
#
# If $VAR (default DATABASE_URL) is already set, CMD runs against it as is.
# Otherwise: initdb into a temp dir, start the server on a free port on
# 127.0.0.1 (and a private unix socket), create database "pgq", export
# VAR=postgresql://pgq@127.0.0.1:PORT/pgq, run CMD, stop the server, remove
# the dir. PostgreSQL refuses to run as root, so as root the server runs as
# an unprivileged user: "postgres" if present, else "pgqtest" (created).
# On failure of CMD the tail of the server log is printed.
# Extra server settings may come in PGQ_PG_OPTS ("-c fsync=off ...").
set -euo pipefail

var=DATABASE_URL
while [ $# -gt 0 ]; do
    case "$1" in
        --env) var=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "with-postgres: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "with-postgres: no command given" >&2; exit 2; }

if [ -n "${!var:-}" ]; then
    exec "$@"
fi

. "$(dirname "$0")/pg-env.sh"
pg_find_bindir with-postgres

tmp=$(mktemp -d /tmp/pgq-pg.XXXXXX)
chmod 755 "$tmp"
pg_run_as
if [ "$(id -u)" = 0 ]; then chown "$pguser" "$tmp"; fi

logfile="$tmp/server.log"
cleanup() {
    "${as_user[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${as_user[@]}" "$bindir/initdb" -D "$tmp/data" -U pgq --auth=trust -E UTF8 --no-sync \
    >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 2; }

# A port that is free now; if the server still loses a race for it, try again.
started=0
for try in 1 2 3 4 5; do
    port=$(pg_free_port)
    if "${as_user[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$logfile" -w -t 60 \
        -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c max_connections=200 ${PGQ_PG_OPTS:-}" \
        start >/dev/null 2>&1; then
        started=1; break
    fi
done
if [ $started = 0 ]; then
    echo "with-postgres: server did not start; log:" >&2
    tail -n 40 "$logfile" >&2 || true
    exit 2
fi
"$bindir/psql" -q -h 127.0.0.1 -p "$port" -U pgq -d postgres -c "CREATE DATABASE pgq" >/dev/null

export "$var=postgresql://pgq@127.0.0.1:$port/pgq"
export PGQ_PG_BINDIR=$bindir PGQ_PG_DATADIR=$tmp/data PGQ_PG_LOG=$logfile PGQ_PG_PORT=$port
export PGQ_PG_SOCKDIR=$tmp PGQ_PG_RUNAS="${as_user[*]}"
rc=0
"$@" || rc=$?
if [ $rc != 0 ] && [ $rc != 130 ]; then
    echo "--- with-postgres: command exited $rc; last lines of the server log ($logfile):" >&2
    tail -n 30 "$logfile" >&2 || true
fi
exit $rc

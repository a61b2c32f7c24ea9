#!/usr/bin/env bash
# A primary and a synchronous streaming standby on this machine, for the
# failover test (tests/failover_test.c) and for trying pgq on HA by hand.
#   ha-pair.sh start DIR      prints "PRIMARY_PORT STANDBY_PORT" once the
#                             standby is streaming synchronously (database pgq)
#   ha-pair.sh failover DIR   kill the primary (immediate stop: a crash), then
#                             promote the standby (pg_ctl promote)
#   ha-pair.sh stop DIR       stop both, remove DIR
# As root the servers run as postgres (or pgqtest), like with-postgres.sh.
# If PGQ_HA_OWNER holds a pid, start leaves a watchdog that runs "stop DIR"
# as soon as that process is gone (as ha-auto.sh does).
set -euo pipefail
cmd=${1:-} dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: ha-pair.sh start|failover|stop DIR" >&2; exit 2; }
. "$(dirname "$0")/pg-env.sh"
pg_find_bindir ha-pair
pg_run_as
pg() { "${as_user[@]}" "$@"; }
# start DATADIR LOG: on a port free now; if the server still loses a race
# for it (other servers start on this machine too), try another. Prints it.
start_on_free_port() {
    for _ in 1 2 3 4 5; do
        p=$(pg_free_port)
        if pg "$bindir/pg_ctl" -D "$1" -l "$2" -w -t 60 -o "-p $p" start >/dev/null 2>&1; then
            echo "$p"; return 0
        fi
    done
    echo "ha-pair: $1 did not start; see $2" >&2
    return 1
}

case $cmd in
start)
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ ${#as_user[@]} = 0 ] || chown "$pguser" "$dir"
    if [ -n "${PGQ_HA_OWNER:-}" ]; then
        self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
        setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
                        [ -d "$2" ] && exec "$3" stop "$2"' watchdog \
            "$PGQ_HA_OWNER" "$dir" "$self" >/dev/null 2>&1 </dev/null &
    fi
    pg "$bindir/initdb" -D "$dir/primary" -U pgq --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
    cat >> "$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 100
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
synchronous_commit = on
CONF
    p1=$(start_on_free_port "$dir/primary" "$dir/primary.log")
    "$bindir/psql" -q -h 127.0.0.1 -p "$p1" -U pgq -d postgres -c "CREATE DATABASE pgq" >/dev/null
    pg "$bindir/pg_basebackup" -h 127.0.0.1 -p "$p1" -U pgq -D "$dir/standby" -R -X stream \
        --checkpoint=fast \
        >"$dir/basebackup.log" 2>&1
    cat >> "$dir/standby/postgresql.auto.conf" <<CONF
primary_conninfo = 'host=127.0.0.1 port=$p1 user=pgq application_name=standby1'
CONF
    p2=$(start_on_free_port "$dir/standby" "$dir/standby.log")
    # synchronous only now: before the standby streams, every commit would wait for it
    "$bindir/psql" -q -h 127.0.0.1 -p "$p1" -U pgq -d postgres \
        -c "ALTER SYSTEM SET synchronous_standby_names = 'standby1'" -c "SELECT pg_reload_conf()" \
        >/dev/null
    for _ in $(seq 1 300); do
        s=$("$bindir/psql" -Atq -h 127.0.0.1 -p "$p1" -U pgq -d postgres -c \
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")
        [ "$s" = sync ] && { echo "$p1 $p2"; exit 0; }
        sleep 0.1
    done
    echo "ha-pair: the standby did not become synchronous; see $dir/*.log" >&2
    exit 1
    ;;
failover)
    pg "$bindir/pg_ctl" -D "$dir/primary" -m immediate stop >/dev/null
    pg "$bindir/pg_ctl" -D "$dir/standby" -w -t 60 promote >/dev/null
    ;;
stop)
    for n in primary standby; do
        [ -d "$dir/$n" ] && pg "$bindir/pg_ctl" -D "$dir/$n" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
    ;;
*) echo "ha-pair: unknown command $cmd" >&2; exit 2 ;;
esac

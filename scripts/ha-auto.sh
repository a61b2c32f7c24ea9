#!/usr/bin/env bash
# A pg_auto_failover formation on this machine: a monitor, a primary and a
# synchronous secondary, each managed by its own pg_autoctl keeper. For the
# failover test (tests/failover_test.c) and for trying pgq on HA by hand.
#   ha-auto.sh start DIR      prints "PRIMARY_PORT SECONDARY_PORT MONITOR_PORT"
#                             and, on a second line, the formation's URL
#                             (pg_autoctl show uri: both nodes,
#                             target_session_attrs=read-write), once the
#                             secondary is in state "secondary" and streaming
#                             synchronously (database pgq, superuser pgq)
#   ha-auto.sh failover DIR   crash the primary (SIGKILL of its keeper and of
#                             its postgres processes), wait until the monitor
#                             has promoted the secondary; prints the ms taken
#   ha-auto.sh stop DIR       stop everything under DIR, remove DIR
# A throwaway test cluster: every server listens on 127.0.0.1 only, with
# --auth trust and --no-ssl (nothing leaves the loopback interface; do not
# copy these choices to a real deployment). The monitor's failure detection
# is tuned down from its ~30 s defaults (see monitor_settings below) so
# that a failover takes a few seconds. pg_autoctl's own files go under DIR
# (XDG_* set there), nothing in a home directory.
# If PGQ_HA_OWNER holds a pid, start leaves a watchdog that runs "stop DIR"
# as soon as that process is gone: a killed test leaves no servers running.
# Leftovers by hand (the test's DIRs are /tmp/pgq-ha.PID; stop also hands
# a DIR of ha-pair.sh's to it):
#   for d in /tmp/pgq-ha.*; do scripts/ha-auto.sh stop "$d"; done
# As root the servers run as postgres (or pgqtest), like with-postgres.sh:
# PostgreSQL and pg_autoctl refuse to run as root.
set -euo pipefail
cmd=${1:-} dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: ha-auto.sh start|failover|stop DIR" >&2; exit 2; }
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$0")/pg-env.sh"
pg_find_bindir ha-auto
autoctl=$(command -v pg_autoctl || true)
pg_run_as
# pg_autoctl keeps its config, state and pid files in the XDG directories;
# the servers' unix sockets go in DIR too (PG_REGRESS_SOCK_DIR: pg_autoctl
# starts postgres with -k that; PGHOST: where its keepers look for them),
# not in /var/run/postgresql, which a fresh boot may not have
ctl_env=(env XDG_CONFIG_HOME="$dir/xdg/config" XDG_DATA_HOME="$dir/xdg/data"
         XDG_RUNTIME_DIR="$dir/xdg/run" PG_REGRESS_SOCK_DIR="$dir" PGHOST="$dir")
ctl() { "${as_user[@]}" "${ctl_env[@]}" "$autoctl" "$@"; }
pg() { "${as_user[@]}" "$@"; }
psql_at() { # PORT USER DB SQL: one value, or nothing when the server does not answer
    PGCONNECT_TIMEOUT=2 "$bindir/psql" -Atqw -h 127.0.0.1 -p "$1" -U "$2" -d "$3" -c "$4" 2>/dev/null || true
}
mon() { psql_at "$(cat "$dir/monitor.port")" autoctl_node pg_auto_failover "$1"; }
now_ms() { date +%s%3N; }
# Run a pg_autoctl service in its own session (so that a crash can kill the
# keeper and everything it started at once) and record the session id.
# NAME ARGS...
service() {
    local name=$1; shift
    setsid "${as_user[@]}" "${ctl_env[@]}" "$autoctl" "$@" >>"$dir/$name.log" 2>&1 </dev/null &
    echo $! >"$dir/$name.sid"
}
# children PID: the pids whose parent is PID, from /proc (a minimal Debian
# has no ps: procps is not installed there)
children() {
    local want=$1 p st
    for p in /proc/[0-9]*; do
        st=$(cat "$p/stat" 2>/dev/null) || continue
        st=${st##*) }          # past "pid (comm) ", which may hold spaces
        set -- $st             # state ppid ...
        [ "${2:-}" = "$want" ] && printf '%s ' "${p#/proc/}"
    done
    return 0
}

# Kill a whole service: the keeper's session and the postgres it ran
# (postgres's children each have a session of their own: found by parent
# pid, before the postmaster dies and they are handed to init). The pids
# killed are added to $killed. NAME
killed=""
crash() {
    local name=$1 pm="" kids=""
    if [ -f "$dir/$name/postmaster.pid" ]; then
        pm=$(head -n 1 "$dir/$name/postmaster.pid")
        # that pid, if it is still this server's postmaster (not a reused pid)
        if [ -n "$pm" ] && { tr '\0' ' ' <"/proc/$pm/cmdline"; } 2>/dev/null | grep -qF -- "-D $dir/$name "; then
            kids=$(children "$pm")
        else
            pm=""
        fi
    fi
    if [ -f "$dir/$name.sid" ]; then
        kill -KILL -- "-$(cat "$dir/$name.sid")" 2>/dev/null || true
    fi
    # shellcheck disable=SC2086
    [ -z "$pm" ] || kill -KILL "$pm" $kids 2>/dev/null || true
    killed="$killed $pm $kids"
}
# Wait (5 s at most) until every pid in $killed is gone or a zombie.
wait_killed() {
    local p st
    for _ in $(seq 1 50); do
        st=0
        for p in $killed; do
            if [ -r "/proc/$p/stat" ] && ! awk '{ exit $3 == "Z" ? 0 : 1 }' "/proc/$p/stat" 2>/dev/null; then
                st=1; break
            fi
        done
        [ $st = 0 ] && return 0
        sleep 0.1
    done
}
# Monitor settings for a test: failure detection and promotion in a few
# seconds instead of the defaults (health check every 5 s with a 5 s connect
# timeout and 2 retries 2 s apart, a node unhealthy after 20 s without a
# keeper report, 30 s for a primary to drain, no failover in the first 10 s
# after the monitor starts). A low primary_demote_timeout is safe here only
# because the test's primary is dead for sure; in production keep it above
# the keepers' network_partition_timeout (20 s), the time an isolated
# primary takes to demote itself.
monitor_settings() {
    cat <<'CONF'
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 2000
pgautofailover.primary_demote_timeout = 1000
pgautofailover.startup_grace_period = 1000
CONF
}
node_create() { # NAME PORT
    service "$1" create postgres --pgctl "$bindir/pg_ctl" --pgdata "$dir/$1" --pgport "$2" \
        --pghost "$dir" --hostname 127.0.0.1 --listen 127.0.0.1 --name "$1" --formation default \
        --monitor "postgres://autoctl_node@127.0.0.1:$(cat "$dir/monitor.port")/pg_auto_failover?sslmode=disable" \
        --dbname pgq --username pgq --auth trust --no-ssl --replication-quorum true --run
}
# The states the monitor has for the formation: "node1:primary/primary ..."
states() {
    mon "SELECT string_agg(nodename || ':' || reportedstate || '/' || goalstate, ' ' ORDER BY nodeid)
         FROM pgautofailover.node WHERE formationid = 'default'"
}
fail_start() {
    echo "ha-auto: $1 (states: $(states))" >&2
    for f in monitor node1 node2; do
        [ -f "$dir/$f.log" ] && { echo "--- $f.log" >&2; tail -n 15 "$dir/$f.log" >&2; }
    done
    exit 1
}

case $cmd in
start)
    [ -n "$autoctl" ] || { echo "ha-auto: pg_autoctl not found (scripts/deps.sh installs postgresql-15-auto-failover)" >&2; exit 2; }
    [ ! -e "$dir" ] || { echo "ha-auto: $dir exists" >&2; exit 2; }
    mkdir -p "$dir/xdg"
    chmod 755 "$dir"
    [ ${#as_user[@]} = 0 ] || chown -R "$pguser" "$dir"
    ok=0
    trap '[ $ok = 1 ] || "$self" stop "$dir" >/dev/null 2>&1 || true' EXIT
    cd "$dir"   # pg_ctl wants a current directory its user can read
    # the watchdog: its output goes nowhere, so that a caller reading our
    # stdout to its end does not wait for it
    if [ -n "${PGQ_HA_OWNER:-}" ]; then
        setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
                        [ -d "$2" ] && exec "$3" stop "$2"' watchdog \
            "$PGQ_HA_OWNER" "$dir" "$self" >/dev/null 2>&1 </dev/null &
    fi
    # the monitor (a port taken meanwhile by another server: try another)
    for _ in 1 2 3 4 5; do
        pm=$(pg_free_port)
        if ctl create monitor --pgctl "$bindir/pg_ctl" --pgdata "$dir/monitor" --pgport "$pm" \
            --hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl >>"$dir/monitor.log" 2>&1; then
            break
        fi
        rm -rf "$dir/monitor" "$dir/xdg/config" "$dir/xdg/data"; pm=""
    done
    [ -n "$pm" ] || fail_start "the monitor was not created"
    echo "$pm" >"$dir/monitor.port"
    monitor_settings | pg tee -a "$dir/monitor/postgresql.auto.conf" >/dev/null
    service monitor run --pgdata "$dir/monitor"
    for _ in $(seq 1 300); do
        [ "$(mon "SELECT 1")" = 1 ] && break
        sleep 0.2
    done
    [ "$(mon "SELECT current_setting('pgautofailover.node_considered_unhealthy_timeout')")" = 2s ] ||
        fail_start "the monitor did not start with the test's settings"
    # the first node: it registers and becomes "single"
    p1=$(pg_free_port)
    node_create node1 "$p1"
    for _ in $(seq 1 600); do
        case " $(states) " in *" node1:single/single "*) break ;; esac
        sleep 0.2
    done
    case " $(states) " in *" node1:single/single "*) ;; *) fail_start "node1 did not become single" ;; esac
    # settings for a throwaway cluster (pg_basebackup copies them to the
    # secondary); pg_basebackup as pg_autoctl 2.0 runs it waits for a spread
    # checkpoint (minutes): with no completion target it is immediate
    psql_at "$p1" pgq pgq "ALTER SYSTEM SET fsync = off" >/dev/null
    psql_at "$p1" pgq pgq "ALTER SYSTEM SET checkpoint_completion_target = 0" >/dev/null
    psql_at "$p1" pgq pgq "SELECT pg_reload_conf()" >/dev/null
    # the second node: a base backup of the first, then catching-up, then
    # secondary; the monitor makes node1 primary with node2 in its quorum
    p2=$(pg_free_port)
    while [ "$p2" = "$p1" ]; do p2=$(pg_free_port); done
    node_create node2 "$p2"
    ready=""
    for _ in $(seq 1 900); do
        case " $(states) " in
        *" node1:primary/primary node2:secondary/secondary "*) ready=1; break ;;
        esac
        sleep 0.2
    done
    [ -n "$ready" ] || fail_start "the formation did not reach primary + secondary"
    # synchronous: the secondary is a quorum standby the primary waits for
    sync=""
    for _ in $(seq 1 300); do
        sync=$(psql_at "$p1" pgq pgq "SELECT sync_state FROM pg_stat_replication
                                      WHERE application_name = 'pgautofailover_standby_2'")
        case $sync in sync|quorum) break ;; esac
        sleep 0.2
    done
    case $sync in sync|quorum) ;; *) fail_start "node2 does not replicate synchronously (${sync:-no walsender})" ;; esac
    [ -n "$(psql_at "$p1" pgq pgq "SHOW synchronous_standby_names")" ] ||
        fail_start "synchronous_standby_names is empty on the primary"
    uri=$(ctl show uri --pgdata "$dir/monitor" --formation default)
    ok=1
    echo "$p1 $p2 $pm"
    echo "$uri"
    ;;
failover)
    [ -f "$dir/monitor.port" ] || { echo "ha-auto: no formation in $dir" >&2; exit 2; }
    cur=$(mon "SELECT nodename FROM pgautofailover.node WHERE reportedstate = 'primary'
               AND formationid = 'default'")
    case $cur in node1) next=node2 ;; node2) next=node1 ;; *)
        echo "ha-auto: no single primary to fail (states: $(states))" >&2; exit 1 ;;
    esac
    nport=$(mon "SELECT nodeport FROM pgautofailover.node WHERE nodename = '$next'")
    t0=$(now_ms)
    crash "$cur"
    # promoted: the monitor has the other node as (wait_)primary and it
    # takes writes (wait_primary: synchronous replication is off until a
    # standby is back, so commits do not wait for the dead one)
    for _ in $(seq 1 600); do
        case " $(states) " in
        *" $next:wait_primary/wait_primary "*|*" $next:primary/primary "*)
            if [ "$(psql_at "$nport" pgq pgq "SELECT pg_is_in_recovery()")" = f ]; then
                echo $(( $(now_ms) - t0 ))
                exit 0
            fi ;;
        esac
        sleep 0.1
    done
    echo "ha-auto: $next was not promoted (states: $(states))" >&2
    exit 1
    ;;
stop)
    [ -d "$dir" ] || exit 0
    if [ ! -f "$dir/monitor.port" ] && { [ -d "$dir/primary" ] || [ -d "$dir/standby" ]; }; then
        exec "$(dirname "$self")/ha-pair.sh" stop "$dir"
    fi
    # a crash of everything (the cluster is thrown away), keepers and
    # servers at once so that no keeper restarts a server stopped before it
    for n in node1 node2 monitor; do crash "$n"; done
    wait_killed
    # what a killed postmaster leaves behind: its small System V segment
    for n in node1 node2 monitor; do
        shmid=$(sed -n 7p "$dir/$n/postmaster.pid" 2>/dev/null | awk '{ print $2 }')
        [ -z "$shmid" ] || ipcrm -m "$shmid" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
*) echo "ha-auto: unknown command $cmd" >&2; exit 2 ;;
esac

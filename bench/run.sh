#!/usr/bin/env bash
# Run pgq's benchmarks against a throwaway PostgreSQL 15 with default
# durability (fsync on, synchronous_commit on).
#
#   bench/run.sh bench [BUILD_DIR]    (make bench)  -> bench/RESULTS.md
#   bench/run.sh soak [BUILD_DIR]     (make soak)   -> bench/SOAK.md
#   bench/run.sh pinned [BUILD_DIR]   (make pinned) -> bench/PINNED.md
#
# bench runs, each on a fresh database (CREATE DATABASE per run, dropped
# after it):
#   RUNS x  pgq-bench throughput --profile default  --jobs $THROUGHPUT_JOBS --concurrency 8
#   RUNS x  pgq-bench throughput --profile strict   --jobs $STRICT_JOBS     --concurrency 8
#   RUNS x  pgq-bench throughput --profile batched  --jobs $BATCHED_JOBS    --concurrency 8
#   RUNS x  pgq-bench spawn --jobs $SPAWN_JOBS (the posix_spawn ceiling, no database),
#           each right before
#           pgq-bench throughput --profile exec     --jobs $EXEC_JOBS       --concurrency 8
#   RUNS x  pgq-bench latency --jobs $LATENCY_JOBS --interval-ms 20 --concurrency 8,
#           --profile default and --profile strict in turn
#   1 x     pgq-bench backlog --sizes $BACKLOG_SIZES --passes RUNS (one backlog
#           per size, measured RUNS times on it)
#   1 x     pgq-bench footprint --seconds $FOOTPRINT_SECONDS (the real pgq-pool)
#   1 x     pgq-bench dashboard --sizes $DASHBOARD_SIZES --refreshes $DASHBOARD_REFRESHES
#           (server CPU of a dashboard refresh and of pgq stats as the queue grows)
#   PINNED_DRAIN_RUNS x pgq-bench pinned --jobs $PINNED_DRAIN_JOBS --pin no, then --pin yes
#   pgbench ceiling: built-in simple-update (-N) and a one-INSERT script,
#   8 clients, $PGBENCH_SECONDS each.
# soak runs pgq-bench soak --minutes $SOAK_MINUTES --rate $SOAK_RATE; without
# SOAK_RATE the rate is half of what one default-profile throughput run
# measures first (1500/s if that run fails). pinned runs pgq-bench pinned
# --rate $PINNED_RATE with PIN_BEFORE_MINUTES, PIN_MINUTES, AFTER_MINUTES,
# PINNED_SAMPLE_S; its rate is found like the soak's.
# BENCH_PARTS (default: all) picks the parts of bench: default strict
# batched exec latency backlog footprint dashboard drain pgbench.
#
# The server keeps its WAL (wal_keep_size=2GB: pg_waldump reads each
# throughput run's range) and preloads pg_stat_statements with tracking
# off; pgq-bench pinned turns it on (track = all) for its own database, as
# it reads claim times from it. Tracking every statement cost the strict
# profile ~7% of its jobs/s, and pgbench's one INSERT far less.
#
# Knobs (environment): RUNS THROUGHPUT_JOBS BATCHED_JOBS EXEC_JOBS SPAWN_JOBS LATENCY_JOBS
# BACKLOG_SIZES BACKLOG_CYCLES BACKLOG_THREADS FOOTPRINT_SECONDS PGBENCH_SECONDS
# DASHBOARD_SIZES DASHBOARD_REFRESHES
# SOAK_MINUTES SOAK_RATE SOAK_KEEP_DONE STRICT_JOBS PINNED_DRAIN_JOBS
# PINNED_DRAIN_RUNS PINNED_RATE PIN_BEFORE_MINUTES PIN_MINUTES AFTER_MINUTES
# PINNED_SAMPLE_S BENCH_PARTS, and OUT (the Markdown file written).
# Raw JSON lines go into the Markdown file after the summary table (median
# and range). Needs python3 for the summary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

mode=${1:-}
case "$mode" in
    bench|soak|pinned) ;;
    *) echo "usage: bench/run.sh bench|soak|pinned [BUILD_DIR]" >&2; exit 2 ;;
esac

if [ "${2:-}" != "--inner" ]; then
    build=${2:-build}
    case "$build" in /*) ;; *) build=$root/$build ;; esac
    # Always a throwaway server, never one from the environment, and never
    # the relaxed durability settings of `make test`.
    unset DATABASE_URL
    export PGQ_PG_OPTS="-c wal_keep_size=2GB -c shared_preload_libraries=pg_stat_statements \
-c pg_stat_statements.track=none"
    exec "$root/scripts/with-postgres.sh" -- "$here/run.sh" "$mode" --inner "$build"
fi
build=$3
bench="$build/pgq-bench"
[ -x "$bench" ] || { echo "bench/run.sh: $bench not built (run make)" >&2; exit 2; }
[ -x "$build/pgq-pool" ] || { echo "bench/run.sh: $build/pgq-pool not built (run make)" >&2; exit 2; }

RUNS=${RUNS:-3}
THROUGHPUT_JOBS=${THROUGHPUT_JOBS:-20000}
STRICT_JOBS=${STRICT_JOBS:-20000}
BATCHED_JOBS=${BATCHED_JOBS:-100000}
EXEC_JOBS=${EXEC_JOBS:-10000}
SPAWN_JOBS=${SPAWN_JOBS:-$EXEC_JOBS}
LATENCY_JOBS=${LATENCY_JOBS:-300}
BACKLOG_SIZES=${BACKLOG_SIZES:-10000,1000000,10000000}
BACKLOG_CYCLES=${BACKLOG_CYCLES:-2000}
BACKLOG_THREADS=${BACKLOG_THREADS:-8}
DASHBOARD_SIZES=${DASHBOARD_SIZES:-10000,1000000,10000000}
DASHBOARD_REFRESHES=${DASHBOARD_REFRESHES:-30}
FOOTPRINT_SECONDS=${FOOTPRINT_SECONDS:-60}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK_KEEP_DONE=${SOAK_KEEP_DONE:-2m}
PINNED_DRAIN_JOBS=${PINNED_DRAIN_JOBS:-50000}
PINNED_DRAIN_RUNS=${PINNED_DRAIN_RUNS:-1}
PIN_BEFORE_MINUTES=${PIN_BEFORE_MINUTES:-2}
PIN_MINUTES=${PIN_MINUTES:-10}
AFTER_MINUTES=${AFTER_MINUTES:-5}
PINNED_SAMPLE_S=${PINNED_SAMPLE_S:-60}
BENCH_PARTS=${BENCH_PARTS:-default strict batched exec latency backlog footprint dashboard drain pgbench}
case "$mode" in
    bench) OUT=${OUT:-$here/RESULTS.md} ;;
    soak) OUT=${OUT:-$here/SOAK.md} ;;
    pinned) OUT=${OUT:-$here/PINNED.md} ;;
esac
part() { case " $BENCH_PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

psql_admin() {
    PGOPTIONS="-c client_min_messages=warning" "$PGQ_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PGQ_PG_PORT" -U pgq -d postgres "$@"
}
# A fresh, empty database named $1; prints its URL.
fresh_db() {
    psql_admin -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null
    psql_admin -c "CREATE DATABASE \"$1\"" >/dev/null
    echo "postgresql://pgq@127.0.0.1:$PGQ_PG_PORT/$1"
}
drop_db() { psql_admin -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null || true; }

out=$(mktemp -d /tmp/pgq-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
raw=$out/raw.jsonl
: >"$raw"
started=$(date +%s)

log() { echo "bench [$(( $(date +%s) - started ))s]: $*" >&2; }

# run_pgq DB BENCH PROFILE ARGS...: pgq-bench BENCH on a fresh database DB;
# its JSON lines go to the raw file. A run that printed nothing (a crash)
# still leaves a line saying so.
run_pgq() {
    local db=$1 what=$2 profile=$3; shift 3
    local url rc=0
    url=$(fresh_db "$db")
    DATABASE_URL=$url "$bench" "$what" "$@" >"$out/one.jsonl" || rc=$?
    if [ ! -s "$out/one.jsonl" ]; then
        printf '{"system":"pgq","bench":"%s","profile":"%s","ok":false,"error":"pgq-bench printed nothing (exit %s)"}\n' \
            "$what" "$profile" "$rc" >"$out/one.jsonl"
    fi
    [ $rc = 0 ] || log "$what ($profile) failed (exit $rc): $(tail -n 1 "$out/one.jsonl" | cut -c1-400)"
    cat "$out/one.jsonl" >>"$raw"
    drop_db "$db"
}

machine="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -m | awk '/^Mem:/ {print $2}') MB RAM, $(uname -sr)"

# half_rate VAR FALLBACK: half of one default-profile throughput run
# (FALLBACK when it fails), unless VAR is set.
half_rate() {
    local rate=${!1:-}
    if [ -z "$rate" ]; then
        log "measuring the default profile once ($THROUGHPUT_JOBS jobs) for the rate"
        run_pgq rate_tp throughput default --jobs "$THROUGHPUT_JOBS" --concurrency 8 \
            --max-drain-s 120 --timeout-s 180
        rate=$(python3 -c 'import json,sys
r=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r=[x for x in r if x.get("bench")=="throughput" and x.get("ok") and x.get("jobs_per_s")]
print(int(r[-1]["jobs_per_s"] // 2) if r else "")' "$raw")
        if [ -z "$rate" ] || [ "$rate" -lt 1 ]; then
            rate=$2
            log "throughput run failed: the fixed fallback rate $rate/s"
        fi
    fi
    echo "$rate"
}

if [ "$mode" = soak ]; then
    rate=$(half_rate SOAK_RATE 1500)
    log "soak: $SOAK_MINUTES minutes at $rate jobs/s (keep_done $SOAK_KEEP_DONE)"
    run_pgq bench_soak soak default --minutes "$SOAK_MINUTES" --rate "$rate" \
        --keep-done "$SOAK_KEEP_DONE"
    log "done"
    python3 "$here/summarize.py" soak "$raw" "$machine" "$(( $(date +%s) - started ))" >"$OUT"
    echo "bench: wrote $OUT" >&2
    cat "$OUT"
    exit 0
fi

if [ "$mode" = pinned ]; then
    rate=$(half_rate PINNED_RATE 1200)
    log "pinned: $rate jobs/s, ${PIN_BEFORE_MINUTES} min unpinned, ${PIN_MINUTES} min pinned," \
        "${AFTER_MINUTES} min after (one line per ${PINNED_SAMPLE_S} s)"
    run_pgq bench_pinned pinned sustained --rate "$rate" --before-minutes "$PIN_BEFORE_MINUTES" \
        --pin-minutes "$PIN_MINUTES" --after-minutes "$AFTER_MINUTES" \
        --sample-s "$PINNED_SAMPLE_S" --keep-done "$SOAK_KEEP_DONE"
    log "done"
    python3 "$here/summarize.py" pinned "$raw" "$machine" "$(( $(date +%s) - started ))" >"$OUT"
    echo "bench: wrote $OUT" >&2
    cat "$OUT"
    exit 0
fi

part default && for i in $(seq 1 "$RUNS"); do
    log "throughput default $i/$RUNS ($THROUGHPUT_JOBS jobs, 8 workers)"
    run_pgq "bench_tp_$i" throughput default --jobs "$THROUGHPUT_JOBS" --concurrency 8 \
        --max-drain-s 120 --timeout-s 180
done
part strict && for i in $(seq 1 "$RUNS"); do
    log "throughput strict $i/$RUNS ($STRICT_JOBS jobs, 8 workers, batch = 1)"
    run_pgq "bench_strict_$i" throughput strict --jobs "$STRICT_JOBS" --concurrency 8 \
        --profile strict --max-drain-s 120 --timeout-s 180
done
part batched && for i in $(seq 1 "$RUNS"); do
    log "throughput batched $i/$RUNS ($BATCHED_JOBS jobs, 8 workers, batch 512)"
    run_pgq "bench_batched_$i" throughput batched --jobs "$BATCHED_JOBS" --concurrency 8 \
        --profile batched --max-drain-s 120 --timeout-s 240
done
# The ceiling first, in the same minute as the exec run it is set against
# (the machine's speed drifts with its neighbours' load).
part exec && for i in $(seq 1 "$RUNS"); do
    log "spawn ceiling $i/$RUNS ($SPAWN_JOBS x posix_spawn + waitpid of /bin/true, 8 threads)"
    rc=0
    "$bench" spawn --jobs "$SPAWN_JOBS" --concurrency 8 --timeout-s 300 >"$out/one.jsonl" || rc=$?
    if [ ! -s "$out/one.jsonl" ]; then
        printf '{"system":"pgq","bench":"spawn","profile":"posix_spawn","ok":false,"error":"pgq-bench printed nothing (exit %s)"}\n' \
            "$rc" >"$out/one.jsonl"
    fi
    [ $rc = 0 ] || log "spawn failed (exit $rc): $(tail -n 1 "$out/one.jsonl" | cut -c1-400)"
    cat "$out/one.jsonl" >>"$raw"
    log "throughput exec $i/$RUNS ($EXEC_JOBS jobs, 8 workers, exec /bin/true)"
    run_pgq "bench_exec_$i" throughput exec --jobs "$EXEC_JOBS" --concurrency 8 \
        --profile exec --max-drain-s 300 --timeout-s 360
done
# Default and strict alternate, so that a noisy minute hits both alike
# (issue 11: the default's latency no worse than strict's).
part latency && for i in $(seq 1 "$RUNS"); do
    for lp in default strict; do
        log "latency $lp $i/$RUNS ($LATENCY_JOBS jobs, 20 ms apart, 8 idle workers)"
        run_pgq "bench_lat_$i" latency "$lp" --jobs "$LATENCY_JOBS" --interval-ms 20 \
            --concurrency 8 --profile "$lp" --timeout-s 120
    done
done
part backlog && log "backlog ($BACKLOG_SIZES ready jobs, $RUNS passes of $BACKLOG_CYCLES claims each)"
part backlog && run_pgq bench_backlog backlog default --sizes "$BACKLOG_SIZES" --cycles "$BACKLOG_CYCLES" \
    --threads "$BACKLOG_THREADS" --passes "$RUNS" --timeout-s 1500
part footprint && log "footprint (pgq-pool, 8 workers, idle ${FOOTPRINT_SECONDS}s)"
part footprint && run_pgq bench_footprint footprint exec --concurrency 8 --seconds "$FOOTPRINT_SECONDS" \
    --pool-bin "$build/pgq-pool"
part dashboard && log "dashboard ($DASHBOARD_SIZES jobs, $DASHBOARD_REFRESHES refreshes per measurement)"
part dashboard && run_pgq bench_dashboard dashboard default --sizes "$DASHBOARD_SIZES" \
    --refreshes "$DASHBOARD_REFRESHES" --timeout-s 3000
part drain && for i in $(seq 1 "$PINNED_DRAIN_RUNS"); do
    for pin in no yes; do
        log "pinned drain $i/$PINNED_DRAIN_RUNS ($PINNED_DRAIN_JOBS jobs queued, pin $pin)"
        run_pgq "bench_drain_$pin" pinned "drain-$pin" --jobs "$PINNED_DRAIN_JOBS" --pin "$pin" \
            --concurrency 8 --max-drain-s 900 --timeout-s 1200
    done
done

pgbench="$PGQ_PG_BINDIR/pgbench"
part pgbench && {
    pgb_tps() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'; }
    log "pgbench ceiling (${PGBENCH_SECONDS}s each)"
    url=$(fresh_db bench_pgbench)
    "$pgbench" -q -i -s 1 "$url" >"$out/pgbench-init.log" 2>&1
    "$pgbench" -c 8 -j 2 -T "$PGBENCH_SECONDS" -N "$url" >"$out/pgbench-N.log" 2>&1 || true
    tps_n=$(pgb_tps <"$out/pgbench-N.log")
    "$PGQ_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$url" \
        -c "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload jsonb NOT NULL)" >/dev/null
    printf '%s\n' "INSERT INTO bench_insert (payload) VALUES ('{\"i\":1}');" >"$out/insert.sql"
    "$pgbench" -n -c 8 -j 2 -T "$PGBENCH_SECONDS" -f "$out/insert.sql" "$url" \
        >"$out/pgbench-insert.log" 2>&1 || true
    tps_i=$(pgb_tps <"$out/pgbench-insert.log")
    printf '{"system":"pgbench","bench":"simple-update -N","clients":8,"seconds":%s,"tps":%s}\n' \
        "$PGBENCH_SECONDS" "${tps_n:-null}" >>"$raw"
    printf '{"system":"pgbench","bench":"single INSERT","clients":8,"seconds":%s,"tps":%s}\n' \
        "$PGBENCH_SECONDS" "${tps_i:-null}" >>"$raw"
    drop_db bench_pgbench
}

elapsed=$(( $(date +%s) - started ))
log "done in ${elapsed}s"
python3 "$here/summarize.py" bench "$raw" "$machine" "$elapsed" >"$OUT"
echo "bench: wrote $OUT" >&2
cat "$OUT"

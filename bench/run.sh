#!/usr/bin/env bash
# Run pgq's benchmarks against a throwaway PostgreSQL 15 with default
# durability (fsync on, synchronous_commit on) and write bench/RESULTS.md.
#
#   bench/run.sh [BUILD_DIR]        (make bench)
#
# Runs, each on a fresh database (CREATE DATABASE per run):
#   3x  pgq-bench throughput --jobs $THROUGHPUT_JOBS (20000) --concurrency 8
#   3x  pgq-bench latency --jobs $LATENCY_JOBS (300) --interval-ms 20 --concurrency 8
#   pgbench ceiling: built-in simple-update (-N) and a one-INSERT script,
#   8 clients, $PGBENCH_SECONDS (10) each.
# Raw JSON lines go to RESULTS.md as well as the summary table (median and
# range). Needs python3 for the summary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

if [ "${1:-}" != "--inner" ]; then
    build=${1:-build}
    # Always a throwaway server, never one from the environment, and never
    # the relaxed durability settings of `make test`.
    unset DATABASE_URL PGQ_PG_OPTS
    exec "$root/scripts/with-postgres.sh" -- "$here/run.sh" --inner "$root/$build"
fi
build=$2
bench="$build/pgq-bench"
[ -x "$bench" ] || { echo "bench/run.sh: $bench not built (run make)" >&2; exit 2; }

THROUGHPUT_JOBS=${THROUGHPUT_JOBS:-20000}
LATENCY_JOBS=${LATENCY_JOBS:-300}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
RUNS=${RUNS:-3}

psql_admin() {
    PGOPTIONS="-c client_min_messages=warning" "$PGQ_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGQ_PG_PORT" -U pgq -d postgres "$@"
}
# A fresh, empty database named $1; prints its URL.
fresh_db() {
    psql_admin -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null
    psql_admin -c "CREATE DATABASE \"$1\"" >/dev/null
    echo "postgresql://pgq@127.0.0.1:$PGQ_PG_PORT/$1"
}

out=$(mktemp -d /tmp/pgq-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
: >"$out/raw.jsonl"

for i in $(seq 1 "$RUNS"); do
    echo "bench: throughput run $i/$RUNS ($THROUGHPUT_JOBS jobs, 8 workers)" >&2
    url=$(fresh_db "bench_tp_$i")
    DATABASE_URL=$url "$bench" throughput --jobs "$THROUGHPUT_JOBS" --concurrency 8 \
        --max-drain-s 90 --timeout-s 120 >>"$out/raw.jsonl" || echo "bench: throughput run $i failed" >&2
done
for i in $(seq 1 "$RUNS"); do
    echo "bench: latency run $i/$RUNS ($LATENCY_JOBS jobs, 20 ms apart, 8 idle workers)" >&2
    url=$(fresh_db "bench_lat_$i")
    DATABASE_URL=$url "$bench" latency --jobs "$LATENCY_JOBS" --interval-ms 20 --concurrency 8 \
        --timeout-s 60 >>"$out/raw.jsonl" || echo "bench: latency run $i failed" >&2
done

pgbench="$PGQ_PG_BINDIR/pgbench"
pgb_tps() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'; }
echo "bench: pgbench ceiling (${PGBENCH_SECONDS}s each)" >&2
url=$(fresh_db bench_pgbench)
"$pgbench" -q -i -s 1 "$url" >"$out/pgbench-init.log" 2>&1
"$pgbench" -c 8 -j 2 -T "$PGBENCH_SECONDS" -N "$url" >"$out/pgbench-N.log" 2>&1
tps_n=$(pgb_tps <"$out/pgbench-N.log")
"$PGQ_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$url" \
    -c "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload jsonb NOT NULL)" >/dev/null
printf '%s\n' "INSERT INTO bench_insert (payload) VALUES ('{\"i\":1}');" >"$out/insert.sql"
"$pgbench" -n -c 8 -j 2 -T "$PGBENCH_SECONDS" -f "$out/insert.sql" "$url" >"$out/pgbench-insert.log" 2>&1
tps_i=$(pgb_tps <"$out/pgbench-insert.log")
printf '{"system":"pgbench","bench":"simple-update -N","clients":8,"seconds":%s,"tps":%s}\n' \
    "$PGBENCH_SECONDS" "${tps_n:-null}" >>"$out/raw.jsonl"
printf '{"system":"pgbench","bench":"single INSERT","clients":8,"seconds":%s,"tps":%s}\n' \
    "$PGBENCH_SECONDS" "${tps_i:-null}" >>"$out/raw.jsonl"

machine="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -m | awk '/^Mem:/ {print $2}') MB RAM, $(uname -sr)"
python3 "$here/summarize.py" "$out/raw.jsonl" "$machine" >"$here/RESULTS.md"
echo "bench: wrote $here/RESULTS.md" >&2
cat "$here/RESULTS.md"

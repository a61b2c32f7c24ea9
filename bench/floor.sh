#!/usr/bin/env bash
# The floors under issue 10's three open targets, measured in one run beside
# the single-INSERT ceiling they are ratios of: what any state machine on
# PostgreSQL 15 can reach on this machine, not what pgq reaches.
#
#   bench/floor.sh [BUILD_DIR]          (make bench-floor; default: build)
#   ROUNDS=3 SECONDS_EACH=8 JOBS=20000  (the knobs)
#
# Writes bench/FLOOR.md. Each round, on a throwaway cluster with default
# durability (fsync on, as make bench):
#
#   insert     pgbench, 8 clients: INSERT INTO t (payload) VALUES (...)
#              (the ceiling make bench divides by)
#   strict     pgq-bench throughput --profile strict (pgq itself)
#   step       a PL/pgSQL function that ends one job and claims the next
#              with two UPDATEs and nothing else: no hints, no limits, no
#              pause, no history, no dependants (the least a state machine
#              in PL/pgSQL does per job), 8 pgbench clients
#   statement  the same two UPDATEs as ONE SQL statement sent by the
#              client (no PL/pgSQL at all): the floor of one transaction
#              per job
#   batched    pgq-bench throughput --profile batched
#   batch512   one statement that ends 512 jobs and claims 512 more: the
#              floor of the batched profile, without a pool's own CPU
#
# Every transition runs on floor.jobs, made `LIKE pgq.jobs INCLUDING ALL`
# from the migrated schema (its columns, defaults, checks and all seven
# indexes, fillfactor 80 as pgq.jobs has), with 200,000 ready jobs.
#
# WAL per job (enqueue of JOBS jobs in one INSERT, then their life by the
# `step` form, pg_current_wal_lsn() around each) for three layouts:
#   pgq-like   floor.jobs as above
#   hot-claim  pgq.jobs's columns with indexes that a claim does not touch
#              (see hot_claim below): the claim is a heap-only update, the
#              end still moves the job between indexes; running jobs kept
#              in an unlogged table
#   lean       the leanest layout measured: the mutable columns last, state
#              a one-byte "char", only the indexes that no claim or end
#              touches (primary key, claim order without a state predicate,
#              idempotency key, waiting), fillfactor 50, the claim's skip
#              by advisory lock instead of a row lock. It gives up what
#              pgq's promises need (finished jobs stay in the claim index;
#              no index finds running or finished jobs), so it is a floor,
#              not a design.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
if [ "${2:-}" != --inner ]; then
    [ -x "$root/$build/pgq-bench" ] || { echo "floor: $root/$build/pgq-bench not built (make)" >&2; exit 2; }
    export PGQ_PG_OPTS="-c wal_keep_size=4GB -c max_wal_size=4GB"
    unset DATABASE_URL
    exec "$root/scripts/with-postgres.sh" -- "$0" "$build" --inner
fi
. "$root/scripts/pg-env.sh"
pg_find_bindir floor
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
pgbench="$bindir/pgbench"
rounds=${ROUNDS:-3}
secs=${SECONDS_EACH:-8}
jobs=${JOBS:-20000}
tmp=$(mktemp -d /tmp/pgq-floor.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
url=$DATABASE_URL
raw=$tmp/raw
started=$(date +%s)

sql() { "${psql[@]}" -At "$url" -c "$1"; }
# pgq-bench on a fresh database of its own (it wants an empty queue).
pgq_bench() {   # pgq_bench OUT PROFILE JOBS
    local db=floor_pgq
    "${psql[@]}" "$url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    DATABASE_URL=${url%/*}/$db "$root/$build/pgq-bench" throughput --profile "$2" --jobs "$3" \
        --concurrency 8 >"$1"
    "${psql[@]}" "$url" -c "DROP DATABASE $db WITH (FORCE)"
}
tps() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$1" | cut -d. -f1; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

"$root/$build/pgq" --db "$url" migrate >/dev/null
sql "CREATE SCHEMA floor; CREATE TABLE floor.t (id bigserial PRIMARY KEY, payload jsonb NOT NULL)"
echo "INSERT INTO floor.t (payload) VALUES ('{\"i\":1}');" >"$tmp/insert.pgb"

# The two transitions, for a layout whose states are spelled R (ready), U
# (running), D (done), with the claim's skip by row lock (FU) or advisory
# lock (ADV).
# With RUNSET, running jobs are also kept in the unlogged table floor.running
# (no WAL; a design would rebuild it after a crash), as a layout whose
# indexes cannot find them needs.
step_sql() {   # step_sql TABLE R U D LOCK [RUNSET]
    local t=$1 r=$2 u=$3 d=$4 lq='' fu='FOR UPDATE SKIP LOCKED' del='' ins=''
    [ "$5" = adv ] && { lq='AND pg_try_advisory_xact_lock(1886745649, j.id::int)'; fu=''; }
    [ "${6:-}" = runset ] && {
        del='DELETE FROM floor.running WHERE id = p_prev;'
        ins='IF r_id > 0 THEN INSERT INTO floor.running VALUES (r_id, now()); END IF;'; }
    cat <<SQL
CREATE OR REPLACE FUNCTION floor.step(p_prev bigint, p_tok uuid, p_hr timestamptz, p_hi bigint,
    OUT r_id bigint, OUT r_tok text, OUT r_run timestamptz) LANGUAGE plpgsql AS \$\$
DECLARE picks bigint[];
BEGIN
    UPDATE $t SET state = $d, finished_at = now(), lease_owner = NULL, lease_token = NULL,
                  lease_expires_at = NULL
     WHERE id = p_prev AND lease_token = p_tok AND state = $u;
    $del
    picks := ARRAY(SELECT j.id FROM $t j
                    WHERE j.state = $r AND j.queue = 'default' AND j.priority = 0
                      AND j.waiting_for = 0 AND j.finished_at IS NULL AND j.run_at <= now()
                      AND (j.run_at, j.id) > (p_hr, p_hi) $lq
                    ORDER BY j.run_at, j.id LIMIT 1 $fu);
    UPDATE $t j SET state = $u, attempts = j.attempts + 1, lease_owner = 'floor-host-w1',
                    lease_token = gen_random_uuid(), lease_expires_at = now() + interval '30s',
                    started_at = now()
     WHERE j.id = ANY (picks) AND j.state = $r
    RETURNING j.id, j.lease_token::text, j.run_at INTO r_id, r_tok, r_run;
    r_id := coalesce(r_id, 0); $ins
    r_tok := coalesce(r_tok, 'x'); r_run := coalesce(r_run, '-infinity');
END \$\$;
SQL
}
cat >"$tmp/step.pgb" <<'EOF'
SELECT r_id AS prev, r_tok AS tok, r_run AS hr, r_id AS hi FROM floor.step(:prev::bigint, NULLIF(:tok::text, 'x')::uuid, :hr::timestamptz, :hi::bigint) \gset
EOF
cat >"$tmp/statement.pgb" <<'EOF'
WITH d AS (UPDATE floor.jobs SET state = 'done', finished_at = now(), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = :prev::bigint AND lease_token = NULLIF(:tok::text, 'x')::uuid AND state = 'running'),
     c AS (UPDATE floor.jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = 'floor-host-w1', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '30s', started_at = now() WHERE j.id = (SELECT k.id FROM floor.jobs k WHERE k.state = 'ready' AND k.queue = 'default' AND k.priority = 0 AND k.run_at <= now() AND (k.run_at, k.id) > (:hr::timestamptz, :hi::bigint) ORDER BY k.run_at, k.id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING j.id, j.lease_token, j.run_at)
SELECT coalesce(max(id), 0) AS prev, coalesce(max(lease_token::text), 'x') AS tok, coalesce(max(run_at), '-infinity') AS hr, coalesce(max(id), 0) AS hi FROM c \gset
EOF
cat >"$tmp/batch512.pgb" <<'EOF'
WITH d AS (UPDATE floor.jobs SET state = 'done', finished_at = now(), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ANY (:prev::bigint[]) AND state = 'running'),
     c AS (UPDATE floor.jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = 'floor-host-w1', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '30s', started_at = now() WHERE j.id = ANY (ARRAY(SELECT k.id FROM floor.jobs k WHERE k.state = 'ready' AND k.queue = 'default' AND k.priority = 0 AND k.run_at <= now() ORDER BY k.run_at, k.id LIMIT 512 FOR UPDATE SKIP LOCKED)) RETURNING j.id)
SELECT coalesce(array_agg(id), '{}')::text AS prev FROM c \gset
EOF
pgb_vars=(-D prev=0 -D tok=x -D hr=-infinity -D hi=0)

# floor.jobs afresh, as pgq.jobs, with N ready jobs.
pgq_like() {   # pgq_like N
    sql "DROP TABLE IF EXISTS floor.jobs; CREATE TABLE floor.jobs (LIKE pgq.jobs INCLUDING ALL) WITH (fillfactor = 80)"
    step_sql floor.jobs "'ready'" "'running'" "'done'" fu | "${psql[@]}" "$url"
    [ "$1" -gt 0 ] && sql "INSERT INTO floor.jobs (type, payload) SELECT 'noop', jsonb_build_object('i', g) FROM generate_series(1, $1) g" && sql "VACUUM ANALYZE floor.jobs"
    return 0
}
# pgq.jobs's columns, with the indexes changed so that a claim changes
# none of them and can be a heap-only update: the claim order for jobs not
# finished and not waiting, finished jobs by finished_at, waiting ones by
# queue; running ones in floor.running. The least a design that keeps
# pgq's promises (and its column order, so no table rewrite) writes.
hot_claim() {
    sql "DROP TABLE IF EXISTS floor.jobs; CREATE TABLE floor.jobs (LIKE pgq.jobs INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS) WITH (fillfactor = 80)"
    sql "DROP TABLE IF EXISTS floor.running; CREATE UNLOGGED TABLE floor.running (id bigint PRIMARY KEY, since timestamptz)"
    sql "ALTER TABLE floor.jobs ADD PRIMARY KEY (id);
      CREATE INDEX ON floor.jobs (queue, priority, run_at, id) WHERE finished_at IS NULL AND waiting_for = 0;
      CREATE INDEX ON floor.jobs (finished_at) WHERE finished_at IS NOT NULL;
      CREATE UNIQUE INDEX ON floor.jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX ON floor.jobs (queue) WHERE waiting_for > 0"
    step_sql floor.jobs "'ready'" "'running'" "'done'" fu runset | "${psql[@]}" "$url"
}
lean() {
    sql "DROP TABLE IF EXISTS floor.jobs; CREATE TABLE floor.jobs (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, queue text NOT NULL DEFAULT 'default',
        type text NOT NULL, priority int NOT NULL DEFAULT 0, run_at timestamptz NOT NULL DEFAULT now(),
        created_at timestamptz NOT NULL DEFAULT now(), max_retries int NOT NULL DEFAULT 5,
        waiting_for int NOT NULL DEFAULT 0, has_children boolean NOT NULL DEFAULT false,
        idempotency_key text, idempotency_key_expired text, cron text, cron_tick timestamptz,
        payload jsonb NOT NULL DEFAULT '{}', snoozes int NOT NULL DEFAULT 0, snooze_ms bigint,
        limited boolean, last_error text, attempts int NOT NULL DEFAULT 0,
        state \"char\" NOT NULL DEFAULT 'r', started_at timestamptz, lease_expires_at timestamptz,
        lease_token uuid, lease_owner text, finished_at timestamptz, cpu_ms bigint, max_rss_kb bigint
      ) WITH (fillfactor = 50);
      CREATE INDEX ON floor.jobs (queue, priority, run_at, id) WHERE waiting_for = 0;
      CREATE UNIQUE INDEX ON floor.jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
      CREATE INDEX ON floor.jobs (queue) WHERE waiting_for > 0"
    step_sql floor.jobs "'r'" "'U'" "'d'" adv | "${psql[@]}" "$url"
}
# WAL per job: the enqueue of $jobs jobs, then their life by `step`.
wal() {   # wal LAYOUT
    local a b c done
    sql "CHECKPOINT"
    a=$(sql "SELECT pg_current_wal_lsn()")
    sql "INSERT INTO floor.jobs (type, payload) SELECT 'noop', jsonb_build_object('i', g) FROM generate_series(1, $jobs) g"
    b=$(sql "SELECT pg_current_wal_lsn()")
    "$pgbench" -n -c 8 -j 2 -t $((jobs / 8 + jobs / 20)) -M prepared "${pgb_vars[@]}" \
        -f "$tmp/step.pgb" "$url" >"$tmp/wal-$1.log" 2>&1 || true
    c=$(sql "SELECT pg_current_wal_lsn()")
    done=$(sql "SELECT count(*) FROM floor.jobs WHERE state IN ('done', 'd')")
    sql "SELECT '$1', $done, round(pg_wal_lsn_diff('$b', '$a') / $jobs),
                round(pg_wal_lsn_diff('$c', '$b') / greatest($done, 1)),
                round(pg_wal_lsn_diff('$b', '$a') / $jobs + pg_wal_lsn_diff('$c', '$b') / greatest($done, 1))" >>"$tmp/wal"
}

for round in $(seq 1 "$rounds"); do
    echo "floor: round $round of $rounds" >&2
    sql "TRUNCATE floor.t"
    "$pgbench" -n -c 8 -j 2 -T "$secs" -f "$tmp/insert.pgb" "$url" >"$tmp/insert.log" 2>&1 || true
    ins=$(tps "$tmp/insert.log")
    pgq_bench "$tmp/strict.json" strict "$jobs"
    strict=$(json "$tmp/strict.json" 'd["jobs_per_s"]')
    strict_wal=$(json "$tmp/strict.json" 'round(d["writes"]["wal_bytes_per_job"])')
    pgq_like 200000
    "$pgbench" -n -c 8 -j 2 -T "$secs" -M prepared "${pgb_vars[@]}" -f "$tmp/step.pgb" "$url" >"$tmp/step.log" 2>&1 || true
    step=$(tps "$tmp/step.log")
    pgq_like 200000
    "$pgbench" -n -c 8 -j 2 -T "$secs" -M prepared "${pgb_vars[@]}" -f "$tmp/statement.pgb" "$url" >"$tmp/statement.log" 2>&1 || true
    stmt=$(tps "$tmp/statement.log")
    pgq_bench "$tmp/batched.json" batched 100000
    batched=$(json "$tmp/batched.json" 'd["jobs_per_s"]')
    pgq_like 700000
    "$pgbench" -n -c 8 -j 2 -T "$secs" -M prepared -D prev='{}' -f "$tmp/batch512.pgb" "$url" >"$tmp/batch512.log" 2>&1 || true
    b512=$(( $(tps "$tmp/batch512.log") * 512 ))
    pgq_like 0; wal pgq-like
    hot_claim; wal hot-claim
    lean; wal lean
    echo "$round $ins $strict $step $stmt $batched $b512 $strict_wal" >>"$raw"
done
sql "DROP SCHEMA floor CASCADE"

elapsed=$(( $(date +%s) - started ))
python3 - "$raw" "$tmp/wal" "$elapsed" "$secs" "$jobs" "$(sql 'SHOW server_version')" >"$here/FLOOR.md" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
wal = [l.split('|') for l in open(sys.argv[2])]
elapsed, secs, jobs, ver = sys.argv[3:7]
def rng(xs, f='{:,.0f}'):
    xs = sorted(xs)
    return f"{f.format(st.median(xs))} ({f.format(xs[0])} .. {f.format(xs[-1])})"
print("# Floors under issue 10's open targets (`make bench-floor`)\n")
print(f"PostgreSQL {ver}, default durability, 8 clients, {len(rows)} rounds of "
      f"{secs} s per pgbench figure, {elapsed} s in all. Medians (min .. max) over the rounds; "
      "every ratio is to the single INSERT of its own round. What each row measures: "
      "the top of bench/floor.sh.\n")
print("## Throughput\n")
print("| figure | jobs/s (or tps) | × single INSERT | target |")
print("| --- | ---: | ---: | --- |")
ins = [float(r[1]) for r in rows]
def line(name, col, target=""):
    v = [float(r[col]) for r in rows]
    ratio = [x / i for x, i in zip(v, ins)]
    print(f"| {name} | {rng(v)} | {rng(ratio, '{:.2f}')} | {target} |")
print(f"| single INSERT (pgbench) | {rng(ins)} | 1 | |")
line("pgq strict (`pgq-bench`, batch = 1)", 2, "≥ 0.5")
line("step: two UPDATEs in PL/pgSQL, nothing else", 3)
line("statement: the two UPDATEs as one SQL statement", 4, "(the floor of one transaction per job)")
line("pgq batched (`pgq-bench`, batch = 512)", 5, "≥ 4")
line("batch512: one statement, 512 ends + 512 claims", 6, "(the floor of the batched profile)")
print("\n## WAL per job (enqueue + claim + end)\n")
print(f"{jobs} jobs enqueued by one INSERT, then ended and claimed by `step`; pgq strict from `pgq-bench`.\n")
print("| layout | enqueue B | life B | total B | target |")
print("| --- | ---: | ---: | ---: | --- |")
for name in ("pgq-like", "hot-claim", "lean"):
    w = [x for x in wal if x[0] == name]
    print(f"| {name} | {rng([float(x[2]) for x in w])} | {rng([float(x[3]) for x in w])} | "
          f"{rng([float(x[4]) for x in w])} | ≤ 600 |")
print(f"| pgq strict (`pgq-bench`, all of it) | | | {rng([float(r[7]) for r in rows])} | ≤ 600 |")
PY
echo "floor: wrote $here/FLOOR.md ($elapsed s)" >&2
cat "$here/FLOOR.md"

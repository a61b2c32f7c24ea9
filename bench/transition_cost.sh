#!/usr/bin/env bash
# Instructions a backend spends on one strict-profile transition: the end of
# a job's attempt plus the claim of the next (one pgq.complete_claim call,
# as a batch = 1 worker makes it), counted by callgrind, so the figure is
# the same on a busy machine and a quiet one.
#
#   bench/transition_cost.sh [BUILD_DIR]        (default: build)
#
# A throwaway cluster, migrated by BUILD_DIR/pgq; then a single-user
# backend (postgres --single, no client protocol, one transaction) runs a
# PL/pgSQL loop of N calls under callgrind, for N = 100 and N = 300: the
# difference divided by 200 is one call's instructions, without start-up
# and set-up. The same for "floor": the two bare UPDATEs a transition
# cannot do without (done; claim the next by the claim index), written
# inline, the lower bound of what a state machine in SQL can cost.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
pgq=$root/$build/pgq
[ -x "$pgq" ] || { echo "transition_cost: $pgq not built (make)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "transition_cost: valgrind not installed" >&2; exit 2; }
. "$root/scripts/pg-env.sh"
pg_find_bindir transition_cost
pg_run_as
as=("${as_user[@]}")
tmp=$(mktemp -d /tmp/pgq-cost.XXXXXX)
chmod 755 "$tmp"
if [ "$(id -u)" = 0 ]; then chown "$pguser" "$tmp"; fi
trap '"${as[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
"${as[@]}" "$bindir/initdb" -D "$tmp/data" -U pgq -A trust --no-sync >/dev/null
"${as[@]}" "$bindir/pg_ctl" -D "$tmp/data" -w -l "$tmp/log" \
    -o "-p 5499 -k $tmp -c listen_addresses=''" start >/dev/null
"$bindir/psql" -q "host=$tmp port=5499 user=pgq dbname=postgres" -c "CREATE DATABASE pgq"
"$pgq" --db "postgresql:///pgq?host=$tmp&port=5499&user=pgq" migrate >/dev/null
"$bindir/psql" -q "host=$tmp port=5499 user=pgq dbname=pgq" \
    -c "INSERT INTO pgq.job_types (type, queue) VALUES ('noop', 'default')"
"${as[@]}" "$bindir/pg_ctl" -D "$tmp/data" -w stop >/dev/null

loop() {   # loop KIND N: the SQL of one run
    local kind=$1 n=$2
    cat <<SQL
SELECT count(*) FROM pgq.enqueue(array_fill('noop'::text, ARRAY[$n + 10]),
    array_fill('{}'::text, ARRAY[$n + 10]), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL);
DO \$\$
DECLARE
    pid bigint; ptok uuid; r record; hp int; hr bigint; hi bigint;
    hrt timestamptz := '-infinity'; hid bigint := 0;
BEGIN
    FOR i IN 1..$n LOOP
SQL
    if [ "$kind" = pgq ]; then cat <<'SQL'
        SELECT * INTO r FROM pgq.complete_claim(
            CASE WHEN pid IS NULL THEN '{}'::bigint[] ELSE ARRAY[pid] END,
            CASE WHEN pid IS NULL THEN '{}'::uuid[] ELSE ARRAY[ptok] END, NULL, NULL, NULL, NULL,
            '{default}', 'w1', 30000, 1, ARRAY[hp], ARRAY[hr], ARRAY[hi], false,
            p_keep_done => true, p_results => NULL, p_result_notes => NULL) c
         WHERE c.acked IS NULL;
        pid := r.id; ptok := r.lease_token::uuid; hp := r.priority; hr := r.run_at; hi := r.id;
SQL
    else cat <<'SQL'
        IF pid IS NOT NULL THEN
            UPDATE pgq.jobs j SET state = 'done', finished_at = now(), lease_token = NULL,
                   lease_expires_at = NULL
             WHERE j.id = pid AND j.lease_token = ptok AND j.state = 'running';
        END IF;
        UPDATE pgq.jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = 'w1',
               lease_token = gen_random_uuid(), lease_expires_at = now() + interval '30 s',
               started_at = now()
         WHERE j.id = (SELECT c.id FROM pgq.jobs c
                        WHERE c.state = 'ready' AND c.queue = 'default' AND c.priority = 0
                          AND c.run_at <= now() AND (c.run_at, c.id) > (hrt, hid)
                        ORDER BY c.run_at, c.id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING j.id, j.lease_token, j.run_at INTO pid, ptok, hrt;
        hid := pid;
SQL
    fi
    cat <<'SQL'
    END LOOP;
END $$;
SQL
}
count() {   # count KIND N: instructions of one single-user run
    loop "$1" "$2" >"$tmp/in.sql"
    chmod 644 "$tmp/in.sql"
    (cd "$tmp" && "${as[@]}" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
        "$bindir/postgres" --single -j -D "$tmp/data" -c fsync=off pgq \
        <"$tmp/in.sql" >"$tmp/out" 2>&1)
    if grep -q "ERROR" "$tmp/out"; then grep "ERROR" "$tmp/out" >&2; exit 1; fi
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/out"
}
for kind in pgq floor; do
    a=$(count $kind 100); b=$(count $kind 300)
    printf '%s: %d instructions per transition (complete one job, claim the next)\n' \
        "$kind" $(( (b - a) / 200 ))
done

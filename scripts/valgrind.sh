#!/bin/sh
# make valgrind: the CLI and a short pool run under memcheck, against a
# throwaway database (run inside scripts/with-postgres.sh, DATABASE_URL set).
# Any memcheck error or definite leak fails the run.
#   valgrind.sh BUILD
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-fds=no --child-silent-after-fork=yes"
step() { echo "valgrind: $*"; }
run() {   # run CMD...: fails on a memcheck error (exit 99)
    rc=0
    $vg "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
    if [ "$rc" = 99 ] || grep -q "definitely lost\|Invalid \(read\|write\)\|uninitialised" "$tmp/err"; then
        echo "valgrind: FAILED: $*"; cat "$tmp/err"; exit 1
    fi
    return 0
}
"$build/pgq" migrate > /dev/null
cat > "$tmp/pool.ini" <<INI
[pool]
workers = 2
lease_ttl = 5s
heartbeat = 500ms
poll = 200ms
shutdown_timeout = 10s

[job vg]
handler = exec /bin/echo a result
require = n:number
INI
step "pgq --help, types apply, add, add -, show, stats, requeue, cancel, migrate --status, result"
run "$build/pgq" --help
run "$build/pgq" -c "$tmp/pool.ini" types apply
run "$build/pgq" add vg '{"n": 1}' --idempotency-key vg1
run "$build/pgq" add vg '{"n": 1}' --idempotency-key vg1
run "$build/pgq" add vg '{"s": 1}'
printf '{"type": "vg", "payload": {"n": 2}}\n{"type": "vg", "payload": {"n": 3}}\n' > "$tmp/lines"
run "$build/pgq" add - < "$tmp/lines"
run "$build/pgq" show 1
run "$build/pgq" show 1 --json
run "$build/pgq" stats
run "$build/pgq" stats --json
run "$build/pgq" stats --prometheus
run "$build/pgq" types list --json
run "$build/pgq" migrate --status
run "$build/pgq" --db 'postgresql://u:s%zz@h/d' stats
run "$build/pgq" -c "$tmp/missing.ini" stats
step "pgq-pool --check, and a pool that runs the jobs and stops on SIGTERM"
run "$build/pgq-pool" -c "$tmp/pool.ini" --check
$vg --log-file="$tmp/pool.vg" "$build/pgq-pool" -c "$tmp/pool.ini" -q > "$tmp/pool.log" 2>&1 &
pid=$!
i=0
until [ "$("$build/pgq" stats --json | grep -o '"done": *[0-9]*' | grep -o '[0-9]*$' | head -1)" = 3 ]; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "valgrind: the pool ran no jobs"; cat "$tmp/pool.log"; kill $pid; exit 1; }
    sleep 0.1
done
kill -TERM $pid
rc=0; wait $pid || rc=$?
if [ "$rc" != 0 ] || grep -q "definitely lost\|Invalid \(read\|write\)\|uninitialised" "$tmp/pool.vg"; then
    echo "valgrind: FAILED: pgq-pool (exit $rc)"; cat "$tmp/pool.vg" "$tmp/pool.log"; exit 1
fi
run "$build/pgq" result 1
run "$build/pgq" result 999
run "$build/pgq" cancel 1
run "$build/pgq" requeue --dead
echo "valgrind: clean"

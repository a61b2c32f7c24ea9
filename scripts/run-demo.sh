#!/usr/bin/env bash
# `make run`: a throwaway PostgreSQL (unless DATABASE_URL is set), migrate,
# the demo job types of examples/demo.ini, a stream of demo jobs, and the
# pool running them with the dashboard (pgq-pool --tui; its log goes to a
# file). q or Ctrl-C stops everything cleanly (the pool drains, the
# throwaway server is removed). Without a terminal the pool logs to stderr
# instead, runs for PGQ_DEMO_SECONDS (default 20) and stops by itself.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$here/$build:$PATH" here
export PGQ_DEMO_OUTBOX=${PGQ_DEMO_OUTBOX:-$(mktemp /tmp/pgq-demo-outbox.XXXXXX)}

demo() {
    set -e
    cd "$here"
    pgq migrate
    pgq -c examples/demo.ini types apply >/dev/null
    errfile=$(mktemp)
    if ! pgq add send-email '{"to":"nobody@example.com"}' 2>"$errfile"; then
        echo "(a bad payload is refused: $(cat "$errfile"))"
    fi
    rm -f "$errfile"

    # The producer: a few jobs of each kind every second, some scheduled.
    (
        trap 'exit 0' TERM INT
        i=0
        while :; do
            i=$((i + 1))
            pgq add send-email "{\"to\":\"user$i@example.com\",\"subject\":\"Welcome #$i\"}" \
                --idempotency-key "welcome:$i" >/dev/null
            pgq add resize-image "{\"path\":\"/photos/$i.jpg\",\"width\":640}" >/dev/null
            [ $((i % 5)) -eq 0 ] && pgq add cleanup '{}' --delay 3s >/dev/null
            sleep 1
        done
    ) &
    producer=$!

    stop_producer() {
        kill -TERM "$producer" 2>/dev/null || true
        wait "$producer" 2>/dev/null || true
        echo
        pgq stats
        echo "outbox (each email sent at most once): $PGQ_DEMO_OUTBOX, $(wc -l < "$PGQ_DEMO_OUTBOX") lines"
    }
    if [ -t 0 ] && [ -t 1 ]; then
        # The dashboard owns the terminal; q (or Ctrl-C) stops the pool.
        trap '' INT
        pgq-pool --tui --log "${PGQ_DEMO_LOG:-/tmp/pgq-demo-pool.log}" -c examples/demo.ini || true
        stop_producer
        return 0
    fi
    pgq-pool -c examples/demo.ini &
    pool=$!
    trap 'kill -TERM "$pool" 2>/dev/null; wait "$pool"; stop_producer; exit 0' INT TERM
    sleep "${PGQ_DEMO_SECONDS:-20}"
    kill -TERM "$pool" 2>/dev/null || true
    wait "$pool" || true
    stop_producer
}
export -f demo
exec "$here/scripts/with-postgres.sh" -- bash -c demo

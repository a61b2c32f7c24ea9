#!/usr/bin/env bash
# `make run`: a throwaway PostgreSQL (unless DATABASE_URL is set), migrate,
# register the demo job types, enqueue demo jobs and show the queue. With a
# terminal, leaves you in a shell where `pgq` talks to that database; the
# throwaway server is removed when you leave it.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$here/$build:$PATH"

demo() {
    set -e
    cd "$here"
    pgq migrate
    pgq -c examples/demo.ini types apply >/dev/null
    echo "registered job types:"
    pgq types list | sed 's/^/  /'
    for i in 1 2 3 4 5; do
        pgq add send-email "{\"to\":\"user$i@example.com\",\"subject\":\"Welcome #$i\"}" \
            --idempotency-key "welcome:user$i" >/dev/null
    done
    pgq add send-email '{"to":"user1@example.com","subject":"Welcome #1"}' \
        --idempotency-key welcome:user1 | sed 's/^/re-adding welcome:user1 -> job /'
    pgq add resize-image '{"path":"/tmp/cat.png","width":640}' --delay 1m >/dev/null
    pgq add cleanup '{}' --priority -1 >/dev/null
    errfile=$(mktemp)
    if ! pgq add send-email '{"to":"nobody@example.com"}' 2>"$errfile"; then
        echo "a bad payload is refused: $(cat "$errfile")"
    fi
    rm -f "$errfile"
    echo
    pgq stats
    if [ -t 0 ] && [ -t 1 ]; then
        echo
        echo "DATABASE_URL=$DATABASE_URL"
        echo "Try: pgq stats | pgq show 1 | pgq add cleanup '{}' | pgq --help.  Type exit to stop."
        PS1='pgq-demo$ ' bash --norc -i || true
    fi
}
export -f demo
export here
exec "$here/scripts/with-postgres.sh" -- bash -c demo

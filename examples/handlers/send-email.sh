#!/bin/sh
# Demo exec handler: "sends" an email at most once per job. The payload
# arrives on stdin; pgq once guards the side effect across retries and crashes.
payload=$(cat)
sleep 0.$(( $(od -An -N1 -tu1 /dev/urandom) % 5 ))
pgq once send -- sh -c 'echo "$(date -u +%T) job $PGQ_JOB_ID attempt $PGQ_ATTEMPT: $1" >> "${PGQ_DEMO_OUTBOX:-/tmp/pgq-demo-outbox.log}"' sh "$payload"
case $? in
    0) exit 0 ;;                                    # sent now, or sent by an earlier attempt
    4) echo "maybe sent before a crash; not resending" >&2; exit 0 ;;
    *) exit 1 ;;
esac

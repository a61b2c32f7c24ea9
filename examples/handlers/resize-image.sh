#!/bin/sh
# Demo exec handler: takes a while, and fails about one time in four (the
# error text is the tail of stderr; pgq retries it with backoff).
cat >/dev/null
sleep $(( 1 + $(od -An -N1 -tu1 /dev/urandom) % 3 ))
if [ $(( $(od -An -N1 -tu1 /dev/urandom) % 4 )) -eq 0 ]; then
    echo "convert: unable to open image: corrupt header" >&2
    exit 1
fi

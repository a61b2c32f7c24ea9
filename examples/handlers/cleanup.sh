#!/bin/sh
# Demo exec handler: quick, always succeeds.
cat >/dev/null
exit 0

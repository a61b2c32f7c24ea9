#!/bin/sh
# Enqueue one video's pipeline: transcode, then thumbnails (after the
# transcode), then notify (after both). Prints the three job ids.
#   enqueue.sh VIDEO OUTDIR [pgq options: --db URL, -c FILE]
# $PGQ: the pgq program (default: pgq on PATH).
set -eu
[ $# -ge 2 ] || { echo "usage: enqueue.sh VIDEO OUTDIR [--db URL | -c FILE]" >&2; exit 2; }
video=$1
out=$2
shift 2
pgq=${PGQ:-pgq}
payload=$(printf '{"video": "%s", "out": "%s"}' "$video" "$out")
t=$("$pgq" add transcode "$payload" "$@")
th=$("$pgq" add thumbnails "$payload" --after "$t" "$@")
n=$("$pgq" add notify "$payload" --after "$t,$th" "$@")
echo "$t $th $n"

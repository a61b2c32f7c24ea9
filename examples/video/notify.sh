#!/bin/sh
# notify: tell someone the video is ready (here: a line in
# OUT/notifications.log). Runs after the transcode and the thumbnails.
set -eu
. "$(dirname "$0")/lib.sh"
[ -f "$out/$name.mp4" ] || { echo "no $out/$name.mp4" >&2; exit 1; }
n=$(ls "$out/$name"-*.jpg 2>/dev/null | wc -l)
[ "$n" -gt 0 ] || { echo "no thumbnails of $name" >&2; exit 1; }
echo "$name ready: $out/$name.mp4, $n thumbnails" >> "$out/notifications.log"
echo "notified: $name"

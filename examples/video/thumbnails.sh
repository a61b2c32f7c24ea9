#!/bin/sh
# thumbnails: OUT/NAME.mp4 -> OUT/NAME-1..3.jpg. It runs only after the
# transcode is done (pgq add --after); without it, it would find no file.
set -eu
. "$(dirname "$0")/lib.sh"
[ -f "$out/$name.mp4" ] || { echo "no $out/$name.mp4: transcode not done" >&2; exit 1; }
for i in 1 2 3; do
    printf 'thumbnail %s of %s\n' "$i" "$out/$name.mp4" > "$out/$name-$i.jpg"
done
echo "3 thumbnails of $name"

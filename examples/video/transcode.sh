#!/bin/sh
# transcode: VIDEO -> OUT/NAME.mp4 (here a stand-in for ffmpeg).
set -eu
. "$(dirname "$0")/lib.sh"
printf 'transcoded from %s by job %s\n' "$video" "${PGQ_JOB_ID:-?}" > "$out/$name.mp4.part"
mv "$out/$name.mp4.part" "$out/$name.mp4"
echo "transcoded $video"

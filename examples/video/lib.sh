# Shared by the video handlers: the payload's "video" and "out" fields
# (a real handler would read them with jq; these keep the example free of
# dependencies, and expect paths without quotes or backslashes).
payload=$(cat)
field() {
    printf '%s' "$payload" | sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p"
}
video=$(field video)
out=$(field out)
name=$(basename "$video")
name=${name%.*}
[ -n "$video" ] && [ -n "$out" ] || { echo "payload needs video and out" >&2; exit 1; }
mkdir -p "$out"

#!/bin/sh
# The KEYS section of pool.ini(5) from `pgq config-reference` (the same key
# table that drives parsing), as scdoc: one entry per key.
#   man-keys.sh PGQ > keys.scd
set -eu
"$1" config-reference | awk -F' [|] ' '
    /^\| section/ || /^\| ---/ { next }
    /^\|/ {
        sec = $1; sub(/^\| /, "", sec); gsub(/`/, "", sec)
        key = $2; gsub(/`/, "", key)
        type = $3; def = $4; gsub(/`/, "", def); bounds = $5
        desc = $6; sub(/ \|$/, "", desc); gsub(/`/, "", desc)
        gsub(/\\\|/, "|", desc)
        # scdoc reads * and _ as emphasis: escape them in the text
        gsub(/\*/, "\\*", desc); gsub(/_/, "\\_", desc); gsub(/_/, "\\_", key)
        gsub(/_/, "\\_", def); gsub(/_/, "\\_", bounds)
        if (sec != last) { print "## " sec; print ""; last = sec }
        printf "*%s* = _%s_\n", key, type
        printf "\tDefault: %s%s. %s\n\n", def, (bounds != "" ? "; " bounds : ""), desc
    }'

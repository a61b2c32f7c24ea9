#!/bin/sh
# scripts/fuzz.sh run|check BUILD SECONDS TARGET...
#   run:   fuzz each target for SECONDS on tests/fuzz/corpus/TARGET (new
#          inputs that reach new code are added there: commit them after a
#          `-merge=1` pass keeps the corpus small), crashes in BUILD/crashes/
#   check: replay each corpus once (no new inputs); fails on any crash
set -eu
mode=$1 build=$2 secs=$3
shift 3
mkdir -p "$build/crashes"
status=0
for t in "$@"; do
    corpus=tests/fuzz/corpus/$t
    mkdir -p "$corpus"
    bin=$build/fuzz/fuzz_$t
    if [ "$mode" = run ]; then
        echo "fuzz: $t for ${secs}s"
        tmp=$(mktemp -d)
        if ! "$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
                "$tmp" "$corpus" > "$build/fuzz-$t.log" 2>&1; then
            echo "fuzz: $t CRASHED: see $build/fuzz-$t.log and $build/crashes/"
            status=1
        fi
        # keep only the inputs that add coverage
        "$bin" -merge=1 "$corpus" "$tmp" > /dev/null 2>&1 || true
        rm -rf "$tmp"
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz-$t.log" | \
            sed "s/^/fuzz: $t /" || true
        echo "fuzz: $t corpus $(ls "$corpus" | wc -l) inputs"
    else
        if ! "$bin" -runs=0 "$corpus" > "$build/fuzz-$t.log" 2>&1; then
            echo "fuzz-check: $t CRASHED on its corpus: see $build/fuzz-$t.log"
            status=1
        else
            echo "fuzz-check: $t: $(ls "$corpus" | wc -l) inputs, no crash"
        fi
    fi
done
exit $status

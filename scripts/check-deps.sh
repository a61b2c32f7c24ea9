#!/bin/sh
# Which source files depend on which, read from the built objects, and
# whether any of them depend on each other in a circle.
#
# Usage: check-deps.sh [BUILD_DIR] [--edges]   (default build/)
#
# File A depends on file B when A's object uses a global symbol (a function
# or a variable) that B's object defines: what the linker sees, so a shared
# header (pool_int.h, ui.h) cannot hide a dependency the way a graph of
# #include lines would. Exit 0 when the graph has no cycle, 1 with every
# cycle found (one line each: a.c -> b.c -> a.c), 2 on bad usage.
# --edges prints the graph (a.c -> b.c, one a line) instead.
set -eu
dir=build
edges=
for a in "$@"; do
    case $a in
    --edges) edges=1 ;;
    -*) echo "usage: check-deps.sh [BUILD_DIR] [--edges]" >&2; exit 2 ;;
    *) dir=$a ;;
    esac
done
[ -d "$dir" ] || { echo "check-deps: $dir: no such build directory" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
# Only objects whose source still exists (in the tree, or generated into
# the build directory): a stale object of a moved file would add edges
# that are no longer true.
objs=$(cd "$dir" && find . -name '*.o' | sed 's|^\./||' | sort | while read -r o; do
    if [ -f "$root/${o%.o}.c" ] || [ -f "${o%.o}.c" ]; then echo "$o"; fi
done)
[ -n "$objs" ] || { echo "check-deps: no objects under $dir (run make first)" >&2; exit 2; }

# "D sym file" for what each object defines, "U sym file" for what it uses.
for o in $objs; do
    nm -g --defined-only "$dir/$o" | awk -v f="$o" 'NF == 3 { print "D", $3, f }'
    nm -u "$dir/$o" | awk -v f="$o" '{ print "U", $NF, f }'
done | awk -v edges="$edges" '
function src(o) { sub(/\.o$/, ".c", o); return o }
$1 == "D" {
    # A name several programs define (main) is no dependency between them.
    if ($2 in def && def[$2] != $3) dup[$2] = 1
    def[$2] = $3
    next
}
{ use[++nuse] = $2 " " $3 }
END {
    for (i = 1; i <= nuse; i++) {
        split(use[i], u, " ")
        if (!(u[1] in def) || (u[1] in dup) || def[u[1]] == u[2]) continue
        e = u[2] SUBSEP def[u[1]]
        if (e in edge) continue
        edge[e] = 1
        out[u[2]] = out[u[2]] " " def[u[1]]
        if (!(u[2] in node)) { node[u[2]] = 1; nnodes++ }
        if (!(def[u[1]] in node)) { node[def[u[1]]] = 1; nnodes++ }
    }
    if (edges) {
        for (e in edge) { split(e, p, SUBSEP); print src(p[1]) " -> " src(p[2]) }
        exit 0
    }
    # Depth-first search; a back edge to a file on the current path closes
    # a cycle, printed from where it starts.
    ncycles = 0
    for (n in node) if (!(n in color)) visit(n, 0)
    if (ncycles == 0) {
        printf "check-deps: no cycles among %d files\n", nnodes
        exit 0
    }
    exit 1
}
function visit(n, depth,    k, m, i, j, list, line) {
    color[n] = 1
    path[depth] = n
    pos[n] = depth
    k = split(out[n], list, " ")
    for (i = 1; i <= k; i++) {
        m = list[i]
        if ((m in color) && color[m] == 1) {
            line = ""
            for (j = pos[m]; j <= depth; j++) line = line src(path[j]) " -> "
            print "check-deps: cycle: " line src(m)
            ncycles++
        } else if (!(m in color)) {
            visit(m, depth + 1)
        }
    }
    color[n] = 2
}
'

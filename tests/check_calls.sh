#!/usr/bin/env bash
# tests/check_calls.sh [-v] BUILD_DIR [FOLDER...] - fails when the files of a source folder call
# each other in a circle (default folder: engine/api).
#
# The graph is read from the object files the build made, not from the sources: for each
# FOLDER/*.c compiled under BUILD_DIR (its FOLDER/NAME.c.o, wherever the target puts it;
# files of subfolders are not part of FOLDER; objects whose source is gone from the tree
# this script is in are stale and skipped), `nm` lists the global symbols the object
# defines and the ones it leaves undefined. File a uses file b when a leaves undefined a
# symbol b defines (a call, or a reference to a function or a table). Within one folder
# these edges must form no circle: a file calls only files below it, so the folder reads
# bottom-up and each file can be understood (and tested) with only the ones below it.
#
# On success prints, per folder, its files by level (level 0 uses no other file of the
# folder; level k uses some file of level k-1 and none above). On failure prints every
# knot (a strongly connected component of more than one file) with one circle through it,
# and for each hop the symbols that make it, then exits 1. Exits 2 when a folder has no
# objects under BUILD_DIR (not built, or a typo). -v also prints every edge with its symbols.
set -euo pipefail

verbose=0
if [ "${1:-}" = -v ]; then
    verbose=1
    shift
fi
build=${1:?usage: check_calls.sh [-v] BUILD_DIR [FOLDER...]}
build=${build%/}
shift
[ $# -gt 0 ] || set -- engine/api
root=$(cd "$(dirname "$0")/.." && pwd)   # the sources this script belongs to
command -v nm >/dev/null || { echo "check_calls: nm not found (binutils)" >&2; exit 2; }

# Every object under BUILD_DIR, found once.
all_objects=$(find "$build" -type f -name '*.o' | LC_ALL=C sort)

# One folder: prints "D file symbol" and "U file symbol" lines for its objects: those whose
# path below BUILD_DIR, less a CMake target directory (<target>.dir/), is FOLDER/NAME.o.
symbols_of() {
    local folder=$1 obj rel src base
    declare -A seen=()
    while IFS= read -r obj; do
        [ -n "$obj" ] || continue
        rel=${obj#"$build"/}
        [[ $rel == *.dir/* ]] && rel=${rel##*.dir/}
        [[ $rel == "$folder"/* ]] || continue
        src=${rel#"$folder"/}             # NAME.c.o
        [[ $src == */* ]] && continue     # a subfolder's file
        base=${src%.o}
        [ -n "${seen[$base]:-}" ] && continue   # the same source built by a second target
        if [ ! -e "$root/$folder/$base" ]; then    # left over from a file since moved away
            echo "check_calls: skipping $obj: no $folder/$base in $root" >&2
            continue
        fi
        seen[$base]=1
        nm -P --defined-only -g "$obj" | awk -v f="$base" '{ print "D", f, $1 }'
        nm -P -u "$obj" | awk -v f="$base" '{ print "U", f, $1 }'
    done <<<"$all_objects"
}

# Reads symbols_of's lines; prints the levels or the knots (Tarjan's strongly connected
# components over the file graph, then a breadth-first circle inside each knot).
analyse() {
    awk -v folder="$1" -v verbose="$verbose" '
    $1 == "D" { def[$3] = $2; files[$2] = 1; next }
    $1 == "U" { nu++; ufile[nu] = $2; usym[nu] = $3; files[$2] = 1 }
    END {
        for (i = 1; i <= nu; i++) {
            t = def[usym[i]]
            if (t == "" || t == ufile[i])
                continue
            e = ufile[i] SUBSEP t
            if (!(e in syms)) {
                deg[ufile[i]]++
                adj[ufile[i], deg[ufile[i]]] = t
                syms[e] = usym[i]
                nsyms[e] = 1
                nedges++
            } else if (nsyms[e] < 4) {
                syms[e] = syms[e] ", " usym[i]
                nsyms[e]++
            } else if (nsyms[e] == 4) {
                syms[e] = syms[e] ", ..."
                nsyms[e]++
            }
        }
        if (verbose)
            for (e in syms) {
                split(e, ab, SUBSEP)
                printf "%s: %s uses %s: %s\n", folder, ab[1], ab[2], syms[e]
            }
        nfiles = 0
        for (f in files)
            nfiles++
        counter = 0; sp = 0; nknots = 0
        for (f in files)
            if (!(f in index_of))
                strongconnect(f)
        if (nknots == 0) {
            print_levels()
            exit 0
        }
        for (k = 1; k <= nknots; k++)
            print_knot(k)
        exit 1
    }
    function strongconnect(v,    i, w, n, members) {
        index_of[v] = counter; low[v] = counter; counter++
        stack[++sp] = v; on_stack[v] = 1
        for (i = 1; i <= deg[v]; i++) {
            w = adj[v, i]
            if (!(w in index_of)) {
                strongconnect(w)
                if (low[w] < low[v]) low[v] = low[w]
            } else if (on_stack[w] && index_of[w] < low[v]) {
                low[v] = index_of[w]
            }
        }
        if (low[v] != index_of[v])
            return
        n = 0; members = ""
        do {
            w = stack[sp--]; on_stack[w] = 0
            comp[w] = v; n++
            members = members " " w
        } while (w != v)
        if (n > 1) {
            nknots++
            knot_root[nknots] = v
            knot_members[nknots] = members
        }
    }
    # One circle from the knot root back to itself, by breadth-first search inside the knot.
    function print_knot(k,    r, head, tail, q, v, i, w, prev, path, hop, n, parts) {
        r = knot_root[k]
        split("", prev)
        head = 1; tail = 0
        for (i = 1; i <= deg[r]; i++) {
            w = adj[r, i]
            if (comp[w] == r && !(w in prev)) { prev[w] = r; q[++tail] = w }
        }
        while (head <= tail && !(r in prev)) {
            v = q[head++]
            for (i = 1; i <= deg[v]; i++) {
                w = adj[v, i]
                if (comp[w] == r && !(w in prev)) { prev[w] = v; q[++tail] = w }
            }
        }
        n = 0; v = r
        do { parts[++n] = v; v = prev[v] } while (v != r)
        # parts[] holds the circle backwards (r, its predecessor, ...): print it forwards.
        path = r
        for (i = n; i >= 2; i--)
            path = path " -> " parts[i]
        path = path " -> " r
        printf "%s: circle %s\n", folder, path
        printf "  files in this knot:%s\n", knot_members[k]
        hop = r
        for (i = n; i >= 1; i--) {
            w = i >= 2 ? parts[i] : r
            printf "  %s uses %s: %s\n", hop, w, syms[hop SUBSEP w]
            hop = w
        }
    }
    function level_of(v,    i, l, m) {
        if (v in lvl)
            return lvl[v]
        m = 0
        for (i = 1; i <= deg[v]; i++) {
            l = level_of(adj[v, i]) + 1
            if (l > m) m = l
        }
        lvl[v] = m
        return m
    }
    function print_levels(    f, l, maxl, line, names, n, i, j, t) {
        maxl = 0
        for (f in files) {
            l = level_of(f)
            if (l > maxl) maxl = l
        }
        printf "%s: %d file%s, %d file-to-file edge%s, no circle\n", folder, nfiles,
               nfiles == 1 ? "" : "s", nedges, nedges == 1 ? "" : "s"
        for (l = 0; l <= maxl; l++) {
            n = 0
            for (f in files)
                if (lvl[f] == l)
                    names[++n] = f
            for (i = 2; i <= n; i++)        # insertion sort: a few names per level
                for (j = i; j > 1 && names[j - 1] > names[j]; j--) {
                    t = names[j]; names[j] = names[j - 1]; names[j - 1] = t
                }
            line = ""
            for (i = 1; i <= n; i++)
                line = line " " names[i]
            printf "  level %d:%s\n", l, line
        }
    }
    '
}

status=0
for folder in "$@"; do
    folder=${folder%/}
    syms=$(symbols_of "$folder")
    if [ -z "$syms" ]; then
        echo "check_calls: no objects of $folder/*.c under $build" >&2
        exit 2
    fi
    analyse "$folder" <<<"$syms" || status=1
done
exit $status

#!/usr/bin/env bash
# tests/integration/test_pagerank.sh BUILD_DIR - runs the pagerank example on a generated
# graph plus hand-made edges (duplicates, self loops, blank lines, tabs, sinks, isolated
# sources) and compares every rank with an awk implementation of the same (Spark
# SparkPageRank) semantics, within 1e-9. Also: malformed lines are errors naming the line.
set -euo pipefail
build=${1:?usage: test_pagerank.sh BUILD_DIR}
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
tmp=$(mktemp -d /tmp/ember-test-pr.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# reference EDGES ITERS -> "node<TAB>rank" lines
reference() {
    awk -v iters="$2" '
        NF == 0 { next }
        NF != 2 { print "reference: bad line " NR > "/dev/stderr"; exit 1 }
        { e = $1 SUBSEP $2
          if (!(e in seen)) { seen[e] = 1; deg[$1]++; n++; src[n] = $1; dst[n] = $2 } }
        END {
            for (s in deg) rank[s] = 1.0
            for (it = 0; it < iters; it++) {
                split("", c)
                for (i = 1; i <= n; i++)
                    if (src[i] in rank) c[dst[i]] += rank[src[i]] / deg[src[i]]
                split("", rank)
                for (k in c) rank[k] = 0.15 + 0.85 * c[k]
            }
            for (k in rank) printf "%s\t%.15f\n", k, rank[k]
        }' "$1" | sort
}

# compare WANT GOT: same nodes, ranks within 1e-9
compare() {
    awk -F '\t' '
        NR == FNR { want[$1] = $2; nw++; next }
        { ng++
          if (!($1 in want)) { if (bad++ < 10) printf "unexpected node %s\n", $1; next }
          d = want[$1] - $2; if (d < 0) d = -d
          if (d > 1e-9 && bad++ < 10) printf "node %s: rank %s, want %s\n", $1, $2, want[$1]
          delete want[$1] }
        END { for (k in want) if (bad++ < 10) printf "missing node %s\n", k
              exit bad > 0 }' "$1" "$2"
}

"$ember" gen graph --nodes 300 --edges 3000 --seed 5 --out "$tmp/gen.txt"
{
    cat "$tmp/gen.txt"
    printf '\n1000 1001\n1000 1001\n1001\t1000\n1002 1002\n  \n1003 1000\n1004 9999\n1000 1004\n'
} >"$tmp/edges.txt"

for master in "local[2]" "local[1]"; do
    for iters in 0 1 7; do
        name="$master-$iters"
        out=$tmp/out-$iters-${master//[^0-9]/}
        if ! "$ember" run-example --master "$master" pagerank "$tmp/edges.txt" "$iters" "$out" \
            >"$tmp/stdout" 2>"$tmp/stderr"; then
            fail "$name: pagerank failed: $(head -c 500 "$tmp/stderr")"
            continue
        fi
        [ -f "$out/_SUCCESS" ] || fail "$name: no _SUCCESS"
        cat "$out"/part-* | sort >"$tmp/got"
        reference "$tmp/edges.txt" "$iters" >"$tmp/want"
        compare "$tmp/want" "$tmp/got" || fail "$name: ranks differ from the reference"
        # stdout: the 10 highest ranks, in order
        sort -t $'\t' -k2,2gr "$tmp/want" | awk 'NR <= 10' | cut -f2 |
            awk '{ printf "%.6f\n", $1 }' >"$tmp/top.want"
        cut -f1 "$tmp/stdout" >"$tmp/top.got"
        cmp -s "$tmp/top.want" "$tmp/top.got" || fail "$name: top 10 ranks differ"
    done
done

# malformed lines are errors naming the line
for bad in '1 2 3' 'lonely'; do
    printf '1 2\n%s\n2 1\n' "$bad" >"$tmp/bad.txt"
    rc=0
    "$ember" run-example --quiet pagerank "$tmp/bad.txt" 3 "$tmp/out-bad" >/dev/null \
        2>"$tmp/bad.err" || rc=$?
    [ "$rc" = 1 ] || fail "malformed '$bad': exit $rc, want 1"
    grep -qF "malformed edge line '$bad'" "$tmp/bad.err" ||
        fail "malformed '$bad': message: $(head -c 300 "$tmp/bad.err")"
    [ ! -e "$tmp/out-bad/_SUCCESS" ] || fail "malformed '$bad': output committed"
    rm -rf "$tmp/out-bad"
done

if [ "$fails" -gt 0 ]; then
    echo "test_pagerank: $fails failure(s)"
    exit 1
fi
echo "test_pagerank: ok"

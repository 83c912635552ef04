#!/usr/bin/env bash
# tests/integration/test_sort.sh BUILD_DIR - the sort example out of core: 16 MiB of
# generated records (plus duplicate keys and lines without a tab) sorted in local[2] with a
# 1 MiB ember.shuffle.memory, so map and reduce sides spill. Checks: _SUCCESS; every part
# file's keys are sorted and part i's last key <= part i+1's first; the keys, in order,
# equal those of `LC_ALL=C sort -t $'\t' -k1,1 -s`; the lines equal it as a multiset (the
# order of lines with equal keys is not promised); the spill counter printed is > 0.
# Also a tiny run in local[1] compared line for line, and a missing INPUT failing.
set -euo pipefail
build=${1:?usage: test_sort.sh BUILD_DIR}
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
tmp=$(mktemp -d /tmp/ember-test-sort.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check NAME INPUT MASTER [extra args...]
check() {
    local name=$1 input=$2 master=$3 out=$tmp/out-$1
    shift 3
    if ! "$ember" run-example --master "$master" "$@" sort "$input" "$out" \
        >"$tmp/$name.stdout" 2>"$tmp/$name.stderr"; then
        fail "$name: sort failed: $(head -c 500 "$tmp/$name.stderr")"
        return
    fi
    [ -f "$out/_SUCCESS" ] || fail "$name: no _SUCCESS in $out"
    local prev="" p
    for p in "$out"/part-*; do
        cut -f1 "$p" | sort -c 2>/dev/null || fail "$name: $p is not sorted by key"
        if [ -s "$p" ]; then
            local first last
            first=$(head -n1 "$p" | cut -f1)
            last=$(tail -n1 "$p" | cut -f1)
            if [ -n "$prev" ] && [[ "$first" < "$prev" ]]; then
                fail "$name: $p starts with '$first' before the previous part's last '$prev'"
            fi
            prev=$last
        fi
    done
    cat "$out"/part-* >"$tmp/$name.got"
    sort -t $'\t' -k1,1 -s "$input" >"$tmp/$name.want"
    cmp -s <(cut -f1 "$tmp/$name.got") <(cut -f1 "$tmp/$name.want") ||
        fail "$name: key sequence differs from sort -k1,1"
    cmp -s <(sort "$tmp/$name.got") <(sort "$tmp/$name.want") ||
        fail "$name: lines differ from the input's (as multisets)"
}

"$ember" gen records --mib 16 --seed 11 --out "$tmp/big.txt"
# duplicate keys with different values, and lines without a tab
head -n 2000 "$tmp/big.txt" | sed 's/\t\(.\)/\t#\1/' >>"$tmp/big.txt"
printf 'no-tab-line\n\tempty key\nzzz\n' >>"$tmp/big.txt"
check big "$tmp/big.txt" 'local[2]' --executor-memory 64m --conf ember.shuffle.memory=1m
spilled=$(sed -n 's/^sort: .*spilled \([0-9]*\) bytes$/\1/p' "$tmp/big.stderr")
[ -n "$spilled" ] && [ "$spilled" -gt 0 ] ||
    fail "big: expected spills with ember.shuffle.memory=1m, got '${spilled:-none}'"
nparts=$(ls "$tmp/out-big"/part-* | wc -l)
[ "$nparts" -ge 2 ] || fail "big: $nparts part files, expected several"

printf 'b\t2\na\t1\nc\t3\nb\t0\n' >"$tmp/small.txt"
check small "$tmp/small.txt" 'local[1]'
cmp -s "$tmp/small.got" "$tmp/small.want" || fail "small: not identical to sort -s"

if "$ember" run-example sort "$tmp/missing.txt" "$tmp/out-missing" 2>"$tmp/missing.err"; then
    fail "missing input: succeeded"
fi
grep -q "missing.txt" "$tmp/missing.err" || fail "missing input: error does not name the file"

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "sort: ok"

#!/usr/bin/env bash
# tests/integration/test_wordcount.sh BUILD_DIR - runs the wordcount example on generated
# text (local[2] and local[1]) and on a hand-made file with awkward spacing, and compares
# the output exactly with counts computed by tr/sort/uniq (LC_ALL=C: words are maximal runs
# of bytes other than space, tab, CR, LF). Also: _SUCCESS, the printed top 20, and that an
# existing OUTDIR or a missing INPUT fail with a clear message.
set -euo pipefail
build=${1:?usage: test_wordcount.sh BUILD_DIR}
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
tmp=$(mktemp -d /tmp/ember-test-wc.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# reference INPUT -> "word<TAB>count" lines, sorted
reference() {
    tr -s ' \t\r\n' '\n' <"$1" | grep -v '^$' | sort | uniq -c |
        awk '{ printf "%s\t%s\n", $2, $1 }' | sort
}

# check NAME INPUT MASTER
check() {
    local name=$1 input=$2 master=$3 out=$tmp/out-$1
    rm -rf "$out"
    if ! "$ember" run-example --master "$master" wordcount "$input" "$out" \
        >"$tmp/$name.stdout" 2>"$tmp/$name.stderr"; then
        fail "$name: wordcount failed: $(head -c 500 "$tmp/$name.stderr")"
        return
    fi
    [ -f "$out/_SUCCESS" ] || fail "$name: no _SUCCESS in $out"
    ls "$out"/part-* >/dev/null 2>&1 || fail "$name: no part files in $out"
    cat "$out"/part-* | sort >"$tmp/$name.got"
    reference "$input" >"$tmp/$name.want"
    if ! cmp -s "$tmp/$name.got" "$tmp/$name.want"; then
        fail "$name: counts differ from the reference:"
        diff "$tmp/$name.want" "$tmp/$name.got" | awk 'NR <= 10' || true
    fi
    # top 20: count desc, ties by word bytes desc (em_rdd_top on count + word)
    sort -t $'\t' -k2,2nr -k1,1r "$tmp/$name.want" | awk 'NR <= 20' |
        awk -F '\t' '{ printf "%s\t%s\n", $2, $1 }' >"$tmp/$name.top"
    cmp -s "$tmp/$name.stdout" "$tmp/$name.top" ||
        fail "$name: top 20 differs: $(diff "$tmp/$name.top" "$tmp/$name.stdout" | head -6)"
}

"$ember" gen text --mib 4 --seed 3 --out "$tmp/text.txt"
check gen2 "$tmp/text.txt" "local[2]"
check gen1 "$tmp/text.txt" "local[1]"
# A one-line file: one of the two map tasks reads nothing, and its empty map output must still
# be pairs for the map-side combine (it was committed as plain records and refused).
printf 'a b a\n' >"$tmp/tiny.txt"
check tiny2 "$tmp/tiny.txt" "local[2]"
check tiny_cluster "$tmp/tiny.txt" "local-cluster[2,1]"

# awkward input: CR LF, tabs, runs of spaces, blank lines, UTF-8, no final newline
printf 'a  b\tb\r\n\r\n  \n\tc a\r\nélan élan  日本\n\n b b\nlast' >"$tmp/edge.txt"
check edge "$tmp/edge.txt" "local[2]"

# words across the tokenizer's 64-byte steps: lines of 63..130 bytes, words of 1..200 bytes
# that start or end at offsets 63, 64, 127, 128, separators of each kind at the edges; with
# the run-time chosen scan (AVX-512BW here when the CPU has it) and with the portable one
awk 'BEGIN {
    seps[0] = " "; seps[1] = "\t"; seps[2] = "\r"; seps[3] = "  "
    for (len = 1; len <= 200; len += (len < 70 ? 1 : 13)) {
        w = ""; for (i = 0; i < len; i++) w = w sprintf("%c", 97 + (len + i) % 26)
        for (lead = 60; lead <= 66; lead++) {
            line = ""; for (i = 0; i < lead; i++) line = line (i % 5 == 4 ? seps[i % 4] : "x")
            printf "%s%s%s%s\n", line, w, seps[len % 4], substr(w, 1, len % 9 + 1)
        }
        printf "%s\n", w   # the word alone: exactly 64, 128, ... bytes for some lengths
    }
}' >"$tmp/blocks.txt"
check blocks "$tmp/blocks.txt" "local[2]"
EMBER_WORD_SCAN=portable check blocks-portable "$tmp/blocks.txt" "local[2]"
EMBER_WORD_SCAN=portable check edge-portable "$tmp/edge.txt" "local[2]"

# a directory as input (all its files), as Hadoop's input paths
mkdir "$tmp/dir"
head -c 300000 "$tmp/text.txt" | sed '$d' >"$tmp/dir/a.txt"
cp "$tmp/edge.txt" "$tmp/dir/b.txt"
cat "$tmp/dir/a.txt" "$tmp/dir/b.txt" >"$tmp/dir-all.txt"
rm -rf "$tmp/out-dir"
if "$ember" run-example --quiet wordcount "$tmp/dir" "$tmp/out-dir" >/dev/null 2>"$tmp/dir.err"; then
    # the two files are counted separately, so "last" and a.txt's last word stay apart
    cat "$tmp/out-dir"/part-* | sort >"$tmp/dir.got"
    { reference "$tmp/dir/a.txt"; reference "$tmp/dir/b.txt"; } |
        awk -F '\t' '{ c[$1] += $2 } END { for (w in c) printf "%s\t%d\n", w, c[w] }' |
        sort >"$tmp/dir.want"
    cmp -s "$tmp/dir.got" "$tmp/dir.want" || fail "directory input: counts differ"
else
    fail "directory input: $(head -c 300 "$tmp/dir.err")"
fi

# an existing OUTDIR is refused and left alone
rc=0
"$ember" run-example wordcount "$tmp/edge.txt" "$tmp/out-edge" >/dev/null 2>"$tmp/again.err" || rc=$?
[ "$rc" = 1 ] || fail "existing OUTDIR: exit $rc, want 1"
grep -q "^ember: " "$tmp/again.err" || fail "existing OUTDIR: no 'ember: ' message"
grep -qiE "exist" "$tmp/again.err" || fail "existing OUTDIR: message does not say it exists: $(cat "$tmp/again.err")"
[ -f "$tmp/out-edge/_SUCCESS" ] || fail "existing OUTDIR was damaged"

# a missing input is an error naming it, and leaves no OUTDIR
rc=0
"$ember" run-example wordcount "$tmp/missing.txt" "$tmp/out-missing" >/dev/null 2>"$tmp/miss.err" || rc=$?
[ "$rc" = 1 ] || fail "missing input: exit $rc, want 1"
grep -qF "missing.txt" "$tmp/miss.err" || fail "missing input: message lacks the path: $(cat "$tmp/miss.err")"
[ ! -e "$tmp/out-missing/_SUCCESS" ] || fail "missing input: OUTDIR has _SUCCESS"

if [ "$fails" -gt 0 ]; then
    echo "test_wordcount: $fails failure(s)"
    exit 1
fi
echo "test_wordcount: ok"

#!/usr/bin/env bash
# tests/integration/test_ml_svd.sh BUILD_DIR - `ember ml svd` and `ember ml pca` end to end
# on generated files:
#  1. local[2] and local-cluster[2,1] give the same singular values (1e-12 relative) for a
#     dense CSV through the Gramian and through Lanczos, and for sparse LIBSVM rows through
#     Lanczos; the two paths agree to 1e-9;
#  2. pca: the same explained variance both ways; --save writes a model directory and
#     --transform the projected rows;
#  3. --help is true; bad input (k > d, a missing file, a bad flag, a malformed line) is a
#     clear error with exit status 1 or 2, and nothing is left behind.
source "$(dirname "$0")/cluster_lib.sh" ml_svd "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m

# 2000 x 12 dense (CSV with a header) and the same rows as LIBSVM (zeros dropped).
awk 'BEGIN {
    srand(17);
    h = "f1"; for (j = 2; j <= 12; j++) h = h ",f" j; print h > "/dev/stderr";
    for (i = 0; i < 2000; i++) {
        line = ""; svm = (i % 3);
        for (j = 1; j <= 12; j++) {
            v = (rand() < 0.6) ? (2 * rand() - 1) * 10 / (j + 1) : 0;
            line = line (j > 1 ? "," : "") sprintf("%.17g", v);
            if (v != 0) svm = svm sprintf(" %d:%.17g", j, v);
        }
        print line > "/dev/stderr"; print svm;
    }
}' >"$tmp/a.libsvm" 2>"$tmp/a.csv"

run() {   # ALGO MASTER ARGS... -> the --json line on stdout
    local algo=$1 master=$2
    shift 2
    { "$ember" ml "$algo" --master "$master" --json "$@" 2>>"$tmp/err" ||
        echo "ember ml $algo $* failed: $(tail -n 1 "$tmp/err")" >&2; } | tail -n 1
}
values() { sed -n "s/.*\"$2\":\[\([^]]*\)\].*/\1/p" <<<"$1"; }
same() {   # WHAT A B TOL: the two comma lists agree to TOL relative
    awk -v a="$2" -v b="$3" -v t="$4" 'BEGIN {
        na = split(a, x, ","); nb = split(b, y, ",");
        if (na == 0 || na != nb) exit 1;
        for (i = 1; i <= na; i++) {
            d = x[i] - y[i]; if (d < 0) d = -d;
            m = y[i] < 0 ? -y[i] : y[i];
            if (d > t * m) exit 1;
        }
    }' || fail "$1: [$2] vs [$3] (tolerance $4)"
}

declare -A got
for master in 'local[2]' 'local-cluster[2,1]'; do
    got[$master,g]=$(run svd "$master" --train "$tmp/a.csv" --k 5 --mode gramian)
    got[$master,l]=$(run svd "$master" --train "$tmp/a.csv" --k 5 --mode lanczos)
    got[$master,s]=$(run svd "$master" --train "$tmp/a.libsvm" --k 5 --mode lanczos)
    got[$master,p]=$(run pca "$master" --train "$tmp/a.csv" --k 3)
done
for kind in g l s; do
    a=$(values "${got[local[2],$kind]}" singular_values)
    b=$(values "${got[local-cluster[2,1],$kind]}" singular_values)
    [ -n "$a" ] || fail "svd ($kind): no singular_values in: ${got[local[2],$kind]}"
    same "svd ($kind) local vs cluster" "$b" "$a" 1e-12
done
same "svd lanczos vs gramian" "$(values "${got[local[2],l]}" singular_values)" \
    "$(values "${got[local[2],g]}" singular_values)" 1e-9
grep -q '"mode":"gramian"' <<<"${got[local[2],g]}" || fail "auto/gramian mode not reported"
pa=$(values "${got[local[2],p]}" explained_variance)
[ -n "$pa" ] || fail "pca: no explained_variance in: ${got[local[2],p]}"
same "pca local vs cluster" "$(values "${got[local-cluster[2,1],p]}" explained_variance)" \
    "$pa" 1e-12

# Saving: the model directory and the projected rows.
run pca 'local[2]' --train "$tmp/a.csv" --k 2 --save "$tmp/model" --transform "$tmp/proj" \
    >/dev/null
[ -f "$tmp/model/metadata.json" ] && [ -f "$tmp/model/arrays.bin" ] || fail "pca --save"
grep -q '"class": "ember.pca"' "$tmp/model/metadata.json" || fail "pca metadata"
rows=$(cat "$tmp"/proj/part-* | grep -vc '^f1' || true)
[ "$rows" = 2000 ] || fail "pca --transform wrote $rows rows, expected 2000"
run svd 'local[2]' --train "$tmp/a.csv" --k 3 --save "$tmp/svd" --save-u "$tmp/u" >/dev/null
[ "$(stat -c %s "$tmp/svd/v.bin")" = 288 ] && [ "$(stat -c %s "$tmp/svd/s.bin")" = 24 ] \
    && grep -q '"class": "ember.SVDModel"' "$tmp/svd/metadata.json" \
    || fail "svd --save: no model directory with v (12 x 3) and s (3)"
rows=$(cat "$tmp"/u/part-* | grep -vc '^f1' || true)
[ "$rows" = 2000 ] || fail "svd --save-u wrote $rows rows, expected 2000"

# Errors: exit 1 (failure) or 2 (usage), a message naming the cause.
expect() {   # STATUS PATTERN ARGS...
    local want=$1 pat=$2 st=0
    shift 2
    "$ember" ml "$@" >"$tmp/out" 2>"$tmp/msg" || st=$?
    [ "$st" = "$want" ] || fail "ember ml $*: exit $st, expected $want"
    grep -q -- "$pat" "$tmp/msg" "$tmp/out" || fail "ember ml $*: no '$pat' in: $(cat "$tmp/msg")"
}
expect 0 "Usage: ember ml svd" svd --help
expect 0 "Usage: ember ml pca" pca --help
expect 1 "k = 13, expected 1..12" svd --train "$tmp/a.csv" --k 13
expect 1 "k = 20, expected 1..12" pca --train "$tmp/a.csv" --k 20
expect 2 "--train PATH is required" svd --k 3
expect 2 "--k K is required" pca --train "$tmp/a.csv"
expect 2 "--mode: unknown value 'fast' (one of: auto" svd --train "$tmp/a.csv" --k 3 --mode fast
expect 2 "unknown option '--bogus'" pca --train "$tmp/a.csv" --k 3 --bogus 1
expect 1 "nonexistent" svd --train "$tmp/nonexistent.csv" --k 3
printf 'x,y\n1,2\n3,oops\n' >"$tmp/bad.csv"
expect 1 "bad.csv:3" svd --train "$tmp/bad.csv" --k 1
expect 2 "model: already exists" pca --train "$tmp/a.csv" --k 2 --save "$tmp/model"
expect 2 "--k wants an integer" pca --train "$tmp/a.csv" --k 1.5

check_clean "ml svd"
finish "ok (sigma $(values "${got[local[2],g]}" singular_values | cut -d, -f1-2)...)"

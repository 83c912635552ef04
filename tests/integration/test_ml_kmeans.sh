#!/usr/bin/env bash
# tests/integration/test_ml_kmeans.sh BUILD_DIR - `ember ml kmeans` end to end on
# `ember gen blobs` data:
#  1. local[2] and local-cluster[2,1] give the same model for one seed (cost, iterations
#     and every centre to the printed digit);
#  2. the centres found are the generator's true centres (within 0.05);
#  3. --save writes a model directory; --help exits 0; bad usage exits 2; a bad line exits
#     1 naming FILE:LINE, and --skip-bad-lines counts it instead.
source "$(dirname "$0")/cluster_lib.sh" ml_kmeans "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m
mkdir -p "$TMPDIR"

"$ember" gen blobs --rows 30000 --dim 6 --k 5 --std 0.5 --seed 3 --out "$tmp/b.csv"
km() {   # MASTER ARGS... -> the --json line
    local m=$1; shift
    "$ember" ml kmeans --train "$tmp/b.csv" --k 5 --seed 4 --master "$m" --json "$@" | tail -n 1
}
ref=$(km 'local[2]' --save "$tmp/model")
cl=$(km 'local-cluster[2,1]')
[ -n "$ref" ] && [ "${ref:0:1}" = "{" ] || fail "local[2]: no JSON line: $ref"
strip() { sed 's/"\(init_s\|train_s\|iteration_s\|load_s\|total_s\|peak_rss_mib\)": *[0-9.e-]*//g' <<<"$1"; }
[ "$(strip "$ref")" = "$(strip "$cl")" ] || fail "local[2] and local-cluster[2,1] differ:
$ref
$cl"
/usr/bin/python3 - "$ref" "$tmp/b.csv.centers" <<'PY' || fail "true centres not recovered"
import json, sys
r = json.loads(sys.argv[1])
true = [[float(v) for v in l.split(",")] for l in open(sys.argv[2])]
assert r["k"] == 5 and len(r["centers"]) == 5, r["k"]
for t in true:
    d = min(sum((a - b) ** 2 for a, b in zip(t, c)) ** 0.5 for c in r["centers"])
    assert d < 0.05, (t, d)
for key in ("cost", "iterations", "centers", "train_s", "total_s"):
    assert key in r, key
PY
[ -f "$tmp/model/metadata.json" ] && [ -f "$tmp/model/centers.bin" ] || fail "no saved model"

"$ember" ml kmeans --help | grep -q -- "--init" || fail "--help"
set +e
"$ember" ml kmeans --train "$tmp/b.csv" >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q -- "--k K is required" "$tmp/err" || fail "missing --k: status $st"
"$ember" ml kmeans --train "$tmp/b.csv" --k 2 --init bogus >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "bad --init: status $st"
printf 'a,b\n1,2\n3,x\n5,6\n' > "$tmp/bad.csv"
"$ember" ml kmeans --train "$tmp/bad.csv" --k 2 >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -q "bad.csv:3: bad number" "$tmp/err" || fail "bad line: status $st: $(cat "$tmp/err")"
out=$("$ember" ml kmeans --train "$tmp/bad.csv" --k 2 --skip-bad-lines --json | tail -n 1); st=$?
[ $st = 0 ] && grep -q '"skipped_lines": *1' <<<"$out" || fail "skip: status $st: $out"
set -e
check_clean "ml_kmeans"
finish

#!/usr/bin/env bash
# tests/integration/test_ml_nb.sh BUILD_DIR - `ember ml nb` end to end on `ember gen counts`
# data:
#  1. local[2] and local-cluster[2,1] give the same figures and the same predictions;
#  2. the model learns the generator's classes (test accuracy > 0.8), and its predictions
#     and log-loss equal scikit-learn's MultinomialNB with the same smoothing and Spark's
#     smoothed prior (when python3-sklearn is installed);
#  3. Bernoulli on 0/1 data; --save writes a model directory; --help exits 0; bad usage
#     exits 2; a negative count exits 1 naming the row; a bad Bernoulli value too.
source "$(dirname "$0")/cluster_lib.sh" ml_nb "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m
mkdir -p "$TMPDIR"

"$ember" gen counts --rows 6000 --cols 400 --classes 5 --nnz 60 --seed 3 --out "$tmp/all.txt"
head -n 5000 "$tmp/all.txt" > "$tmp/train.txt"
tail -n 1000 "$tmp/all.txt" > "$tmp/test.txt"
nb() {   # MASTER PRED_DIR ARGS... -> the --json line
    local m=$1 p=$2; shift 2
    "$ember" ml nb --train "$tmp/train.txt" --test "$tmp/test.txt" --dim 400 --master "$m" \
        --predictions "$p" --json "$@" | tail -n 1
}
ref=$(nb 'local[2]' "$tmp/p1" --save "$tmp/model")
cl=$(nb 'local-cluster[2,1]' "$tmp/p2")
[ "${ref:0:1}" = "{" ] || fail "local[2]: no JSON line: $ref"
strip() { sed 's/"\(train_s\|predict_s\|load_s\|total_s\|peak_rss_mib\)":[0-9.e-]*//g' <<<"$1"; }
[ "$(strip "$ref")" = "$(strip "$cl")" ] || fail "local[2] and local-cluster[2,1] differ:
$ref
$cl"
cat "$tmp"/p1/part-* > "$tmp/p1.txt"
cat "$tmp"/p2/part-* > "$tmp/p2.txt"
cmp -s "$tmp/p1.txt" "$tmp/p2.txt" || fail "predictions differ between masters"
[ "$(wc -l < "$tmp/p1.txt")" = 1000 ] || fail "$(wc -l < "$tmp/p1.txt") predictions, want 1000"
/usr/bin/python3 - "$ref" <<'PY' || fail "figures: $ref"
import json, sys
r = json.loads(sys.argv[1])
for k in ("accuracy", "weighted_f1", "weighted_precision", "confusion", "train_s", "total_s"):
    assert k in r, k
assert r["accuracy"] > 0.8 and r["test_count"] == 1000 and r["num_classes"] == 5, r
PY
if /usr/bin/python3 -c 'import sklearn' 2>/dev/null; then
    sk=$(/usr/bin/python3 "$(dirname "$0")/../../bench/ml_nb_sklearn.py" "$tmp/train.txt" \
        "$tmp/test.txt" 400 1 "$tmp/sk.txt")
    cmp -s "$tmp/p1.txt" "$tmp/sk.txt" || fail "predictions differ from scikit-learn's"
    /usr/bin/python3 -c 'import json, sys; a, b = (json.loads(x)["log_loss"] for x in sys.argv[1:])
assert abs(a - b) <= 1e-9 * max(1, abs(b)), (a, b)' "$ref" "$sk" || fail "log-loss differs from scikit-learn's"
fi
[ -f "$tmp/model/metadata.json" ] && [ -f "$tmp/model/theta.bin" ] || fail "no saved model"
grep -q '"ember.NaiveBayesModel"' "$tmp/model/metadata.json" || fail "model class"

# Bernoulli on the same rows as 0/1.
sed -E 's/:[0-9]+/:1/g' "$tmp/train.txt" > "$tmp/bin.txt"
out=$("$ember" ml nb --train "$tmp/bin.txt" --model-type bernoulli --smoothing 0.5 \
    --master 'local[2]' --json | tail -n 1)
grep -q '"model_type":"bernoulli"' <<<"$out" || fail "bernoulli: $out"

"$ember" ml nb --help | grep -q -- "--model-type" || fail "--help"
set +e
"$ember" ml nb --train "$tmp/train.txt" --model-type gaussian >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "bad --model-type: status $st"
"$ember" ml nb --train "$tmp/train.txt" --smoothing -1 >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "bad --smoothing: status $st"
printf '0 1:2 3:1\n1 2:-3\n' > "$tmp/neg.txt"
"$ember" ml nb --train "$tmp/neg.txt" --master 'local[1]' >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -Eq "partition [0-9]+, row [0-9]+: feature 2 is -3" "$tmp/err" || fail "negative count: status $st: $(tail -n 1 "$tmp/err")"
"$ember" ml nb --train "$tmp/train.txt" --model-type bernoulli --master 'local[1]' >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -q "Bernoulli naive Bayes needs features 0 or 1" "$tmp/err" || fail "bernoulli counts: status $st"
set -e
check_clean "ml_nb"
finish

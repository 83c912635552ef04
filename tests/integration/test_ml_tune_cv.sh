#!/usr/bin/env bash
# tests/integration/test_ml_tune_cv.sh BUILD_DIR - `ember tune lr` and `ember tune als`
# (k-fold cross-validated searches) end to end:
#  1. tune lr on `ember gen classif` data: a grid over reg x elastic, 3 folds, AUC; the same
#     table (params, per-fold metrics to 1e-9) and best in local[2] and local-cluster[2,1];
#     the live table prints one row per (configuration, fold); --results writes CSV and
#     JSON; --save writes the refitted model; --test scores it; heavy regularization loses;
#  2. tune als on `ember gen ratings` data: rank x lambda, 3 folds, halving; the refitted
#     model is saved and scored on the test ratings;
#  3. usage errors exit 2 (unknown estimator, missing --space, iter in a halving space, bad
#     folds).
source "$(dirname "$0")/cluster_lib.sh" ml_tune_cv "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m

"$ember" gen classif --rows 3000 --dim 20 --noise 1 --seed 4 --test-rows 1000 \
    --test-out "$tmp/test.libsvm" --out "$tmp/train.libsvm" >/dev/null

# 1. logistic regression
lr() {   # MASTER ARGS... -> stdout
    local m=$1; shift
    "$ember" tune lr --train "$tmp/train.libsvm" --test "$tmp/test.libsvm" \
        --space "reg=1e-4,0.05,50;elastic=0,0.5" --folds 3 --metric auc --master "$m" \
        --json "$@"
}
lr 'local[2]' --results "$tmp/res" --save "$tmp/lrbest" > "$tmp/lr.out"
ref=$(tail -n 1 "$tmp/lr.out")
cl=$(lr 'local-cluster[2,1]' | tail -n 1)
rows=$(grep -cE '^ +[0-9]+ +0 +[0-2] +reg=' "$tmp/lr.out" || true)
[ "$rows" = 18 ] || fail "lr: $rows live rows, not 6 configurations x 3 folds:
$(cat "$tmp/lr.out")"
/usr/bin/python3 - "$ref" "$cl" <<'PY' || fail "lr tables: $ref // $cl"
import json, sys
a, b = (json.loads(x) for x in sys.argv[1:3])
assert a["ntrials"] == 6 and a["folds"] == 3, a
assert a["best"]["params"] == b["best"]["params"], (a["best"], b["best"])
for s, t in zip(a["trials"], b["trials"]):
    assert s["params"] == t["params"] and s["status"] == "ok" == t["status"]
    assert len(s["folds"]) == 3
    for x, y in zip(s["folds"], t["folds"]):
        assert abs(x - y) < 1e-9, (s, t)
by = {t["params"]: t["metric"] for t in a["trials"]}
# reg 50 shrinks every coefficient to about 0: the worst AUC of the grid
assert by["reg=50;elastic=0"] < max(by.values()), by
assert "reg=50" not in a["best"]["params"], a["best"]
assert a["best"]["test_auc"] > 0.8, a["best"]
PY
[ "$(wc -l < "$tmp/res.csv")" = 7 ] && [ -f "$tmp/res.json" ] || fail "lr --results files"
[ -f "$tmp/lrbest/metadata.json" ] || fail "lr: refitted model not saved"

# 2. ALS
"$ember" gen ratings --scale 0.0005 --seed 2 --out "$tmp/r" >/dev/null
out=$("$ember" tune als --ratings "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" \
      --space "rank=2,8;lambda=0.02,0.5" --folds 3 --search halving --iter 6 \
      --master 'local[2]' --save "$tmp/alsbest" --json | tail -n 1)
/usr/bin/python3 - "$out" <<'PY' || fail "als: $out"
import json, sys
r = json.loads(sys.argv[1])
assert r["rounds"] == 3 and r["ntrials"] >= 4 + 2 + 1, r["ntrials"]
assert r["folds"] == 3
assert r["best"]["test_rmse"] > 0 and r["best"]["test_rmse"] < 2, r["best"]
assert max(t["epochs"] for t in r["trials"] if t["status"] == "ok") == 6
PY
[ -f "$tmp/alsbest/metadata.json" ] || fail "als: model not saved"

# 3. usage errors
set +e
"$ember" tune svm --train x >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q "unknown estimator" "$tmp/err" || fail "tune svm: $st"
"$ember" tune lr --train "$tmp/train.libsvm" >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q -- "--space SPACE is required" "$tmp/err" || fail "lr without --space: $st"
"$ember" tune lr --train "$tmp/train.libsvm" --space "iter=5,10" --search halving \
    --master 'local[2]' >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -q "halving sets 'iter'" "$tmp/err" || fail "halving over iter: $st $(cat "$tmp/err")"
"$ember" tune als --ratings "$tmp/r.train.tsv" --space "rank=2" --folds 1 >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "--folds 1: status $st"
"$ember" tune als --ratings "$tmp/r.train.tsv" --space "rank=0" >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q "bad value '0'" "$tmp/err" || fail "rank=0: $st $(cat "$tmp/err")"
"$ember" tune lr --help | grep -q -- "--folds" || fail "tune lr --help"
"$ember" tune als --help | grep -q -- "--ratings" || fail "tune als --help"
set -e
check_clean "ml_tune_cv"
finish

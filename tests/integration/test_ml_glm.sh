#!/usr/bin/env bash
# tests/integration/test_ml_glm.sh BUILD_DIR - `ember ml linreg` and `ember ml glm` end to
# end on `ember gen regression` data:
#  1. glm poisson: local[2] and local-cluster[2,1] give the same model (every printed
#     figure but the timings); the coefficients are the generator's within 4 standard errors;
#     the JSON has the fields the issue names;
#  2. linreg (CSV and LIBSVM input, normal and l-bfgs solvers) recovers the generator's
#     coefficients; ridge/lasso flags work; quality figures on --test;
#  3. --save writes a model directory; --help exits 0; bad usage exits 2; a negative label
#     for poisson exits 1 naming the label, with no model directory left behind.
source "$(dirname "$0")/cluster_lib.sh" ml_glm "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m
mkdir -p "$TMPDIR"

"$ember" gen regression --rows 20000 --dim 5 --family poisson --seed 3 --out "$tmp/p.csv"
glm() {   # MASTER ARGS... -> the --json line
    local m=$1; shift
    "$ember" ml glm --train "$tmp/p.csv" --format csv --label label --family poisson \
        --master "$m" --json "$@" | tail -n 1
}
ref=$(glm 'local[2]' --save "$tmp/model")
cl=$(glm 'local-cluster[2,1]')
[ -n "$ref" ] && [ "${ref:0:1}" = "{" ] || fail "local[2]: no JSON line: $ref"
strip() { sed 's/"\(train_s\|load_s\|total_s\|peak_rss_mib\)":[0-9.e+-]*//g' <<<"$1"; }
[ "$(strip "$ref")" = "$(strip "$cl")" ] || fail "local[2] and local-cluster[2,1] differ:
$ref
$cl"
/usr/bin/python3 - "$ref" "$tmp/p.csv.coef" <<'PY' || fail "glm: true coefficients not recovered"
import json, sys
r = json.loads(sys.argv[1])
true = [float(v) for v in open(sys.argv[2]).read().split(",")]
est = [r["intercept"]] + r["coefficients"]
for t, e, s in zip(true, est, r["std_errors"]):
    assert abs(t - e) < 4 * s, (t, e, s)
for key in ("rmse", "mae", "r2", "deviance", "aic", "std_errors", "coefficients",
            "intercept", "train_s", "total_s", "null_deviance", "iterations"):
    assert key in r, key
assert r["converged"] and r["deviance"] < r["null_deviance"]
PY
[ -f "$tmp/model/metadata.json" ] && [ -f "$tmp/model/coef.bin" ] || fail "no saved model"

# linreg: gaussian data, CSV and LIBSVM, both solvers, a held-out test set
"$ember" gen regression --rows 20000 --dim 8 --noise 0.5 --seed 5 --test-rows 5000 \
    --out "$tmp/g.csv"
"$ember" gen regression --rows 20000 --dim 8 --noise 0.5 --seed 5 --format libsvm \
    --out "$tmp/g.svm"
cmp -s "$tmp/g.csv.coef" "$tmp/g.svm.coef" || fail "csv and libsvm generators differ"
lin() { "$ember" ml linreg --master 'local[2]' --json "$@" | tail -n 1; }
a=$(lin --train "$tmp/g.csv" --format csv --label label --test "$tmp/g.csv.test")
b=$(lin --train "$tmp/g.svm" --solver l-bfgs --tol 1e-10)
c=$(lin --train "$tmp/g.svm" --reg-param 0.05 --elastic-net 1)
/usr/bin/python3 - "$a" "$b" "$c" "$tmp/g.csv.coef" <<'PY' || fail "linreg: coefficients"
import json, sys
a, b, c = (json.loads(s) for s in sys.argv[1:4])
true = [float(v) for v in open(sys.argv[4]).read().split(",")]
for r in (a, b):
    est = [r["intercept"]] + r["coefficients"]
    assert max(abs(t - e) for t, e in zip(true, est)) < 0.03, est
    for key in ("rmse", "mae", "r2", "train_s", "total_s", "coefficients", "intercept"):
        assert key in r, key
assert a["solver"] == "normal" and b["solver"] == "l-bfgs"
assert a["test_count"] == 5000 and 0.45 < a["rmse"] < 0.55, a["rmse"]
assert max(abs(x - y) for x, y in zip(a["coefficients"], b["coefficients"])) < 1e-4
# the lasso shrinks every coefficient towards 0 by about lambda (unit-variance features)
assert all(abs(x) <= abs(y) + 1e-9 for x, y in zip(c["coefficients"], a["coefficients"]))
PY

"$ember" ml glm --help | grep -q -- "--family" || fail "glm --help"
"$ember" ml linreg --help | grep -q -- "--elastic-net" || fail "linreg --help"
"$ember" ml --help | grep -q "glm" || fail "ml --help lists glm"
set +e
"$ember" ml glm --train "$tmp/p.csv" --format csv --label label >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q -- "--family is required" "$tmp/err" || fail "missing --family: $st"
"$ember" ml glm --train "$tmp/p.csv" --format csv --label label --family poisson \
    --link logit >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q "does not take link logit" "$tmp/err" || fail "bad link: $st"
"$ember" ml linreg --train "$tmp/g.csv" --format csv --label label --elastic-net 2 \
    >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "bad --elastic-net: status $st"
"$ember" ml linreg --train "$tmp/g.csv" --format csv --label label --solver qr \
    >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "bad --solver: status $st"
printf 'label,a\n1,0.5\n-2,0.25\n3,1\n' > "$tmp/neg.csv"
"$ember" ml glm --train "$tmp/neg.csv" --format csv --label label --family poisson \
    --save "$tmp/neg_model" >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -q "label -2 is outside the range of family poisson" "$tmp/err" \
    || fail "negative poisson label: status $st: $(cat "$tmp/err")"
[ ! -e "$tmp/neg_model" ] || fail "a failed fit left a model directory"
set -e
check_clean "ml_glm"
finish

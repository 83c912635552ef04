#!/usr/bin/env bash
# tests/integration/test_ml_lr.sh BUILD_DIR - `ember ml lr` and `ember ml svm` end to end
# on `ember gen classif` data:
#  1. local[2] and local-cluster[2,1] give the same model (coefficients to 1e-7 relative;
#     the partition sums may be merged in another order) and the same test accuracy;
#  2. the model separates the held-out set (accuracy > 0.9; the generator's Bayes rate is
#     about 0.94; sparse > 0.85), LR reports auc and log_loss, multinomial on csv, SVM by L-BFGS and SGD,
#     L1 by OWL-QN zeroes coefficients;
#  3. --save writes a model directory; --help exits 0; bad usage exits 2; a bad label
#     exits 1 with a clear message; a bad line names FILE:LINE.
source "$(dirname "$0")/cluster_lib.sh" ml_lr "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m
mkdir -p "$TMPDIR"

"$ember" gen classif --rows 20000 --dim 20 --seed 3 --out "$tmp/c.svm" \
    --test-rows 5000 --test-out "$tmp/t.svm"
"$ember" gen classif --rows 20000 --dim 2000 --sparse --nnz 20 --seed 4 --out "$tmp/s.svm" \
    --test-rows 5000 --test-out "$tmp/st.svm"
run() {   # ALGO MASTER ARGS... -> the --json line
    local a=$1 m=$2; shift 2
    "$ember" ml "$a" --master "$m" --json "$@" | tail -n 1
}
ref=$(run lr 'local[2]' --train "$tmp/c.svm" --test "$tmp/t.svm" --reg-param 0.001 \
      --save "$tmp/model")
cl=$(run lr 'local-cluster[2,1]' --train "$tmp/c.svm" --test "$tmp/t.svm" --reg-param 0.001)
sp=$(run lr 'local-cluster[2,1]' --train "$tmp/s.svm" --test "$tmp/st.svm" --reg-param 0.0001)
l1=$(run lr 'local[2]' --train "$tmp/s.svm" --test "$tmp/st.svm" --reg-param 0.005 \
     --elastic-net 1)
svm=$(run svm 'local-cluster[2,1]' --train "$tmp/c.svm" --test "$tmp/t.svm")
sgd=$(run svm 'local[2]' --train "$tmp/c.svm" --test "$tmp/t.svm" --solver sgd \
      --batch-fraction 0.2 --seed 9)
/usr/bin/python3 - "$ref" "$cl" "$sp" "$l1" "$svm" "$sgd" <<'PY' || fail "quality or equality"
import json, sys
ref, cl, sp, l1, svm, sgd = (json.loads(a) for a in sys.argv[1:])
for k in ("accuracy", "auc", "log_loss", "train_s", "total_s", "iterations", "coefficients"):
    assert k in ref, k
assert ref["iterations"] == cl["iterations"], (ref["iterations"], cl["iterations"])
for a, b in zip(ref["coefficients"] + [ref["intercept"]], cl["coefficients"] + [cl["intercept"]]):
    assert abs(a - b) <= 1e-7 * max(1, abs(a)), (a, b)
assert ref["accuracy"] == cl["accuracy"], (ref["accuracy"], cl["accuracy"])
for name, r in (("dense", ref), ("svm", svm), ("sgd", sgd)):
    assert r["accuracy"] > 0.9, (name, r["accuracy"])
assert sp["accuracy"] > 0.85, sp["accuracy"]   # 2000 weights from 20000 rows
assert sp["features"] == 2000 and "auc" in sp
assert l1["solver"] == "owlqn" and l1["accuracy"] > 0.7, l1
assert svm["loss"] == "squared_hinge" and sgd["loss"] == "hinge"
assert "log_loss" not in svm
PY
[ -f "$tmp/model/metadata.json" ] && [ -f "$tmp/model/coef.bin" ] || fail "no saved model"
t0=$(run lr 'local[2]' --train "$tmp/c.svm" --test "$tmp/t.svm" --threshold 0)
/usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["recall"]==1.0 and r["accuracy"]<0.6, r' "$t0" \
    || fail "--threshold 0: $t0"

"$ember" gen classif --rows 3000 --dim 4 --format csv --seed 5 --out "$tmp/c.csv"
/usr/bin/python3 - "$tmp/c.csv" "$tmp/m.csv" <<'PY'
import sys   # three classes: label 2 where f1 > 1
rows = open(sys.argv[1]).read().splitlines()
out = [rows[0]]
for r in rows[1:]:
    v = r.split(",")
    if float(v[1]) > 1:
        v[0] = "2"
    out.append(",".join(v))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
mc=$(run lr 'local[2]' --train "$tmp/m.csv" --format csv --label label)
/usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["family"]=="multinomial" and r["classes"]==3 and r["accuracy"]>0.85 and "confusion" in r, r' "$mc" \
    || fail "multinomial: $mc"

"$ember" ml lr --help | grep -q -- "--elastic-net" || fail "--help"
"$ember" ml svm --help | grep -q -- "--solver" || fail "svm --help"
set +e
"$ember" ml lr --train "$tmp/c.svm" --reg-param -1 >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q -- "--reg-param" "$tmp/err" || fail "bad --reg-param: status $st"
"$ember" ml lr --train "$tmp/c.svm" --solver newton >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "bad --solver: status $st"
"$ember" ml lr --train "$tmp/c.svm" --save "$tmp/model" >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q "exists" "$tmp/err" || fail "existing --save: status $st"
printf '0 1:1\n3 1:2\n1 1:3\n' > "$tmp/badlab.svm"
"$ember" ml svm --train "$tmp/badlab.svm" --master 'local[2]' >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -q "label 3 is not 0 or 1" "$tmp/err" || fail "bad label: $st $(cat "$tmp/err")"
printf '0 1:1\n1 1:x\n' > "$tmp/bad.svm"
"$ember" ml lr --train "$tmp/bad.svm" --master 'local[2]' >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -q "bad.svm:2" "$tmp/err" || fail "bad line: status $st: $(cat "$tmp/err")"
set -e
check_clean "ml_lr"
finish

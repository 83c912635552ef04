#!/usr/bin/env bash
# bench/ml_nb.sh [BUILD_DIR] - multinomial naive Bayes on a 200,000 x 50,000 sparse count
# matrix (issue 12): `ember gen counts` writes ROWS + TEST_ROWS rows (20 classes, 100 tokens
# a row, generated once into BUILD_DIR/bench/); the first ROWS train, the rest test.
#   1. ember `ml nb` (lambda 1) in local[2] and local-cluster[2,1], RUNS runs each, under
#      measure.py (wall, CPU, others_cpu_s): the JSON line's train_s, predict_s, load_s,
#      total_s, accuracy, and the predicted labels of the test rows (--predictions);
#   2. scikit-learn MultinomialNB(alpha=1) with Spark's smoothed class prior
#      (bench/ml_nb_sklearn.py) on the same files: load, fit and predict seconds;
#   3. the goal: IDENTICAL predictions (every test row), compared line by line.
# Overrides: ROWS (200000), TEST_ROWS (20000), COLS (50000), CLASSES (20), TOKENS (100),
# RUNS (3).
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/ml_common.bash"
need_python_ml

rows=${ROWS:-200000}
test_rows=${TEST_ROWS:-20000}
cols=${COLS:-50000}
classes=${CLASSES:-20}
tokens=${TOKENS:-100}
runs=${RUNS:-3}
base=$mldata/counts-$rows-$test_rows-$cols-k$classes-z$tokens
if [ ! -f "$base.test" ]; then
    echo "== generating $((rows + test_rows)) x $cols counts ($classes classes) (once)"
    "$ember" gen counts --rows $((rows + test_rows)) --cols "$cols" --classes "$classes" \
        --nnz "$tokens" --seed 1 --out "$base.all"
    head -n "$rows" "$base.all" > "$base.train"
    tail -n "$test_rows" "$base.all" > "$base.test.tmp"
    rm -f "$base.all"
    mv "$base.test.tmp" "$base.test"
fi

results=$benchdir/ml_nb.results
: > "$results"
for master in 'local[2]' 'local-cluster[2,1]'; do
    for r in $(seq "$runs"); do
        label=ml_nb_$(echo "$master" | tr -dc 'a-z0-9')_$r
        pred=$benchdir/$label.pred
        rm -rf "$pred"
        run_measured "$label" "$ember" ml nb --train "$base.train" --test "$base.test" \
            --dim "$cols" --predictions "$pred" --master "$master" --json | tee -a "$benchdir/ml_nb.measure"
        cat "$pred"/part-* > "$benchdir/$label.pred.txt"
        rm -rf "$pred"
        echo "$master $label $(tail -n 1 "$benchdir/$label.run0.out")" >> "$results"
    done
done
echo "== scikit-learn MultinomialNB (same files)"
/usr/bin/python3 "$(dirname "$0")/ml_nb_sklearn.py" "$base.train" "$base.test" "$cols" "$runs" \
    "$benchdir/ml_nb.sklearn.pred.txt" > "$benchdir/ml_nb.sklearn"
cat "$benchdir/ml_nb.sklearn"
/usr/bin/python3 - "$results" "$benchdir/ml_nb.sklearn" "$benchdir" "$benchdir/ml_nb.measure" <<'PY'
import json, statistics, sys
res = {}
for line in open(sys.argv[1]):
    master, label, js = line.split(" ", 2)
    res.setdefault(master, []).append((label, json.loads(js)))
sk = json.loads(open(sys.argv[2]).read())
skp = open(f"{sys.argv[3]}/ml_nb.sklearn.pred.txt").read().split()
meas = [json.loads(l) for l in open(sys.argv[4])]
print(f"scikit-learn: load {sk['load_s']:.2f} s, fit {sk['fit_s']:.3f} s, predict "
      f"{sk['predict_s']:.3f} s, accuracy {sk['accuracy']:.6f} ({sk['threads']} threads)")
for master, rs in res.items():
    same = all(open(f"{sys.argv[3]}/{label}.pred.txt").read().split() == skp for label, _ in rs)
    med = lambda k: statistics.median(r[k] for _, r in rs)
    print(f"ember {master}: train {med('train_s'):.3f} s ({med('train_s') / sk['fit_s']:.2f}x "
          f"scikit-learn's fit), predict+evaluate {med('predict_s'):.3f} s, load "
          f"{med('load_s'):.2f} s, total {med('total_s'):.2f} s, accuracy "
          f"{rs[0][1]['accuracy']:.6f}; predictions identical to scikit-learn: "
          f"{'yes' if same else 'NO (goal MISSED)'}")
print("others_cpu_s per run: " + ", ".join(f"{m.get('label')}={m.get('others_cpu_s', 0):.1f}"
                                           for m in meas))
PY

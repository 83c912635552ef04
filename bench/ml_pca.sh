#!/usr/bin/env bash
# bench/ml_pca.sh [BUILD_DIR] - PCA, k = 10, of 1,000,000 x 100 generated dense rows
# (bench/ml_gen.c: a decaying spectrum with correlations, far from the origin), side by
# side in one sitting, BENCH_REPS (3) interleaved rounds, medians reported:
#   ember ml pca from the CSV in local[2] and local-cluster[2,1] (its total including
#   parsing, and the compute part), numpy's LAPACK SVD of the centred matrix and
#   scikit-learn's PCA(svd_solver="full") on the same numbers (raw doubles).
# Goals (issue 13): explained variance ratios equal to 1e-8, ember at most 1x numpy's SVD,
# the cluster run at most 1.2x the local one. PCA_ROWS, PCA_COLS, PCA_K change the size.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for both sides (bench/compute.sh says why).
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$root/bench/ml_common.bash"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

rows=${PCA_ROWS:-1000000}
cols=${PCA_COLS:-100}
k=${PCA_K:-10}
need_python_ml
base=$mldata/pca-${rows}x${cols}
if [ ! -f "$base.done" ]; then
    echo "== generating $rows x $cols dense rows into $base.{csv,bin}"
    "$mlgen" dense "$rows" "$cols" 1 "$base.csv" "$base.bin"
    touch "$base.done"
fi

echo "== PCA k=$k of $rows x $cols dense: $reps interleaved rounds"
for rep in $(seq "$reps"); do
    for m in local cluster; do
        master='local[2]'
        [ $m = cluster ] && master='local-cluster[2,1]'
        run_measured "pca-$m-$rep" "$ember" ml pca --train "$base.csv" --k "$k" \
            --master "$master" --json
    done
    run_measured "pca-ref-$rep" /usr/bin/python3 "$root/bench/ml_pca_ref.py" "$base.bin" \
        "$rows" "$cols" "$k"
done

/usr/bin/python3 - "$benchdir" "$reps" <<'PY'
import json, statistics, sys
d, reps = sys.argv[1], int(sys.argv[2])
def last(label):
    return json.loads(open(f"{d}/{label}.run0.out").read().strip().splitlines()[-1])
runs = {m: [last(f"pca-{m}-{r}") for r in range(1, reps + 1)] for m in ("local", "cluster")}
refs = [last(f"pca-ref-{r}") for r in range(1, reps + 1)]
med = lambda xs: statistics.median(xs)
np_s, sk_s = med([r["numpy_s"] for r in refs]), med([r["sklearn_s"] for r in refs])
ref_ratio = refs[0]["sklearn_ratio"]
print(f"{'':26s} {'total s':>8s} {'compute s':>9s} {'load s':>7s} {'total/numpy':>11s} "
      f"{'compute/numpy':>13s} {'max rel diff vs sklearn':>24s}")
for m, name in (("local", "ember local[2]"), ("cluster", "ember local-cluster[2,1]")):
    rs = runs[m]
    t, c, l = (med([r[f] for r in rs]) for f in ("total_s", "compute_s", "load_s"))
    diff = max(abs(a - b) / abs(b) for r in rs for a, b in zip(r["explained_variance"], ref_ratio))
    print(f"{name:26s} {t:8.3f} {c:9.3f} {l:7.3f} {t / np_s:10.2f}x {c / np_s:12.2f}x {diff:24.2e}")
diff_np = max(abs(a - b) / abs(b) for a, b in zip(refs[0]["numpy_ratio"], ref_ratio))
print(f"{'numpy svd (centred)':26s} {np_s:8.3f} {'':9s} {med([r['load_s'] for r in refs]):7.3f} "
      f"{1:10.2f}x {'':13s} {diff_np:24.2e}")
print(f"{'sklearn PCA full':26s} {sk_s:8.3f} {'':9s} {'':7s} {sk_s / np_s:10.2f}x")
lt, ct = med([r["total_s"] for r in runs["local"]]), med([r["total_s"] for r in runs["cluster"]])
print(f"cluster/local total: {ct / lt:.2f}x; BLAS threads of the reference: {refs[0]['blas_threads']}")
print("explained variance ratio (ember local[2]):",
      " ".join(f"{x:.10f}" for x in runs["local"][0]["explained_variance"]))
PY

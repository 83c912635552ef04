#!/usr/bin/env bash
# bench/ml_svd.sh [BUILD_DIR] - SVD, k = 20, of a generated sparse 1,000,000 x 100,000
# matrix with about 50 non-zeros a row (bench/ml_gen.c: topics under sparse noise) through
# the Lanczos path, side by side in one sitting, BENCH_REPS (3) interleaved rounds, medians
# reported: ember ml svd from the LIBSVM file in local[2] and local-cluster[2,1] (its total
# including parsing, and the compute part) and scipy.sparse.linalg.svds (ARPACK) on the
# same CSR matrix (raw arrays).
# Goals (issue 13): singular values equal to 1e-6 relative, ember at most 1x scipy, the
# cluster run at most 1.2x the local one. SVD_ROWS, SVD_COLS, SVD_NNZ, SVD_K change it.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$root/bench/ml_common.bash"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

rows=${SVD_ROWS:-1000000}
cols=${SVD_COLS:-100000}
nnz=${SVD_NNZ:-50}
k=${SVD_K:-20}
need_python_ml
base=$mldata/svd-${rows}x${cols}x${nnz}
if [ ! -f "$base.done" ]; then
    echo "== generating $rows x $cols sparse rows into $base.{libsvm,*.bin}"
    "$mlgen" sparse "$rows" "$cols" "$nnz" 1 "$base.libsvm" "$base"
    touch "$base.done"
fi

echo "== SVD k=$k of $rows x $cols sparse (~$nnz non-zeros a row): $reps interleaved rounds"
for rep in $(seq "$reps"); do
    for m in local cluster; do
        master='local[2]'
        [ $m = cluster ] && master='local-cluster[2,1]'
        # measure.py's line (user + sys CPU of the command and its executors) kept for the
        # CPU medians below: on a loaded machine they say more than wall times.
        run_measured "svd-$m-$rep" "$ember" ml svd --train "$base.libsvm" --format libsvm \
            --dim "$cols" --k "$k" --mode lanczos --master "$master" --json |
            tee "$benchdir/svd-$m-$rep.measure"
    done
    run_measured "svd-ref-$rep" /usr/bin/python3 "$root/bench/ml_svd_ref.py" "$base" \
        "$rows" "$cols" "$k"
done

/usr/bin/python3 - "$benchdir" "$reps" <<'PY'
import json, statistics, sys
d, reps = sys.argv[1], int(sys.argv[2])
def last(label):
    return json.loads(open(f"{d}/{label}.run0.out").read().strip().splitlines()[-1])
runs = {m: [last(f"svd-{m}-{r}") for r in range(1, reps + 1)] for m in ("local", "cluster")}
refs = [last(f"svd-ref-{r}") for r in range(1, reps + 1)]
med = lambda xs: statistics.median(xs)
sp_s = med([r["svds_s"] for r in refs])
ref = refs[0]["singular_values"]
print(f"{'':26s} {'total s':>8s} {'compute s':>9s} {'load s':>7s} {'products':>8s} "
      f"{'total/scipy':>11s} {'compute/scipy':>13s} {'max rel diff':>12s}")
for m, name in (("local", "ember local[2]"), ("cluster", "ember local-cluster[2,1]")):
    rs = runs[m]
    t, c, l = (med([r[f] for r in rs]) for f in ("total_s", "compute_s", "load_s"))
    diff = max(abs(a - b) / b for r in rs for a, b in zip(r["singular_values"], ref))
    print(f"{name:26s} {t:8.3f} {c:9.3f} {l:7.3f} {rs[0]['products']:8d} {t / sp_s:10.2f}x "
          f"{c / sp_s:12.2f}x {diff:12.2e}")
print(f"{'scipy svds (arpack)':26s} {sp_s:8.3f} {'':9s} {med([r['load_s'] for r in refs]):7.3f} "
      f"{refs[0]['matvecs']:8d} {1:10.2f}x")
lt, ct = med([r["total_s"] for r in runs["local"]]), med([r["total_s"] for r in runs["cluster"]])
cpu = {m: med([json.loads(open(f"{d}/svd-{m}-{r}.measure").read())["cpu_s"]
               for r in range(1, reps + 1)]) for m in ("local", "cluster")}
print(f"cluster/local total: {ct / lt:.2f}x; CPU s (user + sys, median) local "
      f"{cpu['local']:.2f}, cluster {cpu['cluster']:.2f}: {cpu['cluster'] / cpu['local']:.2f}x; "
      f"nnz {refs[0]['nnz']}")
print("singular values (ember local[2]):",
      " ".join(f"{x:.10g}" for x in runs["local"][0]["singular_values"]))
PY

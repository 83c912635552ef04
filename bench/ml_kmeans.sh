#!/usr/bin/env bash
# bench/ml_kmeans.sh [BUILD_DIR] - k-means, k = 20, on 1,000,000 x 50 generated blobs
# (`ember gen blobs`, generated once into BUILD_DIR/bench/), issue 13's benchmark:
#   1. the shared initial centres: 20 rows drawn by `ember ml kmeans --init random
#      --max-iter 1 --write-init` (random rows make Lloyd run several iterations);
#   2. ember from those centres (--init-file, --tol 0, exactly ITERS = 10 Lloyd iterations:
#      from random rows Lloyd crawls for hundreds of iterations between two blobs, so both
#      sides stop at the same fixed count), 3 runs each in local[2] and
#      local-cluster[2,1]: seconds per Lloyd iteration (train_s / iterations of the JSON
#      line) and the final cost (inertia of the final centres, summed exactly);
#   3. scikit-learn KMeans(algorithm="lloyd", n_init=1, tol=0, max_iter=ITERS) from the
#      same centres (bench/ml_kmeans_sklearn.py; python3-sklearn is installed when missing
#      and running as root): inertia of its final centres and seconds per iteration.
# Prints medians of 3 and the goals: inertia equal to 1e-6 relative, ember's time per
# iteration <= 0.7x scikit-learn's, local-cluster <= 1.2x local.
# Overrides: ROWS (1000000), DIM (50), K (20), RUNS (3), ITERS (10).
set -euo pipefail
source "$(dirname "$0")/common.bash"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

rows=${ROWS:-1000000}
dim=${DIM:-50}
k=${K:-20}
runs=${RUNS:-3}
iters=${ITERS:-10}
data=$benchdir/blobs-$rows-$dim-k$k.csv
init=$benchdir/blobs-$rows-$dim-k$k.init.csv

if ! /usr/bin/python3 -c 'import sklearn, threadpoolctl' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-sklearn >/dev/null
    else
        echo "bench: python3-sklearn is missing; run: sudo apt-get install -y python3-sklearn" >&2
        exit 1
    fi
fi
if [ ! -f "$data" ]; then
    echo "== generating $rows x $dim blobs (k = $k) into $data (once)"
    "$ember" gen blobs --rows "$rows" --dim "$dim" --k "$k" --seed 1 --out "$data"
fi
"$ember" ml kmeans --train "$data" --k "$k" --init random --seed 7 --max-iter 1 \
    --write-init "$init.tmp" --master 'local[2]' >/dev/null
mv "$init.tmp" "$init"

results=$benchdir/ml_kmeans.results
: > "$results"
for master in 'local[2]' 'local-cluster[2,1]'; do
    for r in $(seq "$runs"); do
        label=ml_kmeans_$(echo "$master" | tr -dc 'a-z0-9')_$r
        run_measured "$label" "$ember" ml kmeans --train "$data" --k "$k" --init-file "$init" \
            --tol 0 --max-iter "$iters" --master "$master" --json >/dev/null
        echo "$master $(tail -n 1 "$benchdir/$label.run0.out")" >> "$results"
    done
done
echo "== scikit-learn (same data, same initial centres)"
/usr/bin/python3 "$(dirname "$0")/ml_kmeans_sklearn.py" "$data" "$init" "$runs" "$iters" > "$benchdir/ml_kmeans.sklearn"
cat "$benchdir/ml_kmeans.sklearn"
/usr/bin/python3 - "$results" "$benchdir/ml_kmeans.sklearn" <<'PY'
import json, statistics, sys
res = {}
for line in open(sys.argv[1]):
    master, js = line.split(" ", 1)
    res.setdefault(master, []).append(json.loads(js))
sk = json.loads(open(sys.argv[2]).read())
print(f"scikit-learn: inertia {sk['inertia']:.10g}, {sk['n_iter']} iterations, "
      f"{sk['iter_s'] * 1e3:.1f} ms per iteration ({sk['threads']} threads; fit "
      f"{sk['fit_s']:.2f} s)")
per = {}
for master, rs in res.items():
    it = statistics.median(r["iteration_s"] for r in rs)
    per[master] = it
    cost = rs[0]["cost"]
    rel = abs(cost - sk["inertia"]) / sk["inertia"]
    print(f"ember {master}: inertia {cost:.10g} (rel. diff {rel:.1e}, goal 1e-6: "
          f"{'ok' if rel <= 1e-6 else 'MISSED'}), {rs[0]['iterations']} iterations, "
          f"{it * 1e3:.1f} ms per iteration = {it / sk['iter_s']:.2f}x scikit-learn "
          f"(goal 0.7x: {'ok' if it <= 0.7 * sk['iter_s'] else 'MISSED'}); "
          f"load {statistics.median(r['load_s'] for r in rs):.2f} s")
if len(per) == 2:
    ratio = per['local-cluster[2,1]'] / per['local[2]']
    print(f"local-cluster[2,1] / local[2] per iteration: {ratio:.2f}x (goal 1.2x: "
          f"{'ok' if ratio <= 1.2 else 'MISSED'})")
PY

#!/usr/bin/env bash
# bench/gradient.sh [BUILD_DIR] - logistic-loss gradient passes over 1,000,000 x 100 cached
# dense rows (examples/gradbench.c): aggregate_acc (per batch, BLAS dgemv) against the old
# per-record aggregate, 10 iterations each, in local[2] and local-cluster[2,1]; an 8 MiB
# accumulator against an 8 MiB zero; and numpy's X.T @ (sigmoid(X @ w) - y) on data of the
# same shape in the same sitting. Per-iteration medians come from the program's own timers.
set -euo pipefail
source "$(dirname "$0")/common.bash"

n=${NROWS:-1000000}   # NROWS / ITERS override for a quick try
iters=${ITERS:-10}
export EMBER_EXECUTOR_MEMORY=${EMBER_EXECUTOR_MEMORY:-4g}   # the 808 MB of rows stay cached
for master in 'local[2]' 'local-cluster[2,1]'; do
    label=gradbench-${master//[^a-z0-9]/}
    run_measured "$label" "$ember" run-example --quiet --master "$master" gradbench "$n" 100 \
        "$iters" 8 both
    grep -E "median|max" "$benchdir/$label.run0.out" | sed "s/^/$master: /"
    label=$label-8mib
    run_measured "$label" "$ember" run-example --quiet --master "$master" gradbench 8 100 \
        "$iters" 8 big
    grep median "$benchdir/$label.run0.out" | sed "s/^/$master: /"
done
/usr/bin/python3 - "$n" "$iters" <<'PY' || echo "bench: numpy is not available; skipped"
import sys, time
import numpy as np
n, iters = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(7)
X = rng.random((n, 100)) - 0.5
y = (X @ (np.arange(100) % 5 - 2.0) > 0).astype(float)
times = []
for it in range(iters):
    w = 0.01 * (it + 1) * (np.arange(100) % 7 - 3.0)
    t0 = time.perf_counter()
    p = 1.0 / (1.0 + np.exp(-(X @ w)))
    g = X.T @ (p - y)
    times.append(time.perf_counter() - t0)
times.sort()
print(f"numpy X.T @ (sigmoid(X @ w) - y): median {1e3 * times[iters // 2]:.1f} ms per iteration over {iters}")
PY

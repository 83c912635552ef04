#!/usr/bin/env bash
# bench/compute.sh [BUILD_DIR] - the compute layer's benchmarks (issue 9), side by side in
# one sitting:
#   1. gradient: 10 logistic-loss gradient passes over 1,000,000 x 100 cached dense rows
#      (examples/gradient.c) in local[2] and local-cluster[2,1], beside numpy's
#      X.T @ (sigmoid(X @ w) - y) on the same rows (bench/gradient_numpy.py); plus the
#      engine's per-job overhead at 8 partitions and 2 passes of the old per-record path.
#   2. broadcast: 8 MiB and 256 MiB to 2 executors, and an 8 MB context blob on a 32-task
#      stage (examples/bcast.c bench / blob).
#   3. latency: bench/latency.sh (a 12-task join + group by + order by).
#   4. wordcount of 256 MiB in local[2] beside collections.Counter (bench/wordcount.sh).
# GRAD_ROWS, GRAD_COLS, GRAD_ITERS change part 1's size; BENCH_PARTS=1,2 runs only those.
#
# OpenBLAS: this machine's environment may set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (older
# OpenBLAS builds misdetect some CPUs). They force slower kernels, so both sides of the
# comparison run without them (unset together, for these commands only).
set -euo pipefail
source "$(dirname "$0")/common.bash"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

rows=${GRAD_ROWS:-1000000}
cols=${GRAD_COLS:-100}
iters=${GRAD_ITERS:-10}
parts=${BENCH_PARTS:-1,2,3,4}

# The last line of a run's stdout, and a field of it.
last_json() { tail -n 1 "$benchdir/$1.run0.out"; }
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }

need_numpy() {
    /usr/bin/python3 -c 'import numpy' 2>/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3-numpy python3-threadpoolctl >/dev/null
    else
        echo "bench: numpy is missing; run: sudo apt-get install -y python3-numpy" >&2
        return 1
    fi
}

if [[ ,$parts, == *,1,* ]]; then
    echo "== 1. gradient pass: $rows x $cols, $iters iterations"
    # 4g per executor (and for local mode's block store): the 808 MB of rows stay cached.
    gargs=(gradient --rows "$rows" --cols "$cols" --iterations "$iters" --parts 8 --old-path 2)
    run_measured grad-local2 "$ember" run-example --quiet --master 'local[2]' \
        --executor-memory 4g "${gargs[@]}"
    l2=$(last_json grad-local2)
    run_measured grad-lc "$ember" run-example --quiet --master 'local-cluster[2,1]' \
        --executor-memory 4g "${gargs[@]}"
    lc=$(last_json grad-lc)
    np=null
    if need_numpy; then
        run_measured grad-numpy /usr/bin/python3 "$root/bench/gradient_numpy.py" "$rows" "$cols" "$iters"
        np=$(last_json grad-numpy)
    fi
    /usr/bin/python3 - "$l2" "$lc" "$np" <<'PY'
import json, sys
l2, lc = json.loads(sys.argv[1]), json.loads(sys.argv[2])
np = json.loads(sys.argv[3]) if sys.argv[3] != "null" else None
print(f"{'':24s} {'s/iteration':>12s} {'vs numpy':>9s} {'loss0':>10s} {'loss_last':>10s}")
for name, r in (("ember local[2]", l2), ("ember local-cluster[2,1]", lc)):
    ratio = f"{r['iter_s'] / np['iter_s']:.2f}x" if np else "-"
    print(f"{name:24s} {r['iter_s']:12.4f} {ratio:>9s} {r['loss0']:10.6f} {r['loss_last']:10.6f}")
    print(f"{'  old per-record path':24s} {r['old_iter_s'] or 0:12.4f}   job overhead "
          f"{r['overhead_ms']:.2f} ms at {r['parts']} partitions")
if np:
    print(f"{'numpy (' + str(np['threads']) + ' BLAS threads)':24s} {np['iter_s']:12.4f} "
          f"{'1.00x':>9s} {np['loss0']:10.6f} {np['loss_last']:10.6f}")
PY
fi

if [[ ,$parts, == *,2,* ]]; then
    echo "== 2. broadcast to 2 executors (local-cluster[2,1])"
    for mib in 8 256; do
        run_measured "bcast-$mib" "$ember" run-example --quiet --master 'local-cluster[2,1]' \
            bcast bench "$mib" 5
        grep 'medians of' "$benchdir/bcast-$mib.run0.out"
    done
    for master in 'local[2]' 'local-cluster[2,1]'; do
        label=blob-$(echo "$master" | tr -c 'a-z0-9\n' '_')
        run_measured "$label" "$ember" run-example --quiet --master "$master" bcast blob 8 5
        echo "$master: $(grep 'bcast blob' "$benchdir/$label.run0.out")"
    done
fi

if [[ ,$parts, == *,3,* ]]; then
    echo "== 3. latency"
    if [ -f "$root/bench/latency.sh" ]; then bash "$root/bench/latency.sh" "$build"; fi
fi

if [[ ,$parts, == *,4,* ]]; then
    echo "== 4. wordcount, 256 MiB"
    BENCH_MIB=256 bash "$root/bench/wordcount.sh" "$build"
fi

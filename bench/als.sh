#!/usr/bin/env bash
# bench/als.sh [BUILD_DIR] - the Netflix-shaped ALS benchmark (issue 5): `ember gen ratings
# --scale 1 --seed 1` (100M ratings; generated once into BUILD_DIR/bench/ and reused), then
# `ember als` rank 10, 10 iterations, lambda 0.02, end to end (parse, blocking, training,
# test RMSE) under measure.py: wall, peak RSS, test RMSE beside the data's noise floor, and
# seconds per iteration; then rank 50 (3 iterations) for its seconds per iteration.
# Goal at scale 1: <= 45 s wall, <= 6 GiB peak over all processes, test RMSE <= 0.745.
# Overrides for a quick try: SCALE (default 1), MASTER (default local-cluster[2,1]),
# RANK50_ITERS (default 3; 0 skips the rank-50 run).
set -euo pipefail
source "$(dirname "$0")/common.bash"

scale=${SCALE:-1}
master=${MASTER:-local-cluster[2,1]}
iters50=${RANK50_ITERS:-3}
data=$benchdir/ratings-s$scale-seed1

if [ ! -f "$data.meta.json" ] || [ ! -f "$data.train.tsv" ] || [ ! -f "$data.test.tsv" ]; then
    echo "== generating scale $scale ratings into $data.* (once)"
    "$ember" gen ratings --scale "$scale" --seed 1 --out "$data"
fi

# The summed RSS of this script's process tree (measure.py, time, the driver and, with
# local-cluster, its executor processes), sampled every 0.2 s: measure.py reports the
# largest single process and the JSON's peak_rss_mib adds only the largest child.
tree_rss_start() {
    local out=$1
    (
        peak=0
        tree() { echo "$1"; local c; for c in $(pgrep -P "$1"); do tree "$c"; done; }
        while :; do
            s=0
            for p in $(tree $$); do
                r=$(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || true)
                s=$((s + ${r:-0}))
            done
            [ "$s" -gt "$peak" ] && peak=$s && echo "$peak" > "$out"
            sleep 0.2
        done
    ) &
    sampler=$!
}
tree_rss_stop() { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }

# summary LABEL RANK: reads the run's JSON (last stdout line) and progress lines.
summary() {
    /usr/bin/python3 - "$1" "$2" "$wall" "$rss_kb" "$data.meta.json" \
        "$benchdir/$1.run0.out" "$benchdir/$1.run0.err" "$(cat "$benchdir/$1.treerss" 2>/dev/null || echo 0)" <<'PY'
import json, re, sys
label, rank, wall, rss_kb, meta_p, out_p, err_p, tree_kb = sys.argv[1:]
meta = json.load(open(meta_p))
lines = [l for l in open(out_p).read().splitlines() if l.startswith('{')]
res = json.loads(lines[-1]) if lines else {}
prog = [(int(m.group(1)), float(m.group(2)))
        for m in re.finditer(r'iteration (\d+) done, ([0-9.]+) s',
                             open(out_p).read() + open(err_p).read())]
per_it = (prog[-1][1] - prog[0][1]) / (prog[-1][0] - prog[0][0]) if len(prog) > 1 else \
    (prog[0][1] if prog else float('nan'))
print(f"{label}: rank {rank}, {meta['n_train']:,} training ratings "
      f"({meta['n_users']:,} users x {meta['n_items']:,} items)")
print(f"  wall {float(wall):.1f} s end to end (load {res.get('load_s', float('nan')):.1f} s, "
      f"train {res.get('train_s', float('nan')):.1f} s, eval {res.get('eval_s', float('nan')):.1f} s)"
      f"; {per_it:.3f} s per iteration")
print(f"  peak RSS {int(tree_kb) / 1024:.0f} MiB summed over the process tree (sampled; "
      f"largest single process {int(rss_kb) / 1024:.0f} MiB)")
print(f"  test RMSE {res.get('test_rmse', float('nan')):.4f}  (noise floor "
      f"{meta['noise_floor_rmse']:.4f}, global mean {meta['global_mean_rmse']:.4f}; "
      f"goal <= 0.745)  train RMSE {res.get('train_rmse', float('nan')):.4f}")
PY
}

tree_rss_start "$benchdir/als_rank10.treerss"
run_measured als_rank10 "$ember" als --train "$data.train.tsv" --test "$data.test.tsv" \
    --rank 10 --iterations 10 --lambda 0.02 --master "$master" --json || { tree_rss_stop; exit 1; }
tree_rss_stop
summary als_rank10 10

if [ "$iters50" -gt 0 ]; then
    tree_rss_start "$benchdir/als_rank50.treerss"
    run_measured als_rank50 "$ember" als --train "$data.train.tsv" --test "$data.test.tsv" \
        --rank 50 --iterations "$iters50" --lambda 0.02 --master "$master" --json ||
        { tree_rss_stop; exit 1; }
    tree_rss_stop
    summary als_rank50 50
fi

#!/usr/bin/env bash
# bench/ml_mlp.sh [BUILD_DIR] - issue 15's benchmarks, side by side in one run:
#   1. MLP 784-256-128-10 (ReLU, Adam lr 1e-3, batch 128, EPOCHS = 10 epochs, standardized
#      features) on a generated 60,000 x 784 ten-class problem (`ember gen blobs --k 10
#      --std 50`: 70,000 rows, the first 60,000 train, the last 10,000 test), generated once
#      into BUILD_DIR/bench/: ember (`ember ml mlp --threads 2`, float32 SGEMM) against
#      PyTorch (CPU, torch.set_num_threads(2)) and scikit-learn's MLPClassifier (BLAS
#      limited to 2 threads; SKLEARN=0 skips it): seconds per epoch and test accuracy.
#      The same ember run then prunes to 90% sparsity (3 retraining epochs) and quantizes
#      to int8: accuracy before/after and the model's bytes on disk (float vs compressed).
#   2. A 16-trial grid search (hidden 64,128 x lr 0.01,0.001 x batch 64,128 x act relu,tanh,
#      TEPOCHS = 3 epochs) on the first TROWS = 12,000 training rows (20% validate) in
#      local-cluster[2,1] against the same search in local[1] (the trials one after another
#      in one process): the speed-up; and the speed-up two independent single-threaded
#      copies of one trial reach when run at once (2 x alone / together), the machine's
#      ceiling. Goal: search speed-up >= 0.9 x that ceiling. Then the search's own
#      overhead, side by side: a one-trial search (that trial) in local[1] and in
#      local-cluster[2,1], its time beyond the trial's own seconds.
#   ROWS = N trains part 1 on the first N of the 60,000 training rows (default all) and
#   TESTROWS = M tests on the first M of the 10,000 test rows: a short, comparable run of
#   the three libraries (`ROWS=10000 TESTROWS=2000 EPOCHS=2 PARTS=1`: about 2 minutes).
# Goals (issue 15): accuracy within 1 point of PyTorch, time per epoch <= 1x PyTorch's.
# Every command runs under measure.py, whose others_cpu_s says how busy the machine was.
# PARTS=1 or PARTS=2 runs only that part (default: both).
set -euo pipefail
source "$(dirname "$0")/common.bash"

epochs=${EPOCHS:-10}
tepochs=${TEPOCHS:-3}
trows=${TROWS:-12000}
sk=${SKLEARN:-1}
rows=${ROWS:-60000}
trows_test=${TESTROWS:-10000}
parts=${PARTS:-12}
all=$benchdir/blobs70k.csv
train=$benchdir/mlp_train.csv
test=$benchdir/mlp_test.csv
small=$benchdir/mlp_train_$trows.csv

if ! /usr/bin/python3 -c 'import torch, sklearn, pandas, threadpoolctl' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-torch python3-sklearn \
            python3-pandas >/dev/null
    else
        echo "bench: needs python3-torch python3-sklearn python3-pandas (apt-get install)" >&2
        exit 1
    fi
fi
if [ ! -f "$train" ] || [ ! -f "$test" ]; then
    echo "== generating 70,000 x 784 blobs (k = 10, std 50) into $benchdir (once)"
    [ -f "$all" ] || "$ember" gen blobs --rows 70000 --dim 784 --k 10 --std 50 --labels \
        --seed 1 --out "$all" >/dev/null
    (head -n 1 "$all"; sed -n 2,60001p "$all") > "$train.tmp" && mv "$train.tmp" "$train"
    (head -n 1 "$all"; sed -n 60002,70001p "$all") > "$test.tmp" && mv "$test.tmp" "$test"
fi
[ -f "$small" ] || { head -n $((trows + 1)) "$train" > "$small.tmp" && mv "$small.tmp" "$small"; }
# part 1's files: the full sets, or their first ROWS / TESTROWS rows
p1train=$train p1test=$test
if [ "$rows" != 60000 ] || [ "$trows_test" != 10000 ]; then
    p1train=$benchdir/mlp_train_r$rows.csv p1test=$benchdir/mlp_test_r$trows_test.csv
    [ -f "$p1train" ] || { head -n $((rows + 1)) "$train" > "$p1train.tmp" && mv "$p1train.tmp" "$p1train"; }
    [ -f "$p1test" ] || { head -n $((trows_test + 1)) "$test" > "$p1test.tmp" && mv "$p1test.tmp" "$p1test"; }
fi

meas=$benchdir/ml_mlp.measure
: > "$meas"
ljson() { tail -n 1 "$benchdir/$1.run0.out"; }
jget() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }

ej='{}' tj='{}' sj='{}' qj='{}' cj='{}' aj='{}' paj='{}' pbj='{}' o1j='{}' o2j='{}'
if [[ $parts == *1* ]]; then
echo "== 1. MLP 784-256-128-10, $epochs epochs, batch 128, Adam, $rows training rows"
run_measured ml_mlp_ember "$ember" ml mlp --train "$p1train" --test "$p1test" --format csv \
    --label label --hidden 256,128 --epochs "$epochs" --batch 128 --lr 0.001 --standardize \
    --threads 2 --master 'local[2]' --prune 0.9 --quantize --json | tee -a "$meas"
ej=$(ljson ml_mlp_ember)
run_measured ml_mlp_torch /usr/bin/python3 "$root/bench/ml_mlp_ref.py" "$p1train" "$p1test" \
    256,128 "$epochs" 128 0.001 2 torch | tee -a "$meas"
tj=$(ljson ml_mlp_torch)
if [ "$sk" = 1 ]; then
    run_measured ml_mlp_sklearn /usr/bin/python3 "$root/bench/ml_mlp_ref.py" "$p1train" "$p1test" \
        256,128 "$epochs" 128 0.001 2 sklearn | tee -a "$meas"
    sj=$(ljson ml_mlp_sklearn)
fi
fi

if [[ $parts == *2* ]]; then
echo "== 2. 16-trial grid search on $trows rows, $tepochs epochs a trial"
space="hidden=64,128;lr=0.01,0.001;batch=64,128;act=relu,tanh"
targs=(--train "$small" --format csv --label label --standardize --space "$space"
       --epochs "$tepochs" --json)
run_measured ml_tune_seq "$ember" ml tune "${targs[@]}" --master 'local[1]' | tee -a "$meas"
qj=$(ljson ml_tune_seq)
run_measured ml_tune_cluster "$ember" ml tune "${targs[@]}" --master 'local-cluster[2,1]' | tee -a "$meas"
cj=$(ljson ml_tune_cluster)
one=(ml mlp --train "$small" --format csv --label label --standardize --hidden 128
     --lr 0.001 --batch 64 --epochs "$tepochs" --threads 1 --master 'local[1]' --json)
run_measured ml_trial_alone "$ember" "${one[@]}" | tee -a "$meas"
aj=$(ljson ml_trial_alone)
# two copies at once, each under its own measure.py
( run_measured ml_trial_pair_a "$ember" "${one[@]}" | tee -a "$meas" >/dev/null ) &
pa=$!
run_measured ml_trial_pair_b "$ember" "${one[@]}" | tee -a "$meas" >/dev/null
wait $pa
paj=$(ljson ml_trial_pair_a)
pbj=$(ljson ml_trial_pair_b)
# the search's own overhead: a one-trial search (the trial above) in both modes; its time
# beyond the trial's own seconds is the data's way to an executor plus one job's round trip
oargs=(--train "$small" --format csv --label label --standardize --epochs "$tepochs" --json
       --space "hidden=128;lr=0.001;batch=64;act=relu")
run_measured ml_tune_one_seq "$ember" ml tune "${oargs[@]}" --master 'local[1]' | tee -a "$meas"
o1j=$(ljson ml_tune_one_seq)
run_measured ml_tune_one_cluster "$ember" ml tune "${oargs[@]}" --master 'local-cluster[2,1]' \
    | tee -a "$meas"
o2j=$(ljson ml_tune_one_cluster)
fi

/usr/bin/python3 - "$ej" "$tj" "$sj" "$qj" "$cj" "$aj" "$paj" "$pbj" "$o1j" "$o2j" "$meas" <<'PY'
import json, sys
e, t, s, q, c, a, pa, pb, o1, o2 = (json.loads(x) for x in sys.argv[1:11])
meas = {}
for line in open(sys.argv[11]):
    try:
        j = json.loads(line)
        meas[j.get("label")] = j
    except ValueError:
        pass
def others(label):
    return meas.get(label, {}).get("others_cpu_s")
def cpu(label):
    return meas.get(label, {}).get("cpu_s")
if e and t:
    acc_e = e["metric_before_compression"]
    print(f"ember   : {e['epoch_s']:.3f} s/epoch, test accuracy {acc_e:.4f} "
          f"(process cpu_s {cpu('ml_mlp_ember')}, others_cpu_s {others('ml_mlp_ember')})")
    print(f"pytorch : {t['epoch_s']:.3f} s/epoch, test accuracy {t['accuracy']:.4f} "
          f"(torch {t['version']}, process cpu_s {cpu('ml_mlp_torch')}, "
          f"others_cpu_s {others('ml_mlp_torch')})")
    if s:
        print(f"sklearn : {s['epoch_s']:.3f} s/epoch, test accuracy {s['accuracy']:.4f} "
              f"(process cpu_s {cpu('ml_mlp_sklearn')}, others_cpu_s {others('ml_mlp_sklearn')})")
    if s:
        print(f"ember vs sklearn: accuracy {(acc_e - s['accuracy']) * 100:+.2f} points, "
              f"time per epoch {e['epoch_s'] / s['epoch_s']:.2f}x; PyTorch vs sklearn: "
              f"{t['epoch_s'] / s['epoch_s']:.2f}x")
    d_acc = (acc_e - t["accuracy"]) * 100
    ratio = e["epoch_s"] / t["epoch_s"]
    print(f"goal 1: accuracy within 1 point of PyTorch: {d_acc:+.2f} points -> "
          f"{'met' if d_acc >= -1 else 'NOT met'}")
    print(f"goal 2: time per epoch <= 1x PyTorch: {ratio:.2f}x -> "
          f"{'met' if ratio <= 1 else 'NOT met'}")
    print(f"compression: 90% pruned + int8: accuracy {acc_e:.4f} -> "
          f"{e['metric_after_compression']:.4f}, {e['model_bytes_float']} -> {e['model_bytes']} "
          f"bytes on disk ({e['model_bytes_float'] / e['model_bytes']:.1f}x smaller)")
if q and c and a:
    seq, clu = q["search_s"], c["search_s"]
    sp = seq / clu
    alone = a["train_s"]
    pair = max(pa["train_s"], pb["train_s"])
    ceil = 2 * alone / pair
    print(f"search: {q['ntrials']} trials, local[1] {seq:.2f} s, local-cluster[2,1] {clu:.2f} s: "
          f"speed-up {sp:.2f}x (process cpu_s {cpu('ml_tune_seq')}, {cpu('ml_tune_cluster')}; "
          f"others_cpu_s {others('ml_tune_seq')}, {others('ml_tune_cluster')})")
    # where the cluster's executors waited: search time minus their trials' own seconds
    # (the data's transfer, the gaps between trials, the end of the round)
    busy = {}
    for tr in c["trials"]:
        busy[tr["executor"]] = busy.get(tr["executor"], 0.0) + tr["seconds"]
    idle = ", ".join(f"{clu - b:.2f}" for b in busy.values())
    print(f"  trials' own seconds: local[1] {sum(t['seconds'] for t in q['trials']):.2f} s, "
          f"local-cluster {sum(busy.values()):.2f} s; executors idle {idle} s")
    print(f"two single-threaded copies of one trial: alone {alone:.2f} s, together {pair:.2f} s: "
          f"speed-up {ceil:.2f}x (others_cpu_s {others('ml_trial_alone')}, "
          f"{others('ml_trial_pair_a')})")
    print(f"goal 3: search speed-up >= 0.9x the two-copy speed-up: {sp / ceil:.2f} -> "
          f"{'met' if sp >= 0.9 * ceil else 'NOT met'}")
    print(f"best trial: {c['best']['params']} (validation accuracy "
          f"{c['best']['valid_metric']:.4f}); same best in both runs: "
          f"{q['best']['params'] == c['best']['params']}; same table (params, metric, "
          f"epochs): {[(x['params'], x['metric'], x['epochs']) for x in q['trials']] == [(x['params'], x['metric'], x['epochs']) for x in c['trials']]}")
if o1 and o2:
    def over(j):
        return j["search_s"] - j["trials"][0]["seconds"]
    print(f"one-trial search: local[1] {o1['search_s']:.3f} s, local-cluster[2,1] "
          f"{o2['search_s']:.3f} s for a {o1['trials'][0]['seconds']:.3f} / "
          f"{o2['trials'][0]['seconds']:.3f} s trial: overhead {over(o1):.3f} / {over(o2):.3f} s "
          f"(others_cpu_s {others('ml_tune_one_seq')}, {others('ml_tune_one_cluster')})")
PY

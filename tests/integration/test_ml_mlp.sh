#!/usr/bin/env bash
# tests/integration/test_ml_mlp.sh BUILD_DIR - `ember ml mlp` and `ember ml tune` end to
# end on `ember gen blobs` data (6 classes, 12 features, std 6: overlapping):
#  1. mlp learns it (test accuracy > 0.7) and --save writes a loadable model directory; the
#     90%-pruned, retrained, int8 model is > 10x smaller on disk and loses < 6 points (12
#     inputs leave the first layer ~1 weight a unit: wide inputs lose far less);
#  2. an 8-trial grid search gives the same table (every trial once, same metrics) in
#     local[2] and local-cluster[2,1], with trials on both executors; --results writes CSV
#     and JSON, --save the best model;
#  3. an executor killed (SIGKILL) while its trials run: the search still finishes with
#     every trial's result exactly once and the same metrics (the engine retries them);
#  4. successive halving runs its rounds; usage errors exit 2, bad data exits 1;
#  5. the same grid search on a standalone cluster (master + 2 one-core workers) gives the
#     same table as local[2].
source "$(dirname "$0")/cluster_lib.sh" ml_mlp "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m
mkdir -p "$TMPDIR"

"$ember" gen blobs --rows 4000 --dim 12 --k 6 --std 6 --labels --seed 3 --out "$tmp/all.csv" >/dev/null
head -n 3001 "$tmp/all.csv" > "$tmp/train.csv"
(head -n 1 "$tmp/all.csv"; tail -n 1000 "$tmp/all.csv") > "$tmp/test.csv"
common=(--format csv --label label --standardize)

# 1. one network
out=$("$ember" ml mlp --train "$tmp/train.csv" --test "$tmp/test.csv" "${common[@]}" \
      --hidden 32,16 --epochs 8 --master 'local[2]' --save "$tmp/model" --json | tail -n 1)
/usr/bin/python3 - "$out" <<'PY' || fail "mlp: $out"
import json, sys
r = json.loads(sys.argv[1])
assert r["accuracy"] > 0.7, r["accuracy"]
for k in ("train_s", "total_s", "epoch_s", "parameters"):
    assert k in r, k
PY
[ -f "$tmp/model/metadata.json" ] && [ -f "$tmp/model/params.bin" ] || fail "mlp: no model saved"
out=$("$ember" ml mlp --train "$tmp/train.csv" --test "$tmp/test.csv" "${common[@]}" \
      --hidden 256,128 --epochs 8 --master 'local[2]' --prune 0.9 --quantize --retrain-epochs 6 \
      --save "$tmp/small" --json | tail -n 1)
/usr/bin/python3 - "$out" <<'PY' || fail "mlp compressed: $out"
import json, sys
r = json.loads(sys.argv[1])
assert r["model_bytes"] * 10 < r["model_bytes_float"], r
assert abs(r["sparsity"] - 0.9) < 0.01, r["sparsity"]
assert r["metric_after_compression"] > r["metric_before_compression"] - 0.06, r
PY
[ -f "$tmp/small/packed.bin" ] || fail "mlp: no compressed model saved"

# 2. grid search, local[2] against local-cluster[2,1]
space="hidden=8,32;lr=0.01,0.002;act=relu,tanh"
tune() {   # MASTER ARGS... -> the --json line
    local m=$1; shift
    "$ember" ml tune --train "$tmp/train.csv" --test "$tmp/test.csv" "${common[@]}" \
        --space "$space" --epochs 6 --master "$m" --json "$@" | tail -n 1
}
ref=$(tune 'local[2]' --results "$tmp/res" --save "$tmp/best")
cl=$(tune 'local-cluster[2,1]')
table() {   # JSON -> "trial params metric" lines
    /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
for t in sorted(r["trials"], key=lambda t: t["trial"]):
    print(t["trial"], t["params"], repr(t["metric"]))
print("best", r["best"]["params"], r["best"].get("test_accuracy"))' "$1"
}
[ "$(table "$ref")" = "$(table "$cl")" ] || fail "local[2] and local-cluster[2,1] tables differ:
$(table "$ref")
$(table "$cl")"
[ "$(table "$ref" | grep -c '^[0-9]')" = 8 ] || fail "expected 8 trials: $(table "$ref")"
execs=$(/usr/bin/python3 -c 'import json,sys; print(len({t["executor"] for t in json.loads(sys.argv[1])["trials"]}))' "$cl")
[ "$execs" = 2 ] || fail "local-cluster trials ran on $execs executor(s), not 2"
[ "$(wc -l < "$tmp/res.csv")" = 9 ] && [ -f "$tmp/res.json" ] || fail "--results files"
[ -f "$tmp/best/metadata.json" ] || fail "best model not saved"

# 3. kill an executor while trials run; every trial's result exactly once
space="hidden=64,128;lr=0.01,0.002;act=relu,tanh"
"$ember" ml tune --train "$tmp/train.csv" "${common[@]}" --space "$space" --epochs 40 \
    --master 'local[2]' --json 2>/dev/null | tail -n 1 > "$tmp/kref"
"$ember" ml tune --train "$tmp/train.csv" "${common[@]}" --space "$space" --epochs 40 \
    --master 'local-cluster[2,1]' --json > "$tmp/kout" 2>"$tmp/kerr" &
tp=$!
# once a trial's row is in the table (the executors are running trials), unless the last
# round is already done: no fixed wait (the sanitizer build runs the trials ~10x slower)
kill_executor_at $tp "$tmp/kout" " ok " "round 0 done"
[ $killed = 1 ] || fail "no executor was killed while the trials ran"
st=0
wait $tp || st=$?
[ $st = 0 ] || fail "search with a killed executor: status $st: $(tail -n 5 "$tmp/kerr")"
if [ $st = 0 ]; then
    [ "$(table "$(cat "$tmp/kref")")" = "$(table "$(tail -n 1 "$tmp/kout")")" ] \
        || fail "killed-executor table differs from local[2]:
$(table "$(tail -n 1 "$tmp/kout")")"
fi

# 4. halving, usage and data errors
out=$("$ember" ml tune --train "$tmp/train.csv" "${common[@]}" --space "hidden=8,16,32;lr=0.01,0.003" \
      --search halving --epochs 9 --master 'local[2]' --json | tail -n 1)
/usr/bin/python3 - "$out" <<'PY' || fail "halving: $out"
import json, sys
r = json.loads(sys.argv[1])
assert r["rounds"] == 3 and r["ntrials"] == 6 + 2 + 1, (r["rounds"], r["ntrials"])
assert max(t["epochs"] for t in r["trials"]) == 9
PY
"$ember" ml tune --help | grep -q -- "--space" || fail "tune --help"
"$ember" ml mlp --help | grep -q -- "--hidden" || fail "mlp --help"
set +e
"$ember" ml tune --train "$tmp/train.csv" "${common[@]}" >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q -- "--space SPACE is required" "$tmp/err" || fail "missing --space: $st"
"$ember" ml tune --train "$tmp/train.csv" "${common[@]}" --space "lr=zero" >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] && grep -q "bad value 'zero'" "$tmp/err" || fail "bad space: $st $(cat "$tmp/err")"
"$ember" ml mlp --train "$tmp/train.csv" "${common[@]}" --act softmax >/dev/null 2>"$tmp/err"; st=$?
[ $st = 2 ] || fail "bad --act: status $st"
printf 'label,a,b\n0,1,2\n1.5,3,4\n' > "$tmp/bad.csv"
"$ember" ml mlp --train "$tmp/bad.csv" --format csv --label label --master 'local[2]' >/dev/null 2>"$tmp/err"; st=$?
[ $st = 1 ] && grep -q "label 1.5" "$tmp/err" || fail "fractional label: status $st: $(cat "$tmp/err")"
set -e

# 5. standalone cluster: master + 2 workers on loopback
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/secret"
chmod 600 "$tmp/secret"
port=$(free_port)
: > "$tmp/master.log"
"$ember" master --port "$port" --ui-port "$(free_port)" --secret-file "$tmp/secret" \
    >"$tmp/master.log" 2>&1 &
spids=($!)
for _ in $(seq 100); do grep -q "master listening" "$tmp/master.log" && break; sleep 0.1; done
for i in 1 2; do
    mkdir -p "$tmp/w$i"
    "$ember" worker --master "ember://127.0.0.1:$port" --cores 1 --memory 1g \
        --work-dir "$tmp/w$i" --secret-file "$tmp/secret" >"$tmp/worker$i.log" 2>&1 &
    spids+=($!)
done
sleep 2
space="hidden=8,32;lr=0.01,0.002;act=relu,tanh"
st=0
sa=$(EMBER_SECRET=$(cat "$tmp/secret") tune "ember://127.0.0.1:$port" 2>"$tmp/sa.err") || st=$?
[ $st = 0 ] || fail "standalone search: status $st: $(tail -n 3 "$tmp/sa.err")"
[ $st != 0 ] || [ "$(table "$ref")" = "$(table "$sa")" ] || fail "standalone table differs:
$(table "$sa")"
for p in "${spids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${spids[@]}"; do wait "$p" 2>/dev/null || true; done
check_clean "ml_mlp"
finish

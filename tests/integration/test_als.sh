#!/usr/bin/env bash
# tests/integration/test_als.sh BUILD_DIR - ALS end to end on generated ratings:
#  1. `ember als` in local[2] and in local-cluster[2,1] give the same model: the same test
#     and train RMSE to every printed digit (the same factors for the same seed);
#  2. an executor killed with kill -9 in the middle of training changes nothing in the
#     result (the lost blocks and shuffle outputs are recomputed from lineage);
#  3. the test RMSE lies between the data's noise floor and its global-mean RMSE;
#  4. reading and blocking on the executors (the default) and on the driver
#     (--driver-read) give the same model: the same train RMSE to every digit (the same
#     factors), the test RMSE to 12 digits (the executors sum per partition);
#  5. an executor killed while the blocks are being built on the executors changes
#     nothing in the result;
#  6. --conf KEY=VALUE reaches the engine: an unknown key is refused before any work, a
#     known one (another shuffle compression level) leaves the model unchanged.
source "$(dirname "$0")/cluster_lib.sh" als "${1:-}"
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=512m

"$ember" gen ratings --scale 0.003 --seed 7 --out "$tmp/r" 2>/dev/null
als() {   # MASTER [FLAGS] -> the --json line on stdout; progress on stderr
    "$ember" als --train "$tmp/r.train.tsv" --test "$tmp/r.test.tsv" --rank 8 \
        --iterations 6 --lambda 0.05 --checkpoint-interval 2 --master "$@" --json
}
field() { sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p" <<<"$1"; }

ref=$(als 'local[2]' 2>"$tmp/local.err" | tail -n 1)
cl=$(als 'local-cluster[2,1]' 2>"$tmp/cluster.err" | tail -n 1)
for f in test_rmse train_rmse test_mae; do
    [ -n "$(field "$ref" $f)" ] || fail "local[2]: no $f in: $ref"
    [ "$(field "$ref" $f)" = "$(field "$cl" $f)" ] ||
        fail "$f differs: local[2] $(field "$ref" $f), local-cluster[2,1] $(field "$cl" $f)"
done

# run_killed NAME WHEN [UNLESS]: runs ALS in local-cluster[2,1] into $tmp/NAME.{out,err} and
# kills one executor once the progress lines show WHEN (unless they show UNLESS by then);
# sets $k to the run's JSON line. The phases of this small job last tens of milliseconds,
# so on a loaded machine the poll can see WHEN too late (the phase over, or the job done):
# such a run proves nothing and is made again, up to five times; a run that fails is a
# failure at once.
run_killed() {
    local name=$1 when=$2 unless=${3:-} attempt job
    for attempt in 1 2 3 4 5; do
        als 'local-cluster[2,1]' >"$tmp/$name.out" 2>"$tmp/$name.err" &
        job=$!
        kill_executor_at "$job" "$tmp/$name.err" "$when" "$unless"
        wait "$job" || fail "$name: the run with a killed executor failed: $(tail -c 400 "$tmp/$name.err")"
        k=$(tail -n 1 "$tmp/$name.out")
        [ $killed = 1 ] && return 0
        echo "$name: attempt $attempt: seen \"$when\" too late to kill an executor; again"
    done
    fail "$name: no executor was killed in five attempts"
}

# Kill one executor once training has started (after the first iteration's progress line).
run_killed killed "iteration 1 done"
for f in test_rmse train_rmse; do
    [ "$(field "$ref" $f)" = "$(field "$k" $f)" ] ||
        fail "$f after a kill: $(field "$k" $f), without: $(field "$ref" $f)"
done

# The driver-side path gives the same model.
drv=$(als 'local-cluster[2,1]' --driver-read 2>"$tmp/driver.err" | tail -n 1)
grep -q '"read_on_executors":true' <<<"$cl" || fail "default run did not read on the executors"
grep -q '"read_on_executors":false' <<<"$drv" || fail "--driver-read read on the executors"
[ "$(field "$ref" train_rmse)" = "$(field "$drv" train_rmse)" ] ||
    fail "train_rmse: executors $(field "$ref" train_rmse), driver $(field "$drv" train_rmse)"
awk -v a="$(field "$ref" test_rmse)" -v b="$(field "$drv" test_rmse)" \
    'BEGIN { d = a - b; exit !(d < 1e-12 && d > -1e-12) }' ||
    fail "test_rmse: executors $(field "$ref" test_rmse), driver $(field "$drv" test_rmse)"

# Kill one executor while the blocks are being built on the executors (right after the
# read, before the item blocks are reported built).
run_killed killb "read on the executors" "item blocks built"
for f in test_rmse train_rmse; do
    [ "$(field "$ref" $f)" = "$(field "$k" $f)" ] ||
        fail "$f after a kill during block building: $(field "$k" $f), without: $(field "$ref" $f)"
done

# --conf: refused when unknown (the engine's message), applied when known.
if als 'local[2]' --conf ember.no.such.key=1 >/dev/null 2>"$tmp/conf.err"; then
    fail "--conf with an unknown key was accepted"
fi
grep -q "unknown configuration key 'ember.no.such.key'" "$tmp/conf.err" ||
    fail "--conf unknown key: $(tail -c 300 "$tmp/conf.err")"
cf=$(als 'local[2]' --conf ember.shuffle.compress.level=3 2>"$tmp/conf2.err" | tail -n 1)
[ "$(field "$cf" train_rmse)" = "$(field "$ref" train_rmse)" ] ||
    fail "--conf ember.shuffle.compress.level=3: train_rmse $(field "$cf" train_rmse), without: $(field "$ref" train_rmse)"
als 'local[2]' --conf nokey >/dev/null 2>"$tmp/conf3.err" && fail "--conf without '=' was accepted"
grep -q -- "--conf wants KEY=VALUE" "$tmp/conf3.err" || fail "--conf nokey: $(cat "$tmp/conf3.err")"

# Quality: between the noise floor and the global mean.
meta=$(cat "$tmp/r.meta.json")
floor=$(sed -n 's/.*"noise_floor_rmse": *\([0-9.e-]*\).*/\1/p' <<<"$meta")
mean=$(sed -n 's/.*"global_mean_rmse": *\([0-9.e-]*\).*/\1/p' <<<"$meta")
awk -v r="$(field "$ref" test_rmse)" -v lo="$floor" -v hi="$mean" \
    'BEGIN { exit !(r > lo && r < hi) }' ||
    fail "test RMSE $(field "$ref" test_rmse) not between the noise floor $floor and $mean"

check_clean "als"
finish "ok (test RMSE $(field "$ref" test_rmse), noise floor $floor)"

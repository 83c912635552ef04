#!/usr/bin/env bash
# tests/integration/test_aggacc.sh BUILD_DIR - in-place aggregation (aggregate_acc,
# tree_aggregate_acc, aggregate_by_key_acc, driver-side merges reading a broadcast) against
# the old path on random inputs (examples/aggacc.c compares them and says "all equal"):
#  1. in local[2] and in local-cluster[2,1];
#  2. in local-cluster[2,1] with one executor killed (kill -9) mid-aggregate, at several
#     points: the job recovers and every comparison still holds;
#  3. after every run no executor process and no temporary file is left.
source "$(dirname "$0")/cluster_lib.sh" aggacc "${1:-}"

run() {   # NAME MASTER ARGS...
    local name=$1 master=$2
    shift 2
    local t0
    t0=$(date +%s.%N)
    if ! TMPDIR=$tmp/t "$ember" run-example --quiet --master "$master" aggacc "$@" \
        >"$tmp/$name.stdout" 2>"$tmp/$name.stderr"; then
        fail "$name: failed: $(head -c 600 "$tmp/$name.stderr") $(grep -v equal "$tmp/$name.stdout" | head -5)"
        return 1
    fi
    grep -q "aggacc: all equal" "$tmp/$name.stdout" || fail "$name: no verdict"
    echo "$(date +%s.%N) - $t0" | bc >"$tmp/$name.secs"
    check_clean "$name"
}

# ---------------------------------------------------------------- 1. same results
run local 'local[2]'
run cluster 'local-cluster[2,1]'
# slowed down (microseconds per 1000 records folded), the run a kill interrupts
run slow 'local-cluster[2,1]' 3000

# ---------------------------------------------------------------- 2. kill -9
kills=0
for f in 0.2 0.45 0.7; do
    delay=$(echo "scale=2; $(cat "$tmp/slow.secs") * $f" | bc)
    for try in 1 2 3; do
        TMPDIR=$tmp/t "$ember" run-example --quiet --master 'local-cluster[2,1]' aggacc 3000 \
            >"$tmp/kill.stdout" 2>"$tmp/kill.stderr" &
        job=$!
        sleep "$delay"
        victim=$(our_executors | head -1)
        killed=0
        if [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null; then killed=1; fi
        if ! wait "$job"; then
            fail "kill at ${delay}s: job failed: $(head -c 600 "$tmp/kill.stderr") $(grep -v equal "$tmp/kill.stdout" | head -5)"
        else
            grep -q "aggacc: all equal" "$tmp/kill.stdout" || fail "kill at ${delay}s: no verdict"
        fi
        check_clean "kill at ${delay}s"
        [ $killed = 1 ] && break
        delay=$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 2 }')
    done
    kills=$((kills + killed))
done
[ $kills -ge 2 ] || fail "only $kills of 3 runs had an executor killed"

finish "in-place aggregation equals the old path (local[2], local-cluster[2,1], $kills executors killed)"

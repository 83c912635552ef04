#!/usr/bin/env bash
# tests/integration/test_interrupt.sh BUILD_DIR - Ctrl-C in `ember run-example` and
# `ember ml ALGO` (cli/interrupt.c): SIGINT in the middle of a slow job cancels it; the
# command says it was interrupted, exits with status 130, and leaves no executor process,
# no application dir (ember-app-* under TMPDIR), no output dir (so no OUT/_temporary).
# Checked in local[2] (SIGINT to the driver) and local-cluster[2,1], once with SIGINT to
# the driver only and once to the whole process group (what a terminal's Ctrl-C does: the
# executors get it too and must leave the stopping to the driver).
# TIMING: the job would take over 10 s; SIGINT comes once the application dir exists plus
# 1 s; the command must end within 30 s (generous on a loaded machine; the cancel itself
# takes well under a second).
source "$(dirname "$0")/cluster_lib.sh" interrupt "${1:-}"

"$ember" gen text --mib 2 --seed 5 --out "$tmp/in.txt"

# run NAME MASTER GROUP(0|1): starts faultjobs, interrupts it, checks what is left
run() {
    local name=$1 master=$2 group=$3 pid rc=0 t0
    TMPDIR=$tmp/t setsid "$ember" run-example --master "$master" faultjobs repartition \
        "$tmp/in.txt" "$tmp/out-$name" 400000 >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    for _ in $(seq 600); do   # until the application runs (up to 60 s)
        compgen -G "$tmp/t/ember-app-*" >/dev/null && break
        sleep 0.1
    done
    compgen -G "$tmp/t/ember-app-*" >/dev/null || fail "$name: no application dir appeared"
    sleep 1
    if [ "$group" = 1 ]; then
        kill -INT -- "-$pid" 2>/dev/null || fail "$name: cannot signal group $pid"
    else
        kill -INT "$pid" 2>/dev/null || fail "$name: cannot signal $pid"
    fi
    t0=$(date +%s)
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "$name: still running 30 s after SIGINT"
        kill -9 -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" || rc=$?
    [ "$rc" = 130 ] || { fail "$name: exit status $rc, want 130"; cat "$tmp/$name.err"; }
    grep -q "interrupted" "$tmp/$name.err" ||
        fail "$name: no 'interrupted' message: $(tail -3 "$tmp/$name.err")"
    [ ! -e "$tmp/out-$name" ] || fail "$name: output dir left: $(ls -A "$tmp/out-$name")"
    echo "$name: exit $rc $(( $(date +%s) - t0 )) s after SIGINT"
    check_clean "$name"
}

run local local[2] 0
run cluster 'local-cluster[2,1]' 0
run cluster-group 'local-cluster[2,1]' 1

# `ember ml als` (MLlib's command table) gets the same handling: 300 iterations would
# take minutes; SIGINT to the whole group once training has started.
"$ember" gen ratings --scale 0.003 --seed 7 --out "$tmp/r" 2>/dev/null
TMPDIR=$tmp/t setsid "$ember" ml als --train "$tmp/r.train.tsv" --rank 8 --iterations 300 \
    --master 'local-cluster[2,1]' >"$tmp/ml.out" 2>"$tmp/ml.err" &
pid=$!
for _ in $(seq 600); do
    compgen -G "$tmp/t/ember-app-*" >/dev/null && break
    sleep 0.1
done
sleep 2
kill -INT -- "-$pid" 2>/dev/null || fail "ml als: cannot signal group $pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { fail "ml als: still running 30 s after SIGINT"; kill -9 -- "-$pid"; }
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || { fail "ml als: exit status $rc, want 130"; tail -5 "$tmp/ml.err"; }
grep -q "ember ml: interrupted" "$tmp/ml.err" ||
    fail "ml als: no 'interrupted' message: $(tail -3 "$tmp/ml.err")"
check_clean ml-als

# Without SIGINT the same command still finishes normally (status 0, output complete).
TMPDIR=$tmp/t "$ember" run-example --quiet --master local[2] faultjobs repartition \
    "$tmp/in.txt" "$tmp/out-full" 0 >/dev/null 2>"$tmp/full.err" || fail "uninterrupted run"
[ -e "$tmp/out-full/_SUCCESS" ] || fail "uninterrupted run: no _SUCCESS"
check_clean full

finish

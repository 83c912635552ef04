#!/usr/bin/env bash
# tests/integration/test_exec_logs.sh BUILD_DIR - a lost executor keeps its cause (issue 16
# items 8 and 15): an executor killed with SIGKILL in the middle of a job
#  1. local-cluster[2,1]: the driver's warning names the signal ("was killed by signal 9
#     (SIGKILL)"), the job still succeeds;
#  2. standalone (a master, one worker, ember submit): the worker logs the signal and where
#     the executor's logs are kept, the directory with its stderr is still there after the
#     job, the driver hears "executor exited with status 137: was killed by signal 9", the
#     master's JSON still lists the finished application's executors, and a successful
#     submit ends without "lost the master".
#  3. a job whose tasks abort() fails, in both modes, with an error naming the signal (in
#     standalone with the end of the executor's stderr, held up to 2 s for the worker's
#     report).
source "$(dirname "$0")/cluster_lib.sh" exec_logs "${1:-}"
fj=$build/lib/ember/examples/faultjobs.so
[ -f "$fj" ] || { echo "test_exec_logs: SKIP (faultjobs.so not built)"; exit 0; }
export TMPDIR=$tmp/t EMBER_EXECUTOR_MEMORY=256m
python3 -c "
import sys
with open('$tmp/in.txt','w') as f:
    for i in range(200000): f.write('line %d\n' % (i % 5000))"

kill_one_when() {   # PATTERN_FILE PATTERN EXECUTOR_PGREP_PATTERN -> kills one executor
    for _ in $(seq 600); do
        if grep -q "$2" "$1" 2>/dev/null; then
            v=$(pgrep -f "$3" | head -1 || true)
            [ -n "$v" ] && { kill -9 "$v"; return 0; }
        fi
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------- 1. local-cluster
EMBER_LOG=info "$ember" run-example --master 'local-cluster[2,1]' faultjobs repartition \
    "$tmp/in.txt" "$tmp/out1" 3000 >"$tmp/lc.out" 2>"$tmp/lc.err" &
job=$!
kill_one_when "$tmp/lc.err" "registered" "ember executor --driver .* --work-dir $tmp/t/" ||
    fail "local-cluster: no executor to kill"
wait "$job" || fail "local-cluster job failed after a kill: $(tail -c 400 "$tmp/lc.err")"
grep -q "lost: .*was killed by signal 9 (SIGKILL)" "$tmp/lc.err" ||
    fail "local-cluster: the loss does not name the signal: $(grep lost "$tmp/lc.err" | head -3)"
check_clean "local-cluster"

# A job whose tasks abort() their executor fails with an error naming the signal (the task
# error carries the process's end, not only "connection closed").
head -2000 "$tmp/in.txt" > "$tmp/small.txt"
if "$ember" run-example --master 'local-cluster[2,1]' faultjobs abort "$tmp/small.txt" \
    >"$tmp/lca.out" 2>"$tmp/lca.err"; then
    fail "local-cluster: an aborting job succeeded"
fi
grep "^faultjobs: " "$tmp/lca.err" | grep -q "signal 6 (SIGABRT)" ||
    fail "local-cluster: the job's error lacks the signal: $(grep "^faultjobs" "$tmp/lca.err")"
check_clean "local-cluster abort"

# ---------------------------------------------------------------- 2. standalone
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/secret"
chmod 600 "$tmp/secret"
port=$(free_port)
ui=$(free_port)
mkdir -p "$tmp/work"
EMBER_LOG=info "$ember" master --port "$port" --ui-port "$ui" --secret-file "$tmp/secret" \
    >"$tmp/master.log" 2>&1 &
pids+=($!)
wait_log "${pids[-1]}" "$tmp/master.log" "master listening" || fail "the master did not start"
EMBER_LOG=info "$ember" worker --master "ember://127.0.0.1:$port" --cores 2 --memory 1g \
    --work-dir "$tmp/work" --secret-file "$tmp/secret" >"$tmp/worker.log" 2>&1 &
pids+=($!)
wait_log "${pids[-1]}" "$tmp/worker.log" "registered with the master" ||
    fail "the worker did not register"
"$ember" submit --master "ember://127.0.0.1:$port" --secret-file "$tmp/secret" \
    --executor-cores 1 --conf ember.ui.port=0 "$fj" repartition "$tmp/in.txt" "$tmp/out2" 3000 \
    >"$tmp/sub.out" 2>"$tmp/sub.err" &
job=$!
kill_one_when "$tmp/worker.log" "started executor" "ember executor --driver .* --work-dir $tmp/work/" ||
    fail "standalone: no executor to kill"
wait "$job" || fail "standalone job failed after a kill: $(tail -c 400 "$tmp/sub.err")"
for _ in $(seq 300); do grep -q "was killed by signal 9" "$tmp/worker.log" && break; sleep 0.1; done
grep -q "executor .* was killed by signal 9 (SIGKILL); its logs are in $tmp/work/" "$tmp/worker.log" ||
    fail "worker: no signal or log dir: $(grep -i executor "$tmp/worker.log" | tail -3)"
dir=$(sed -n "s/.*SIGKILL); its logs are in \([^;]*\).*/\1/p" "$tmp/worker.log" | head -1)
[ -f "$dir/stderr" ] || fail "the killed executor's stderr is gone ($dir)"
grep -q "removed: executor exited with status 137: was killed by signal 9" "$tmp/sub.err" ||
    fail "driver: no exit cause: $(grep -i "executor" "$tmp/sub.err" | head -3)"
grep -q "lost the master" "$tmp/sub.err" && fail "a successful submit warns 'lost the master'"
python3 - "http://127.0.0.1:$ui/json" <<'PY' || fail "master JSON lost the finished app's executors"
import json, sys, urllib.request
m = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
done = m["completed_apps"]
assert done and done[-1]["executors"], done
assert any(e["state"] == "exited" for e in done[-1]["executors"]), done[-1]["executors"]
PY

# The same aborting job under the master: the executors' tasks are held until the worker's
# exit report comes (at most 2 s), so the job's error has the signal and the stderr's end.
"$ember" submit --master "ember://127.0.0.1:$port" --secret-file "$tmp/secret" \
    --executor-cores 1 --conf ember.ui.port=0 "$fj" abort "$tmp/small.txt" \
    >"$tmp/suba.out" 2>"$tmp/suba.err" && fail "standalone: an aborting job succeeded"
err=$(grep "^faultjobs: " "$tmp/suba.err" || true)
case $err in
*"signal 6 (SIGABRT)"*) ;;
*) fail "standalone: the job's error lacks the signal: $err" ;;
esac
grep -q "lost: connection closed; executor exited with status 134: was killed by signal 6" \
    "$tmp/suba.err" || fail "standalone: no combined loss and cause: $(grep -i lost "$tmp/suba.err" | head -3)"
grep -q "fj_abort: aborting on purpose" "$tmp/suba.err" ||
    fail "standalone: the executor's stderr end does not reach the driver"
finish "ok"

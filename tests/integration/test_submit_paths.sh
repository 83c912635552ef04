#!/usr/bin/env bash
# tests/integration/test_submit_paths.sh BUILD_DIR - `ember submit` with RELATIVE input and
# output paths, run from a directory other than the worker's: executors must read and
# write the submitter's files (the driver makes paths absolute), not fail with "No such
# file" in the worker's working directory. Also: a bad setting from EMBER_MASTER or the
# conf file fails submit at once with exit status 2 (nothing registered with the master).
# A master and one worker on loopback, killed by pid on exit.
source "$(dirname "$0")/cluster_lib.sh" submit_paths "${1:-}"
t=$tmp
wc_so=$build/lib/ember/examples/wordcount.so
[ -f "$wc_so" ] || { echo "test_submit_paths: SKIP ($wc_so not built)"; exit 0; }
fail() { echo "test_submit_paths: FAIL: $*" >&2; exit 1; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$t/secret"
chmod 600 "$t/secret"
port=$(free_port)
mkdir -p "$t/worker_cwd" "$t/work" "$t/job"
export TMPDIR=$t
"$ember" master --port "$port" --ui-port 0 --secret-file "$t/secret" >"$t/master.log" 2>&1 &
pids+=($!)
wait_log $! "$t/master.log" "master listening" || true
(cd "$t/worker_cwd" && EMBER_LOG=info exec "$ember" worker --master "ember://127.0.0.1:$port" --cores 2 \
    --memory 1g --work-dir "$t/work" --secret-file "$t/secret") >"$t/worker.log" 2>&1 &
pids+=($!)
wait_log $! "$t/worker.log" "registered" || true

printf 'b a\na c a\n' > "$t/job/in.txt"
cd "$t/job"
timeout 120 "$ember" submit --quiet --master "ember://127.0.0.1:$port" --secret-file "$t/secret" \
    --executor-memory 256m --conf ember.ui.port=0 "$wc_so" in.txt out >"$t/submit.out" \
    2>"$t/submit.log" || fail "submit with relative paths failed: $(tail -5 "$t/submit.log")"
[ -f out/_SUCCESS ] || fail "no out/_SUCCESS in the submitting directory"
got=$(cat out/part-* | sort | tr '\t\n' ': ')
[ "$got" = "a:3 b:1 c:1 " ] || fail "wrong counts: '$got'"
[ ! -e "$t/worker_cwd/out" ] || fail "output went to the worker's working directory"

# Bad settings from the environment and the conf file: exit 2 before any work.
set +e
EMBER_EXECUTOR_MEMORY=1k "$ember" submit --quiet --master "ember://127.0.0.1:$port" \
    --secret-file "$t/secret" "$wc_so" in.txt out2 >/dev/null 2>"$t/bad_env.log"
rc=$?
echo "ember.defualt.parallelism 4" > "$t/bad.conf"
EMBER_CONF_FILE=$t/bad.conf "$ember" submit --quiet --master "ember://127.0.0.1:$port" \
    --secret-file "$t/secret" "$wc_so" in.txt out3 >/dev/null 2>"$t/bad_conf.log"
rc2=$?
set -e
[ $rc = 2 ] || fail "EMBER_EXECUTOR_MEMORY=1k: exit $rc, want 2"
grep -q "ember.executor.memory: 1k is below the minimum" "$t/bad_env.log" ||
    fail "EMBER_EXECUTOR_MEMORY=1k: unclear message: $(cat "$t/bad_env.log")"
[ $rc2 = 2 ] || fail "misspelled key in the conf file: exit $rc2, want 2"
grep -q "did you mean 'ember.default.parallelism'" "$t/bad_conf.log" ||
    fail "misspelled key in the conf file: unclear message: $(cat "$t/bad_conf.log")"
[ ! -e out2 ] && [ ! -e out3 ] || fail "a refused submit wrote output"
left=$(ls -d "$t"/ember-app-* 2>/dev/null || true)
[ -z "$left" ] || fail "application directories left: $left"
echo "test_submit_paths: ok"

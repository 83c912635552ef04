#!/usr/bin/env bash
# tests/integration/test_canary.sh BUILD_DIR - job code is loaded only where it should be.
# A canary job library (built here with cc) writes $tmp/markers/loaded.<pid> holding the
# loading process's command line from a constructor, i.e. the moment it is loaded:
#  0. control: loading it (LD_PRELOAD) does write the marker;
#  a. an executor refuses a job library whose sha256 differs from the driver's: the
#     driver's job library is swapped for the canary after the driver hashed it, then an
#     executor with the application's secret registers: it exits 1 naming the hash, and
#     no marker appears;
#  b. wrong secrets: a driver whose job library IS the canary (so its hash matches) is
#     contacted by an executor with a wrong secret (refused, exit 1, no marker); the same
#     with the right secret loads it (control: the test sees a load); a wrong-secret
#     connection to that executor's shuffle server gets nothing loaded either;
#  c. standalone: a master and a worker (daemons) run a submitted canary job: only the
#     submitting driver and the executor load it, never the master or the worker; a
#     submit with a wrong secret starts no executor.
# Drivers in a and b start a stand-in for `ember executor` (EMBER_BIN) that records the
# driver address and the application secret it was given, and never registers; the test
# then starts real executors by hand. Everything started here is killed by pid on exit.
set -euo pipefail
build=$(cd "${1:?usage: test_canary.sh BUILD_DIR}" && pwd)
ember=$build/bin/ember
genuine=$build/lib/ember/examples/faultjobs.so
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
[ -f "$genuine" ] || { echo "FAIL: $genuine not built"; exit 1; }
tmp=$(mktemp -d /tmp/ember-test-canary.XXXXXX)
pids=()
cleanup() {
    local p
    touch "$tmp/a/stop" "$tmp/b/stop" 2>/dev/null || true
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in $(pgrep -f "ember executor --driver .* --work-dir $tmp/" || true); do
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
export LC_ALL=C
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mkdir -p "$tmp/markers" "$tmp/t" "$tmp/a" "$tmp/b" "$tmp/c"

# ---------------------------------------------------------------- the canary
cat >"$tmp/canary.c" <<EOF
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int ember_main(void *sc, int argc, char **argv);
int ember_main(void *sc, int argc, char **argv)
{
    (void)sc;
    if (argc > 1)
        sleep((unsigned)atoi(argv[argc - 1]));
    return 0;
}
__attribute__((constructor)) static void canary(void)
{
    char cmd[1024], path[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, cmd, sizeof cmd - 1) : 0;
    if (fd >= 0)
        close(fd);
    if (n < 0)
        n = 0;
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == 0)
            cmd[i] = ' ';
    cmd[n] = 0;
    snprintf(path, sizeof path, "%s/loaded.%d", "$tmp/markers", (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s\n", cmd);
        fclose(f);
    }
}
EOF
cc -shared -fPIC -O1 -o "$tmp/canary.so" "$tmp/canary.c"

markers() { ls "$tmp/markers"; }
marker_of() { [ -f "$tmp/markers/loaded.$1" ]; }                 # PID
loaded_by() { grep -lq -- "--exec-id $1 " "$tmp/markers"/loaded.* 2>/dev/null; }   # EXEC_ID
# executor_loads: markers written by `ember executor` processes
executor_loads() { grep -l ' executor ' "$tmp/markers"/loaded.* 2>/dev/null | wc -l; }

# 0. control: the canary does mark a load
LD_PRELOAD=$tmp/canary.so /bin/true
[ "$(markers | wc -l)" = 1 ] || fail "control: loading the canary wrote no marker"
rm -f "$tmp/markers"/*

# A stand-in for `ember executor` in DIR: records its arguments and EMBER_SECRET, never
# registers, exits 3 when DIR/stop exists.
make_fake() {
    cat >"$1/fake-ember" <<EOF
#!/bin/sh
echo "\$*" >"$1/fake.args.tmp" && mv "$1/fake.args.tmp" "$1/fake.args"
printf '%s' "\$EMBER_SECRET" >"$1/fake.secret"
while [ ! -e "$1/stop" ]; do sleep 0.1; done
exit 3
EOF
    chmod +x "$1/fake-ember"
}

# start_driver DIR JOB [ARGS]: a local-cluster[1,1] driver running JOB whose executor is
# the stand-in; sets addr, secret, dpid.
start_driver() {
    local dir=$1 job=$2
    shift 2
    make_fake "$dir"
    EMBER_BIN=$dir/fake-ember TMPDIR=$tmp/t "$ember" run-example --quiet \
        --master 'local-cluster[1,1]' --conf ember.cluster.registerTimeoutMs=60000 \
        "$job" "$@" >"$dir/driver.out" 2>&1 &
    dpid=$!
    pids+=("$dpid")
    for _ in $(seq 200); do [ -f "$dir/fake.args" ] && break; sleep 0.05; done
    addr=$(sed -n 's/.*--driver \([^ ]*\).*/\1/p' "$dir/fake.args" 2>/dev/null || true)
    secret=$(cat "$dir/fake.secret" 2>/dev/null || true)
    [ -n "$addr" ] && [ ${#secret} -ge 16 ] || fail "$dir: the driver started no executor"
}

# hand_executor NAME SECRET DRIVER_ADDR: runs an executor (exec id NAME) to its end; sets rc
hand_executor() {
    mkdir -p "$tmp/w-$1"
    set +e
    EMBER_SECRET=$2 timeout 30 "$ember" executor --driver "$3" --exec-id "$1" --cores 1 \
        --work-dir "$tmp/w-$1" >"$tmp/$1.out" 2>&1
    rc=$?
    set -e
}

# ---------------------------------------------------------------- a. hash mismatch
cp "$genuine" "$tmp/a/job.so"
start_driver "$tmp/a" "$tmp/a/job.so" randkey /nonexistent "$tmp/a/out"
# The driver has hashed (and itself loaded) the genuine library; now the file becomes the
# canary, as if someone could write the job library's path.
cp "$tmp/canary.so" "$tmp/a/job.so.new"
mv -f "$tmp/a/job.so.new" "$tmp/a/job.so"
if [ -n "$addr" ]; then
    hand_executor exec-a "$secret" "$addr"
    [ $rc = 1 ] || fail "a: the executor's exit status is $rc (want 1): $(cat "$tmp/exec-a.out")"
    grep -q 'sha256 .* differs from the driver' "$tmp/exec-a.out" ||
        fail "a: no hash mismatch error: $(head -c 600 "$tmp/exec-a.out")"
    loaded_by exec-a && fail "a: the executor loaded the swapped library"
fi
[ "$(markers | wc -l)" = 0 ] || fail "a: canary loaded by: $(cat "$tmp/markers"/*)"
touch "$tmp/a/stop"
wait "$dpid" 2>/dev/null && fail "a: the driver succeeded without executors"

# ---------------------------------------------------------------- b. wrong secrets
cp "$tmp/canary.so" "$tmp/b/job.so"
# The canary's ember_main sleeps 4 s once an executor registered (its last argument).
start_driver "$tmp/b" "$tmp/b/job.so" 4
driver_pid=$dpid
if [ -n "$addr" ]; then
    hand_executor rogue-b 0123456789abcdef-not-the-secret "$addr"
    [ $rc = 1 ] || fail "b: the wrong-secret executor's exit status is $rc (want 1)"
    grep -qi 'secret' "$tmp/rogue-b.out" ||
        fail "b: no clear wrong-secret error: $(head -c 600 "$tmp/rogue-b.out")"
    loaded_by rogue-b && fail "b: the wrong-secret executor loaded the canary"
    [ "$(executor_loads)" = 0 ] || fail "b: an executor loaded the canary with a wrong secret"
    # Control: with the right secret the executor does load it (the test sees loads).
    mkdir -p "$tmp/w-ctl"
    EMBER_LOG=info EMBER_SECRET=$secret "$ember" executor --driver "$addr" \
        --exec-id ctl-b --cores 1 --work-dir "$tmp/w-ctl" >"$tmp/ctl-b.out" 2>&1 &
    cpid=$!
    pids+=("$cpid")
    for _ in $(seq 100); do loaded_by ctl-b && break; sleep 0.05; done
    loaded_by ctl-b || fail "b: control: the right secret and hash did not load the canary"
    # A wrong-secret connection to that executor's shuffle server.
    shuffle=""
    for _ in $(seq 100); do
        shuffle=$(sed -n 's/.*shuffle server \([0-9.]*:[0-9]*\).*/\1/p' "$tmp/ctl-b.out" | head -1)
        [ -n "$shuffle" ] && break
        sleep 0.05
    done
    if [ -z "$shuffle" ]; then
        fail "b: the control executor logged no shuffle server address"
    else
        hand_executor rogue-shuffle 0123456789abcdef-not-the-secret "$shuffle"
        [ $rc = 1 ] || fail "b: wrong secret at an executor: exit status $rc (want 1)"
        loaded_by rogue-shuffle && fail "b: the wrong-secret peer of an executor loaded the canary"
    fi
    touch "$tmp/b/stop"
    wait "$cpid" || fail "b: the control executor failed: $(tail -c 400 "$tmp/ctl-b.out")"
fi
touch "$tmp/b/stop"
wait "$driver_pid" 2>/dev/null || true
for f in "$tmp/markers"/loaded.*; do
    [ -f "$f" ] || continue
    [ "${f##*.}" = "$driver_pid" ] || grep -q -- '--exec-id ctl-b ' "$f" ||
        fail "b: the canary was loaded by an unexpected process: $(cat "$f")"
done
rm -f "$tmp/markers"/*

# ---------------------------------------------------------------- c. standalone daemons
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/c/secret"
chmod 600 "$tmp/c/secret"
port=$(free_port)
ui=$(free_port)
EMBER_LOG=info "$ember" master --port "$port" --ui-port "$ui" --secret-file "$tmp/c/secret" \
    >"$tmp/c/master.log" 2>&1 &
master_pid=$!
pids+=("$master_pid")
for _ in $(seq 100); do grep -q "master listening" "$tmp/c/master.log" && break; sleep 0.1; done
mkdir -p "$tmp/c/work"
EMBER_LOG=info "$ember" worker --master "ember://127.0.0.1:$port" --cores 1 --memory 1g \
    --work-dir "$tmp/c/work" --secret-file "$tmp/c/secret" >"$tmp/c/worker.log" 2>&1 &
worker_pid=$!
pids+=("$worker_pid")
for _ in $(seq 100); do grep -qi "registered" "$tmp/c/worker.log" && break; sleep 0.1; done
# A submit with a wrong secret: refused by the master, no executor starts.
echo "0123456789abcdef-not-the-secret" >"$tmp/c/wrong"
chmod 600 "$tmp/c/wrong"
if timeout 30 "$ember" submit --master "ember://127.0.0.1:$port" --secret-file "$tmp/c/wrong" \
    "$tmp/canary.so" 0 >"$tmp/c/wrong.out" 2>&1; then
    fail "c: a submit with a wrong secret succeeded"
fi
[ "$(executor_loads)" = 0 ] || fail "c: a wrong-secret submit got an executor to load the canary"
# The real submit: its driver (the submitting process) and its executor load the canary.
# The job runs no task, so it sleeps 2 s: an executor loads the library after it
# registered, and an application that ended at once could stop it before the load (a
# race CI met once under load), which is no fault of the engine.
timeout 60 "$ember" submit --master "ember://127.0.0.1:$port" --secret-file "$tmp/c/secret" \
    --total-executor-cores 1 "$tmp/canary.so" 2 >"$tmp/c/submit.out" 2>&1 ||
    fail "c: submit failed: $(tail -c 600 "$tmp/c/submit.out")"
[ "$(executor_loads)" -ge 1 ] || fail "c: control: the executor did not load the job library"
marker_of "$master_pid" && fail "c: the master loaded job code"
marker_of "$worker_pid" && fail "c: the worker loaded job code"
for f in "$tmp/markers"/loaded.*; do
    [ -f "$f" ] || continue
    grep -Eq ' (submit|executor) ' "$f" ||
        fail "c: the canary was loaded by a process that is neither driver nor executor: $(cat "$f")"
done
kill -0 "$master_pid" 2>/dev/null || fail "c: the master died"
kill -0 "$worker_pid" 2>/dev/null || fail "c: the worker died"

if [ $fails -gt 0 ]; then
    echo "test_canary: $fails failure(s)"
    exit 1
fi
echo "test_canary: ok"

# tests/integration/cluster_lib.sh - shared set-up of the integration scripts that start
# executor processes (sourced, not run; ctest runs only test_*.sh). After
#   source "$(dirname "$0")/cluster_lib.sh" NAME BUILD_DIR
# the script has: $build (absolute), $ember, a private $tmp, $tmp/t for runs to use as
# TMPDIR, LC_ALL=C, pids=() (see cleanup), fail MESSAGE (counted), wait_log, our_executors, kill_executor_at,
# check_clean NAME (no executor process and nothing left in $tmp/t) and finish (prints the
# verdict and exits).
# On exit (the EXIT trap, cleanup) every pid the script put in pids (masters, workers: so
# they can stop their executors) gets TERM, then KILL after 5 s; the script's
# cleanup_hook runs if it defines one (test_multihost: its network namespaces); every
# other background job and every executor whose --work-dir lies under $tmp is killed; when
# the script failed, the last $log_tail (20) lines of each $tmp/*.log are printed; $tmp is
# removed (kept with KEEP=1) and the script's exit status stays.
set -euo pipefail
lib_name=${1:?cluster_lib.sh NAME BUILD_DIR}
build=$(cd "${2:?usage: test_$lib_name.sh BUILD_DIR}" && pwd)
ember=$build/bin/ember
[ -x "$ember" ] || { echo "FAIL: $ember not built"; exit 1; }
tmp=$(mktemp -d "/tmp/ember-test-$lib_name.XXXXXX")
pids=()
cleanup() {
    local rc=$? p j f
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for ((j = 0; j < 50; j++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if declare -F cleanup_hook >/dev/null; then cleanup_hook || true; fi
    for j in $(jobs -p); do kill -9 "$j" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pkill -9 -f "ember executor --driver .* --work-dir $tmp/" 2>/dev/null || true
    if [ $rc -ne 0 ]; then
        for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n "${log_tail:-20}" "$f"; }; done
    fi
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
export LC_ALL=C
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mkdir -p "$tmp/t"

# wait_log PID FILE PATTERN: waits until FILE holds PATTERN while process PID lives, with no
# deadline of its own (a loaded machine only makes the line later; ctest's timeout bounds
# the test). 1 when PID ended first.
wait_log() {
    while ! grep -q -- "$3" "$2" 2>/dev/null; do
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
}

# our executors: their --work-dir is under $tmp/t
our_executors() { pgrep -f "ember executor --driver .* --work-dir $tmp/t/" || true; }

# kill_executor_at JOB ERR WHEN [UNLESS]: once the lines in ERR (a log or an output file) show WHEN, kills
# one of our executors with kill -9 (killed=1), unless they show UNLESS by then (too late).
# Polls for as long as JOB runs: no deadline of its own (a loaded machine only makes WHEN
# later; the job ends either way, and ctest's timeout bounds the whole test).
kill_executor_at() {
    local job=$1 err=$2 when=$3 unless=${4:-} victim
    killed=0
    while kill -0 "$job" 2>/dev/null; do
        if grep -q "$when" "$err" 2>/dev/null; then
            victim=$(our_executors | head -1)
            if [ -z "$unless" ] || ! grep -q "$unless" "$err"; then
                [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null && killed=1
            fi
            return 0
        fi
        sleep 0.02
    done
}

check_clean() {   # NAME
    local left
    for _ in $(seq 50); do
        [ -z "$(our_executors)" ] && break
        sleep 0.1
    done
    left=$(our_executors)
    [ -z "$left" ] || fail "$1: executor processes left: $left"
    left=$(ls -A "$tmp/t")
    [ -z "$left" ] || { fail "$1: temporary files left: $left"; rm -rf "${tmp:?}/t/"*; }
}

finish() {   # [OK_MESSAGE]
    if [ "$fails" -ne 0 ]; then
        echo "test_$lib_name: $fails failure(s)"
        exit 1
    fi
    echo "test_$lib_name: ${1:-ok}"
    exit 0
}

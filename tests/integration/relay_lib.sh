# tests/integration/relay_lib.sh NAME BUILD_DIR - shared prelude of the tests that put
# tests/support/relay.py between a worker and a master (test_relay.sh, test_wire_ids.sh), and
# of test_flood.sh, which starts a master and a worker the same way:
# sets build, src, ember, relay, a private temporary directory t (removed at exit, with the
# tail of every $t/*.log shown on failure), pids (every process started, killed by pid in
# the EXIT trap: TERM, then KILL after 5 s), a 0600 cluster secret in $t/secret, and the
# helpers fail, free_port and wait_grep. Sourced, never run.
set -euo pipefail

lib_name=$1
build=$(cd "${2:?usage: $lib_name.sh BUILD_DIR}" && pwd)
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
ember=$build/bin/ember
relay=$src/tests/support/relay.py
[ -x "$ember" ] || { echo "$lib_name: $ember not built" >&2; exit 1; }

t=$(mktemp -d "/tmp/ember-$lib_name-XXXXXX")
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ $rc -ne 0 ]; then
        for f in "$t"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }; done
    fi
    rm -rf "$t"
    exit $rc
}
trap cleanup EXIT
fail() { echo "$lib_name: FAIL: $*" >&2; exit 1; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_grep() {   # PATTERN FILE [TENTHS]: waits until FILE has PATTERN
    for _ in $(seq "${3:-100}"); do grep -q -- "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$t/secret")

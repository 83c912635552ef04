#!/usr/bin/env bash
# tests/integration/test_wire_ids.sh BUILD_DIR - ids on the wire are [A-Za-z0-9_-] only
# (issue 18): a worker's app and executor ids name directories under its work dir, removed
# at reap, so ".", ".." and "a/b" must never be taken. With ember.network.crypto off (the
# one setting where a relay on the path can speak for the master: tests/support/relay.py)
# the relay injects a launch_executor whose app or exec id is each of those; the worker
# refuses every one as malformed, starts nothing, keeps its work dir (a file beside it and
# one inside it survive) and stays up. A control injection with good ids is obeyed, so the
# test can tell a refusal from an injection that never arrived.
# Everything started here is killed by pid in the EXIT trap.
source "$(dirname "$0")/relay_lib.sh" test_wire_ids "${1:-}"
export EMBER_LOG=info EMBER_NETWORK_CRYPTO=false

# inject N ATTACK: a master, the relay doing ATTACK, a worker through it; leaves the
# worker's log in $t/worker-N.log and its work dir in $t/root-N/work.
inject() {
    local n=$1 attack=$2 port rport
    port=$(free_port)
    rport=$(free_port)
    "$ember" master --port "$port" --ui-port 0 --secret-file "$t/secret" \
        >"$t/master-$n.log" 2>&1 &
    local mpid=$!
    pids+=($mpid)
    wait_grep "master listening" "$t/master-$n.log" || fail "$n: master did not start"
    python3 "$relay" "$rport" "$port" "$attack" >"$t/relay-$n.log" 2>&1 &
    local rpid=$!
    pids+=($rpid)
    wait_grep listening "$t/relay-$n.log" || fail "$n: relay did not start"
    mkdir -p "$t/root-$n/work"
    echo keep >"$t/root-$n/beside"
    echo keep >"$t/root-$n/work/inside"
    "$ember" worker --master "ember://127.0.0.1:$rport" --cores 1 --memory 1g \
        --work-dir "$t/root-$n/work" --secret-file "$t/secret" >"$t/worker-$n.log" 2>&1 &
    local wpid=$!
    pids+=($wpid)
    wait_grep attacked "$t/relay-$n.log" 100 || fail "$n: the relay never attacked"
    if [ "$attack" = inject ]; then
        wait_grep "exec-evil" "$t/worker-$n.log" 50 \
            || fail "control: the injected launch with good ids was not obeyed"
    else
        wait_grep "malformed launch_executor" "$t/worker-$n.log" 100 \
            || fail "$attack: the worker did not refuse the id"
        sleep 0.3
        ! grep -q "exec-evil\|started executor" "$t/worker-$n.log" \
            || fail "$attack: the worker acted on the bad id"
        kill -0 "$wpid" || fail "$attack: the worker died"
        [ -f "$t/root-$n/beside" ] && [ -f "$t/root-$n/work/inside" ] \
            || fail "$attack: files around the work dir were removed"
    fi
    kill -TERM "$wpid" "$rpid" "$mpid" 2>/dev/null || true
    wait "$wpid" "$rpid" "$mpid" 2>/dev/null || true
}

n=0
for attack in app=. app=.. app=a/b exec=.. exec=a/b; do
    n=$((n + 1))
    inject "$n" "badid:$attack"
    echo "test_wire_ids: $attack refused"
done
inject control inject
echo "test_wire_ids: control (good ids) obeyed"
echo "test_wire_ids: OK"

#!/usr/bin/env bash
# tests/integration/test_relay.sh BUILD_DIR - a man in the middle between a worker and its
# master (tests/support/relay.py: passes the handshake through, holds no secret) that, once
# the link is up, injects a launch_executor of its own, flips a bit, replays or drops one
# frame. With ember.network.crypto on (the default) each attack closes the link, the worker
# starts nothing and logs the failed frame, then logs in again and serves on. A control run
# with crypto off (trusted networks only) shows the injection is then obeyed: the test can
# tell the two apart. Everything started here is killed by pid in the EXIT trap.
source "$(dirname "$0")/relay_lib.sh" test_relay "${1:-}"
export EMBER_LOG=info

# run_attack MODE ATTACK: a master, a relay doing ATTACK, a worker through the relay.
run_attack() {
    local mode=$1 attack=$2 port rport
    port=$(free_port)
    rport=$(free_port)
    EMBER_NETWORK_CRYPTO=$mode "$ember" master --port "$port" --ui-port 0 \
        --secret-file "$t/secret" >"$t/master-$mode-$attack.log" 2>&1 &
    local mpid=$!
    pids+=($mpid)
    wait_grep "master listening" "$t/master-$mode-$attack.log" || fail "master did not start"
    python3 "$relay" "$rport" "$port" "$attack" >"$t/relay-$mode-$attack.log" 2>&1 &
    local rpid=$!
    pids+=($rpid)
    wait_grep listening "$t/relay-$mode-$attack.log" || fail "relay did not start"
    mkdir -p "$t/work-$mode-$attack"
    EMBER_NETWORK_CRYPTO=$mode "$ember" worker --master "ember://127.0.0.1:$rport" --cores 1 \
        --memory 1g --work-dir "$t/work-$mode-$attack" --secret-file "$t/secret" \
        >"$t/worker-$mode-$attack.log" 2>&1 &
    local wpid=$!
    pids+=($wpid)
    wait_grep attacked "$t/relay-$mode-$attack.log" 100 || fail "$attack: the relay never attacked"
    if [ "$mode" = true ]; then
        wait_grep "client closed" "$t/relay-$mode-$attack.log" 100 \
            || fail "$attack: the worker kept the tampered link open"
        wait_grep "lost the master" "$t/worker-$mode-$attack.log" \
            || fail "$attack: the worker did not report the broken link"
        # It logs in again (through the relay, now passive) and is registered once more.
        for _ in $(seq 100); do
            [ "$(grep -c "registered with the master" "$t/worker-$mode-$attack.log")" -ge 2 ] && break
            sleep 0.1
        done
        [ "$(grep -c "registered with the master" "$t/worker-$mode-$attack.log")" -ge 2 ] \
            || fail "$attack: the worker did not log in again"
        ! grep -q "exec-evil\|started executor" "$t/worker-$mode-$attack.log" \
            || fail "$attack: the worker acted on the relay's frame"
        kill -0 "$wpid" || fail "$attack: the worker died"
    else
        wait_grep "exec-evil" "$t/worker-$mode-$attack.log" 50 \
            || fail "control: with crypto off the injection was not obeyed; the test proves nothing"
    fi
    kill -TERM "$wpid" "$rpid" "$mpid" 2>/dev/null || true
    wait "$wpid" "$rpid" "$mpid" 2>/dev/null || true
}

for attack in inject flip replay drop; do
    run_attack true "$attack"
    grep -q "failed authentication\|handshake frame\|shorter than its tag" \
        "$t/worker-true-$attack.log" || fail "$attack: no failed-frame reason in the worker log"
    echo "test_relay: $attack with crypto on: link closed, nothing run"
done

# Control: with crypto off the same relay's injected launch_executor is obeyed (the
# executor it starts then fails: its "driver" is the relay's choice, 127.0.0.1:1).
run_attack false inject
echo "test_relay: control (crypto off): the injected launch was obeyed, as expected"
echo "test_relay: OK"

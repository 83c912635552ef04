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

# Between an executor and its driver (local-cluster[2,1]; $EMBER_BIN is a wrapper that
# routes the first executor through a relay): a bit flipped in the head or in the tail of
# the first PRESEALED frame (a broadcast piece sealed once for every executor) closes that
# executor's link with the reason logged; the job goes on without it and every task reads
# the broadcast byte for byte (bcast check's crc32c per task; its fetch count may differ,
# as the executor that lost its link may or may not have fetched).
cat > "$t/exec-wrap.sh" <<'WRAP'
#!/usr/bin/env bash
args=("$@")
if [ "${1:-}" = executor ] && mkdir "$WRAP_DIR/claimed" 2>/dev/null; then
    for i in "${!args[@]}"; do [ "${args[$i]}" = --driver ] && d=$((i + 1)); done
    rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 "$WRAP_RELAY" "$rport" "${args[$d]##*:}" "$WRAP_ATTACK" >"$WRAP_DIR/relay.log" 2>&1 &
    echo $! >"$WRAP_DIR/relay.pid"
    for _ in $(seq 100); do grep -q listening "$WRAP_DIR/relay.log" && break; sleep 0.1; done
    args[$d]=127.0.0.1:$rport
fi
exec "$WRAP_EMBER" "${args[@]}"
WRAP
chmod +x "$t/exec-wrap.sh"
for attack in head tail; do
    w=$t/wrap-$attack
    mkdir -p "$w"
    rc=0
    TMPDIR=$w WRAP_DIR=$w WRAP_RELAY=$relay WRAP_ATTACK=$attack WRAP_EMBER=$ember \
        EMBER_BIN=$t/exec-wrap.sh \
        timeout 300 "$ember" run-example --quiet --master 'local-cluster[2,1]' bcast check 9 \
        >"$t/bcast-$attack.log" 2>&1 || rc=$?
    [ -f "$w/relay.pid" ] && pids+=("$(cat "$w/relay.pid")")
    grep -q attacked "$w/relay.log" || fail "$attack: the relay never saw a PRESEALED frame"
    wait_grep "client closed" "$w/relay.log" 100 \
        || fail "$attack: the executor kept the tampered link open"
    grep -q "failed authentication" "$t/bcast-$attack.log" \
        || fail "$attack: no failed-authentication reason logged"
    # every task's crc32c and length matched the driver's (bcast check prints the fetch
    # count only after that: the executor that lost its link fetched too, or not at all)
    grep -q "bcast: \(FAILED: \)\?broadcast of 67108865 bytes on 8 tasks: \(ok\|[0-9]* fetches by\)" \
        "$t/bcast-$attack.log" || fail "$attack: the broadcast did not reach every task intact (exit $rc)"
    echo "test_relay: PRESEALED $attack flipped: link closed, the value still arrived intact"
done

# Control: with crypto off the same relay's injected launch_executor is obeyed (the
# executor it starts then fails: its "driver" is the relay's choice, 127.0.0.1:1).
run_attack false inject
echo "test_relay: control (crypto off): the injected launch was obeyed, as expected"
echo "test_relay: OK"

#!/usr/bin/env bash
# tests/integration/test_flood.sh BUILD_DIR - unauthenticated connection exhaustion: 2,000
# idle sockets held open against a master's cluster port and 2,000 against its status page
# (each side caps connections not logged in / not answered, dropping the oldest). While
# they are held, a worker with the right secret still logs in and registers, and a status
# request is still answered. Everything started here is killed by pid in the EXIT trap.
# paths, $t, pids killed at exit, fail, free_port and the secret in $t/secret
source "$(dirname "$0")/relay_lib.sh" test_flood "${1:-}"
port=$(free_port)
ui=$(free_port)
"$ember" master --port "$port" --ui-port "$ui" --secret-file "$t/secret" >"$t/master.log" 2>&1 &
pids+=($!)
master_pid=$!
for _ in $(seq 100); do grep -q "master listening" "$t/master.log" && break; sleep 0.1; done

# The flood: opens 2,000 idle sockets to each port, keeps them open until told to stop.
python3 - "$port" "$ui" "$t/flooded" "$t/stop" <<'PY' >"$t/flood.log" 2>&1 &
import os, resource, socket, sys, time
port, ui, flooded, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
socks = []
for p in (port, ui):
    for _ in range(2000):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", p))
        socks.append(s)
open(flooded, "w").close()
while not os.path.exists(stop):
    time.sleep(0.1)
PY
pids+=($!)
for _ in $(seq 300); do [ -e "$t/flooded" ] && break; sleep 0.1; done
[ -e "$t/flooded" ] || fail "the flood did not start"

# A correct login succeeds under the flood.
mkdir -p "$t/work"
"$ember" worker --master "ember://127.0.0.1:$port" --cores 1 --memory 1g --work-dir "$t/work" \
    --secret-file "$t/secret" >"$t/worker.log" 2>&1 &
pids+=($!)
python3 - "$ui" <<'PY' || fail "under the flood: no worker registered or no status answer"
import json, sys, time, urllib.request
ui = int(sys.argv[1])
deadline = time.time() + 30
while time.time() < deadline:
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/json" % ui, timeout=5) as r:
            if len(json.load(r)["workers"]) == 1:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
PY
# A Host naming a stranger's domain (DNS rebinding) is refused.
code=$(python3 - "$ui" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", "/json", headers={"Host": "attacker.example"})
print(c.getresponse().status)
PY
)
[ "$code" = 403 ] || fail "a foreign Host header got $code"
touch "$t/stop"
kill -0 "$master_pid" || fail "the master died under the flood"
echo "test_flood: OK"

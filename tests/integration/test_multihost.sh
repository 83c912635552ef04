#!/usr/bin/env bash
# tests/integration/test_multihost.sh BUILD_DIR - a standalone cluster over a real network:
# three network namespaces (a master host and two worker hosts) joined by veth pairs to a
# bridge in the master's namespace, with the test's own addresses (10.213.0.0/24 and
# fd00:213::/64, which exist only inside these namespaces) and host names given by
# per-namespace hosts files (/etc/netns/NS/hosts, which `ip netns exec` mounts over
# /etc/hosts in that namespace only; the real /etc/hosts is not touched).
#   1. the master binds "::" and advertises its name; worker 1 reaches it by an IPv6
#      literal (ember://[fd00:213::1]:P), worker 2 by name; workers listen on every
#      interface and advertise their names; the driver runs in the master's namespace;
#   2. wordcount, PageRank and ALS (scale 0.01) submitted there give exactly what local
#      mode gives, with fixed driver and block manager ports (ember.driver.port,
#      ember.blockManager.port);
#   3. worker 2's link goes down in the middle of ALS: the driver finds its executor lost
#      by the network timeout (no FIN crosses a dead link) and the job finishes on worker 1
#      with the same result;
#   4. everything is torn down (EXIT trap): processes by pid, namespaces (their veths and
#      bridge go with them), the hosts files, the temp dir.
# Needs root and `ip netns`: otherwise it exits 77 (ctest SKIP_RETURN_CODE) saying why.
source "$(dirname "$0")/cluster_lib.sh" multihost "${1:-}"
t=$tmp log_tail=15
ex=$build/lib/ember/examples
skip() { echo "test_multihost: SKIP: $*"; exit 77; }
for so in wordcount pagerank alsjob; do
    [ -f "$ex/$so.so" ] || skip "$ex/$so.so not built"
done
[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (CI runs as root)"
command -v ip >/dev/null || skip "no 'ip' command (Debian package iproute2: make check installs it)"
probe=emh-probe-$$
ip netns add "$probe" 2>/dev/null || skip "'ip netns add' is not available here"
ip netns del "$probe"

tag=$$
ns_m=emh-m-$tag ns_1=emh-w1-$tag ns_2=emh-w2-$tag
# run by cluster_lib.sh's cleanup after the pids: executors started by the workers are in
# the namespaces too, and none may outlive them
cleanup_hook() {
    local ns p
    for ns in "$ns_m" "$ns_1" "$ns_2"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
}
fail() { echo "test_multihost: FAIL: $*" >&2; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---------------------------------------------------------------- the network
for ns in "$ns_m" "$ns_1" "$ns_2"; do
    ip netns add "$ns"
    mkdir -p "/etc/netns/$ns"
    printf '127.0.0.1 localhost\n10.213.0.1 emh-master\n10.213.0.2 emh-w1\n10.213.0.3 emh-w2\n' \
        >"/etc/netns/$ns/hosts"
    ip -n "$ns" link set lo up
done
ip -n "$ns_m" link add br0 type bridge
ip -n "$ns_m" addr add 10.213.0.1/24 dev br0
ip -n "$ns_m" addr add fd00:213::1/64 dev br0 nodad
ip -n "$ns_m" link set br0 up
for i in 1 2; do
    ns=$ns_1
    [ $i = 2 ] && ns=$ns_2
    ip link add "vw$i" netns "$ns" type veth peer name "vm$i" netns "$ns_m"
    ip -n "$ns_m" link set "vm$i" master br0
    ip -n "$ns_m" link set "vm$i" up
    ip -n "$ns" addr add "10.213.0.$((i + 1))/24" dev "vw$i"
    ip -n "$ns" addr add "fd00:213::$((i + 1))/64" dev "vw$i" nodad
    ip -n "$ns" link set "vw$i" up
done
# the names resolve inside the namespaces (and only there)
[ "$(in_ns "$ns_1" getent hosts emh-master | cut -d' ' -f1)" = 10.213.0.1 ] ||
    fail "emh-master does not resolve in $ns_1"

# ---------------------------------------------------------------- the cluster
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$t/secret"
chmod 600 "$t/secret"
export EMBER_LOG=info
port=7077
in_ns "$ns_m" "$ember" master --host :: --advertise-host emh-master --port $port --ui-port 0 \
    --network-timeout 3000 --secret-file "$t/secret" >"$t/master.log" 2>&1 &
pids+=($!)
wait_log $! "$t/master.log" "master listening" || true
grep -q "master listening on ember://emh-master:$port" "$t/master.log" ||
    fail "master did not start or advertises the wrong URL: $(cat "$t/master.log")"
masters=("ember://[fd00:213::1]:$port" "ember://emh-master:$port")
for i in 1 2; do
    ns=$ns_1
    [ $i = 2 ] && ns=$ns_2
    mkdir -p "$t/work$i"
    in_ns "$ns" "$ember" worker --master "${masters[$((i - 1))]}" --host 0.0.0.0 \
        --advertise-host "emh-w$i" --cores 1 --memory 1g --network-timeout 3000 \
        --work-dir "$t/work$i" --secret-file "$t/secret" >"$t/worker$i.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 200); do
    [ "$(grep -c 'registered with' "$t/master.log")" -ge 2 ] && break
    sleep 0.1
done
grep -q "worker worker-.* (emh-w1) registered" "$t/master.log" || fail "worker 1 did not register"
grep -q "worker worker-.* (emh-w2) registered" "$t/master.log" || fail "worker 2 did not register"

# ---------------------------------------------------------------- data and local results
mkdir -p "$t/data"
cd "$t/data"   # relative input paths: made absolute on the submitting side
"$ember" gen text --mib 8 --seed 3 --out text.txt >/dev/null 2>&1
"$ember" gen graph --nodes 3000 --edges 30000 --seed 5 --out edges.txt >/dev/null 2>&1
"$ember" gen ratings --scale 0.01 --seed 7 --out r >/dev/null 2>&1
local_run() {   # NAME ARGS... -> stdout
    "$ember" run-example --quiet --master 'local[2]' "$@"
}
local_run wordcount text.txt "$t/wc_local" >"$t/wc_local.txt" 2>"$t/wc_local.log"
local_run pagerank edges.txt 5 "$t/pr_local" >"$t/pr_local.txt" 2>"$t/pr_local.log"
local_run alsjob r.train.tsv r.test.tsv >"$t/als_local.txt" 2>"$t/als_local.log"

submit() {   # OUT_PREFIX JOB ARGS...
    local out=$1
    shift
    in_ns "$ns_m" "$ember" submit --quiet --master "ember://emh-master:$port" \
        --secret-file "$t/secret" --executor-cores 1 --executor-memory 512m \
        --conf ember.ui.port=0 --conf ember.driver.host=emh-master \
        --conf ember.driver.port=7100-7110 --conf ember.blockManager.port=7200-7210 \
        --conf ember.network.timeoutMs=3000 "$ex/$1.so" "${@:2}" >"$out.txt" 2>"$out.log"
}
same_parts() { diff <(cat "$1"/part-* | sort) <(cat "$2"/part-* | sort) >/dev/null; }

submit "$t/wc_cluster" wordcount text.txt "$t/wc_cluster" ||
    fail "wordcount on two hosts failed: $(tail -5 "$t/wc_cluster.log")"
cmp "$t/wc_local.txt" "$t/wc_cluster.txt" || fail "wordcount: printed output differs"
same_parts "$t/wc_local" "$t/wc_cluster" || fail "wordcount: saved output differs"
grep -q "started executor" "$t/worker1.log" || fail "worker 1 ran no executor"
grep -q "started executor" "$t/worker2.log" || fail "worker 2 ran no executor"

submit "$t/pr_cluster" pagerank edges.txt 5 "$t/pr_cluster" ||
    fail "pagerank on two hosts failed: $(tail -5 "$t/pr_cluster.log")"
cmp "$t/pr_local.txt" "$t/pr_cluster.txt" || fail "pagerank: top ranks differ"
same_parts "$t/pr_local" "$t/pr_cluster" || fail "pagerank: saved ranks differ"

submit "$t/als_cluster" alsjob r.train.tsv r.test.tsv ||
    fail "ALS on two hosts failed: $(tail -5 "$t/als_cluster.log")"
cmp "$t/als_local.txt" "$t/als_cluster.txt" ||
    fail "ALS: $(cat "$t/als_cluster.txt") vs local $(cat "$t/als_local.txt")"

# ---------------------------------------------------------------- an input only the driver sees
# The driver runs in a private mount namespace holding a tmpfs over $t/private: it lists the
# input, the executors (other mount namespaces) find nothing there. The job fails, and the
# error names the host that could not read it and the path.
mkdir -p "$t/private"
set +e
in_ns "$ns_m" unshare -m sh -c 'mount -t tmpfs none "$1" && echo "a b a" >"$1/in.txt" &&
    shift && exec "$@"' sh "$t/private" "$ember" submit --quiet \
    --master "ember://emh-master:$port" --secret-file "$t/secret" --executor-cores 1 \
    --conf ember.ui.port=0 --conf ember.driver.host=emh-master \
    --conf ember.task.maxFailures=2 "$ex/wordcount.so" "file://$t/private/in.txt" \
    "$t/wc_private" >"$t/private.txt" 2>"$t/private.log"
prc=$?
set -e
[ $prc -ne 0 ] || fail "a job whose input no executor can read succeeded"
grep -q "on the executor at emh-w[12]:[0-9]*: .*$t/private/in.txt" "$t/private.log" ||
    fail "unreadable input: the error does not name the host and path: $(tail -3 "$t/private.log")"

# ---------------------------------------------------------------- a host lost mid-job
# Without --quiet the driver logs executor registrations (with the address each one
# advertised: its host's name and a port of ember.blockManager.port) and losses.
in_ns "$ns_m" "$ember" submit --master "ember://emh-master:$port" \
    --secret-file "$t/secret" --executor-cores 1 --executor-memory 512m \
    --conf ember.ui.port=0 --conf ember.driver.host=emh-master \
    --conf ember.driver.port=7100-7110 --conf ember.blockManager.port=7200-7210 \
    --conf ember.network.timeoutMs=3000 "$ex/alsjob.so" r.train.tsv r.test.tsv 8 12 0.05 \
    >"$t/als_down.txt" 2>"$t/als_down.log" &
job=$!
pids+=($job)
downed=0
for _ in $(seq 1200); do
    # training under way on both hosts: take worker 2's host off the network
    if grep -q "alsjob: iteration 2 done" "$t/als_down.log"; then
        ip -n "$ns_2" link set vw2 down && downed=1
        break
    fi
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
done
[ $downed = 1 ] || fail "the job ended before worker 2's link could be taken down"
wait "$job" || fail "ALS with a host lost mid-job failed: $(tail -5 "$t/als_down.log")"
local_run alsjob r.train.tsv r.test.tsv 8 12 0.05 >"$t/als_down_local.txt" 2>/dev/null
cmp "$t/als_down_local.txt" "$t/als_down.txt" ||
    fail "ALS after a lost host: $(cat "$t/als_down.txt") vs local $(cat "$t/als_down_local.txt")"
for i in 1 2; do
    grep -q "driver: executor .* registered .*shuffle emh-w$i:72[01][0-9])" "$t/als_down.log" ||
        fail "no executor of worker $i registered at emh-w$i:7200-7210"
done
grep -q "driver: executor .* (emh-w2:72[01][0-9]) lost" "$t/als_down.log" ||
    fail "the driver did not report worker 2's executor lost: $(grep -i lost "$t/als_down.log")"
for _ in $(seq 100); do grep -q "(emh-w2) lost" "$t/master.log" && break; sleep 0.1; done
grep -q "(emh-w2) lost" "$t/master.log" || fail "the master did not find worker 2 lost"

echo "test_multihost: ok (3 namespaces, wordcount, pagerank and ALS as in local mode; a host lost mid-job)"

#!/usr/bin/env bash
# bench/multihost_veth.sh BUILD_DIR [TEXT_FILE] - the cost of a real network between hosts:
# wordcount of TEXT_FILE (default BUILD_DIR/bench/text-256m.txt) on a standalone cluster of two
# one-core workers in their own network namespaces (veth pairs and a bridge, as
# tests/integration/test_multihost.sh builds them) beside local-cluster[2,1] on loopback,
# alternating, 3 runs each. Prints per run: wall seconds and the CPU seconds of the
# command's process tree (local-cluster's executors are its children and counted; a
# standalone cluster's run under the workers and are not: compare the wall times), then the
# median wall times and their ratio. Root only; tears everything down at exit. Use a Release build on a quiet
# machine: on a loaded one the wall times say little.
# WORKLOAD=als runs ALS instead (examples/alsjob: rank 10, 10 iterations, lambda 0.02) on
# RATINGS.train.tsv / RATINGS.test.tsv (RATINGS defaults to BUILD_DIR/bench/ratings-0.1, as
# bench/crypto.sh generates it).
set -euo pipefail
build=$(cd "${1:?usage: multihost_veth.sh BUILD_DIR [TEXT_FILE]}" && pwd)
ember=$build/bin/ember
text=${2:-$build/bench/text-256m.txt}
workload=${WORKLOAD:-wc}
ratings=${RATINGS:-$build/bench/ratings-0.1}
[ "$(id -u)" = 0 ] || { echo "multihost_veth: needs root (network namespaces)" >&2; exit 1; }
[ -f "$text" ] || { echo "multihost_veth: no input $text" >&2; exit 1; }
tag=$$ ns_m=emb-m-$$ ns_1=emb-w1-$$ ns_2=emb-w2-$$
t=$(mktemp -d /tmp/ember-veth-bench-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for ns in "$ns_m" "$ns_1" "$ns_2"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$t"
}
trap cleanup EXIT
for ns in "$ns_m" "$ns_1" "$ns_2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$ns_m" link add br0 type bridge
ip -n "$ns_m" addr add 10.213.0.1/24 dev br0
ip -n "$ns_m" link set br0 up
for i in 1 2; do
    ns=$ns_1; [ $i = 2 ] && ns=$ns_2
    ip link add "vw$i" netns "$ns" type veth peer name "vm$i" netns "$ns_m"
    ip -n "$ns_m" link set "vm$i" master br0
    ip -n "$ns_m" link set "vm$i" up
    ip -n "$ns" addr add "10.213.0.$((i + 1))/24" dev "vw$i"
    ip -n "$ns" link set "vw$i" up
done
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$t/secret"
chmod 600 "$t/secret"
ip netns exec "$ns_m" "$ember" master --host 10.213.0.1 --port 7077 --ui-port 0 \
    --secret-file "$t/secret" >"$t/master.log" 2>&1 &
pids+=($!)
sleep 1
for i in 1 2; do
    ns=$ns_1; [ $i = 2 ] && ns=$ns_2
    ip netns exec "$ns" "$ember" worker --master ember://10.213.0.1:7077 \
        --host "10.213.0.$((i + 1))" --cores 1 --memory 2g --work-dir "$t" \
        --secret-file "$t/secret" >"$t/worker$i.log" 2>&1 &
    pids+=($!)
done
sleep 2
run() {   # LABEL CMD... -> "LABEL wall cpu"
    local label=$1 s e
    shift
    rm -rf "$t/out"
    s=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$t/time" "$@" >/dev/null 2>"$t/run.log" ||
        { echo "$label failed: $(tail -3 "$t/run.log")" >&2; exit 1; }
    e=$(date +%s.%N)
    echo "$label $(echo "$e - $s" | bc) $(awk '{print $1 + $2}' "$t/time")"
}
if [ "$workload" = als ]; then
    job=alsjob args=("$ratings.train.tsv" "$ratings.test.tsv" 10 10 0.02)
else
    job=wordcount args=("$text" "$t/out")
fi
for r in 1 2 3; do
    run veth ip netns exec "$ns_m" "$ember" submit --quiet --master ember://10.213.0.1:7077 \
        --secret-file "$t/secret" --executor-cores 1 --executor-memory 1g \
        --conf ember.ui.port=0 --conf ember.driver.host=10.213.0.1 \
        "$build/lib/ember/examples/$job.so" "${args[@]}"
    run loopback "$ember" run-example --quiet --master 'local-cluster[2,1]' "$job" "${args[@]}"
done | tee "$t/results"
median() { grep "^$1 " "$t/results" | cut -d' ' -f2 | sort -g | sed -n 2p; }
v=$(median veth) l=$(median loopback)
echo "veth median wall $v s, loopback median wall $l s, ratio $(echo "scale=3; $v / $l" | bc)"

#!/usr/bin/env bash
# tests/integration/test_apitour.sh BUILD_DIR - every transformation and action of
# engine/ember.h gives the same result in local-cluster[2,1] as in local[2] (and local[1]):
#  1. the apitour example (examples/apitour/: one canonical line per operation, seeded
#     data with empty partitions, a 300 000-byte key and records over 1 MiB) runs under the
#     three masters; the outputs must be byte-identical, complete and error-free;
#  2. a task that fails its first attempt is retried on another executor: `apitour retry`
#     in local-cluster[2,1] fails every task of a 4-task stage once and reports, from the
#     pids the attempts ran in, that all 4 retries ran in the other executor process;
#  3. no executor process and no temporary file is left behind (runs use TMPDIR=$tmp/t);
#  4. cache locality: a cached dataset read by several actions (and by a shuffle's map
#     stage) is computed once per record in local-cluster[2,1] as in local mode (the
#     persist.* lines count computations with an accumulator; the tours run with a long
#     ember.locality.wait so that a slow machine never sends a task away from its block).
source "$(dirname "$0")/cluster_lib.sh" apitour "${1:-}"

# tour NAME MASTER: runs the tour into $tmp/NAME.out
tour() {
    local name=$1 master=$2 t0
    mkdir -p "$tmp/w-$name"
    t0=$(date +%s.%N)
    if ! TMPDIR=$tmp/t "$ember" run-example --quiet --master "$master" \
        --conf "ember.checkpoint.dir=$tmp/ck-$name" --conf ember.locality.wait=1h \
        apitour tour "$tmp/w-$name" 7 \
        >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        fail "$name ($master): exit status $?: $(grep -v '^apitour: persist' "$tmp/$name.err" |
            head -c 800)"
    fi
    echo "$name ($master): $(echo "$(date +%s.%N) - $t0" | bc) s"
    check_clean "$name"
}

# ---------------------------------------------------------------- 1. same results
tour local2 'local[2]'
tour cluster 'local-cluster[2,1]'
tour local1 'local[1]'

out=$tmp/local2.out
grep -q '^apitour: 0 unexpected error(s)$' "$out" || fail "local[2]: the tour did not finish cleanly"
if grep -q 'ERROR' "$out"; then fail "local[2]: $(grep ERROR "$out" | head -3)"; fi
# Every operation of engine/ember.h has its line (a truncated or shortened tour fails here).
for op in parallelize.bytes parallelize.fixed parallelize.kv range.up range.down text_file \
    whole_text_files map flat_map filter map_partitions map_values+broadcast flat_map_values \
    key_by keys values union distinct sample sample.replacement glom cartesian zip_with_index \
    repartition coalesce coalesce.shuffle reduce_by_key fold_by_key aggregate_by_key \
    combine_by_key combine_by_key.lists group_by_key join left_outer_join right_outer_join \
    full_outer_join cogroup sort_by_key.asc sort_by_key.desc sort_by.asc sort_by.desc \
    partition_by.hash partition_by.range reduce fold aggregate tree_aggregate.depth2 count.kv \
    count_by_key count_by_value take first take_ordered top take_sample \
    take_sample.replacement lookup lookup.partitioned lookup.huge_key save_as_text_file \
    foreach_partition persist.level1 persist.level2 persist.level3 persist.shuffled checkpoint \
    local_checkpoint group_by_key.big join.big sort_by_key.big; do
    grep -q "^$op: " "$out" || fail "the tour has no line for '$op'"
done
# Spot checks against values computed independently (sum 0..199; 0..199 has 29 multiples
# of 7; the range 100, 93, ..., -47 has 22 elements).
grep -qx 'reduce: 19900' "$out" || fail "reduce: $(grep '^reduce:' "$out")"
grep -q '^filter: n=29 ' "$out" || fail "filter: $(grep '^filter:' "$out" | head -c 200)"
grep -q '^range.down: n=22 ' "$out" || fail "range.down: $(grep '^range.down:' "$out" | head -c 200)"
grep -qx 'persist.level1: count=200/200 sum=19900 computed=200' "$out" ||
    fail "persist: $(grep '^persist.level1:' "$out")"
# 4. Every record of a cached dataset computed once, in every mode (cluster: cache locality).
for other in local2 cluster local1; do
    for l in 1 2 3; do
        grep -qx "persist.level$l: count=200/200 sum=19900 computed=200" "$tmp/$other.out" ||
            fail "$other: cached records recomputed: $(grep "^persist.level$l:" "$tmp/$other.out")"
    done
    grep -q '^persist.shuffled: count=301 keys=26 computed=301$' "$tmp/$other.out" ||
        fail "$other: cached records recomputed: $(grep '^persist.shuffled:' "$tmp/$other.out")"
done

for other in cluster local1; do
    if ! cmp -s "$out" "$tmp/$other.out"; then
        fail "$other: output differs from local[2]'s:"
        diff "$out" "$tmp/$other.out" | cut -c1-300 | head -20 || true
    fi
done

# ---------------------------------------------------------------- 2. retry elsewhere
mkdir -p "$tmp/w-retry"
if ! TMPDIR=$tmp/t "$ember" run-example --quiet --master 'local-cluster[2,1]' apitour retry \
    "$tmp/w-retry" >"$tmp/retry.out" 2>"$tmp/retry.err"; then
    fail "retry: exit status: $(head -c 800 "$tmp/retry.err")"
fi
grep -qx 'retry: 4 of 4 retried on another executor' "$tmp/retry.out" ||
    fail "retry: not every retry ran on another executor: $(cat "$tmp/retry.out")"
[ "$(ls "$tmp/w-retry" | grep -c '^fail-')" = 4 ] || fail "retry: not every first attempt failed"
check_clean retry

finish

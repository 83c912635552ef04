#!/usr/bin/env bash
# tests/integration/test_batches.sh BUILD_DIR - batch access and fixed-width datasets across
# processes: `batchsum check ckpt` (examples/batchsum.c) sums FIXED datasets of widths 8 to
# 800 bytes (cached, DISK_ONLY, shuffled, coalesced, checkpointed, made by map_fixed,
# flat_map_fixed and map_partitions_fixed) through em_iter_next_batch and through
# em_iter_next; every batch must be FIXED of its width and 64-byte aligned (else the job
# fails). local-cluster[2,1] must print exactly what local[2] prints, with no mismatch,
# and leave no executor or temporary file behind.
source "$(dirname "$0")/cluster_lib.sh" batches "${1:-}"

run() {   # NAME MASTER
    mkdir -p "$tmp/ck-$1"
    if ! TMPDIR=$tmp/t "$ember" run-example --quiet --master "$2" \
        --conf "ember.checkpoint.dir=$tmp/ck-$1" --conf ember.checkpoint.cleanup=true \
        batchsum check ckpt >"$tmp/$1.out" 2>"$tmp/$1.err"; then
        fail "$1 ($2): exit status: $(head -c 800 "$tmp/$1.err") $(grep -m3 'ERROR\|MISMATCH' "$tmp/$1.out")"
    fi
    check_clean "$1"
}

run local 'local[2]'
run cluster 'local-cluster[2,1]'
for name in local cluster; do
    grep -qx 'batchsum: 0 mismatch(es)' "$tmp/$name.out" || fail "$name: $(tail -1 "$tmp/$name.out")"
    [ "$(grep -c 'batch=same aligned$' "$tmp/$name.out")" -eq 28 ] ||
        fail "$name: $(grep -c 'batch=same aligned$' "$tmp/$name.out") of 28 lines agree"
done
cmp -s "$tmp/local.out" "$tmp/cluster.out" ||
    fail "local[2] and local-cluster[2,1] differ: $(diff "$tmp/local.out" "$tmp/cluster.out" | head -5)"
finish

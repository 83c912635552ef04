#!/usr/bin/env bash
# tests/integration/test_broadcast.sh BUILD_DIR - broadcasts, task results and context blobs
# of any size in real executor processes (examples/bcast.c):
#  1. local-cluster[2,1]: broadcasts of 0 B, 1 B, 64 MiB + 1 and 200 MiB reach every task
#     byte for byte (crc32c), each executor fetches each value once (none of the two small
#     ones: they are pushed to the executors when made), the executors' block
#     stores are empty after em_broadcast_destroy, and a 200 MiB task result arrives intact;
#     a 40 MiB value read by one executor first and then by the other (whose pieces the
#     driver seals again: its few sealed pieces moved on) reaches every task too;
#  2. local-cluster[2,2]: two tasks at a time per executor still fetch each value once;
#  3. a fold whose 60 MiB zero value would not fit one frame inline succeeds (it travels
#     beside the stage JSON, "zero_ref") and returns the zero value byte for byte;
#  4. an 8 MB context blob on a 32-task stage (fetched once per executor) works;
#  5. pieces sealed with AES-256-GCM (ember.network.crypto.cipher) instead of the default
#     AES-128-OCB reach every task too.
# Each run leaves no executor process and no file behind.
source "$(dirname "$0")/cluster_lib.sh" broadcast "${1:-}"

run() {   # NAME MASTER ARGS...
    local name=$1 master=$2
    shift 2
    if ! TMPDIR=$tmp/t timeout 400 "$ember" run-example --quiet --master "$master" bcast "$@" \
            > "$tmp/$name.out" 2> "$tmp/$name.err"; then
        fail "$name: exit status $?: $(tail -3 "$tmp/$name.out" "$tmp/$name.err")"
    fi
    check_clean "$name"
}

run big 'local-cluster[2,1]' check 200
for want in 'broadcast of 0 bytes on 8 tasks: ok (0 fetches)' \
            'broadcast of 1 bytes on 8 tasks: ok (0 fetches)' \
            'broadcast of 67108865 bytes on 8 tasks: ok (2 fetches)' \
            'broadcast of 209715200 bytes on 8 tasks: ok (2 fetches)' \
            'broadcast of 41943043 bytes read by one executor, then the others: ok (2 fetches)' \
            "executors' stores empty after destroy: ok" \
            'task result of 209715200 bytes: ok'; do
    grep -qF "bcast: $want" "$tmp/big.out" || fail "big: no line '$want'"
done

run concurrent 'local-cluster[2,2]' check 4
grep -qF 'bcast: broadcast of 4194304 bytes on 8 tasks: ok (2 fetches)' "$tmp/concurrent.out" ||
    fail "concurrent: $(cat "$tmp/concurrent.out")"

run hugeblob 'local-cluster[2,1]' hugeblob 60
grep -qF 'bcast hugeblob: fold with a 60 MiB zero value: ok' "$tmp/hugeblob.out" ||
    fail "hugeblob: $(cat "$tmp/hugeblob.out")"

run blob 'local-cluster[2,1]' blob 8 1
grep -q '^bcast blob: 32 tasks: 8 MB blob' "$tmp/blob.out" || fail "blob: $(cat "$tmp/blob.out")"

EMBER_NETWORK_CRYPTO_CIPHER=aes-256-gcm run gcm 'local-cluster[2,1]' check 4
grep -qF 'bcast: broadcast of 4194304 bytes on 8 tasks: ok (2 fetches)' "$tmp/gcm.out" ||
    fail "gcm: $(cat "$tmp/gcm.out")"

finish

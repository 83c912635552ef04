#!/usr/bin/env bash
# bench/crypto.sh [BUILD_DIR] - what sealing every link (ember.network.crypto: AES-256-GCM
# frames, broadcast pieces under ember.network.crypto.cipher, default AES-128-OCB;
# docs/security.md) costs. Each workload runs in local-cluster[2,1] with crypto on (the
# default) and then off (EMBER_NETWORK_CRYPTO=false, for the driver and its executors
# alike), the two back to back so that both see the same machine:
#   bcast256  a 256 MiB broadcast read by 2 executors, 3 rounds (examples/bcast.c bench;
#             the time is the median "job reading it")
#   bcast8    an 8 MiB broadcast, 15 rounds (the same)
#   wc        wordcount of 256 MiB of generated text (seed 1)
#   kv        reduce_by_key of 20,000,000 pairs over 2,000,000 keys (examples/kvbench.c)
#   als       ALS on Netflix-shaped ratings at scale 0.1 (10M ratings), rank 10, 10 iterations
# Prints each run's measure.py JSON line, then per workload the on/off ratio of the time
# and of the CPU seconds (all processes). Goal (issue 18): at most 10% slower with crypto
# on. The machine may be shared: look at others_cpu_s and rerun when it is not near 0.
# CRYPTO_BENCH=bcast8,wc runs a subset; CRYPTO_ALS_SCALE (0.1), CRYPTO_ALS_ITERS (10),
# CRYPTO_KV_PAIRS (20000000) size the runs. CRYPTO_CIPHER=aes-256-gcm (or aes-128-gcm) runs
# the crypto-on side with that piece cipher instead of the default.
set -euo pipefail
source "$(dirname "$0")/common.bash"

which=${CRYPTO_BENCH:-bcast256,bcast8,wc,kv,als}
scale=${CRYPTO_ALS_SCALE:-0.1}
iters=${CRYPTO_ALS_ITERS:-10}
kvpairs=${CRYPTO_KV_PAIRS:-20000000}
master='local-cluster[2,1]'
declare -A secs cpus

text=$benchdir/text-256m.txt
if [[ ,$which, == *,wc,* ]] && [ ! -f "$text" ]; then
    echo "bench: generating $text (256 MiB, seed 1)"
    "$ember" gen text --mib 256 --seed 1 --out "$text"
fi
ratings=$benchdir/ratings-$scale
if [[ ,$which, == *,als,* ]] && [ ! -f "$ratings.train.tsv" ]; then
    echo "bench: generating $ratings (scale $scale, seed 1)"
    "$ember" gen ratings --scale "$scale" --seed 1 --out "$ratings"
fi

field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# one WORKLOAD MODE CMD...: runs CMD measured with EMBER_NETWORK_CRYPTO=MODE; records its
# wall (or, for broadcasts, the bench's median job time) and CPU seconds.
one() {
    local w=$1 mode=$2 line; shift 2
    rm -rf "$benchdir/crypto-wc-out"
    line=$(EMBER_NETWORK_CRYPTO=$mode EMBER_NETWORK_CRYPTO_CIPHER=${CRYPTO_CIPHER:-} \
        /usr/bin/python3 "$measure" --label "crypto-$w-$mode" \
        --out "$benchdir/crypto-$w-$mode" -- "$@")
    echo "$line"
    [ "$(field "$line" exit)" = 0 ] ||
        { echo "bench: crypto-$w-$mode failed; see $benchdir/crypto-$w-$mode.run0.err" >&2; exit 1; }
    secs[$w-$mode]=$(field "$line" wall_s)
    cpus[$w-$mode]=$(field "$line" cpu_s)
    if [[ $w == bcast* ]]; then
        local med
        med=$(grep 'medians of' "$benchdir/crypto-$w-$mode.run0.out")
        echo "  $mode: $med"
        secs[$w-$mode]=$(sed -n 's/.*job reading it \([0-9.]*\) ms.*/\1/p' <<<"$med" |
            awk '{ print $1 / 1000 }')
    fi
}

for w in ${which//,/ }; do
    for mode in true false; do
        case $w in
        bcast256) one "$w" "$mode" "$ember" run-example --quiet --master "$master" bcast bench 256 3 ;;
        bcast8) one "$w" "$mode" "$ember" run-example --quiet --master "$master" bcast bench 8 15 ;;
        wc) one "$w" "$mode" "$ember" run-example --quiet --master "$master" wordcount "$text" \
                "$benchdir/crypto-wc-out" ;;
        kv) one "$w" "$mode" "$ember" run-example --quiet --master "$master" kvbench "$kvpairs" 2000000 ;;
        als) one "$w" "$mode" "$ember" als --train "$ratings.train.tsv" --test "$ratings.test.tsv" \
                --rank 10 --iterations "$iters" --lambda 0.02 --master "$master" --json ;;
        *) echo "bench: unknown workload '$w' (bcast256, bcast8, wc, kv, als)" >&2; exit 2 ;;
        esac
    done
done
rm -rf "$benchdir/crypto-wc-out"

echo "workload   time on    time off   ratio   | cpu on   cpu off   ratio"
for w in ${which//,/ }; do
    /usr/bin/python3 -c 'import sys
w, on, off, con, coff = sys.argv[1], *map(float, sys.argv[2:])
print(f"{w:9s} {on:8.3f} s {off:8.3f} s {on / off:6.2f}x  | {con:6.2f} s {coff:6.2f} s {con / coff:6.2f}x")' \
        "$w" "${secs[$w-true]}" "${secs[$w-false]}" "${cpus[$w-true]}" "${cpus[$w-false]}"
done

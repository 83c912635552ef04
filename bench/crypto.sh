#!/usr/bin/env bash
# bench/crypto.sh [BUILD_DIR] - what sealing every link (ember.network.crypto, AES-256-GCM,
# docs/security.md) costs: each workload in local-cluster[2,1] with crypto on (the default)
# and off (EMBER_NETWORK_CRYPTO=false, for the driver and its executors alike):
#   1. wordcount of 256 MiB of generated text (seed 1)
#   2. a 256 MiB broadcast to 2 executors, 5 rounds (examples/bcast.c bench)
#   3. ALS on Netflix-shaped ratings at scale 0.1 (10M ratings), rank 10, 10 iterations
# Prints each run's measure.py JSON line, then on/off time ratios. The machine may be
# shared: look at others_cpu_s and rerun when it is not near 0. CRYPTO_BENCH=wc,bcast runs
# a subset; CRYPTO_ALS_SCALE (0.1) and CRYPTO_ALS_ITERS (10) size the ALS run.
set -euo pipefail
source "$(dirname "$0")/common.bash"

which=${CRYPTO_BENCH:-wc,bcast,als}
scale=${CRYPTO_ALS_SCALE:-0.1}
iters=${CRYPTO_ALS_ITERS:-10}
master='local-cluster[2,1]'
declare -A walls

text=$benchdir/text-256m.txt
if [[ $which == *wc* ]] && [ ! -f "$text" ]; then
    echo "bench: generating $text (256 MiB, seed 1)"
    "$ember" gen text --mib 256 --seed 1 --out "$text"
fi
ratings=$benchdir/ratings-$scale
if [[ $which == *als* ]] && [ ! -f "$ratings.train.tsv" ]; then
    echo "bench: generating $ratings (scale $scale, seed 1)"
    "$ember" gen ratings --scale "$scale" --seed 1 --out "$ratings"
fi

for mode in true false; do
    export EMBER_NETWORK_CRYPTO=$mode
    if [[ $which == *wc* ]]; then
        rm -rf "$benchdir/crypto-wc-out"
        run_measured "crypto-wc-$mode" "$ember" run-example --quiet --master "$master" \
            wordcount "$text" "$benchdir/crypto-wc-out"
        walls[wc-$mode]=$wall
    fi
    if [[ $which == *bcast* ]]; then
        run_measured "crypto-bcast-$mode" "$ember" run-example --quiet --master "$master" \
            bcast bench 256 5
        grep 'medians of' "$benchdir/crypto-bcast-$mode.run0.out" || true
        walls[bcast-$mode]=$wall
    fi
    if [[ $which == *als* ]]; then
        run_measured "crypto-als-$mode" "$ember" als --train "$ratings.train.tsv" \
            --test "$ratings.test.tsv" --rank 10 --iterations "$iters" --lambda 0.02 \
            --master "$master" --json
        walls[als-$mode]=$wall
    fi
done
unset EMBER_NETWORK_CRYPTO
rm -rf "$benchdir/crypto-wc-out"

for w in wc bcast als; do
    [ -n "${walls[$w-true]:-}" ] || continue
    /usr/bin/python3 -c 'import sys; w, on, off = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]); print(f"{w:6s} crypto on {on:8.2f} s, off {off:8.2f} s: {100 * (on / off - 1):+.1f}%")' \
        "$w" "${walls[$w-true]}" "${walls[$w-false]}"
done

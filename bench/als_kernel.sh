#!/usr/bin/env bash
# bench/als_kernel.sh [BUILD_DIR [BASE_BUILD_DIR]] - builds bench/als_kernel.c against the
# static libraries of BUILD_DIR (default build) and, if given, of BASE_BUILD_DIR (an older
# build, e.g. /work/main/build), then runs them alternately, three rounds: ranks 10 and 50,
# rows in L1 (window 256), at random among 480k rows (5600 ratings per item: the item side
# at Netflix scale; 30 MB at rank 10, 96 MB at rank 50) and among 17.7k (200 ratings per
# user: the user side); then the rank-50 Cholesky solve (microseconds per solve).
# CPU time per rating; on a loaded machine compare the two side by side, as printed.
set -euo pipefail
# shellcheck source=bench/static.bash
. "$(dirname "$0")/static.bash"
static_builds bench/als_kernel.c "$@"
for round in 1 2 3; do
    for i in "${!builds[@]}"; do
        for rank in 10 50; do
            for args in "480000 256 0 5600" "480000 480000 0 5600" "17700 17700 0 200"; do
                printf '%s (round %d): ' "${builds[$i]}" "$round"
                # shellcheck disable=SC2086
                "$tmp/bin$i" $rank $args
            done
        done
        printf '%s (round %d): ' "${builds[$i]}" "$round"
        "$tmp/bin$i" 50 480000 480000 2 200
    done
done

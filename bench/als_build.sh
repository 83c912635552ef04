#!/usr/bin/env bash
# bench/als_build.sh [BUILD_DIR [BASE_BUILD_DIR]] - builds bench/als_build.c against the
# static libraries of BUILD_DIR (default build) and, if given, of BASE_BUILD_DIR (an older
# build), then runs them alternately, three rounds: the executors' build of block 0 of 2 on
# each side from 100M Netflix-shaped ratings (about 50M per block), in random line order and
# grouped by user. CPU seconds per block build, without a cluster: the setup's builds
# measured alone, where a whole run's phases vary by tenths of a second between runs.
# Needs about 3 GB of memory.
set -euo pipefail
# shellcheck source=bench/static.bash
. "$(dirname "$0")/static.bash"
static_builds bench/als_build.c "$@"
for round in 1 2 3; do
    for i in "${!builds[@]}"; do
        for order in 0 1; do
            "$tmp/bin$i" 100 "$order" 2 | sed "s|^|${builds[$i]} (round $round): |"
        done
    done
done

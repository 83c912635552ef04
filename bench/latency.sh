#!/usr/bin/env bash
# bench/latency.sh [BUILD_DIR] - small-job latency (the latency example): a 12-task
# join + group by + order by on small data (1000 x 100 pairs), and a depth-2 tree_aggregate
# over 32 partitions, each run RUNS times (default 200, after 5 warm-up runs) in one
# application, in local[2] and local-cluster[2,1], with the local dir on disk
# ($BENCH_LOCAL_DIR, default the build's bench dir; put it on tmpfs to see the disk's share).
# Prints the example's median, p90 and minimum per mode and master; goals (issue 9): join
# under 5 ms in local[2] and under 15 ms in local-cluster[2,1]. Each application's wall
# time and CPU (measure.py) is printed too: look at others_cpu_s, the machine may be shared.
set -euo pipefail
source "$(dirname "$0")/common.bash"

runs=${RUNS:-200}
localdir=${BENCH_LOCAL_DIR:-$benchdir/latency-local}
mkdir -p "$localdir"
echo "latency: local dir $localdir ($(df -T "$localdir" | awk 'NR == 2 { print $2 }'))," \
    "$runs runs per line"
printf '%-8s %-20s %10s %10s %10s\n' mode master median_ms p90_ms min_ms
for mode in join treeagg; do
    for master in 'local[2]' 'local-cluster[2,1]'; do
        label=latency-$mode-$(echo "$master" | tr -c 'a-z0-9\n' '_')
        TMPDIR=$localdir run_measured "$label" "$ember" run-example --quiet --master "$master" \
            --conf "ember.local.dir=$localdir" latency "$mode" "$runs" >/dev/null
        out=$benchdir/$label.run0.out
        grep -q '^check	ok$' "$out" || { echo "latency: $mode $master: wrong result" >&2; exit 1; }
        v() { awk -F '\t' -v k="$1" '$1 == k { print $2 }' "$out"; }
        printf '%-8s %-20s %10s %10s %10s\n' "$mode" "$master" "$(v median_ms)" "$(v p90_ms)" \
            "$(v min_ms)"
    done
done

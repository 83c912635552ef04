#!/usr/bin/env bash
# bench/reduce_by_key.sh [BUILD_DIR] - reduce_by_key of 50,000,000 (key, 1) pairs over
# 2,000,000 distinct keys (the kvbench example, local[2]): wall time and peak RSS.
set -euo pipefail
source "$(dirname "$0")/common.bash"

npairs=${NPAIRS:-50000000}   # NPAIRS/NKEYS override for a quick try
nkeys=${NKEYS:-2000000}
run_measured kvbench "$ember" run-example --quiet --master 'local[2]' kvbench "$npairs" "$nkeys"
cat "$benchdir/kvbench.run0.out"
/usr/bin/python3 - "$wall" "$rss_kb" "$npairs" <<'PY'
import sys
wall, rss, n = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"kvbench: {wall:.2f} s wall, {n / wall / 1e6:.1f} M pairs/s, peak RSS {rss / 1024:.0f} MiB")
PY

#!/usr/bin/env bash
# bench/wordcount.sh [BUILD_DIR] - word count of 1 GiB of generated text (seed 1;
# BENCH_MIB=N for another size):
# ember (local[2]) vs `tr | sort | uniq -c` vs Python's collections.Counter.
# Prints each run's measure.py JSON line, then MB/s and time ratios against ember.
# The machine may be shared: look at others_cpu_s and rerun when it is not near 0.
set -euo pipefail
source "$(dirname "$0")/common.bash"

mib=${BENCH_MIB:-1024}   # BENCH_MIB=64 for a quick try
text=$benchdir/text-${mib}m.txt
if [ ! -f "$text" ]; then
    echo "bench: generating $text ($mib MiB, seed 1)"
    "$ember" gen text --mib "$mib" --seed 1 --out "$text"
fi
mb=$(/usr/bin/python3 -c 'import os,sys; print(os.path.getsize(sys.argv[1]) / 1e6)' "$text")

rm -rf "$benchdir/wc-ember-out"
run_measured wc-ember "$ember" run-example --quiet --master 'local[2]' wordcount "$text" \
    "$benchdir/wc-ember-out"
ember_wall=$wall
run_measured wc-sort bash -c "LC_ALL=C tr -s ' ' '\\n' < '$text' | LC_ALL=C sort | uniq -c > '$benchdir/wc-sort.out'"
sort_wall=$wall
run_measured wc-python /usr/bin/python3 "$root/bench/wc_counter.py" "$text" "$benchdir/wc-python.out"
py_wall=$wall

/usr/bin/python3 - "$mb" "$ember_wall" "$sort_wall" "$py_wall" <<'PY'
import sys
mb, e, s, p = map(float, sys.argv[1:])
print(f"input {mb:.0f} MB")
for name, w in (("ember local[2]", e), ("tr|sort|uniq -c", s), ("python Counter", p)):
    print(f"{name:16s} {w:8.2f} s  {mb / w:8.1f} MB/s  {w / e:6.2f}x ember's time")
PY

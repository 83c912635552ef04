#!/usr/bin/env bash
# bench/wordcount.sh [BUILD_DIR] - word count of 256 MiB of generated text (seed 1;
# BENCH_MIB=N for another size, BENCH_TEXT=FILE to count an existing file instead):
# ember (local[2]) vs Python's collections.Counter (bench/wc_counter.py) vs
# `tr | sort | uniq -c` (BENCH_SORT=0 skips it), on the same file.
# BENCH_REPEAT=N (default 3) runs ember N times and reports the median; BENCH_BASE=DIR runs
# another build's ember (an earlier commit) alternately with this one, for a before/after
# taken side by side. The counts of every ember run are checked against Counter's (the
# script fails on a difference).
# Prints each run's measure.py JSON line, then MB/s (wall) and MB per CPU second (user+sys,
# steadier than wall on a shared machine) and time ratios against ember (medians).
# The machine may be shared: look at others_cpu_s and rerun when it is not near 0.
set -euo pipefail
source "$(dirname "$0")/common.bash"

mib=${BENCH_MIB:-256}   # BENCH_MIB=64 for a quick try
repeat=${BENCH_REPEAT:-3}
text=${BENCH_TEXT:-$benchdir/text-${mib}m.txt}
if [ ! -f "$text" ]; then
    [ -z "${BENCH_TEXT:-}" ] || { echo "bench: $text not found" >&2; exit 1; }
    echo "bench: generating $text ($mib MiB, seed 1)"
    "$ember" gen text --mib "$mib" --seed 1 --out "$text"
fi
mb=$(/usr/bin/python3 -c 'import os,sys; print(os.path.getsize(sys.argv[1]) / 1e6)' "$text")
base=${BENCH_BASE:-}
if [ -n "$base" ]; then
    case $base in /*) ;; *) base=$root/$base ;; esac
    [ -x "$base/bin/ember" ] || { echo "bench: $base/bin/ember is not built" >&2; exit 1; }
fi

# measured LABEL CMD...: run_measured, plus $cpu (user + sys seconds of the run)
measured() {
    local label=$1 line
    shift
    line=$(/usr/bin/python3 "$measure" --label "$label" --out "$benchdir/$label" -- "$@")
    echo "$line"
    read -r wall cpu status < <(/usr/bin/python3 -c 'import json,sys; r = json.loads(sys.argv[1]); print(r["wall_s"], r["cpu_s"], r.get("exit", -1))' "$line")
    if [ "$status" != 0 ]; then
        echo "bench: $label exited with status $status; see $benchdir/$label.run0.err" >&2
        return 1
    fi
}

measured wc-python /usr/bin/python3 "$root/bench/wc_counter.py" "$text" "$benchdir/wc-python.out"
py_wall=$wall py_cpu=$cpu
LC_ALL=C sort "$benchdir/wc-python.out" >"$benchdir/wc-python.sorted"

# ember_run LABEL EMBER: one measured run; its counts must equal Counter's.
ember_run() {
    local label=$1 bin=$2 out=$benchdir/wc-ember-out
    rm -rf "$out"
    measured "$label" "$bin" run-example --quiet --master 'local[2]' wordcount "$text" "$out"
    if ! cat "$out"/part-* | LC_ALL=C sort | cmp -s - "$benchdir/wc-python.sorted"; then
        echo "bench: $label: counts differ from collections.Counter's" >&2
        exit 1
    fi
    rm -rf "$out"
}

ember_runs=() base_runs=()
for ((i = 0; i < repeat; i++)); do
    if [ -n "$base" ]; then
        ember_run wc-ember-base "$base/bin/ember"
        base_runs+=("$wall/$cpu")
    fi
    ember_run wc-ember "$ember"
    ember_runs+=("$wall/$cpu")
done
echo "counts: every ember run equals collections.Counter's"
sort_run=0/0
if [ "${BENCH_SORT:-1}" != 0 ]; then
    measured wc-sort bash -c "LC_ALL=C tr -s ' ' '\\n' < '$text' | LC_ALL=C sort | uniq -c > '$benchdir/wc-sort.out'"
    sort_run=$wall/$cpu
    rm -f "$benchdir/wc-sort.out"
fi

/usr/bin/python3 - "$mb" "$py_wall/$py_cpu" "$sort_run" "${ember_runs[*]}" "${base_runs[*]:-}" <<'PY'
import statistics, sys
mb = float(sys.argv[1])
def runs(arg):
    return [tuple(map(float, x.split("/"))) for x in arg.split()]
def med(rs):
    return statistics.median(w for w, _ in rs), statistics.median(c for _, c in rs)
ember = runs(sys.argv[4])
base = runs(sys.argv[5]) if sys.argv[5].strip() else []
e_wall, e_cpu = med(ember)
print(f"input {mb:.0f} MB")
print("ember runs (wall/cpu s): " + " ".join(f"{w:.2f}/{c:.2f}" for w, c in ember))
rows = [("ember local[2]", e_wall, e_cpu)]
if base:
    print("base ember runs (wall/cpu s): " + " ".join(f"{w:.2f}/{c:.2f}" for w, c in base))
    rows.append(("base ember", *med(base)))
rows.append(("python Counter", *runs(sys.argv[2])[0]))
if sys.argv[3] != "0/0":
    rows.append(("tr|sort|uniq -c", *runs(sys.argv[3])[0]))
for name, w, c in rows:
    print(f"{name:16s} {w:8.2f} s wall {mb / w:8.1f} MB/s  {w / e_wall:6.2f}x ember's time"
          f"  | {c:8.2f} s cpu {mb / c:8.1f} MB/cpu-s")
PY

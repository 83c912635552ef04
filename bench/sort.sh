#!/usr/bin/env bash
# bench/sort.sh [BUILD_DIR] - the out-of-core sort benchmark: 4 GiB of generated records
# (`ember gen records --mib 4096 --seed 1`, 100-byte lines) sorted by `ember run-example
# sort` with --executor-memory 512m in local-cluster[2,1] (MASTER=... to change), beside
# `LC_ALL=C sort -t $'\t' -k1,1 -S 512M --parallel=2` on the same file. Reports wall time,
# MB/s, the peak RSS of the driver and of each executor process (VmHWM, sampled every
# 0.5 s; goal: under 1.5x the budget) and the bytes ember spilled; checks that both
# outputs have the same key sequence. Needs ~3x the input in free disk (input, ember's
# shuffle files + output, sort's output + temporaries): MIB=256 for a quick try.
set -euo pipefail
source "$(dirname "$0")/common.bash"

mib=${MIB:-4096}
master=${MASTER:-local-cluster[2,1]}
mem=${EXECUTOR_MEMORY:-512m}
data=$benchdir/sort-data
mkdir -p "$data"
input=$data/records-$mib.txt
need_kb=$((mib * 1024 * 3 + 1024 * 1024))
avail_kb=$(df -Pk "$data" | awk 'NR == 2 { print $4 }')
if [ "$avail_kb" -lt "$need_kb" ]; then
    echo "bench: sort needs ~$((need_kb / 1024 / 1024)) GiB free under $data, have $((avail_kb / 1024 / 1024)) GiB" >&2
    exit 1
fi
[ -f "$input" ] || "$ember" gen records --mib "$mib" --seed 1 --out "$input"
bytes=$(stat -c %s "$input")

rm -rf "$data/ember-out"
export EMBER_LOCAL_DIR=$data
# The executors' peak RSS: the last VmHWM seen of every `ember executor` process.
(
    while :; do
        for p in $(pgrep -f 'ember executor' || true); do
            hwm=$(awk '/^VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || true)
            [ -n "$hwm" ] && echo "$p $hwm"
        done
        sleep 0.5
    done
) >"$benchdir/sort_ember.hwm" &
sampler=$!
run_measured sort_ember "$ember" run-example --master "$master" --executor-memory "$mem" \
    sort "$input" "$data/ember-out" || { kill "$sampler"; exit 1; }
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
ember_wall=$wall ember_rss=$rss_kb
exec_rss=$(awk '{ if ($2 > m[$1]) m[$1] = $2 } END { for (p in m) printf "%d ", m[p] / 1024 }' \
    "$benchdir/sort_ember.hwm")
spilled=$(sed -n 's/^sort: .*spilled \([0-9]*\) bytes$/\1/p' "$benchdir/sort_ember.run0.err" | tail -n1)

rm -f "$data/coreutils-out.txt"
run_measured sort_coreutils env LC_ALL=C sort -t "$(printf '\t')" -k1,1 -S 512M --parallel=2 \
    -T "$data" -o "$data/coreutils-out.txt" "$input"
cu_wall=$wall cu_rss=$rss_kb

same=yes
cmp -s <(cat "$data"/ember-out/part-* | cut -f1) <(cut -f1 "$data/coreutils-out.txt") || same=NO
/usr/bin/python3 - "$bytes" "$ember_wall" "$ember_rss" "${spilled:-0}" "$cu_wall" "$cu_rss" \
    "$master" "$mem" "$same" "$exec_rss" <<'PY'
import sys
b, ew, er, sp, cw, cr, master, mem, same, ex = sys.argv[1:]
b, ew, er, sp, cw, cr = int(b), float(ew), int(er), int(sp), float(cw), int(cr)
mb = b / 1e6
print(f"input: {b / 2**30:.2f} GiB ({b // 100} records)")
print(f"ember sort ({master}, --executor-memory {mem}): {ew:.1f} s, {mb / ew:.1f} MB/s, "
      f"peak RSS {er / 1024:.0f} MiB (largest process), spilled {sp / 2**30:.2f} GiB")
if ex.split():
    print(f"  executors' peak RSS (MiB): {', '.join(ex.split())}")
print(f"coreutils sort (-S 512M --parallel=2):     {cw:.1f} s, {mb / cw:.1f} MB/s, "
      f"peak RSS {cr / 1024:.0f} MiB")
print(f"same key order: {same}")
PY
rm -rf "$data/ember-out" "$data/coreutils-out.txt"
[ "$same" = yes ]

# bench/common.bash - sourced by the bench/*.sh scripts (not a benchmark itself).
# Sets: root (repo root), build (BUILD_DIR, default build), ember, benchdir, measure.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
case $build in /*) ;; *) build=$root/$build ;; esac
ember=$build/bin/ember
benchdir=$build/bench
measure=$root/../shared/tools/measure.py
mkdir -p "$benchdir"

[ -x "$ember" ] || { echo "bench: $ember is not built (run 'make build')" >&2; exit 1; }
if [ ! -f "$measure" ]; then
    echo "bench: $measure not found: the benchmarks need the shared measure.py; skipping" >&2
    exit 0
fi
[ -x /usr/bin/python3 ] || { echo "bench: /usr/bin/python3 is needed" >&2; exit 1; }
if [ ! -x /usr/bin/time ]; then
    # measure.py runs commands under /usr/bin/time -v (Debian package `time`).
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends time >/dev/null
    else
        echo "bench: /usr/bin/time is missing; run: sudo apt-get install -y time" >&2
        exit 1
    fi
fi

# run_measured LABEL CMD... : prints measure.py's JSON line and sets $wall, $rss_kb, $status
run_measured() {
    local label=$1 line; shift
    line=$(/usr/bin/python3 "$measure" --label "$label" --out "$benchdir/$label" -- "$@")
    echo "$line"
    wall=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["wall_s"])' "$line")
    rss_kb=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("max_rss_kb", 0))' "$line")
    status=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("exit", -1))' "$line")
    if [ "$status" != 0 ]; then
        echo "bench: $label exited with status $status; see $benchdir/$label.run0.err" >&2
        return 1
    fi
}

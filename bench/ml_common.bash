# bench/ml_common.bash - sourced by bench/ml_pca.sh and bench/ml_svd.sh after common.bash
# (not a benchmark itself). Sets: mldata (generated data, kept between runs), mlgen (the
# generator bench/ml_gen.c, rebuilt when its source is newer), reps (BENCH_REPS, default
# 3); need_python_ml installs the Debian numpy/scipy/sklearn packages when missing.
mldata=${BENCH_ML_DATA:-$benchdir/ml-data}
mlgen=$benchdir/ml_gen
reps=${BENCH_REPS:-3}
mkdir -p "$mldata"
if [ ! -x "$mlgen" ] || [ "$root/bench/ml_gen.c" -nt "$mlgen" ]; then
    cc -O2 -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -o "$mlgen" "$root/bench/ml_gen.c" -lm
fi

need_python_ml() {
    /usr/bin/python3 -c 'import numpy, scipy, sklearn' 2>/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3-numpy python3-scipy python3-sklearn python3-threadpoolctl >/dev/null
    else
        echo "bench: run: sudo apt-get install -y python3-numpy python3-scipy python3-sklearn" >&2
        exit 1
    fi
}

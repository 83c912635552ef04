#!/usr/bin/env bash
# bench/ml_glm.sh [BUILD_DIR] - issue 12's GLM and linear regression benchmark, on data from
# `ember gen regression` (generated once into BUILD_DIR/bench/):
#   1. GLM poisson (log link), GROWS x GDIM (100,000 x 20): `ember ml glm` in local[2] and
#      local-cluster[2,1] (RUNS each) against statsmodels GLM(Poisson()).fit(tol=1e-10)
#      (bench/ml_glm_ref.py): the largest relative coefficient difference (goal 1e-6) and
#      the times (ember train_s and total_s; statsmodels fit and pandas load).
#   2. Linear regression, LROWS x LDIM (1,000,000 x 100) gaussian, a 100,000-row held-out
#      file of the same model: `ember ml linreg` (normal solver; OLS and ridge REG) in
#      local[2] and local-cluster[2,1] against scikit-learn LinearRegression and
#      Ridge(alpha = n REG): test rmse, coefficients, times.
# Every ember run goes through measure.py (wall, CPU, others_cpu_s: the machine is shared).
# Overrides: GROWS, GDIM, LROWS, LDIM, REG (0.01), RUNS (3), EMBER_EXECUTOR_MEMORY (2g).
set -euo pipefail
source "$(dirname "$0")/common.bash"

grows=${GROWS:-100000}
gdim=${GDIM:-20}
lrows=${LROWS:-1000000}
ldim=${LDIM:-100}
reg=${REG:-0.01}
runs=${RUNS:-3}
# the 1M x 100 rows take 808 MB parsed: a budget that holds them, as scikit-learn holds its
# matrix (with the default budget part of the cached rows spills, and each pass reads them
# back from disk)
export EMBER_EXECUTOR_MEMORY=${EMBER_EXECUTOR_MEMORY:-2g}
gdata=$benchdir/reg-poisson-$grows-$gdim.csv
ldata=$benchdir/reg-gaussian-$lrows-$ldim.csv

if ! /usr/bin/python3 -c 'import sklearn, statsmodels, pandas' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-sklearn python3-statsmodels \
            python3-pandas >/dev/null
    else
        echo "bench: run: sudo apt-get install -y python3-sklearn python3-statsmodels" >&2
        exit 1
    fi
fi
if [ ! -f "$gdata" ]; then
    echo "== generating $grows x $gdim poisson rows into $gdata (once)"
    "$ember" gen regression --rows "$grows" --dim "$gdim" --family poisson --seed 1 \
        --out "$gdata"
fi
if [ ! -f "$ldata" ] || [ ! -f "$ldata.test" ]; then
    echo "== generating $lrows x $ldim gaussian rows into $ldata (once)"
    "$ember" gen regression --rows "$lrows" --dim "$ldim" --family gaussian --seed 2 \
        --test-rows $((lrows / 10)) --out "$ldata"
fi

results=$benchdir/ml_glm.results
: > "$results"
tag() { echo "$1" | tr -dc 'a-z0-9'; }
for master in 'local[2]' 'local-cluster[2,1]'; do
    for r in $(seq "$runs"); do
        label=ml_glm_poisson_$(tag "$master")_$r
        run_measured "$label" "$ember" ml glm --train "$gdata" --format csv --label label \
            --family poisson --master "$master" --json
        echo "glm $master $(tail -n 1 "$benchdir/$label.run0.out")" >> "$results"
    done
    for r in $(seq "$runs"); do
        for rp in 0 "$reg"; do
            label=ml_linreg_$(tag "$master")_reg$(tag "$rp")_$r
            run_measured "$label" "$ember" ml linreg --train "$ldata" --format csv \
                --label label --test "$ldata.test" --reg-param "$rp" --solver normal \
                --master "$master" --json
            echo "linreg$rp $master $(tail -n 1 "$benchdir/$label.run0.out")" >> "$results"
        done
    done
done
echo "== statsmodels GLM (same file)"
/usr/bin/python3 "$(dirname "$0")/ml_glm_ref.py" glm "$gdata" "$runs" > "$benchdir/ml_glm.statsmodels"
echo "== scikit-learn LinearRegression / Ridge (same files)"
/usr/bin/python3 "$(dirname "$0")/ml_glm_ref.py" linreg "$ldata" "$ldata.test" "$runs" "$reg" \
    > "$benchdir/ml_glm.sklearn"
/usr/bin/python3 - "$results" "$benchdir/ml_glm.statsmodels" "$benchdir/ml_glm.sklearn" \
    "$benchdir" "$reg" <<'PY'
import json, statistics, sys
res = {}
for line in open(sys.argv[1]):
    what, master, js = line.split(" ", 2)
    res.setdefault((what, master), []).append(json.loads(js))
sm = json.loads(open(sys.argv[2]).read())
sk = {j["model"]: j for j in map(json.loads, open(sys.argv[3]))}
def med(rs, k):
    return statistics.median(r[k] for r in rs)
print(f"statsmodels GLM poisson: {sm['iterations']} iterations, fit {sm['fit_s']:.3f} s "
      f"(pandas load {sm['load_s']:.2f} s, {sm['threads']} BLAS threads), "
      f"deviance {sm['deviance']:.10g}, aic {sm['aic']:.10g}")
for (what, master), rs in sorted(res.items()):
    r = rs[0]
    if what == "glm":
        est = [r["intercept"]] + r["coefficients"]
        rel = max(abs(a - b) / abs(b) for a, b in zip(est, sm["params"]))
        se = max(abs(a - b) / b for a, b in zip(r["std_errors"], sm["bse"]))
        print(f"ember glm {master}: coefficients max rel. diff {rel:.1e} (goal 1e-6: "
              f"{'ok' if rel <= 1e-6 else 'MISSED'}), std errors {se:.1e}, deviance "
              f"{r['deviance']:.10g}, {r['iterations']} iterations, train "
              f"{med(rs, 'train_s'):.3f} s = {med(rs, 'train_s') / sm['fit_s']:.2f}x "
              f"statsmodels' fit; total {med(rs, 'total_s'):.2f} s (load "
              f"{med(rs, 'load_s'):.2f} s) vs statsmodels load+fit "
              f"{sm['load_s'] + sm['fit_s']:.2f} s")
    else:
        ref = sk["LinearRegression" if what == "linreg0" else "Ridge"]
        dc = max(abs(a - b) for a, b in zip(r["coefficients"], ref["coef"]))
        print(f"ember linreg reg {what[6:]} {master}: test rmse {r['rmse']:.8f} vs "
              f"scikit-learn {ref['model']} {ref['rmse']:.8f}; coefficients max abs diff "
              f"{dc:.1e}; train {med(rs, 'train_s'):.2f} s vs fit {ref['fit_s']:.2f} s "
              f"({med(rs, 'train_s') / ref['fit_s']:.2f}x); total {med(rs, 'total_s'):.2f} s "
              f"(load {med(rs, 'load_s'):.2f} s) vs pandas load + fit "
              f"{ref['load_s'] + ref['fit_s']:.2f} s")
PY
echo "(per-run wall, CPU and others_cpu_s: the measure.py lines above)"

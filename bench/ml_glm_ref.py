#!/usr/bin/python3
"""bench/ml_glm_ref.py glm TRAIN.csv RUNS | linreg TRAIN.csv TEST.csv RUNS REG -
the references of bench/ml_glm.sh, on the same CSV files (header line, label first).
glm: statsmodels GLM(family=Poisson()).fit(tol=1e-10), with an intercept column; prints one
  JSON line: params (intercept first), bse, deviance, aic, iterations, load_s (pandas
  read_csv), fit_s (median of RUNS fits).
linreg: scikit-learn LinearRegression() and Ridge(alpha=n * REG) (the same objective as
  ember's 1/(2n)||y - Xb||^2 + REG/2 ||b||^2); prints one JSON line per model: coef,
  intercept, rmse on TEST, load_s, fit_s (median of RUNS), threads (BLAS)."""
import json
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd


def load(path):
    t = time.perf_counter()
    d = pd.read_csv(path, dtype=np.float64, engine="c").to_numpy()
    return d[:, 1:], d[:, 0], time.perf_counter() - t


def timed(fn, runs):
    out, ts = None, []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return out, statistics.median(ts)


def threads():
    try:
        from threadpoolctl import threadpool_info
        return max((i.get("num_threads", 1) for i in threadpool_info()), default=1)
    except ImportError:
        return -1


warnings.simplefilter("ignore")
mode = sys.argv[1]
if mode == "glm":
    import statsmodels.api as sm
    X, y, load_s = load(sys.argv[2])
    runs = int(sys.argv[3])
    Xc = sm.add_constant(X, has_constant="add")
    r, fit_s = timed(lambda: sm.GLM(y, Xc, family=sm.families.Poisson()).fit(tol=1e-10),
                     runs)
    print(json.dumps({"params": r.params.tolist(), "bse": r.bse.tolist(),
                      "deviance": r.deviance, "aic": r.aic,
                      "iterations": r.fit_history["iteration"], "load_s": load_s,
                      "fit_s": fit_s, "threads": threads()}))
else:
    from sklearn.linear_model import LinearRegression, Ridge
    X, y, load_s = load(sys.argv[2])
    Xt, yt, _ = load(sys.argv[3])
    runs, reg = int(sys.argv[4]), float(sys.argv[5])
    n = X.shape[0]
    for name, make in (("LinearRegression", lambda: LinearRegression()),
                       ("Ridge", lambda: Ridge(alpha=n * reg))):
        m, fit_s = timed(lambda: make().fit(X, y), runs)
        rmse = float(np.sqrt(np.mean((m.predict(Xt) - yt) ** 2)))
        print(json.dumps({"model": name, "coef": m.coef_.tolist(),
                          "intercept": float(m.intercept_), "rmse": rmse, "load_s": load_s,
                          "fit_s": fit_s, "threads": threads()}))

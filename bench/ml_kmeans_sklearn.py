#!/usr/bin/python3
"""bench/ml_kmeans_sklearn.py DATA.csv INIT.csv RUNS ITERS - scikit-learn's reference for
bench/ml_kmeans.sh: KMeans(algorithm="lloyd", n_init=1, tol=0, max_iter=ITERS) started
from the centres in INIT.csv on the CSV's rows (header skipped). Prints one JSON line: inertia, n_iter,
fit_s (median of RUNS fits), iter_s ((median fit - median fit with max_iter=1) / (n_iter - 1):
the cost of one Lloyd iteration without the fit's fixed costs), threads."""
import json
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_info

data, init_p, runs, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
warnings.simplefilter("ignore")
with open(data) as f:
    header = f.readline()
    d = header.count(",") + 1
    X = np.fromstring(f.read().replace("\n", ","), sep=",").reshape(-1, d)
init = np.loadtxt(init_p, delimiter=",", ndmin=2)


def fit(max_iter):
    km = KMeans(n_clusters=init.shape[0], init=init, n_init=1, algorithm="lloyd", tol=0.0,
                max_iter=max_iter)
    t = time.perf_counter()
    km.fit(X)
    return time.perf_counter() - t, km


full = [fit(iters) for _ in range(runs)]
one = [fit(1)[0] for _ in range(runs)]
km = full[0][1]
fit_s = statistics.median(t for t, _ in full)
one_s = statistics.median(one)
n_iter = km.n_iter_
iter_s = (fit_s - one_s) / (n_iter - 1) if n_iter > 1 else fit_s
threads = max((i.get("num_threads", 1) for i in threadpool_info()), default=1)
print(json.dumps({"inertia": km.inertia_, "n_iter": n_iter, "fit_s": fit_s, "fit1_s": one_s,
                  "iter_s": iter_s, "rows": X.shape[0], "dim": d, "threads": threads}))

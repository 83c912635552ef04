#!/usr/bin/python3
"""bench/ml_lr_sklearn.py TRAIN.svm TEST.svm C DENSE - scikit-learn's reference for
bench/ml_lr.sh: LogisticRegression(solver="lbfgs", C=C, max_iter=1000) on the LIBSVM files
(load_svmlight_file; DENSE=1 turns the rows into a dense array, as the dense benchmark's
data is). Prints one JSON line: accuracy (test), log_loss, load_s, fit_s, n_iter, threads.
C = 1 / (n * regParam) makes the objective equal to ember's (1/n) sum loss + reg/2 |w|^2."""
import json
import sys
import time

import numpy as np
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_info

train, test, C, dense = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
t0 = time.perf_counter()
X, y = load_svmlight_file(train)
Xt, yt = load_svmlight_file(test, n_features=X.shape[1])
if dense:
    X, Xt = X.toarray(), Xt.toarray()
load_s = time.perf_counter() - t0
m = LogisticRegression(solver="lbfgs", C=C, max_iter=1000)
t = time.perf_counter()
m.fit(X, y)
fit_s = time.perf_counter() - t
p = m.predict_proba(Xt)[:, 1]
acc = float(np.mean((p > 0.5) == (yt > 0.5)))
print(json.dumps({"accuracy": acc, "log_loss": float(log_loss(yt, p)), "load_s": load_s,
                  "fit_s": fit_s, "n_iter": int(m.n_iter_[0]),
                  "threads": max((i.get("num_threads", 1) for i in threadpool_info()),
                                 default=1),
                  "total_s": time.perf_counter() - t0}))

#!/usr/bin/python3
"""bench/ml_nb_sklearn.py TRAIN TEST DIM RUNS PRED_OUT - scikit-learn's MultinomialNB on
the same LIBSVM files as `ember ml nb` (bench/ml_nb.sh).

Spark's (and ember's) naive Bayes smooths the class prior too: pi_c = (n_c + 1) / (n + K);
scikit-learn's fit_prior uses n_c / n. So the reference is given ember's smoothed prior as
class_prior, which makes the two models the same model (alpha = 1 for the likelihoods in
both). Prints one JSON line: load_s, fit_s and predict_s (medians of RUNS), accuracy, log_loss,
threads; writes the predicted labels, one a line, to PRED_OUT."""
import json
import statistics
import sys
import time

import numpy as np
from sklearn.datasets import load_svmlight_file
from sklearn.naive_bayes import MultinomialNB

train, test, dim, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t = time.perf_counter()
X, y = load_svmlight_file(train, n_features=dim)
Xt, yt = load_svmlight_file(test, n_features=dim)
load_s = time.perf_counter() - t
classes, counts = np.unique(y, return_counts=True)
prior = (counts + 1.0) / (len(y) + len(classes))
fits, preds = [], []
for _ in range(runs):
    t = time.perf_counter()
    m = MultinomialNB(alpha=1.0, class_prior=prior).fit(X, y)
    fits.append(time.perf_counter() - t)
    t = time.perf_counter()
    p = m.predict(Xt)
    preds.append(time.perf_counter() - t)
with open(out, "w") as f:
    f.write("\n".join(str(int(v)) for v in p))
    f.write("\n")
try:
    from threadpoolctl import threadpool_info
    threads = max((i.get("num_threads", 1) for i in threadpool_info()), default=1)
except Exception:
    threads = None
from sklearn.metrics import log_loss
ll = log_loss(yt, m.predict_proba(Xt), labels=m.classes_)
print(json.dumps({"load_s": load_s, "fit_s": statistics.median(fits), "log_loss": ll,
                  "predict_s": statistics.median(preds),
                  "accuracy": float((p == yt).mean()), "threads": threads}))

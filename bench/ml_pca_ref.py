#!/usr/bin/python3
"""bench/ml_pca_ref.py BIN ROWS COLS K - the PCA benchmark's references on the matrix that
bench/ml_gen.c wrote as raw doubles (the same numbers as the CSV ember reads):
numpy's LAPACK SVD of the centred matrix (np.linalg.svd, full_matrices=False: dgesdd) and
scikit-learn's PCA(svd_solver="full"). Prints one JSON line: load_s, numpy_s (centring +
SVD), sklearn_s (fit), the explained variance ratios of both, and the BLAS threads."""
import json
import sys
import time

import numpy as np
from sklearn.decomposition import PCA


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
        return max((p.get("num_threads", 0) for p in threadpool_info()
                    if p.get("user_api") == "blas"), default=None)
    except ImportError:
        return None


def main():
    path, rows, cols, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    t0 = time.perf_counter()
    x = np.fromfile(path, dtype="<f8").reshape(rows, cols)
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    xc = x - x.mean(axis=0)
    s = np.linalg.svd(xc, full_matrices=False, compute_uv=True)[1]
    numpy_s = time.perf_counter() - t0
    del xc
    ratio_np = (s ** 2 / np.sum(s ** 2))[:k]

    t0 = time.perf_counter()
    p = PCA(n_components=k, svd_solver="full").fit(x)
    sklearn_s = time.perf_counter() - t0
    print(json.dumps({"load_s": load_s, "numpy_s": numpy_s, "sklearn_s": sklearn_s,
                      "numpy_ratio": ratio_np.tolist(),
                      "sklearn_ratio": p.explained_variance_ratio_.tolist(),
                      "blas_threads": blas_threads()}))


if __name__ == "__main__":
    main()

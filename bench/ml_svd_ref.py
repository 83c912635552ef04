#!/usr/bin/python3
"""bench/ml_svd_ref.py PREFIX ROWS COLS K - the SVD benchmark's reference: scipy's
sparse.linalg.svds (ARPACK, its default solver) on the CSR matrix bench/ml_gen.c wrote as
PREFIX.{indptr,indices,data}.bin (the same numbers as the LIBSVM file ember reads). Prints
one JSON line: load_s, svds_s, the k singular values (descending), operator products."""
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, svds


def main():
    prefix, rows, cols, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    t0 = time.perf_counter()
    indptr = np.fromfile(prefix + ".indptr.bin", dtype="<i8")
    indices = np.fromfile(prefix + ".indices.bin", dtype="<i4")
    data = np.fromfile(prefix + ".data.bin", dtype="<f8")
    a = sp.csr_matrix((data, indices, indptr), shape=(rows, cols))
    load_s = time.perf_counter() - t0

    # Count the products through a LinearOperator with the matrix's own kernels: svds
    # applies A and A^T (as A^T A) to vectors; this adds only a counter.
    calls = {"mv": 0, "rmv": 0}

    def mv(x):
        calls["mv"] += 1
        return a @ x

    def rmv(x):
        calls["rmv"] += 1
        return a.T @ x

    op = LinearOperator(a.shape, matvec=mv, rmatvec=rmv, matmat=lambda x: a @ x,
                        rmatmat=lambda x: a.T @ x, dtype=a.dtype)
    t0 = time.perf_counter()
    s = svds(op, k=k, return_singular_vectors=False)
    svds_s = time.perf_counter() - t0
    print(json.dumps({"load_s": load_s, "svds_s": svds_s,
                      "singular_values": sorted(s.tolist(), reverse=True),
                      "matvecs": calls["mv"], "rmatvecs": calls["rmv"], "nnz": int(a.nnz)}))


if __name__ == "__main__":
    main()

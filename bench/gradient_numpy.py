#!/usr/bin/python3
"""bench/gradient_numpy.py ROWS COLS ITERATIONS [LR] - numpy's side of bench/compute.sh.

Builds the same rows as examples/gradient.c (the splitmix64 formula in its header comment),
then runs ITERATIONS logistic-loss gradient passes X.T @ (sigmoid(X @ w) - y) with the same
step, timing each pass (the expression only; the loss is computed untimed, to check that
both sides saw the same data). Prints one line per pass, then a JSON object on the last line:
rows, cols, gen_s, iter_s (median), loss0, loss_last, threads (BLAS threads numpy used)."""
import json
import sys
import time

import numpy as np

M30, M27 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def unit(z):
    """u(z) of examples/gradient.c for an array of uint64 z."""
    with np.errstate(over="ignore"):
        z = z + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M30
        z = (z ^ (z >> np.uint64(27))) * M27
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0


def make(rows, cols, chunk=100_000):
    x = np.empty((rows, cols))
    for s in range(0, rows, chunk):
        e = min(rows, s + chunk)
        idx = np.arange(s * cols, e * cols, dtype=np.uint64)
        x[s:e] = unit(idx).reshape(e - s, cols)
    wtrue = unit(np.uint64(1 << 62) + np.arange(cols, dtype=np.uint64))
    noise = unit(np.uint64(1 << 63) + np.arange(rows, dtype=np.uint64))
    y = (x @ wtrue + 0.5 * noise > 0).astype(np.float64)
    return x, y


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
        return max((p.get("num_threads", 0) for p in threadpool_info()
                    if p.get("user_api") == "blas"), default=0)
    except ImportError:
        return None


def main():
    rows, cols, iters = (int(a) for a in sys.argv[1:4])
    lr = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    t0 = time.perf_counter()
    x, y = make(rows, cols)
    gen_s = time.perf_counter() - t0
    w = np.zeros(cols)
    times, losses = [], []
    for it in range(iters):
        # Timed: the gradient expression alone (the loss, which ember's pass also
        # computes, is left out of numpy's time).
        s = time.perf_counter()
        grad = x.T @ (1.0 / (1.0 + np.exp(-(x @ w))) - y)
        times.append(time.perf_counter() - s)
        m = x @ w
        loss = float(np.sum(np.logaddexp(0.0, m) - y * m))
        losses.append(loss / rows)
        w -= lr * grad / rows
        print(f"iter {it + 1}  loss {losses[-1]:.6f}  {times[-1]:.4f} s", flush=True)
    print(json.dumps({"rows": rows, "cols": cols, "gen_s": round(gen_s, 3),
                      "iter_s": round(float(np.median(times)), 4), "loss0": losses[0],
                      "loss_last": losses[-1], "threads": blas_threads()}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""bench/ml_mlp_ref.py TRAIN.csv TEST.csv HIDDEN EPOCHS BATCH LR THREADS WHICH - the references
for bench/ml_mlp.sh: the same MLP (784-H1-H2-10, ReLU, softmax + cross-entropy, Adam, no
weight decay) trained with PyTorch (CPU, torch.set_num_threads(THREADS), float32) and/or
scikit-learn's MLPClassifier (float64, BLAS limited to THREADS by threadpoolctl), on the
same standardized features (StandardScaler fitted on TRAIN). WHICH: torch, sklearn or both.
Prints one JSON line per library: epoch_s (training seconds / epochs), train_s, accuracy
(on TEST), threads."""
import json
import sys
import time
import warnings

import numpy as np

train_p, test_p, hidden, epochs, batch, lr, threads, which = sys.argv[1:9]
hidden = [int(h) for h in hidden.split(",")]
epochs, batch, lr, threads = int(epochs), int(batch), float(lr), int(threads)
warnings.simplefilter("ignore")


def load(p):
    import pandas as pd
    a = pd.read_csv(p, dtype=np.float32).to_numpy()
    return a[:, 1:], a[:, 0].astype(np.int64)


X, y = load(train_p)
Xt, yt = load(test_p)
mu, sd = X.mean(axis=0), X.std(axis=0)
sd[sd < 1e-6] = 1
X = (X - mu) / sd
Xt = (Xt - mu) / sd
k = int(max(y.max(), yt.max())) + 1

if which in ("torch", "both"):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    layers, d = [], X.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(d, h), torch.nn.ReLU()]
        d = h
    layers.append(torch.nn.Linear(d, k))
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    lossf = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y)
    t0 = time.perf_counter()
    for e in range(epochs):
        perm = torch.randperm(tx.shape[0])
        for s in range(0, tx.shape[0], batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss = lossf(net(tx[idx]), ty[idx])
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        acc = (net(torch.from_numpy(np.ascontiguousarray(Xt))).argmax(1).numpy() == yt).mean()
    print(json.dumps({"lib": "torch", "version": torch.__version__, "epoch_s": train_s / epochs,
                      "train_s": train_s, "accuracy": float(acc), "threads": threads}))
    sys.stdout.flush()

if which in ("sklearn", "both"):
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=threads):
        clf = MLPClassifier(hidden_layer_sizes=tuple(hidden), activation="relu", solver="adam",
                            alpha=0.0, batch_size=batch, learning_rate_init=lr, max_iter=epochs,
                            shuffle=True, random_state=1, tol=0.0, n_iter_no_change=10 ** 6)
        t0 = time.perf_counter()
        clf.fit(X, y)
        train_s = time.perf_counter() - t0
        acc = clf.score(Xt, yt)
    print(json.dumps({"lib": "sklearn", "epoch_s": train_s / clf.n_iter_, "train_s": train_s,
                      "accuracy": float(acc), "threads": threads, "epochs": clf.n_iter_}))

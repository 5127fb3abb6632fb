"""The Keras/MATLAB seed example, trained with the NumPy backend alone.

Keras' form of the seed::

    model = Sequential([LSTM(64, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, y, epochs=10, batch_size=32)      # X = randn(1000, 10, 1), y = X.sum(axis=1)

reproduced step by step: Keras' initialisers (Glorot-uniform kernels,
orthogonal recurrent kernel, unit forget bias, zero Dense bias), mean
squared error, Keras' Adam (lr 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-7),
mini-batches of 32 reshuffled every epoch with the last partial batch kept.
Gradients come from ``lstm_backward`` (backprop through time); no framework
is involved. Prints the training loss per epoch and the loss on 200 fresh
sequences, and writes a plot of predictions against targets.

Run: ``python -m lstm_ref.demo`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lstm_ref import lstm_backward, lstm_forward
from lstm_ref.data import sum_of_sequence
from lstm_ref.init import glorot_uniform, init_lstm_params


class Adam:
    """Keras 3's Adam on a dict of arrays, updated in place.

    With step t: alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t),
    m += (1 - beta1) (g - m), v += (1 - beta2) (g^2 - v),
    w -= alpha * m / (sqrt(v) + epsilon).
    """

    def __init__(self, params: dict[str, np.ndarray], lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-7):
        self.params, self.lr, self.beta1, self.beta2, self.epsilon = params, lr, beta1, beta2, epsilon
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        alpha = self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        for k, w in self.params.items():
            self.m[k] += (1 - self.beta1) * (grads[k] - self.m[k])
            self.v[k] += (1 - self.beta2) * (grads[k] ** 2 - self.v[k])
            w -= alpha * self.m[k] / (np.sqrt(self.v[k]) + self.epsilon)


def predict(params: dict[str, np.ndarray], X: np.ndarray):
    """LSTM (last output) then Dense: y_hat = h_T Wd + bd, (N, 1); also the LSTM cache and h_T."""
    lstm = {k: params[k] for k in ("W", "U", "b")}
    h_T, _, cache = lstm_forward(X, lstm, return_sequences=False)  # (N, H)
    return h_T @ params["Wd"] + params["bd"], h_T, cache


def loss_and_grads(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray):
    """Mean squared error of a batch and its gradient for every parameter."""
    y_hat, h_T, cache = predict(params, X)
    err = y_hat - y  # (B, 1)
    dy = 2 * err / err.size  # d mean(err^2) / d y_hat
    _, _, _, grads = lstm_backward(dy @ params["Wd"].T, cache)
    grads.update(Wd=h_T.T @ dy, bd=dy.sum(axis=0))
    return float(np.mean(err**2)), grads


def train(epochs: int = 10, batch_size: int = 32, hidden: int = 64, seed: int = 0, log=print):
    """Train on the seed's data; returns (params, per-epoch training loss)."""
    rng = np.random.default_rng(seed)
    X, y = sum_of_sequence(1000, 10, seed=rng)
    params = init_lstm_params(1, hidden, scheme="keras", seed=rng)
    params.update(Wd=glorot_uniform((hidden, 1), rng), bd=np.zeros(1))
    adam = Adam(params)
    history = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(X))  # Keras shuffles every epoch and keeps the partial batch
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            loss, grads = loss_and_grads(params, X[idx], y[idx])
            adam.step(grads)
            total += loss * len(idx)
        history.append(total / len(X))
        log(f"epoch {epoch:3d}/{epochs}  loss {history[-1]:.4f}")
    return params, history


def save_plot(y: np.ndarray, y_hat: np.ndarray, path: Path) -> None:
    """Scatter of predictions against targets, written to a temporary file and renamed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(y, y_hat, s=8, alpha=0.6)
    lim = [min(y.min(), y_hat.min()), max(y.max(), y_hat.max())]
    ax.plot(lim, lim, "k--", lw=1, label="y_hat = y")
    ax.set(xlabel="target: sum of the sequence", ylabel="prediction", title="LSTM(64) + Dense(1), NumPy backend")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_ref.demo",
        description="Train the Keras/MATLAB sum-of-sequence LSTM with lstm_ref's NumPy backend "
        "(X = randn(1000, 10, 1), y = X.sum(axis=1); LSTM(64) + Dense(1), mse, Adam, batch 32).",
    )
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the initial weights and the shuffling")
    parser.add_argument("--out", type=Path, default=Path("out/demo_predictions.png"), help="where to write the plot")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    # Batches of 32 make small matmuls ((32, 64) @ (64, 256)) that run fastest on one BLAS
    # thread; a multi-threaded BLAS waits on busy cores and can be a hundred times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        params, _ = train(epochs=args.epochs, seed=args.seed)
    X_test, y_test = sum_of_sequence(200, 10, seed=args.seed + 1)
    y_hat = predict(params, X_test)[0]
    print(f"test loss (mse on 200 fresh sequences): {np.mean((y_hat - y_test) ** 2):.4f}")
    save_plot(y_test, y_hat, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

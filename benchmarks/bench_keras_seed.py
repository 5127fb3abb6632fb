"""The Keras seed example trained by lstm_ref.keras and by real Keras 3, in one run.

Sum-of-sequence (1000 samples of 10 steps, ``y = X.sum(axis=1)``),
``Sequential([LSTM(64, input_shape=(None, 1)), Dense(1)])``, Adam, mse,
10 epochs at batch 32: wall time of ``fit`` and the final epoch loss of each,
for several seeds, then the medians and the speed ratios. Real Keras runs on
its PyTorch backend (KERAS_BACKEND=torch), so both use the same torch build
and thread count. A textbook PyTorch loop (DataLoader, torch.optim.Adam) on
the same task is timed alongside, for reference.

Usage: python benchmarks/bench_keras_seed.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402

from lstm_ref import keras as lk  # noqa: E402
from lstm_ref.data import sum_of_sequence  # noqa: E402


def train(Sequential, LSTM, Dense, set_random_seed, seed: int) -> tuple[float, float]:
    """(seconds in fit, final epoch loss) of the seed example for one implementation."""
    X, y = sum_of_sequence(n_samples=1000, n_steps=10, seed=seed)
    set_random_seed(seed)
    with warnings.catch_warnings():  # real Keras warns about input_shape on a layer; the seed passes it
        warnings.simplefilter("ignore", UserWarning)
        model = Sequential([LSTM(64, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    start = time.perf_counter()
    history = model.fit(X, y, epochs=10, batch_size=32, verbose=0)
    return time.perf_counter() - start, history.history["loss"][-1]


class _TorchSeedModel(torch.nn.Module):
    """nn.LSTM(1, 64) + nn.Linear(64, 1) on the last step, PyTorch's default initialisation."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(1, 64, batch_first=True)
        self.dense = torch.nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.lstm(x)[0][:, -1])  # (N, 1)


def train_plain_torch(seed: int) -> tuple[float, float]:
    """The same task as a textbook PyTorch loop: DataLoader, torch.optim.Adam, MSELoss."""
    X, y = sum_of_sequence(n_samples=1000, n_steps=10, seed=seed)
    torch.manual_seed(seed)
    model = _TorchSeedModel()
    data = torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(10):
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
    return time.perf_counter() - start, total / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="seeds per implementation (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    implementations = {
        "lstm_ref.keras": (lk.Sequential, lk.LSTM, lk.Dense, lk.set_random_seed),
        f"Keras {keras.__version__} (torch backend)": (
            keras.Sequential, keras.layers.LSTM, keras.layers.Dense, keras.utils.set_random_seed),
    }
    runners = {name: functools.partial(train, *spec) for name, spec in implementations.items()}
    runners["plain PyTorch loop (DataLoader, torch.optim.Adam)"] = train_plain_torch
    for run in runners.values():  # warm-up: imports, kernels, Keras' first-call tracing
        run(100)
    results = {name: [] for name in runners}
    for seed in range(args.repeats):  # interleaved, so that load changes hit all alike
        for name, run in runners.items():
            results[name].append(run(seed))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.repeats} seeds, medians\n")
    print("| implementation | fit time (s) | final loss |")
    print("| --- | --- | --- |")
    medians = {}
    for name, runs in results.items():
        seconds = statistics.median(t for t, _ in runs)
        loss = statistics.median(v for _, v in runs)
        medians[name] = seconds
        print(f"| {name} | {seconds:.3f} | {loss:.4f} |")
    ours, keras_time, plain = medians.values()
    print(f"\nspeed-up of lstm_ref.keras over Keras: {keras_time / ours:.1f}x; "
          f"over the plain PyTorch loop: {plain / ours:.1f}x")


if __name__ == "__main__":
    main()

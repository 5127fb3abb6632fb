"""Tasks and real data for the course: the seeds' tasks, long-range benchmarks, real sets.

Every generator takes ``seed`` (an int or a ``numpy.random.Generator``) and is
deterministic for a given seed. Arrays are float64 and batch-first, ``(N, T, D)``
for inputs, unless a function says otherwise.

- :func:`sum_of_sequence` -- the Keras/MATLAB seed: X ~ randn, y = sum over time.
- :func:`sine_wave`, :func:`sine_windows` -- the PyTorch seed: next-value prediction.
- :func:`adding_problem` -- Hochreiter & Schmidhuber (1997), in the form of
  Le, Jaitly & Hinton (2015).
- :func:`copy_task` -- memorise symbols, recall them after a delay (Hochreiter &
  Schmidhuber 1997; the layout of Arjovsky, Shah & Bengio 2016).
- :func:`embedding_classification` -- token sequences for an Embedding+LSTM classifier.
- :func:`japanese_vowels` -- MATLAB's sequence-classification example data
  (Kudo, Toyama & Shimbo 1999), from the files the ``aeon`` package ships.
- :func:`airline` -- monthly airline passengers 1949-1960 (Box & Jenkins), from ``aeon``.
- :func:`windows`, :func:`standardize` -- forecasting helpers.

References:
1) S. Hochreiter, J. Schmidhuber. Long short-term memory. Neural Computation 9(8), 1997.
2) Q. V. Le, N. Jaitly, G. E. Hinton. A simple way to initialize recurrent networks of
   rectified linear units. arXiv:1504.00941, 2015.
3) M. Arjovsky, A. Shah, Y. Bengio. Unitary evolution recurrent neural networks. ICML 2016.
4) M. Kudo, J. Toyama, M. Shimbo. Multidimensional curve classification using
   passing-through regions. Pattern Recognition Letters 20, 1999.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import NamedTuple

import numpy as np

from ._validate import rng_from_seed

Seed = int | np.random.Generator


class Split(NamedTuple):
    """A train/test split of inputs and targets."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


class MonthlySeries(NamedTuple):
    """A monthly series: ``values`` (T,) float64 and ``dates`` (T,) ``datetime64[M]``."""

    values: np.ndarray
    dates: np.ndarray


def _count(name: str, value: int, minimum: int = 1) -> int:
    """Check that ``value`` is an integer >= ``minimum`` and return it as an int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def sum_of_sequence(n_samples: int = 1000, n_steps: int = 10, *, seed: Seed) -> tuple[np.ndarray, np.ndarray]:
    """The Keras/MATLAB seed task: each target is the sum of its sequence.

    ``X = randn(N, T, 1)``, ``y = X.sum(axis=1)``.

    Returns:
        X: (N, T, 1) float64.
        y: (N, 1) float64.
    """
    n = _count("n_samples", n_samples)
    t = _count("n_steps", n_steps)
    X = rng_from_seed(seed).standard_normal((n, t, 1))  # (N, T, 1)
    return X, X.sum(axis=1)  # (N, 1)


def sine_wave(n_points: int = 1000, periods: float = 0.1) -> np.ndarray:
    """``sin(linspace(0, 2*pi*periods, n_points))``: the PyTorch seed's series, (n_points,).

    With the seed's default ``periods=0.1`` the series spans a tenth of one period:
    it rises from 0 to sin(0.2*pi) ~ 0.588 as a near-linear ramp, not an
    oscillation. Pass e.g. ``periods=5`` for a series that actually oscillates.
    """
    n = _count("n_points", n_points, minimum=2)
    if not (isinstance(periods, (int, float, np.floating, np.integer)) and math.isfinite(periods) and periods > 0):
        raise ValueError(f"periods must be a finite number > 0, got {periods!r}")
    return np.sin(np.linspace(0.0, 2.0 * np.pi * float(periods), n))


def windows(series: np.ndarray, window: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows of a series and the values that follow each window.

    For a series s of length T: ``X[k] = s[k : k + window]`` and
    ``y[k] = s[k + window : k + window + horizon]``, k = 0 .. N-1 with
    N = T - window - horizon + 1.

    Args:
        series: (T,) or (T, D).
        window: number of input steps, W >= 1.
        horizon: number of future steps to predict, >= 1.

    Returns:
        X: (N, W, D) float64 (D = 1 for a 1-D series).
        y: (N, horizon * D) float64, step-major: ``y[:, j*D:(j+1)*D]`` is the value
        j + 1 steps after the window. The PyTorch seed's next value is ``horizon=1``: (N, 1).
    """
    s = np.asarray(series, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]  # (T, 1)
    if s.ndim != 2:
        raise ValueError(f"series must have shape (T,) or (T, D), got shape {np.shape(series)}")
    w = _count("window", window)
    k = _count("horizon", horizon)
    n = s.shape[0] - w - k + 1
    if n < 1:
        raise ValueError(f"series of length {s.shape[0]} is too short for window={w} and horizon={k}")
    idx = np.arange(n)[:, None]
    X = s[idx + np.arange(w)]  # (N, W, D)
    y = s[idx + w + np.arange(k)].reshape(n, k * s.shape[1])  # (N, horizon * D)
    return X, y


def _random_split(X: np.ndarray, y: np.ndarray, test_fraction: float, seed: Seed) -> Split:
    """Random split with ceil(test_fraction * N) test samples, as scikit-learn's train_test_split."""
    if not (isinstance(test_fraction, (float, int)) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    n_test = math.ceil(test_fraction * len(X))
    if n_test >= len(X):
        raise ValueError(f"test_fraction={test_fraction} leaves no training samples out of {len(X)}")
    perm = rng_from_seed(seed).permutation(len(X))
    test, train = perm[:n_test], perm[n_test:]
    return Split(X[train], y[train], X[test], y[test])


def sine_windows(
    window: int = 10,
    n_points: int = 1000,
    periods: float = 0.1,
    test_fraction: float = 0.2,
    *,
    seed: Seed,
) -> Split:
    """The PyTorch seed's data: windows of a sine series, next-value targets, random split.

    The series is :func:`sine_wave` (``sin(linspace(0, 2*pi*0.1, 1000))`` by default,
    a tenth of one period: a near-linear ramp, not an oscillation). Each window of
    ``window`` values predicts the next value; the 990 windows of the default are
    split at random 80/20 (792 train, 198 test), as the seed's ``train_test_split``.

    Returns:
        Split with X_* (N, window, 1) and y_* (N, 1), float64.
    """
    X, y = windows(sine_wave(n_points, periods), window)
    return _random_split(X, y, test_fraction, seed)


def adding_problem(n_samples: int = 1000, n_steps: int = 100, *, seed: Seed) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem: add the two marked values of a long sequence.

    Channel 0 holds values drawn from U(0, 1); channel 1 is a marker that is 1 at
    exactly two steps, one drawn uniformly from the first half ``[0, T//2)`` and
    one from the second half ``[T//2, T)``, and 0 elsewhere. The target is the
    sum of the two marked values. Always predicting 1 gives MSE ~ 1/6 ~ 0.167,
    the baseline a model must beat.

    Returns:
        X: (N, T, 2) float64.
        y: (N, 1) float64.
    """
    n = _count("n_samples", n_samples)
    t = _count("n_steps", n_steps, minimum=2)
    rng = rng_from_seed(seed)
    values = rng.uniform(0.0, 1.0, size=(n, t))  # (N, T)
    half = t // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, t, size=n)
    marker = np.zeros((n, t))
    rows = np.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    X = np.stack([values, marker], axis=-1)  # (N, T, 2)
    y = (values[rows, first] + values[rows, second])[:, None]  # (N, 1)
    return X, y


def copy_task(
    n_samples: int = 1000,
    delay: int = 50,
    n_symbols: int = 8,
    length: int = 10,
    *,
    seed: Seed,
) -> tuple[np.ndarray, np.ndarray]:
    """The copy (memory) task: read ``length`` symbols, wait ``delay`` steps, write them back.

    Tokens: 0 is blank, 1..K are the symbols (K = ``n_symbols``), K + 1 is the
    delimiter ("now recall"). Each sequence has T = 2 * length + delay steps::

        input : s_1 .. s_L | 0 (delay - 1 times) | K+1 | 0 (L times)
        target: 0 (L + delay times)              | s_1 .. s_L

    The symbols s_j are drawn uniformly from 1..K. A model that outputs blanks and
    then a uniform guess has cross-entropy L * log(K) / T per step.

    Returns:
        X: (N, T, K + 2) float64, the input tokens one-hot.
        y: (N, T) int64, the target token at every step (classes 0..K).
    """
    n = _count("n_samples", n_samples)
    d = _count("delay", delay)
    k = _count("n_symbols", n_symbols)
    n_copy = _count("length", length)
    t = 2 * n_copy + d
    symbols = rng_from_seed(seed).integers(1, k + 1, size=(n, n_copy))  # (N, L)
    tokens = np.zeros((n, t), dtype=np.int64)
    tokens[:, :n_copy] = symbols
    tokens[:, n_copy + d - 1] = k + 1
    y = np.zeros((n, t), dtype=np.int64)
    y[:, -n_copy:] = symbols
    X = np.eye(k + 2)[tokens]  # (N, T, K + 2)
    return X, y


def embedding_classification(
    n_samples: int = 1000,
    n_steps: int = 20,
    vocab_size: int = 20,
    *,
    seed: Seed,
) -> tuple[np.ndarray, np.ndarray]:
    """Binary sequence classification of token sequences (for Embedding + LSTM).

    Rule: every sequence contains token 1 ("A") exactly once and token 2 ("B")
    exactly once, at two distinct random steps; every other step is a filler
    token drawn uniformly from 3..vocab_size-1. The label is 1 if A comes before
    B, else 0. Token 0 is never used, so it stays free for padding. Labels are
    balanced in expectation; no bag-of-tokens model can beat chance (every
    sequence holds one A and one B), so the model must use the order.

    Returns:
        X: (N, T) int64 tokens in 1..vocab_size-1.
        y: (N,) int64 labels in {0, 1}.
    """
    n = _count("n_samples", n_samples)
    t = _count("n_steps", n_steps, minimum=2)
    v = _count("vocab_size", vocab_size, minimum=4)
    rng = rng_from_seed(seed)
    X = rng.integers(3, v, size=(n, t))  # (N, T)
    # argsort of uniform keys gives a random permutation per row; its first two entries are the A and B steps.
    steps = np.argsort(rng.random((n, t)), axis=1)[:, :2]  # (N, 2)
    rows = np.arange(n)
    X[rows, steps[:, 0]] = 1
    X[rows, steps[:, 1]] = 2
    y = (steps[:, 0] < steps[:, 1]).astype(np.int64)
    return X.astype(np.int64), y


def _aeon_file(*parts: str) -> str:
    """The path of a data file the ``aeon`` package ships, found without importing aeon
    (``import aeon.datasets`` takes over a second: it loads pandas, scikit-learn and numba)."""
    spec = importlib.util.find_spec("aeon")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", *parts) if spec else ""
    if not os.path.isfile(path):
        raise ImportError(
            f"the data file {'/'.join(parts)} ships in the 'aeon' package: install the 'data' extra, "
            "pip install 'lstm_ref[data]'"
        )
    return path


def _read_ts(path: str) -> tuple[list[np.ndarray], list[str]]:
    """The cases of a ``.ts`` file of unequal-length multivariate series: ``(C, T_i)`` arrays
    (dimensions separated by ``:``, values by ``,``) and the class label after the last ``:``."""
    series, labels, data = [], [], False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not data:
                data = line.lower() == "@data"
                continue
            if line and not line.startswith("#"):
                *dims, label = line.split(":")
                series.append(np.array([d.split(",") for d in dims], dtype=np.float64))  # (C, T_i)
                labels.append(label)
    return series, labels


def japanese_vowels(split: str = "train") -> tuple[list[np.ndarray], np.ndarray]:
    """MATLAB's sequence-classification example data: Japanese Vowels (Kudo et al. 1999).

    Nine male speakers utter the vowels /ae/; each utterance is a sequence of 12
    LPC cepstrum coefficients of 7 to 29 frames. 270 training and 370 test
    sequences, read from the files the ``aeon`` package ships (no download).

    Args:
        split: "train" or "test".

    Returns:
        X: list of N arrays, each (T_i, 12) float64 (batch-first per sequence).
        y: (N,) int64 speaker labels 0..8 (the files' labels "1".."9" minus 1).

    MATLAB's layout is an N-by-1 cell array of C-by-S matrices (12-by-T_i) with
    categorical labels; ``[x.T for x in X]`` gives it, and that list is what
    ``lstm_ref.matlab.trainNetwork`` takes.
    """
    if not isinstance(split, str) or split.lower() not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    X, labels = _read_ts(_aeon_file("JapaneseVowels", f"JapaneseVowels_{split.upper()}.ts"))
    sequences = [np.ascontiguousarray(x.T) for x in X]  # each (T_i, 12)
    return sequences, np.array(labels, dtype=np.int64) - 1


def airline() -> MonthlySeries:
    """Monthly international airline passengers (thousands), January 1949 to December 1960.

    The Box & Jenkins series (144 values), read from the file the ``aeon`` package
    ships. Returns ``MonthlySeries(values (144,) float64, dates (144,) datetime64[M])``.
    """
    table = np.loadtxt(_aeon_file("Airline", "Airline.csv"), delimiter=",", skiprows=1, dtype=str)
    dates, values = table[:, 0].astype("datetime64[M]"), table[:, 1].astype(np.float64)
    expected = np.arange("1949-01", "1961-01", dtype="datetime64[M]")
    if not np.array_equal(dates, expected):
        raise RuntimeError(f"aeon's airline file has {dates.size} months from {dates[0]}, expected 1949-01 to 1960-12")
    return MonthlySeries(values, dates)


def standardize(
    x: np.ndarray, mean: np.ndarray | float | None = None, std: np.ndarray | float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``z = (x - mean) / std`` over axis 0 (time or samples), per feature.

    Pass the training split's ``mean`` and ``std`` to standardise a test split with
    the same statistics; invert with ``x = z * std + mean``.

    Args:
        x: (T,) or (T, D).
        mean, std: statistics to use; both computed from ``x`` when omitted (std with ddof 0).

    Returns:
        (z, mean, std): z has the shape of x; mean and std are scalars (0-d) for a
        1-D x, (D,) otherwise.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (1, 2) or a.shape[0] < 1:
        raise ValueError(f"x must have shape (T,) or (T, D) with T >= 1, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("x must be finite (it contains NaN or inf)")
    if (mean is None) != (std is None):
        raise ValueError("pass both mean and std, or neither")
    if mean is None:
        mean, std = a.mean(axis=0), a.std(axis=0)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    for name, stat in (("mean", mean), ("std", std)):
        if stat.shape not in ((), a.shape[1:]):
            raise ValueError(f"{name} must be a scalar or have shape {a.shape[1:]}, got shape {stat.shape}")
    if np.any(std <= 0):
        raise ValueError(f"std must be > 0 for every feature, got {std} (a constant series cannot be standardised)")
    return (a - mean) / std, mean, std

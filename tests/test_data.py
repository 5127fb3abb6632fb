"""Tasks and real data: shapes, determinism, task structure, real-set counts, argument errors."""

import numpy as np
import pytest

from lstm_ref import data

SEEDED = {
    "sum_of_sequence": lambda seed: data.sum_of_sequence(50, 7, seed=seed),
    "sine_windows": lambda seed: data.sine_windows(seed=seed),
    "adding_problem": lambda seed: data.adding_problem(50, 30, seed=seed),
    "copy_task": lambda seed: data.copy_task(50, delay=5, n_symbols=4, length=3, seed=seed),
    "embedding_classification": lambda seed: data.embedding_classification(50, 12, 10, seed=seed),
}


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_generators_are_deterministic_per_seed_and_differ_across_seeds(name):
    make = SEEDED[name]
    first, again, other = make(3), make(3), make(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: same seed gave different data")
    assert any(not np.array_equal(a, c) for a, c in zip(first, other)), f"{name}: seeds 3 and 4 gave the same data"
    from_generator = make(np.random.default_rng(3))
    for a, b in zip(first, from_generator):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: int seed and Generator(seed) differ")


def test_sum_of_sequence_shapes_and_target():
    X, y = data.sum_of_sequence(seed=0)
    assert X.shape == (1000, 10, 1) and y.shape == (1000, 1)
    assert X.dtype == np.float64
    np.testing.assert_allclose(y[:, 0], X[:, :, 0].sum(axis=1), rtol=0, atol=1e-12)
    assert abs(X.mean()) < 0.05 and abs(X.std() - 1) < 0.05, "inputs are not standard normal"


def test_sine_wave_reproduces_the_seed_series_exactly():
    s = data.sine_wave()
    np.testing.assert_array_equal(s, np.sin(np.linspace(0, 2 * np.pi * 0.1, 1000)))
    # A tenth of a period: monotone from 0 to sin(0.2 pi), no oscillation.
    assert np.all(np.diff(s) > 0)
    assert s[-1] == pytest.approx(np.sin(0.2 * np.pi))
    assert np.sum(np.diff(np.sign(data.sine_wave(1000, periods=5))) != 0) == 10  # five periods cross zero 10 times


def test_sine_windows_seed_split():
    split = data.sine_windows(seed=0)
    assert split.X_train.shape == (792, 10, 1) and split.y_train.shape == (792, 1)
    assert split.X_test.shape == (198, 10, 1) and split.y_test.shape == (198, 1)
    s = data.sine_wave()
    X = np.concatenate([split.X_train, split.X_test])[:, :, 0]
    y = np.concatenate([split.y_train, split.y_test])[:, 0]
    starts = np.searchsorted(s, X[:, 0])  # s is increasing, so a window's first value locates it
    np.testing.assert_array_equal(np.sort(starts), np.arange(990), err_msg="every window appears exactly once")
    for k, start in enumerate(starts):
        np.testing.assert_array_equal(X[k], s[start : start + 10])
        assert y[k] == s[start + 10]
    assert not np.all(np.diff(starts[:792]) > 0), "the split is not random (training windows are in order)"


def test_windows_layout_multichannel_and_horizon():
    series = np.arange(20.0).reshape(10, 2)  # (T=10, D=2)
    X, y = data.windows(series, window=3, horizon=2)
    assert X.shape == (6, 3, 2) and y.shape == (6, 4)
    np.testing.assert_array_equal(X[1], series[1:4])
    np.testing.assert_array_equal(y[1], np.concatenate([series[4], series[5]]))


def test_adding_problem_markers_and_target():
    X, y = data.adding_problem(200, 40, seed=1)
    assert X.shape == (200, 40, 2) and y.shape == (200, 1)
    values, marker = X[:, :, 0], X[:, :, 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(marker)) == {0.0, 1.0}
    assert np.all(marker[:, :20].sum(axis=1) == 1), "exactly one marker in the first half"
    assert np.all(marker[:, 20:].sum(axis=1) == 1), "exactly one marker in the second half"
    np.testing.assert_allclose(y[:, 0], (values * marker).sum(axis=1), rtol=0, atol=1e-12)
    first = marker[:, :20].argmax(axis=1)
    assert len(np.unique(first)) > 10, "marker positions are not spread over the first half"


def test_copy_task_layout():
    k, length, delay = 5, 4, 6
    X, y = data.copy_task(30, delay=delay, n_symbols=k, length=length, seed=2)
    t = 2 * length + delay
    assert X.shape == (30, t, k + 2) and y.shape == (30, t) and y.dtype == np.int64
    np.testing.assert_array_equal(X.sum(axis=-1), 1.0, err_msg="inputs are not one-hot")
    tokens = X.argmax(axis=-1)
    symbols = tokens[:, :length]
    assert np.all((symbols >= 1) & (symbols <= k))
    assert np.all(tokens[:, length : length + delay - 1] == 0)
    assert np.all(tokens[:, length + delay - 1] == k + 1), "delimiter one step before recall"
    assert np.all(tokens[:, length + delay :] == 0)
    assert np.all(y[:, : length + delay] == 0)
    np.testing.assert_array_equal(y[:, -length:], symbols)


def test_embedding_classification_rule():
    X, y = data.embedding_classification(500, 15, 12, seed=5)
    assert X.shape == (500, 15) and y.shape == (500,) and X.dtype == np.int64 and y.dtype == np.int64
    assert X.min() >= 1 and X.max() <= 11
    assert np.all((X == 1).sum(axis=1) == 1) and np.all((X == 2).sum(axis=1) == 1)
    expected = (np.argmax(X == 1, axis=1) < np.argmax(X == 2, axis=1)).astype(np.int64)
    np.testing.assert_array_equal(y, expected)
    assert 0.4 < y.mean() < 0.6, "labels are not balanced"


@pytest.mark.parametrize(("split", "count"), [("train", 270), ("test", 370)])
def test_japanese_vowels_counts(split, count):
    X, y = data.japanese_vowels(split)
    assert len(X) == count and y.shape == (count,) and y.dtype == np.int64
    assert all(x.ndim == 2 and x.shape[1] == 12 and x.dtype == np.float64 for x in X)
    lengths = {x.shape[0] for x in X}
    assert min(lengths) >= 7 and max(lengths) <= 29 and len(lengths) > 5, "lengths vary from 7 to 29"
    np.testing.assert_array_equal(np.unique(y), np.arange(9))


@pytest.mark.parametrize("split", ["train", "test"])
def test_japanese_vowels_equals_aeons_loader(split):
    from aeon.datasets import load_japanese_vowels

    raw, labels = load_japanese_vowels(split=split)
    X, y = data.japanese_vowels(split)
    assert len(X) == len(raw)
    for x, r in zip(X, raw):
        np.testing.assert_array_equal(x, np.asarray(r, dtype=np.float64).T)
    np.testing.assert_array_equal(y, np.asarray(labels).astype(np.int64) - 1)


def test_airline_series():
    from aeon.datasets import load_airline

    series = data.airline()
    assert series.values.shape == (144,) and series.dates.shape == (144,)
    assert series.values[:3].tolist() == [112.0, 118.0, 132.0]
    assert str(series.dates[0]) == "1949-01" and str(series.dates[-1]) == "1960-12"
    np.testing.assert_array_equal(series.values, np.asarray(load_airline(), dtype=np.float64))


def test_standardize_round_trip_and_reuse():
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    z, mean, std = data.standardize(x)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(z * std + mean, x, rtol=1e-12)
    z2, _, _ = data.standardize(x[:1], mean, std)
    np.testing.assert_allclose(z2, z[:1], rtol=1e-12)
    z1, m1, s1 = data.standardize(np.array([1.0, 2.0, 3.0]))
    assert m1.shape == () and s1.shape == () and z1.shape == (3,)


@pytest.mark.parametrize(
    ("call", "error", "named"),
    [
        (lambda: data.sum_of_sequence(0, seed=0), ValueError, "n_samples"),
        (lambda: data.sum_of_sequence(10, 2.5, seed=0), TypeError, "n_steps"),
        (lambda: data.sum_of_sequence(10, seed="0"), TypeError, "seed"),
        (lambda: data.copy_task(10, seed=-1), ValueError, "seed must be a non-negative int, got -1"),
        (lambda: data.sine_wave(periods=0), ValueError, "periods"),
        (lambda: data.sine_windows(test_fraction=1.0, seed=0), ValueError, "test_fraction"),
        (lambda: data.windows(np.zeros(5), window=5), ValueError, "too short"),
        (lambda: data.windows(np.zeros((2, 3, 4)), window=1), ValueError, "series"),
        (lambda: data.adding_problem(10, 1, seed=0), ValueError, "n_steps"),
        (lambda: data.copy_task(10, delay=0, seed=0), ValueError, "delay"),
        (lambda: data.embedding_classification(10, 5, 3, seed=0), ValueError, "vocab_size"),
        (lambda: data.japanese_vowels("validation"), ValueError, "split"),
        (lambda: data.standardize(np.ones(4)), ValueError, "std"),
        (lambda: data.standardize(np.array([1.0, np.nan])), ValueError, "NaN"),
        (lambda: data.standardize(np.ones((4, 2)), np.zeros(3), np.ones(3)), ValueError, "mean"),
        (lambda: data.standardize(np.ones(4), mean=0.0), ValueError, "both"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, error, named):
    with pytest.raises(error, match=named):
        call()

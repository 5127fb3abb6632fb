"""lstm_ref.init: bounds, moments, orthogonality, unit forget bias, determinism,
and agreement with Keras' and PyTorch's own initialisers.

Keras draws from PyTorch's generator here (KERAS_BACKEND=torch), which NumPy
cannot reproduce, so Glorot is compared by distribution (bound, moments, a
two-sample Kolmogorov-Smirnov test); the orthogonal algorithm is compared
exactly, on the same Gaussian matrix.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from lstm_ref import LSTM_VARIANTS, init
from lstm_ref.init import _qr_orthogonal

ORTHO_ATOL = 1e-12  # Q^T Q = I in float64
KS_PVALUE = 1e-3  # same distribution: reject only below this
MOMENT_SIGMAS = 5  # sample mean / variance within this many standard errors


def _numpy(t) -> np.ndarray:
    """A Keras tensor (a torch tensor on this backend) as NumPy, without keras.ops.convert_to_numpy's
    DeprecationWarning from NumPy 2's copy keyword."""
    return t.detach().cpu().numpy()


def _assert_uniform_moments(a: np.ndarray, bound: float, what: str):
    n = a.size
    var = bound**2 / 3  # variance of U(-bound, bound)
    assert np.abs(a).max() <= bound, f"{what}: a value exceeds the bound {bound}"
    assert np.abs(a).max() > 0.99 * bound, f"{what}: values do not reach the bound {bound}"
    assert abs(a.mean()) < MOMENT_SIGMAS * np.sqrt(var / n), f"{what}: mean {a.mean():.3g} not 0"
    se_var = var * np.sqrt(0.8 / n)  # standard error of the sample variance of a uniform
    assert abs(a.var() - var) < MOMENT_SIGMAS * se_var, f"{what}: variance {a.var():.4g}, expected {var:.4g}"


def test_glorot_uniform_bound_and_moments():
    D, H = 64, 100  # an LSTM input weight (D, 4H): fan_in = D, fan_out = 4H
    W = init.glorot_uniform((D, 4 * H), seed=0)
    _assert_uniform_moments(W, np.sqrt(6 / (D + 4 * H)), "glorot_uniform (D, 4H)")


def test_glorot_uniform_matches_keras_distribution():
    shape = (64, 400)
    ours = init.glorot_uniform(shape, seed=1)
    theirs = _numpy(keras.initializers.GlorotUniform(seed=1)(shape, dtype="float64"))
    assert np.abs(theirs).max() <= np.sqrt(6 / sum(shape)), "Keras' Glorot bound differs from sqrt(6/(fan_in+fan_out))"
    assert ks_2samp(ours.ravel(), theirs.ravel()).pvalue > KS_PVALUE, "Glorot samples differ in distribution from Keras"


@pytest.mark.parametrize("shape", [(8, 32), (32, 8), (6, 6), (1, 4)])
def test_orthogonal_is_orthogonal(shape):
    Q = init.orthogonal(shape, seed=2)
    small = min(shape)
    gram = Q @ Q.T if shape[0] <= shape[1] else Q.T @ Q  # rows orthonormal when wide
    np.testing.assert_allclose(gram, np.eye(small), atol=ORTHO_ATOL, err_msg=f"Q Q^T for orthogonal{shape}")


@pytest.mark.parametrize("shape", [(8, 32), (32, 8), (5, 5)])
def test_orthogonal_is_keras_algorithm_on_the_same_gaussian(shape):
    """Exact: Keras' Orthogonal(seed) draws keras.random.normal(flat shape, seed); same QR and sign fix."""
    flat_shape = (max(shape), min(shape))
    gaussian = _numpy(keras.random.normal(flat_shape, seed=4, dtype="float64"))
    theirs = _numpy(keras.initializers.Orthogonal(seed=4)(shape, dtype="float64"))
    np.testing.assert_allclose(_qr_orthogonal(gaussian, shape), theirs, atol=ORTHO_ATOL, err_msg=f"orthogonal{shape}")


def test_orthogonal_sign_fix_gives_haar_distribution():
    """Without the sign fix the first column of Q would lean to one sign; with it, entries are symmetric."""
    first = np.array([init.orthogonal((4, 3), seed=s)[0, 0] for s in range(400)])
    assert abs(np.mean(first > 0) - 0.5) < 0.1, "Q[0, 0] is not symmetric about 0"


@pytest.mark.parametrize("variant", list(LSTM_VARIANTS))
def test_unit_forget_bias(variant):
    H = 3
    b = init.unit_forget_bias(H, variant)
    gates = LSTM_VARIANTS[variant]
    assert b.shape == (len(gates) * H,)
    for k, g in enumerate(gates):
        expected = 1.0 if g == "f" else 0.0
        np.testing.assert_array_equal(b[k * H : (k + 1) * H], expected, err_msg=f"{variant}: {g} block of the bias")


def test_pytorch_uniform_matches_torch_default():
    H = 50
    ours = init.pytorch_uniform((4 * H, 30), H, seed=5)
    _assert_uniform_moments(ours, 1 / np.sqrt(H), "pytorch_uniform")
    torch.manual_seed(5)
    theirs = torch.nn.LSTM(30, H).weight_ih_l0.detach().numpy().astype(np.float64)
    assert ks_2samp(ours.ravel(), theirs.ravel()).pvalue > KS_PVALUE, "differs in distribution from nn.LSTM's init"


@pytest.mark.parametrize("scheme", init.SCHEMES)
def test_param_dicts_by_scheme(scheme):
    D, H = 3, 4
    lstm = init.init_lstm_params(D, H, scheme=scheme, seed=6)
    assert {k: v.shape for k, v in lstm.items()} == {"W": (D, 4 * H), "U": (H, 4 * H), "b": (4 * H,)}
    peephole = init.init_lstm_params(D, H, scheme=scheme, variant="peephole", seed=6)
    assert set(peephole) == {"W", "U", "b", "p_i", "p_f", "p_o"}
    gru = init.init_gru_params(D, H, scheme=scheme, reset_mode="recurrent-bias-after-multiplication", seed=6)
    assert {k: v.shape for k, v in gru.items()} == {"W": (D, 3 * H), "U": (H, 3 * H), "b": (3 * H,), "bh": (3 * H,)}
    rnn = init.init_rnn_params(D, H, scheme=scheme, seed=6, dtype=np.float32)
    assert {k: (v.shape, v.dtype) for k, v in rnn.items()} == {
        "W": ((D, H), np.float32), "U": ((H, H), np.float32), "b": ((H,), np.float32)
    }
    if scheme == "pytorch":
        assert all(np.all(v != 0) for v in lstm.values()), "PyTorch's scheme leaves no parameter at zero"
        assert np.abs(lstm["b"]).max() <= 2 / np.sqrt(H), "b = bias_ih + bias_hh lies in [-2/sqrt(H), 2/sqrt(H)]"
    else:
        np.testing.assert_allclose(lstm["U"] @ lstm["U"].T, np.eye(H), atol=ORTHO_ATOL, err_msg="U U^T")
        np.testing.assert_array_equal(lstm["b"], init.unit_forget_bias(H), err_msg="LSTM bias")
        assert not gru["b"].any() and not gru["bh"].any(), "GRU biases start at zero"
        assert not any(peephole[k].any() for k in ("p_i", "p_f", "p_o")), "peepholes start at zero"


def test_determinism_by_seed():
    a = init.init_lstm_params(3, 4, seed=7)
    b = init.init_lstm_params(3, 4, seed=7)
    c = init.init_lstm_params(3, 4, seed=8)
    d = init.init_lstm_params(3, 4, seed=np.random.default_rng(7))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"same seed, different {k}")
        np.testing.assert_array_equal(a[k], d[k], err_msg=f"int seed and Generator(seed) give different {k}")
    assert not np.array_equal(a["W"], c["W"]), "different seeds gave the same W"


def test_bad_arguments():
    with pytest.raises(TypeError, match="seed must be an int or a numpy.random.Generator"):
        init.glorot_uniform((2, 3), seed=None)
    with pytest.raises(ValueError, match="unknown scheme 'tensorflow'"):
        init.init_lstm_params(2, 3, scheme="tensorflow", seed=0)
    with pytest.raises(ValueError, match=r"shape must be a tuple of 2 positive ints, got \(2, 0\)"):
        init.orthogonal((2, 0), seed=0)
    with pytest.raises(ValueError, match="unknown variant"):
        init.unit_forget_bias(3, "gru")
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        init.init_rnn_params(2, 3, seed=-1)
    for dtype in (np.int64, np.float16, "complex128", "no such dtype", None):  # np.dtype(None) is float64
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            init.init_lstm_params(2, 3, seed=0, dtype=dtype)
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            init.init_gru_params(2, 3, scheme="pytorch", seed=0, dtype=dtype)
    assert {p.dtype for p in init.init_lstm_params(2, 3, seed=0, dtype="float32").values()} == {np.dtype(np.float32)}

"""lstm_ref.interop: exact round trips, torch modules, real Keras layers, MATLAB .mat files."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.io
import torch
from conftest import random_params

import lstm_ref
from lstm_ref import interop

RTOL, ATOL = 1e-10, 1e-12  # float64 forward passes of two implementations

# (cell, reset_mode) for every layout that converts; None for LSTM and RNN.
LAYOUTS = [
    ("lstm", None),
    ("rnn", None),
    ("gru", "after-multiplication"),
    ("gru", "before-multiplication"),
    ("gru", "recurrent-bias-after-multiplication"),
]
LAYOUT_IDS = [f"{c}-{m}" if m else c for c, m in LAYOUTS]
D, H = 3, 4


def _params(cell, mode, rng):
    return random_params(cell, D, H, {"reset_mode": mode} if mode else {}, rng)


def _assert_params_equal(a, b, what):
    assert set(a) == set(b), f"{what}: keys {sorted(a)} vs {sorted(b)}"
    for k in a:
        assert a[k].dtype == b[k].dtype, f"{what}: {k} dtype {a[k].dtype} vs {b[k].dtype}"
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


def _numpy(t) -> np.ndarray:
    """A Keras tensor (torch on this backend) as NumPy, avoiding keras.ops.convert_to_numpy's NumPy 2 warning."""
    return t.detach().cpu().numpy()


def _get_weights(layer) -> list[np.ndarray]:
    """``_get_weights(layer)`` read from the variables' torch values: Keras 3.15's own get_weights
    calls np.array on a variable, a DeprecationWarning under NumPy 2 (warnings are errors here)."""
    return [_numpy(v.value) for v in layer.weights]


@pytest.mark.parametrize(("cell", "mode"), LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trips_are_exact(cell, mode, dtype, rng):
    params = {k: v.astype(dtype) for k, v in _params(cell, mode, rng).items()}
    _assert_params_equal(interop.from_keras(interop.to_keras(params, cell, reset_mode=mode), cell, reset_mode=mode), params, "Keras")
    _assert_params_equal(interop.from_matlab(interop.to_matlab(params, cell, reset_mode=mode), cell, reset_mode=mode), params, "MATLAB")
    if mode != "before-multiplication":
        _assert_params_equal(interop.from_torch(interop.to_torch(params, cell, reset_mode=mode), cell, reset_mode=mode), params, "torch")


def test_layouts(rng):
    p = _params("lstm", None, rng)
    t = interop.to_torch(p)
    np.testing.assert_array_equal(t["weight_ih"], p["W"].T)
    np.testing.assert_array_equal(t["bias_hh"], 0)
    m = interop.to_matlab(p)
    assert {k: v.shape for k, v in m.items()} == {"InputWeights": (4 * H, D), "RecurrentWeights": (4 * H, H), "Bias": (4 * H, 1)}
    g = _params("gru", "recurrent-bias-after-multiplication", rng)
    kernel, recurrent, bias = interop.to_keras(g, "gru")
    np.testing.assert_array_equal(kernel[:, :H], g["W"][:, H : 2 * H], err_msg="Keras GRU block 0 is z")
    np.testing.assert_array_equal(recurrent[:, H : 2 * H], g["U"][:, :H], err_msg="Keras GRU block 1 is r")
    np.testing.assert_array_equal(bias[1, 2 * H :], g["bh"][2 * H :], err_msg="Keras GRU recurrent bias, h block")
    assert interop.to_matlab(g, "gru")["Bias"].shape == (6 * H, 1)
    two_biases = {**t, "bias_hh": t["bias_ih"] * 0.5}
    np.testing.assert_array_equal(interop.from_torch(two_biases)["b"], 1.5 * p["b"], err_msg="b = bias_ih + bias_hh")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_torch_module_round_trip(cell, rng):
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](D, H, num_layers=2, bidirectional=True).double()
    mode = "recurrent-bias-after-multiplication" if cell == "gru" else None
    layers = [(_params(cell, mode, rng), _params(cell, mode, rng))]
    layers.append(tuple(random_params(cell, 2 * H, H, {"reset_mode": mode} if mode else {}, rng) for _ in range(2)))
    interop.stacked_params_to_torch_module(layers, module)
    back = interop.stacked_params_from_torch_module(module)
    for k in range(2):
        for d in range(2):
            _assert_params_equal(back[k][d], layers[k][d], f"layer {k} direction {d}")
    np.testing.assert_array_equal(module.weight_hh_l1_reverse.detach().numpy(), layers[1][1]["U"].T)


def test_torch_conversion_errors(rng):
    gru = torch.nn.GRU(D, H).double()
    with pytest.raises(ValueError, match="'before-multiplication' GRU has no nn.GRU equivalent"):
        interop.params_to_torch_module(_params("gru", "before-multiplication", rng), gru, reset_mode="before-multiplication")
    with pytest.raises(ValueError, match="non-zero recurrent bias in its candidate"):
        interop.params_from_torch_module(gru, reset_mode="after-multiplication")
    with pytest.raises(ValueError, match="reverse=True needs a bidirectional module"):
        interop.params_from_torch_module(gru, reverse=True)
    with pytest.raises(ValueError, match=r"layer must be in \[0, 1\)"):
        interop.params_from_torch_module(gru, layer=1)
    with pytest.raises(ValueError, match=r"weight_ih_l0 of the module has shape \(12, 3\), params give \(12, 5\)"):
        interop.params_to_torch_module(random_params("gru", 5, H, {}, rng), gru)
    with pytest.raises(TypeError, match="module must be a torch.nn.LSTM, nn.GRU or nn.RNN"):
        interop.params_from_torch_module(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="nonlinearity='tanh'"):
        interop.params_from_torch_module(torch.nn.RNN(D, H, nonlinearity="relu"))


# Keras on PyTorch runs the LSTM and the reset_after=True GRU through torch's fused kernels (float64
# throughout), while SimpleRNN and the reset_after=False GRU step through keras.ops.matmul, which on
# this backend returns float32 even for float64 inputs: those two agree to float32 precision only.
F32_RTOL, F32_ATOL = 1e-5, 1e-6
F64 = (RTOL, ATOL)
F32 = (F32_RTOL, F32_ATOL)
KERAS_LAYERS = [
    ("lstm", None, F64, lambda: keras.layers.LSTM(H, return_sequences=True, dtype="float64")),
    ("gru", "recurrent-bias-after-multiplication", F64, lambda: keras.layers.GRU(H, return_sequences=True, dtype="float64")),
    ("gru", "after-multiplication", F64, lambda: keras.layers.GRU(H, return_sequences=True, dtype="float64")),
    ("gru", "before-multiplication", F32, lambda: keras.layers.GRU(H, return_sequences=True, reset_after=False, dtype="float64")),
    ("rnn", None, F32, lambda: keras.layers.SimpleRNN(H, return_sequences=True, dtype="float64")),
]


@pytest.mark.parametrize(
    ("cell", "mode", "tolerance", "make"), KERAS_LAYERS, ids=[f"{c}-{m}" if m else c for c, m, _, _ in KERAS_LAYERS]
)
def test_keras_layer_forward_equals_ours(cell, mode, tolerance, make, rng):
    """A real Keras layer with our weights (set_weights) computes our forward pass."""
    N, T = 2, 5
    x = rng.standard_normal((N, T, D))
    layer = make()
    layer.build((N, T, D))
    params = _params(cell, mode, rng)
    layer.set_weights(interop.to_keras(params, cell, reset_mode=mode))
    _assert_params_equal(interop.from_keras(_get_weights(layer), cell, reset_mode=mode), params, "get_weights round trip")
    ours = lstm_ref.stacked_forward(cell, x, [params], **({"reset_mode": mode} if mode else {}))[0]
    rtol, atol = tolerance
    np.testing.assert_allclose(ours, _numpy(layer(x)), rtol=rtol, atol=atol, err_msg=f"Keras {cell} {mode} forward")


def test_keras_default_gru_weights_convert(rng):
    """Keras' own initial weights (reset_after=True) read back into params give Keras' output."""
    N, T = 2, 4
    x = rng.standard_normal((N, T, D))
    layer = keras.layers.GRU(H, return_sequences=True, dtype="float64", seed=3)
    layer.build((N, T, D))
    weights = _get_weights(layer)
    weights[2] = rng.standard_normal(weights[2].shape)  # non-zero input and recurrent biases
    layer.set_weights(weights)
    params = interop.from_keras(_get_weights(layer), "gru")
    ours = lstm_ref.gru_forward(x, params, reset_mode="recurrent-bias-after-multiplication")[0]
    np.testing.assert_allclose(ours, _numpy(layer(x)), rtol=RTOL, atol=ATOL, err_msg="Keras GRU default layer")


@pytest.mark.parametrize(("cell", "mode"), LAYOUTS, ids=LAYOUT_IDS)
def test_load_matlab_mat(cell, mode, rng, tmp_path):
    params = _params(cell, mode, rng)
    path = tmp_path / "layer.mat"
    scipy.io.savemat(path, interop.to_matlab(params, cell, reset_mode=mode))
    _assert_params_equal(interop.load_matlab_mat(path, cell, reset_mode=mode), params, f"{cell} {mode} via .mat")


def test_matlab_conversion_errors(rng):
    g6 = interop.to_matlab(_params("gru", "recurrent-bias-after-multiplication", rng), "gru")
    with pytest.raises(ValueError, match=r"reset_mode 'after-multiplication' needs a Bias of 3H = 12 rows, got shape \(24,\)"):
        interop.from_matlab(g6, "gru", reset_mode="after-multiplication")
    with pytest.raises(ValueError, match=r"missing \['Bias'\]"):
        interop.from_matlab({k: g6[k] for k in ("InputWeights", "RecurrentWeights")}, "gru")
    lstm = interop.to_matlab(_params("lstm", None, rng))
    with pytest.raises(ValueError, match=r"params\['b'\] must have shape \(4H,\) = \(16,\), got \(15,\)"):
        interop.from_matlab({**lstm, "Bias": lstm["Bias"][:-1]})

"""Step functions of every cell, variant and reset mode: finite differences,
PyTorch's cells, the sequence functions at T = 1, and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CASE_IDS, CASES, n_states, random_params, sequence_forward, step_backward, step_forward

import lstm_ref
from lstm_ref.gradcheck import gradcheck
from lstm_ref.interop import to_torch

GRAD_RTOL = 1e-7  # centred differences in float64, eps = 1e-6
RTOL, ATOL = 1e-10, 1e-12  # against PyTorch in float64
F32_RTOL, F32_ATOL = 1e-5, 1e-6  # float32 against the float64 result

# (N, D, H): N = 1, H = 1, D > H and D < H.
STEP_SHAPES = [(1, 3, 2), (2, 1, 3), (3, 4, 1), (2, 5, 3)]


def _inputs(cell, options, N, D, H, rng):
    x = rng.standard_normal((N, D))
    states = tuple(rng.standard_normal((N, H)) for _ in range(n_states(cell)))
    return x, states, random_params(cell, D, H, options, rng)


@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize(("N", "D", "H"), STEP_SHAPES)
def test_step_backward_matches_finite_differences(cell, options, N, D, H, rng):
    x, states, params = _inputs(cell, options, N, D, H, rng)
    upstream = tuple(rng.standard_normal((N, H)) for _ in states)
    _, cache = step_forward(cell, x, states, params, options)
    dx, dstates, grads = step_backward(cell, upstream, cache)

    names = ["h_prev", "c_prev"][: len(states)]

    def loss(a):
        p = {k: a[k] for k in params}
        new, _ = step_forward(cell, a["x"], tuple(a[n] for n in names), p, options)
        return sum(np.sum(s * u) for s, u in zip(new, upstream))

    arrays = {"x": x, **dict(zip(names, states)), **params}
    analytic = {"x": dx, **dict(zip(names, dstates)), **grads}
    errors = gradcheck(loss, arrays, analytic)
    for name, err in errors.items():
        assert err < GRAD_RTOL, f"{cell} {options} step: d{name} relative error {err:.2e}"


def test_step_lstm_equals_torch_lstm_cell(rng):
    N, D, H = 3, 4, 5
    x, (h, c), params = _inputs("lstm", {"variant": "standard"}, N, D, H, rng)
    torch_cell = torch.nn.LSTMCell(D, H).double()
    state = to_torch(params, "lstm")
    with torch.no_grad():
        for k, v in state.items():
            getattr(torch_cell, k).copy_(torch.from_numpy(v))
    h_new, c_new, _ = lstm_ref.lstm_step_forward(x, h, c, params)
    h_t, c_t = torch_cell(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
    np.testing.assert_allclose(h_new, h_t.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="h vs nn.LSTMCell")
    np.testing.assert_allclose(c_new, c_t.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="c vs nn.LSTMCell")


@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
def test_step_equals_sequence_of_length_one(cell, options, rng):
    N, D, H = 2, 3, 4
    x, states, params = _inputs(cell, options, N, D, H, rng)
    new, _ = step_forward(cell, x, states, params, options)
    out, final, _ = sequence_forward(cell, x[:, None, :], params, states, options)
    np.testing.assert_allclose(out[:, 0], new[0], rtol=RTOL, atol=ATOL, err_msg=f"{cell} {options}: h")
    for k, (a, b) in enumerate(zip(final, new)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{cell} {options}: state {k}")


@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
def test_float32_in_float32_out(cell, options, rng):
    N, D, H = 2, 3, 4
    x, states, params = _inputs(cell, options, N, D, H, rng)
    new64, _ = step_forward(cell, x, states, params, options)
    new32, cache = step_forward(cell, x.astype(np.float32), tuple(s.astype(np.float32) for s in states), params, options)
    dx, dstates, grads = step_backward(cell, tuple(rng.standard_normal(s.shape, np.float32) for s in new32), cache)
    for name, a in [("dx", dx), *(("dstate", d) for d in dstates), *grads.items()]:
        assert a.dtype == np.float32, f"{cell} {options}: {name} is {a.dtype}, expected float32"
    for a32, a64 in zip(new32, new64):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=F32_RTOL, atol=F32_ATOL, err_msg=f"{cell} {options}: float32 state")


def test_lstm_variants_reduce_to_their_equations(rng):
    """coupled has f = 1 - i, no_forget f = 1, no_output o = 1: rebuild each from standard blocks."""
    N, D, H = 2, 3, 4
    x, (h, c), p = _inputs("lstm", {"variant": "standard"}, N, D, H, rng)
    blk = {g: slice(k * H, (k + 1) * H) for k, g in enumerate("ifgo")}

    def sub(gates):
        cols = np.r_[tuple(blk[g] for g in gates)]
        return {"W": p["W"][:, cols], "U": p["U"][:, cols], "b": p["b"][cols]}

    z = x @ p["W"] + h @ p["U"] + p["b"]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    i, f, g, o = sig(z[:, blk["i"]]), sig(z[:, blk["f"]]), np.tanh(z[:, blk["g"]]), sig(z[:, blk["o"]])
    expected = {
        "coupled": ((1 - i) * c + i * g, "igo"),
        "no_forget": (c + i * g, "igo"),
        "no_output": (f * c + i * g, "ifg"),
    }
    for variant, (c_new, gates) in expected.items():
        h_out, c_out, _ = lstm_ref.lstm_step_forward(x, h, c, sub(gates), variant=variant)
        h_new = np.tanh(c_new) * (1 if variant == "no_output" else o)
        np.testing.assert_allclose(c_out, c_new, rtol=RTOL, atol=ATOL, err_msg=f"{variant}: c")
        np.testing.assert_allclose(h_out, h_new, rtol=RTOL, atol=ATOL, err_msg=f"{variant}: h")


def test_peephole_with_zero_peepholes_is_standard(rng):
    N, D, H = 2, 3, 4
    x, (h, c), p = _inputs("lstm", {"variant": "standard"}, N, D, H, rng)
    zeros = {k: np.zeros(H) for k in ("p_i", "p_f", "p_o")}
    standard = lstm_ref.lstm_step_forward(x, h, c, p)[:2]
    peephole = lstm_ref.lstm_step_forward(x, h, c, {**p, **zeros}, variant="peephole")[:2]
    for name, a, b in zip("hc", standard, peephole):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"peephole with p = 0: {name}")


def test_step_does_not_modify_inputs(rng):
    x, (h, c), p = _inputs("lstm", {"variant": "peephole"}, 2, 3, 4, rng)
    before = [a.copy() for a in (x, h, c, *p.values())]
    h_new, c_new, cache = lstm_ref.lstm_step_forward(x, h, c, p, variant="peephole")
    lstm_ref.lstm_step_backward(rng.standard_normal(h_new.shape), rng.standard_normal(c_new.shape), cache)
    for a, b in zip(before, (x, h, c, *p.values())):
        np.testing.assert_array_equal(a, b, err_msg="an input array was modified")

"""The PyTorch backend equals the NumPy backend (float64, outputs and gradients).

For every cell, LSTM variant and GRU reset mode, in the teaching form and the
fused form where it exists: forward outputs and final states, then gradients
by autograd of ``(out * dout).sum() + (h_T * dh_T).sum() [+ (c_T * dc_T).sum()]``
with random upstream gradients against the NumPy backward pass. Biases and
initial states are random (non-zero).
"""

import numpy as np
import pytest
import torch

import lstm_ref
from lstm_ref import torch_backend as tb

RTOL = ATOL = 1e-10
N, T, D, H = 3, 5, 4, 6


def _params(cell: str, kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random parameters (scaled so the gates are neither saturated nor linear)."""
    G = {"rnn": 1, "gru": 3}.get(cell, 4 if kind in ("standard", "peephole") else 3)
    p = {"W": rng.standard_normal((D, G * H)) * 0.5, "U": rng.standard_normal((H, G * H)) * 0.5,
         "b": rng.standard_normal(G * H) * 0.5}
    if kind == "peephole":
        p.update({k: rng.standard_normal(H) * 0.5 for k in ("p_i", "p_f", "p_o")})
    if kind == "recurrent-bias-after-multiplication":
        p["bh"] = rng.standard_normal(G * H) * 0.5
    return p


CASES = (
    [("lstm", v, "teaching") for v in tb.LSTM_VARIANTS]
    + [("lstm", "standard", "fast")]
    + [("gru", m, "teaching") for m in tb.GRU_RESET_MODES]
    + [("gru", m, "fast") for m in ("after-multiplication", "recurrent-bias-after-multiplication")]
    + [("rnn", "tanh", "teaching")]
)


def _numpy_run(cell, kind, x, p, states, dout, dstates, return_sequences):
    """NumPy forward and backward: (outputs, gradients) keyed by name."""
    if cell == "lstm":
        out, (h, c), cache = lstm_ref.lstm_forward(x, p, *states, variant=kind, return_sequences=return_sequences)
        dx, dh0, dc0, grads = lstm_ref.lstm_backward(dout, cache, *dstates)
        return {"out": out, "h_T": h, "c_T": c}, {"x": dx, "h0": dh0, "c0": dc0, **grads}
    if cell == "gru":
        out, h, cache = lstm_ref.gru_forward(x, p, *states, reset_mode=kind, return_sequences=return_sequences)
        dx, dh0, grads = lstm_ref.gru_backward(dout, cache, *dstates)
    else:
        out, h, cache = lstm_ref.rnn_forward(x, p, *states, return_sequences=return_sequences)
        dx, dh0, grads = lstm_ref.rnn_backward(dout, cache, *dstates)
    return {"out": out, "h_T": h}, {"x": dx, "h0": dh0, **grads}


def _torch_run(cell, kind, form, x, p, states, return_sequences):
    """Torch forward: outputs keyed by name."""
    if cell == "lstm":
        fn = tb.lstm_forward_fast if form == "fast" else lambda *a, **k: tb.lstm_forward(*a, variant=kind, **k)
        out, (h, c) = fn(x, p, *states, return_sequences=return_sequences)
        return {"out": out, "h_T": h, "c_T": c}
    if cell == "gru":
        fn = tb.gru_forward_fast if form == "fast" else tb.gru_forward
        out, h = fn(x, p, *states, reset_mode=kind, return_sequences=return_sequences)
    else:
        out, h = tb.rnn_forward(x, p, *states, return_sequences=return_sequences)
    return {"out": out, "h_T": h}


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("cell, kind, form", CASES)
def test_sequence_matches_numpy_backend(cell, kind, form, return_sequences):
    rng = np.random.default_rng(7)
    p = _params(cell, kind, rng)
    x = rng.standard_normal((N, T, D))
    n_states = 2 if cell == "lstm" else 1
    states = [rng.standard_normal((N, H)) for _ in range(n_states)]
    dout = rng.standard_normal((N, T, H) if return_sequences else (N, H))
    dstates = [rng.standard_normal((N, H)) for _ in range(n_states)]
    ref_out, ref_grads = _numpy_run(cell, kind, x, p, states, dout, dstates, return_sequences)

    leaves = {"x": x, **{k: v for k, v in zip(("h0", "c0"), states)}, **p}
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in leaves.items()}
    outs = _torch_run(cell, kind, form, leaves["x"], {k: leaves[k] for k in p},
                      [leaves[k] for k in ("h0", "c0")[:n_states]], return_sequences)
    upstream = [dout, *dstates]
    objective = sum((o * torch.from_numpy(d)).sum() for o, d in zip(outs.values(), upstream))
    grads = torch.autograd.grad(objective, list(leaves.values()))

    for name, value in outs.items():
        np.testing.assert_allclose(value.detach().numpy(), ref_out[name], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{cell} {kind} {form}: {name}")
    for name, grad in zip(leaves, grads):
        np.testing.assert_allclose(grad.numpy(), ref_grads[name], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{cell} {kind} {form}: gradient of {name}")


@pytest.mark.parametrize("variant", tb.LSTM_VARIANTS)
def test_lstm_step_matches_numpy_step_twice_in_a_row(variant):
    rng = np.random.default_rng(3)
    p = _params("lstm", variant, rng)
    h, c = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    ht, ct = torch.from_numpy(h), torch.from_numpy(c)
    pt = {k: torch.from_numpy(v) for k, v in p.items()}
    for _ in range(2):
        x = rng.standard_normal((N, D))
        h, c, _cache = lstm_ref.lstm_step_forward(x, h, c, p, variant=variant)
        ht, ct = tb.lstm_step(torch.from_numpy(x), ht, ct, pt, variant=variant)
        np.testing.assert_allclose(ht.numpy(), h, rtol=RTOL, atol=ATOL, err_msg=f"{variant}: h")
        np.testing.assert_allclose(ct.numpy(), c, rtol=RTOL, atol=ATOL, err_msg=f"{variant}: c")


@pytest.mark.parametrize("reset_mode", tb.GRU_RESET_MODES)
def test_gru_and_rnn_steps_match_numpy_steps(reset_mode):
    rng = np.random.default_rng(4)
    p = _params("gru", reset_mode, rng)
    x, h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    h_ref, _cache = lstm_ref.gru_step_forward(x, h, p, reset_mode=reset_mode)
    h_t = tb.gru_step(torch.from_numpy(x), torch.from_numpy(h), {k: torch.from_numpy(v) for k, v in p.items()},
                      reset_mode=reset_mode)
    np.testing.assert_allclose(h_t.numpy(), h_ref, rtol=RTOL, atol=ATOL, err_msg=f"GRU {reset_mode}: h")
    q = _params("rnn", "tanh", rng)
    h_ref, _cache = lstm_ref.rnn_step_forward(x, h, q)
    h_t = tb.rnn_step(torch.from_numpy(x), torch.from_numpy(h), {k: torch.from_numpy(v) for k, v in q.items()})
    np.testing.assert_allclose(h_t.numpy(), h_ref, rtol=RTOL, atol=ATOL, err_msg="RNN: h")


def test_hard_sigmoids_follow_each_framework():
    x = torch.tensor([-4.0, -2.5, -1.0, 0.0, 1.0, 2.5, 4.0], dtype=torch.float64)
    keras = torch.clamp(x / 6 + 0.5, 0, 1)  # Keras 3: relu6(x + 3) / 6
    matlab = torch.clamp(0.2 * x + 0.5, 0, 1)
    torch.testing.assert_close(tb.hard_sigmoid_keras(x), keras)
    torch.testing.assert_close(tb.hard_sigmoid_matlab(x), matlab)
    # they differ: at x = 2.5 MATLAB's has saturated, Keras 3's has not
    assert tb.hard_sigmoid_matlab(torch.tensor(2.5)) == 1.0
    assert tb.hard_sigmoid_keras(torch.tensor(2.5)) < 1.0


def test_hard_sigmoid_keras_equals_real_keras():
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    x = torch.linspace(-5, 5, 41, dtype=torch.float64)
    torch.testing.assert_close(tb.hard_sigmoid_keras(x), keras.activations.hard_sigmoid(x))


def test_outputs_follow_the_input_dtype_and_device():
    p = {k: torch.from_numpy(v).float() for k, v in _params("lstm", "standard", np.random.default_rng(0)).items()}
    x = torch.randn(N, T, D)
    for fn in (tb.lstm_forward, tb.lstm_forward_fast):
        out, (h, c) = fn(x, p)
        assert out.dtype == h.dtype == torch.float32 and out.device == x.device and out.shape == (N, T, H)


def test_bad_input_names_the_argument():
    p = {k: torch.from_numpy(v) for k, v in _params("lstm", "standard", np.random.default_rng(0)).items()}
    with pytest.raises(ValueError, match="x must be a torch tensor of shape"):
        tb.lstm_forward(torch.zeros(N, D, dtype=torch.float64), p)
    with pytest.raises(ValueError, match="D=5 features but W expects D=4"):
        tb.lstm_forward(torch.zeros(N, T, 5, dtype=torch.float64), p)
    with pytest.raises(ValueError, match="variant must be one of"):
        tb.lstm_forward(torch.zeros(N, T, D, dtype=torch.float64), p, variant="peepholes")
    with pytest.raises(ValueError, match="missing \\['p_i', 'p_f', 'p_o'\\]"):
        tb.lstm_forward(torch.zeros(N, T, D, dtype=torch.float64), p, variant="peephole")
    with pytest.raises(ValueError, match="cannot apply the reset gate before"):
        tb.gru_forward_fast(torch.zeros(N, T, D), p, reset_mode="before-multiplication")

"""The PyTorch backend equals the NumPy backend (float64, outputs and gradients).

For every cell, LSTM variant and GRU reset mode (conftest's CASES), in the
teaching form and the fused form where it exists: forward outputs and final states, then gradients
by autograd of ``(out * dout).sum() + (h_T * dh_T).sum() [+ (c_T * dc_T).sum()]``
with random upstream gradients against the NumPy backward pass. Biases and
initial states are random (non-zero).
"""

import numpy as np
import pytest
import torch
from conftest import CASE_IDS, CASES, n_states, random_params, sequence_backward, sequence_forward

import lstm_ref
from lstm_ref import layers
from lstm_ref import torch_backend as tb

RTOL = ATOL = 1e-10
N, T, D, H = 3, 5, 4, 6

# The cells that the fused kernels of nn.LSTM / nn.GRU express.
FUSED = [("lstm", {"variant": "standard"}), ("gru", {"reset_mode": "after-multiplication"}),
         ("gru", {"reset_mode": "recurrent-bias-after-multiplication"})]
FORMS = [(cell, options, "teaching") for cell, options in CASES] + [
    (cell, options, "fused") for cell, options in FUSED]
FORM_IDS = [f"{i}-teaching" for i in CASE_IDS] + [f"{c}-{next(iter(o.values()))}-fused" for c, o in FUSED]


def _params(cell: str, kind: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    options = {"lstm": {"variant": kind}, "gru": {"reset_mode": kind}}.get(cell, {})
    return random_params(cell, D, H, options, rng)


def _torch_forward(cell, form, x, params, states0, options, return_sequences):
    """The torch backend's sequence forward: (out, final states tuple)."""
    if cell == "lstm":
        run = tb.lstm_forward_fast if form == "fused" else tb.lstm_forward
        out, (h, c) = run(x, params, *states0, return_sequences=return_sequences,
                          **(options if form == "teaching" else {}))
        return out, (h, c)
    if cell == "gru":
        run = tb.gru_forward_fast if form == "fused" else tb.gru_forward
        out, h = run(x, params, *states0, return_sequences=return_sequences, **options)
    else:
        out, h = tb.rnn_forward(x, params, *states0, return_sequences=return_sequences)
    return out, (h,)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize(("cell", "options", "form"), FORMS, ids=FORM_IDS)
def test_sequence_matches_numpy_backend(cell, options, form, return_sequences, rng):
    x = rng.standard_normal((N, T, D))
    params = random_params(cell, D, H, options, rng)  # every bias non-zero
    states0 = tuple(rng.standard_normal((N, H)) for _ in range(n_states(cell)))
    out, final, cache = sequence_forward(cell, x, params, states0, options, return_sequences)
    dout = rng.standard_normal(out.shape)
    dfinal = tuple(rng.standard_normal((N, H)) for _ in final)
    dx, dstates0, grads = sequence_backward(cell, dout, cache, dfinal)
    state_names = ("h0", "c0")[: len(states0)]
    expected = {"x": dx, **dict(zip(state_names, dstates0)), **grads}

    leaves = {k: torch.tensor(v, requires_grad=True)
              for k, v in {"x": x, **dict(zip(state_names, states0)), **params}.items()}
    out_t, final_t = _torch_forward(cell, form, leaves["x"], {k: leaves[k] for k in params},
                                    [leaves[k] for k in state_names], options, return_sequences)
    what = f"{cell} {options} {form}"
    for name, got, ref in zip(("out", "h_T", "c_T"), (out_t, *final_t), (out, *final)):
        np.testing.assert_allclose(got.detach().numpy(), ref, rtol=RTOL, atol=ATOL, err_msg=f"{what}: {name}")
    objective = sum((o * torch.from_numpy(d)).sum() for o, d in zip((out_t, *final_t), (dout, *dfinal)))
    for name, grad in zip(leaves, torch.autograd.grad(objective, list(leaves.values()))):
        np.testing.assert_allclose(grad.numpy(), expected[name], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what}: gradient of {name}")


@pytest.mark.parametrize("variant", tb.LSTM_VARIANTS)
def test_lstm_step_matches_numpy_step_twice_in_a_row(variant, rng):
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
def test_gru_and_rnn_steps_match_numpy_steps(reset_mode, rng):
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


def test_outputs_follow_the_input_dtype_and_device(rng):
    p = {k: torch.from_numpy(v).float() for k, v in _params("lstm", "standard", rng).items()}
    x = torch.randn(N, T, D)
    for fn in (tb.lstm_forward, tb.lstm_forward_fast):
        out, (h, c) = fn(x, p)
        assert out.dtype == h.dtype == torch.float32 and out.device == x.device and out.shape == (N, T, H)


def test_bad_input_names_the_argument(rng):
    p = {k: torch.from_numpy(v) for k, v in _params("lstm", "standard", rng).items()}
    x = torch.zeros(N, T, D, dtype=torch.float64)
    with pytest.raises(ValueError, match="x must be a floating-point torch tensor of shape \\(N, T, D\\)"):
        tb.lstm_forward(torch.zeros(N, D, dtype=torch.float64), p)
    with pytest.raises(ValueError, match="x must not be empty: shape \\(N, T, D\\) = \\(3, 0, 4\\)"):
        tb.lstm_forward_fast(x[:, :0], p)
    with pytest.raises(ValueError, match="x has D = 5 features but params\\['W'\\] for the standard LSTM has 4 rows"):
        tb.lstm_forward(torch.zeros(N, T, 5, dtype=torch.float64), p)
    with pytest.raises(ValueError, match="variant must be one of"):
        tb.lstm_forward(x, p, variant="peepholes")
    with pytest.raises(ValueError, match="exactly the keys \\('W', 'U', 'b', 'p_i', 'p_f', 'p_o'\\)"):
        tb.lstm_forward(x, p, variant="peephole")
    with pytest.raises(ValueError, match="cannot apply the reset gate before"):
        tb.gru_forward_fast(torch.zeros(N, T, D), p, reset_mode="before-multiplication")


@pytest.mark.parametrize(("cell", "options", "form"), FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nan_or_inf_input_is_refused_as_in_the_numpy_backend(cell, options, form, bad, rng):
    kind = next(iter(options.values()), "")
    params = {k: torch.from_numpy(v) for k, v in _params(cell, kind, rng).items()}
    x = torch.zeros(N, T, D, dtype=torch.float64)
    x[1, 2, 3] = bad
    with pytest.raises(ValueError, match="^x contains NaN or inf$"):
        _torch_forward(cell, form, x, params, (), options, True)
    if cell == "rnn":
        with pytest.raises(ValueError, match="^x contains NaN or inf$"):
            tb.rnn_forward_fast(x, params)


def test_an_activation_must_be_a_function_not_its_name(rng):
    q = {k: torch.from_numpy(v) for k, v in _params("rnn", "", rng).items()}
    x = torch.zeros(N, T, D, dtype=torch.float64)
    with pytest.raises(TypeError, match="activation must be a function of a tensor, such as torch.tanh or "
                                        "torch.relu, got 'relu'"):
        tb.rnn_forward(x, q, activation="relu")
    np.testing.assert_allclose(tb.rnn_forward(x, q, activation=torch.relu)[0].numpy(),
                               tb.rnn_forward_fast(x, q, nonlinearity="relu")[0].numpy(), rtol=RTOL, atol=ATOL,
                               err_msg="rnn_forward(activation=torch.relu) against the fused relu kernel")


@pytest.mark.parametrize("form", ["teaching", "fused"])
def test_nothing_is_broadcast_or_dropped_silently(rng, form):
    """A state of the wrong shape, a bias with an extra axis, a key the cell would ignore or a
    dtype that differs from the parameters' is an error naming it, as in the NumPy backend."""
    lstm = tb.lstm_forward_fast if form == "fused" else tb.lstm_forward
    gru = tb.gru_forward_fast if form == "fused" else tb.gru_forward
    p = {k: torch.from_numpy(v) for k, v in _params("lstm", "standard", rng).items()}
    x, h = torch.zeros(N, T, D, dtype=torch.float64), torch.zeros(N, H, dtype=torch.float64)
    for bad in (h[:1], h[0], h.float()):
        with pytest.raises(ValueError, match=f"h0 must be a tensor of shape \\({N}, {H}\\) of x's dtype"):
            lstm(x, p, bad, h)
        with pytest.raises(ValueError, match=f"c0 must be a tensor of shape \\({N}, {H}\\)"):
            lstm(x, p, h, bad)
    with pytest.raises(ValueError, match=f"params\\['b'\\] for the standard LSTM must be a tensor of shape \\({4 * H},\\)"):
        lstm(x, {**p, "b": p["b"][None]})
    peepholes = {k: torch.ones(H, dtype=torch.float64) for k in ("p_i", "p_f", "p_o")}
    with pytest.raises(ValueError, match="exactly the keys \\('W', 'U', 'b'\\), got \\['U', 'W', 'b', 'p_f'"):
        lstm(x, {**p, **peepholes})
    with pytest.raises(TypeError, match="params\\['W'\\] is a torch.float64 tensor .* but x is a torch.float32"):
        lstm(x.float(), p)
    q = {k: torch.from_numpy(v) for k, v in _params("gru", "recurrent-bias-after-multiplication", rng).items()}
    with pytest.raises(ValueError, match="params for the after-multiplication GRU must hold exactly the keys "
                                         "\\('W', 'U', 'b'\\), got \\['U', 'W', 'b', 'bh'\\]"):
        gru(x, q)  # both forms default to MATLAB's placement, which has no bh
    assert gru(x, q, reset_mode="recurrent-bias-after-multiplication")[0].shape == (N, T, H)


def test_the_step_functions_check_their_states(rng):
    p = {k: torch.from_numpy(v) for k, v in _params("lstm", "standard", rng).items()}
    q = {k: torch.from_numpy(v) for k, v in _params("rnn", "", rng).items()}
    x, h = torch.zeros(N, D, dtype=torch.float64), torch.zeros(N, H, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"c_prev must be a tensor of shape \\({N}, {H}\\)"):
        tb.lstm_step(x, h, h[:1], p)
    with pytest.raises(ValueError, match=f"xW must be a tensor of shape \\({N}, {4 * H}\\)"):
        tb.lstm_step(x, h, h, p, xW=h)
    with pytest.raises(ValueError, match=f"h_prev must be a tensor of shape \\({N}, {H}\\)"):
        tb.rnn_step(x, h[0], q)
    with pytest.raises(ValueError, match="x must be a floating-point torch tensor of shape \\(N, D\\)"):
        tb.rnn_step(x.long(), h, q)


# ------------------------------------------------------------- lstm_ref.layers
def test_layers_hold_params_by_name_and_pick_the_fused_kernel_when_it_applies(rng):
    p = _params("lstm", "standard", rng)
    fused = layers.LSTM(p, return_sequences=True, dtype=torch.float64)
    assert fused.fused and set(dict(fused.named_parameters())) == {"W", "U", "b"}
    for unfused in (layers.LSTM(p, return_sequences=True, recurrent_activation="hard_sigmoid_keras",
                                dtype=torch.float64),
                    layers.GRU(_params("gru", "before-multiplication", rng), dtype=torch.float64,
                               reset_mode="before-multiplication")):
        assert not unfused.fused
    x = torch.from_numpy(rng.standard_normal((N, T, D)))
    expected = lstm_ref.lstm_forward(x.numpy(), p)[0]
    np.testing.assert_allclose(fused(x).detach().numpy(), expected, rtol=RTOL, atol=ATOL)


def test_reverse_layer_reads_backwards_and_aligns_outputs_with_inputs(rng):
    p = _params("gru", "recurrent-bias-after-multiplication", rng)
    options = dict(reset_mode="recurrent-bias-after-multiplication", dtype=torch.float64)
    x = torch.from_numpy(rng.standard_normal((N, T, D)))
    backward = layers.GRU(p, return_sequences=True, reverse=True, **options)
    forward_on_flipped = layers.GRU(p, return_sequences=True, **options)(x.flip(1))
    torch.testing.assert_close(backward(x), forward_on_flipped.flip(1))
    last = layers.GRU(p, return_sequences=False, reverse=True, **options)(x)
    torch.testing.assert_close(last, forward_on_flipped[:, -1])  # the state after reading step 0
    both = layers.Bidirectional(layers.GRU(p, return_sequences=True, **options), backward)
    assert both(x).shape == (N, T, 2 * H)
    with pytest.raises(ValueError, match="backward_layer must have reverse=True"):
        layers.Bidirectional(backward, backward)


def test_layers_without_bias_run_with_zero_bias(rng):
    p = _params("lstm", "standard", rng)
    no_bias = {k: v for k, v in p.items() if k != "b"}
    x = torch.from_numpy(rng.standard_normal((N, T, D)))
    expected = lstm_ref.lstm_forward(x.numpy(), {**no_bias, "b": np.zeros_like(p["b"])}, return_sequences=False)[0]
    out = layers.LSTM(no_bias, dtype=torch.float64)(x)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=RTOL, atol=ATOL)


def test_recurrent_dropout_masks_scale_each_gate_block_of_h_prev():
    """h_masks (G, N, H): block k of h_prev U reads h_prev * h_masks[k]; all-ones masks change nothing."""
    g = torch.Generator().manual_seed(0)
    N, D, H = 2, 3, 4
    x, h, c = (torch.randn(N, k, generator=g, dtype=torch.float64) for k in (D, H, H))
    p = {"W": torch.randn(D, 4 * H, generator=g, dtype=torch.float64),
         "U": torch.randn(H, 4 * H, generator=g, dtype=torch.float64),
         "b": torch.randn(4 * H, generator=g, dtype=torch.float64)}
    plain = tb.lstm_step(x, h, c, p)
    torch.testing.assert_close(tb.lstm_step(x, h, c, p, h_masks=torch.ones(4, N, H, dtype=torch.float64)), plain)
    zeros = torch.zeros(4, N, H, dtype=torch.float64)
    torch.testing.assert_close(tb.lstm_step(x, h, c, p, h_masks=zeros), tb.lstm_step(x, torch.zeros_like(h), c, p))
    with pytest.raises(ValueError, match=r"h_masks must be a tensor of shape \(4, 2, 4\)"):
        tb.lstm_step(x, h, c, p, h_masks=torch.ones(3, N, H, dtype=torch.float64))

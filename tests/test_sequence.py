"""Sequence, stacked and bidirectional layers: finite differences for every
cell, variant and reset mode, and equality with nn.LSTM / nn.GRU / nn.RNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CASE_IDS, CASES, n_states, random_params, sequence_backward, sequence_forward

import lstm_ref
from lstm_ref.gradcheck import gradcheck
from lstm_ref.interop import params_from_torch_module, stacked_params_from_torch_module

GRAD_RTOL = 1e-7  # centred differences in float64, eps = 1e-6
RTOL, ATOL = 1e-10, 1e-12  # against PyTorch in float64

# (N, T, D, H): N = 1, T = 1, H = 1, D > H and D < H.
SEQ_SHAPES = [(1, 1, 2, 3), (2, 3, 4, 2), (3, 2, 1, 1)]
STATE_NAMES = ("h", "c")


def _states(cell, N, H, rng):
    return tuple(rng.standard_normal((N, H)) for _ in range(n_states(cell)))


def _as_state(cell, states):
    """A tuple of arrays as the layer API's state: (h, c) for the LSTM, h otherwise."""
    return tuple(states) if cell == "lstm" else states[0]


def _dot(outputs, upstreams) -> float:
    return float(sum(np.sum(a * u) for a, u in zip(outputs, upstreams)))


def _assert_small(errors, what):
    for name, err in errors.items():
        assert err < GRAD_RTOL, f"{what}: d{name} relative error {err:.2e}"


@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize(("N", "T", "D", "H"), SEQ_SHAPES)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_sequence_backward_matches_finite_differences(cell, options, N, T, D, H, return_sequences, rng):
    x = rng.standard_normal((N, T, D))
    states0 = _states(cell, N, H, rng)
    params = random_params(cell, D, H, options, rng)
    out, final, cache = sequence_forward(cell, x, params, states0, options, return_sequences)
    dout = rng.standard_normal(out.shape)
    dfinal = _states(cell, N, H, rng)
    dx, dstates0, grads = sequence_backward(cell, dout, cache, dfinal)
    names = [f"{s}0" for s in STATE_NAMES[: len(states0)]]

    def loss(a):
        o, fin, _ = sequence_forward(
            cell, a["x"], {k: a[k] for k in params}, tuple(a[n] for n in names), options, return_sequences
        )
        return _dot((o, *fin), (dout, *dfinal))

    errors = gradcheck(
        loss, {"x": x, **dict(zip(names, states0)), **params}, {"x": dx, **dict(zip(names, dstates0)), **grads}
    )
    _assert_small(errors, f"{cell} {options} sequence")


def _tuple(cell, state) -> tuple:
    return tuple(state) if cell == "lstm" else (state,)


def _directions(entry, bidirectional) -> tuple:
    """One layer's entry of the layer API (params, states, grads) as a tuple per direction."""
    return tuple(entry) if bidirectional else (entry,)


def _flat_params(layers, bidirectional) -> dict:
    """Per-layer params (or grads) as one flat dict {"l0.d1.W": ...} for gradcheck."""
    return {
        f"l{k}.d{d}.{name}": a
        for k, entry in enumerate(layers)
        for d, params in enumerate(_directions(entry, bidirectional))
        for name, a in params.items()
    }


def _flat_states(cell, states, bidirectional) -> list:
    """Per-layer states of the layer API as a flat list of (N, H) arrays."""
    return [a for entry in states for s in _directions(entry, bidirectional) for a in _tuple(cell, s)]


@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize(("L", "bidirectional"), [(1, True), (2, False), (2, True)])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_stacked_and_bidirectional_backward_match_finite_differences(
    cell, options, L, bidirectional, return_sequences, rng
):
    N, T, D, H = 2, 3, 3, 2
    dirs = 1 + bidirectional

    def per_layer(make):  # one entry per layer in the layer API's form
        return [(tuple if bidirectional else lambda d: d[0])([make(k) for _ in range(dirs)]) for k in range(L)]

    x = rng.standard_normal((N, T, D))
    layers = per_layer(lambda k: random_params(cell, D if k == 0 else dirs * H, H, options, rng))
    states0 = per_layer(lambda k: _as_state(cell, _states(cell, N, H, rng)))
    dfinal = per_layer(lambda k: _as_state(cell, _states(cell, N, H, rng)))

    def run(x, layers, states0):
        return lstm_ref.stacked_forward(
            cell, x, layers, states0, bidirectional=bidirectional, return_sequences=return_sequences, **options
        )

    out, _, cache = run(x, layers, states0)
    dout = rng.standard_normal(out.shape)
    dx, dstates0, grads = lstm_ref.stacked_backward(dout, cache, dfinal)

    flat0 = _flat_states(cell, states0, bidirectional)
    state_keys = [f"s{j}" for j in range(len(flat0))]

    def loss(a):
        it = iter(a[k] for k in state_keys)  # rebuild states0 in the layer API's form
        s0 = per_layer(lambda k: _as_state(cell, tuple(next(it) for _ in range(n_states(cell)))))
        layer_params = [
            (tuple if bidirectional else lambda d: d[0])(
                [{name: a[f"l{k}.d{d}.{name}"] for name in p} for d, p in enumerate(_directions(entry, bidirectional))]
            )
            for k, entry in enumerate(layers)
        ]
        o, fin, _ = run(a["x"], layer_params, s0)
        return _dot((o, *_flat_states(cell, fin, bidirectional)), (dout, *_flat_states(cell, dfinal, bidirectional)))

    arrays = {"x": x, **dict(zip(state_keys, flat0)), **_flat_params(layers, bidirectional)}
    analytic = {
        "x": dx,
        **dict(zip(state_keys, _flat_states(cell, dstates0, bidirectional))),
        **_flat_params(grads, bidirectional),
    }
    _assert_small(gradcheck(loss, arrays, analytic), f"{cell} {options} L={L} bidirectional={bidirectional}")


# ---------------------------------------------------------------- against PyTorch

TORCH_MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
TORCH_OPTIONS = {"lstm": {}, "gru": {"reset_mode": "recurrent-bias-after-multiplication"}, "rnn": {}}


def _torch_states(cell, states, L, bidirectional):
    """The layer API's per-layer states as PyTorch's (h0[, c0]), each (L*dirs, N, H), requiring grad."""
    flat = _flat_states(cell, states, bidirectional)  # layer-major, direction, then h, c
    k = n_states(cell)
    return tuple(torch.tensor(np.stack(flat[j::k]), requires_grad=True) for j in range(k))


def _api_states(cell, torch_arrays, L, bidirectional):
    """PyTorch's (h_n[, c_n]) (L*dirs, N, H) as the layer API's per-layer states."""
    dirs = 1 + bidirectional

    def state(k, d):
        return _as_state(cell, tuple(np.asarray(a[k * dirs + d]) for a in torch_arrays))

    return [(state(k, 0), state(k, 1)) if bidirectional else state(k, 0) for k in range(L)]


def _torch_grads(module, cell, L, bidirectional):
    """Parameter gradients of the module in the layer API's form (b from bias_ih)."""
    def grads(k, suffix):
        g = {n: getattr(module, f"{n}_l{k}{suffix}").grad.numpy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        out = {"W": g["weight_ih"].T, "U": g["weight_hh"].T, "b": g["bias_ih"]}
        if cell == "gru":
            out["bh"] = g["bias_hh"]
        return out

    return [(grads(k, ""), grads(k, "_reverse")) if bidirectional else grads(k, "") for k in range(L)]


def _assert_nested_close(ours, theirs, what, rtol=RTOL, atol=ATOL):
    if isinstance(ours, dict):
        for k in ours:
            _assert_nested_close(ours[k], theirs[k], f"{what}[{k}]", rtol, atol)
    elif isinstance(ours, (tuple, list)):
        assert len(ours) == len(theirs), what
        for j, (a, b) in enumerate(zip(ours, theirs)):
            _assert_nested_close(a, b, f"{what}[{j}]", rtol, atol)
    elif isinstance(ours, (str, bool)):
        assert ours == theirs, what
    else:
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize(("L", "bidirectional"), [(1, False), (2, False), (1, True), (2, True)])
def test_forward_and_gradients_equal_torch(cell, L, bidirectional, rng):
    """Outputs, final states, dx, initial-state and every weight gradient equal nn.<cell> to 1e-10."""
    N, T, D, H = 3, 5, 4, 6
    torch.manual_seed(0)  # PyTorch's own init: both bias vectors non-zero
    module = TORCH_MODULES[cell](D, H, num_layers=L, bidirectional=bidirectional, batch_first=True).double()
    layers = stacked_params_from_torch_module(module)
    dirs = 1 + bidirectional
    states0 = [
        (tuple if bidirectional else lambda d: d[0])([_as_state(cell, _states(cell, N, H, rng)) for _ in range(dirs)])
        for _ in range(L)
    ]
    x = rng.standard_normal((N, T, D))

    out, final, cache = lstm_ref.stacked_forward(
        cell, x, layers, states0, bidirectional=bidirectional, **TORCH_OPTIONS[cell]
    )
    dout = rng.standard_normal(out.shape)
    dx, dstates0, grads = lstm_ref.stacked_backward(dout, cache)

    x_t = torch.tensor(x, requires_grad=True)
    s0_t = _torch_states(cell, states0, L, bidirectional)
    out_t, fin_t = module(x_t, s0_t if cell == "lstm" else s0_t[0])
    (out_t * torch.from_numpy(dout)).sum().backward()

    fin_t = tuple(fin_t) if cell == "lstm" else (fin_t,)
    _assert_nested_close(out, out_t.detach().numpy(), "out")
    _assert_nested_close(final, _api_states(cell, [f.detach() for f in fin_t], L, bidirectional), "final states")
    _assert_nested_close(dx, x_t.grad.numpy(), "dx")
    _assert_nested_close(dstates0, _api_states(cell, [s.grad for s in s0_t], L, bidirectional), "initial-state grads")
    _assert_nested_close(grads, _torch_grads(module, cell, L, bidirectional), "weight grads")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_single_layer_functions_equal_torch_over_calls(cell, rng):
    """lstm_forward / gru_forward / rnn_forward over three calls in a row, the state carried over."""
    N, D, H = 2, 3, 4
    torch.manual_seed(1)
    module = TORCH_MODULES[cell](D, H, batch_first=True).double()
    params = params_from_torch_module(module)
    states = _states(cell, N, H, rng)
    states_t = tuple(torch.from_numpy(s[None]) for s in states)
    for call, T in enumerate([3, 1, 4]):
        x = rng.standard_normal((N, T, D))
        out, states, _ = sequence_forward(cell, x, params, states, TORCH_OPTIONS[cell])
        with torch.no_grad():
            out_t, fin_t = module(torch.from_numpy(x), states_t if cell == "lstm" else states_t[0])
        states_t = tuple(fin_t) if cell == "lstm" else (fin_t,)
        _assert_nested_close(out, out_t.numpy(), f"out of call {call}")
        _assert_nested_close(states, tuple(s[0].numpy() for s in states_t), f"states after call {call}")


@pytest.mark.parametrize("blas_threads", [1, 2])
def test_lstm_with_large_steps_equals_torch(blas_threads, rng):
    """From _THREADED_MIN multiply-adds per step on, lstm_forward multiplies by a contiguous copy of
    [W; U; b]^T instead of a transposed view, and with 2 BLAS threads the batch is split over two
    threads: outputs and every gradient still equal nn.LSTM."""
    from threadpoolctl import threadpool_limits

    N, T, D, H = 128, 3, 1, 64
    assert N * (D + H + 1) * 4 * H >= lstm_ref._lstm._THREADED_MIN
    with threadpool_limits(limits=blas_threads, user_api="blas"), lstm_ref._lstm._batch_rows(N, N * H * 4 * H) as rows:
        assert len(rows) == blas_threads
    torch.manual_seed(2)
    module = torch.nn.LSTM(D, H, batch_first=True).double()
    params = params_from_torch_module(module)
    x, states0 = rng.standard_normal((N, T, D)), _states("lstm", N, H, rng)
    dout = rng.standard_normal((N, T, H))
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        out, final, cache = lstm_ref.lstm_forward(x, params, *states0)
        dx, dh0, dc0, grads = lstm_ref.lstm_backward(dout, cache)

    x_t = torch.tensor(x, requires_grad=True)
    s0_t = tuple(torch.tensor(s[None], requires_grad=True) for s in states0)
    out_t, fin_t = module(x_t, s0_t)
    (out_t * torch.from_numpy(dout)).sum().backward()
    _assert_nested_close(out, out_t.detach().numpy(), "out")
    _assert_nested_close(final, tuple(f[0].detach().numpy() for f in fin_t), "final states")
    _assert_nested_close((dx, dh0, dc0), (x_t.grad.numpy(), *(s.grad[0].numpy() for s in s0_t)), "dx, dh0, dc0")
    _assert_nested_close(grads, _torch_grads(module, "lstm", 1, False)[0], "weight grads")


def test_gru_after_multiplication_equals_torch_with_zero_candidate_recurrent_bias(rng):
    """MATLAB's default GRU is nn.GRU with bias_hh's n block at zero (r and z blocks fold into b)."""
    N, T, D, H = 2, 4, 3, 5
    torch.manual_seed(2)
    module = torch.nn.GRU(D, H, batch_first=True).double()
    with torch.no_grad():
        module.bias_hh_l0[2 * H :] = 0
    params = params_from_torch_module(module, reset_mode="after-multiplication")
    assert set(params) == {"W", "U", "b"}
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    out, h_T, cache = lstm_ref.gru_forward(x, params, h0, reset_mode="after-multiplication")
    dout = rng.standard_normal(out.shape)
    dx, dh0, grads = lstm_ref.gru_backward(dout, cache)

    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0[None], requires_grad=True)
    out_t, _ = module(x_t, h0_t)
    (out_t * torch.from_numpy(dout)).sum().backward()
    _assert_nested_close(out, out_t.detach().numpy(), "out")
    _assert_nested_close(dx, x_t.grad.numpy(), "dx")
    _assert_nested_close(dh0, h0_t.grad.numpy()[0], "dh0")
    _assert_nested_close(grads["W"], module.weight_ih_l0.grad.numpy().T, "dW")
    _assert_nested_close(grads["U"], module.weight_hh_l0.grad.numpy().T, "dU")
    _assert_nested_close(grads["b"], module.bias_ih_l0.grad.numpy(), "db")


@pytest.mark.parametrize(("cell", "options"), CASES, ids=CASE_IDS)
def test_last_output_is_last_step_of_sequence_output(cell, options, rng):
    N, T, D, H = 2, 4, 3, 2
    x, params = rng.standard_normal((N, T, D)), random_params(cell, D, H, options, rng)
    states0 = _states(cell, N, H, rng)
    seq, _, seq_cache = sequence_forward(cell, x, params, states0, options, True)
    last, _, last_cache = sequence_forward(cell, x, params, states0, options, False)
    _assert_nested_close(last, seq[:, -1], "out with return_sequences=False")
    dlast = rng.standard_normal((N, H))
    dseq = np.zeros((N, T, H))
    dseq[:, -1] = dlast
    none = (None,) * n_states(cell)
    _assert_nested_close(
        sequence_backward(cell, dlast, last_cache, none), sequence_backward(cell, dseq, seq_cache, none), "backward"
    )


def test_lstm_on_two_blas_threads_gives_the_same_result_and_restores_them(rng):
    """Small sequences run on one BLAS thread inside the call, scoped: the result is the one-thread
    result, and the caller's thread count is back afterwards (this suite otherwise runs on one)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    N, T, D, H = 3, 5, 2, 4
    params = {k: v + 0.1 for k, v in lstm_ref.init.init_lstm_params(D, H, seed=3).items()}
    x, dout = rng.normal(size=(N, T, D)), rng.normal(size=(N, T, H))
    out1, _, cache1 = lstm_ref.lstm_forward(x, params)
    *_, grads1 = lstm_ref.lstm_backward(dout, cache1)
    with threadpool_limits(limits=2, user_api="blas"):
        before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        out2, _, cache2 = lstm_ref.lstm_forward(x, params)
        *_, grads2 = lstm_ref.lstm_backward(dout, cache2)
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert before and after == before
    np.testing.assert_allclose(out2, out1, rtol=1e-12, atol=0)
    for k in grads1:
        np.testing.assert_allclose(grads2[k], grads1[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("variant", list(lstm_ref.LSTM_VARIANTS))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_lstm_split_over_two_threads_equals_one_thread(variant, return_sequences, rng):
    """From _THREADED_MIN multiply-adds per step on, with 2 BLAS threads the batch runs as two row slices
    (an odd N: unequal ones) in two threads: outputs, final states, every cache field and every gradient
    equal the one-thread results, the upstream arrays are left as they were, and the caller's BLAS
    thread count is back afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    T, D, H = 3, 2, 32
    GH = len(lstm_ref.LSTM_VARIANTS[variant]) * H
    N = lstm_ref._lstm._THREADED_MIN // (H * GH) + 1
    params = random_params("lstm", D, H, {"variant": variant}, rng)
    x, (h0, c0) = rng.standard_normal((N, T, D)), _states("lstm", N, H, rng)
    dout = rng.standard_normal((N, T, H) if return_sequences else (N, H))
    dh_T, dc_T = _states("lstm", N, H, rng)
    upstream = [a.copy() for a in (dout, dh_T, dc_T)]

    def run():
        out, final, cache = lstm_ref.lstm_forward(x, params, h0, c0, variant=variant, return_sequences=return_sequences)
        return out, final, cache, lstm_ref.lstm_backward(dout, cache, dh_T, dc_T)

    one = run()
    with threadpool_limits(limits=2, user_api="blas"):
        before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        with lstm_ref._lstm._batch_rows(N, N * H * GH) as rows:
            assert [r.stop - r.start for r in rows] == [N // 2, N - N // 2]
        two = run()
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert before == [2] * len(before) and after == before
    for got, want, what in zip(two, one, ("out", "final states", "cache", "backward")):
        _assert_nested_close(got, want, what, rtol=1e-12, atol=1e-14)
    for a, b in zip((dout, dh_T, dc_T), upstream):
        np.testing.assert_array_equal(a, b)


def _split_forward_in_child(x, params, queue):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        queue.put(lstm_ref.lstm_forward(x, params)[0])


def test_lstm_split_runs_in_a_forked_child(rng):
    """A process forked after the split's thread pool started (multiprocessing's default on Linux up to
    Python 3.13) runs the split too, in a pool of its own, and gets the parent's result."""
    import multiprocessing
    import warnings

    from threadpoolctl import threadpool_limits

    N, T, D, H = lstm_ref._lstm._THREADED_MIN // (64 * 256), 2, 1, 64
    params, x = lstm_ref.init.init_lstm_params(D, H, seed=4), rng.standard_normal((N, T, D))
    with threadpool_limits(limits=2, user_api="blas"):
        out = lstm_ref.lstm_forward(x, params)[0]  # starts the pool in this process
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_split_forward_in_child, args=(x, params, queue))
    with warnings.catch_warnings():  # Python 3.12+ warns of fork() in a multi-threaded process: the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(timeout=10)
        child.kill()  # a child still waiting on threads it lacks; nothing where it has exited
    assert child.exitcode == 0
    np.testing.assert_allclose(got, out, rtol=1e-12, atol=0)

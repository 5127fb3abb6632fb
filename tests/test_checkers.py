"""The answer checkers: a correct answer passes on every shape, seed and dtype;
each usual mistake fails with the message that names it; calling the reference fails.

The "student" functions below are written from the equations, independently of
``lstm_ref``; keyword arguments switch in one mistake at a time.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
import torch

import lstm_ref
from lstm_ref import checkers, data, interop

SHAPES = [dict(N=3, D=4, H=5, seed=0, dtype=np.float64), dict(N=1, D=7, H=2, seed=11, dtype=np.float32)]


def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def lstm_step(x, h_prev, c_prev, params, *, order="ifgo", bias=1.0, acts="ssts", forget=True, output=True,
              h_of="tanh(c)", stack="xh/WU", transpose_U=False, swap_return=False, shift_c=0.0):  # fmt: skip
    """Student's LSTM step with one fused matmul; the keywords plant one mistake."""
    W, U, b = params["W"], params["U"], params["b"]
    H = h_prev.shape[1]
    if transpose_U:
        U = np.concatenate([U[:, k * H : (k + 1) * H].T for k in range(4)], axis=1)
    xh = np.concatenate([x, h_prev] if stack.startswith("xh") else [h_prev, x], axis=1)  # (N, D+H)
    WU = np.concatenate([W, U] if stack.endswith("WU") else [U, W], axis=0)  # (D+H, 4H)
    z = xh @ WU + bias * b  # (N, 4H)
    act = {"s": sigmoid, "t": np.tanh}
    i, f, g, o = (act[a](z[:, k * H : (k + 1) * H]) for a, k in zip(acts, map("ifgo".index, order)))
    c = (f if forget else 1.0) * c_prev + i * g + shift_c
    h = (o if output else 1.0) * {"tanh(c)": np.tanh(c), "c": c, "tanh(c_prev)": np.tanh(c_prev)}[h_of]
    return (c, h) if swap_return else (h, c)


def lstm_forward(x, params, h0, c0, *, step=lstm_step, carry="hc", before=False, backwards=False, zeros=""):
    h = np.zeros_like(h0) if "h" in zeros else h0
    c = np.zeros_like(c0) if "c" in zeros else c0
    hs, cs = [], []
    for t in reversed(range(x.shape[1])) if backwards else range(x.shape[1]):
        if before:
            hs.append(h), cs.append(c)
        h_next, c_next = step(x[:, t], h, c, params)
        h = h_next if "h" in carry else h0
        c = c_next if "c" in carry else c0
        if not before:
            hs.append(h_next), cs.append(c_next)
    if backwards:
        hs, cs = hs[::-1], cs[::-1]
    return np.stack(hs, axis=1), np.stack(cs, axis=1)


def gru_step(x, h_prev, params, *, mode="after-multiplication", order="rzn", flip_update=False, reset=True, bias=1.0,
             bh_rz=True, bh_n_outside=False, r_in_update=False):  # fmt: skip
    H = h_prev.shape[1]
    blocks = {name: slice(k * H, (k + 1) * H) for name, k in zip("rzn", map("rzn".index, order))}
    W, U, b = params["W"], params["U"], bias * params["b"]
    bh = params.get("bh", np.zeros_like(b)).copy()
    if not bh_rz:
        bh[blocks["r"]] = bh[blocks["z"]] = 0.0
    r = 1.0 if not reset else sigmoid(x @ W[:, blocks["r"]] + b[blocks["r"]] + h_prev @ U[:, blocks["r"]] + bh[blocks["r"]])
    z = sigmoid(x @ W[:, blocks["z"]] + b[blocks["z"]] + h_prev @ U[:, blocks["z"]] + bh[blocks["z"]])
    xn = x @ W[:, blocks["n"]] + b[blocks["n"]] + (bh[blocks["n"]] if bh_n_outside else 0.0)
    if mode == "before-multiplication":
        n = np.tanh(xn + (r * h_prev) @ U[:, blocks["n"]])
    else:
        n = np.tanh(xn + r * (h_prev @ U[:, blocks["n"]] + (0.0 if bh_n_outside else bh[blocks["n"]])))
    kept = z * r * h_prev if r_in_update else z * h_prev
    return z * n + (1 - z) * h_prev if flip_update else (1 - z) * n + kept


def rnn_step_backward(dh, cache, *, deriv="1-h^2", sign=1.0, transpose_dU=False, sum_db=True, transpose_dW=False):
    h = cache.h
    da = dh * {"1-h^2": 1 - h**2, "none": 1.0, "1-tanh(h)^2": 1 - np.tanh(h) ** 2}[deriv]  # (N, H)
    dU = cache.h_prev.T @ da
    grads = {
        "W": (da.T @ cache.x) if transpose_dW else cache.x.T @ da,
        "U": dU.T if transpose_dU else dU,
        "b": da.sum(axis=0) if sum_db else da,
    }
    return sign * da @ cache.params["W"].T, sign * da @ cache.params["U"].T, {k: sign * v for k, v in grads.items()}


def lstm_step_backward(dh, dc, cache, *, use_dc=True, dh_to_c=True, tanh_deriv=True, f_in_dc_prev=True,
                       grad_order="ifgo", dc_prev_of="dc_t", tanh_c_prev_in=""):  # fmt: skip
    """Student's LSTM step backward; ``tanh_c_prev_in`` names where tanh(c_prev) replaces tanh(c):
    "d" in the cell gradient's tanh derivative, "o" in dz_o."""
    i, f, g, o = np.split(cache.gates, 4, axis=1)
    tanh_c = {k: np.tanh(cache.c_prev) if k in tanh_c_prev_in else cache.tanh_c for k in "do"}
    dc_t = (dc if use_dc else 0) + (dh * o * ((1 - tanh_c["d"] ** 2) if tanh_deriv else 1) if dh_to_c else 0)
    dz = {"i": dc_t * g * i * (1 - i), "f": dc_t * cache.c_prev * f * (1 - f),
          "g": dc_t * i * (1 - g**2), "o": dh * tanh_c["o"] * o * (1 - o)}  # fmt: skip
    dz_all = np.concatenate([dz[k] for k in "ifgo"], axis=1)  # (N, 4H)
    dz_grads = np.concatenate([dz[k] for k in grad_order], axis=1)
    p = cache.params
    grads = {"W": cache.x.T @ dz_grads, "U": cache.h_prev.T @ dz_grads, "b": dz_grads.sum(axis=0)}
    carried = {"dc_t": dc_t, "dc": dc}[dc_prev_of]
    return dz_all @ p["W"].T, dz_all @ p["U"].T, carried * f if f_in_dc_prev else carried, grads


def lstm_bptt(dhs, caches, *, step_backward=lstm_step_backward, accumulate="all", carry_h=True, carry_c=True,
              dout_shift=0, stop=-1):  # fmt: skip
    N, T, H = dhs.shape
    dh_next, dc_next = np.zeros((N, H), dhs.dtype), np.zeros((N, H), dhs.dtype)
    dxs, grads = [np.zeros_like(caches[0].x)] * T, None
    for t in range(T - 1, stop, -1):
        s = t + dout_shift
        dout = dhs[:, s] if s < T else 0.0  # dhs[:, -1] at t = 0 for dout_shift = -1, as Python indexes
        dx, dh_prev, dc_prev, g = step_backward(dout + dh_next, dc_next, caches[t])
        dxs[t] = dx
        dh_next = dh_prev if carry_h else np.zeros_like(dh_prev)
        dc_next = dc_prev if carry_c else np.zeros_like(dc_prev)
        if accumulate == "all":
            grads = g if grads is None else {k: grads[k] + g[k] for k in g}
        elif accumulate == "overwrite" or t == T - 1:
            grads = g
    return np.stack(dxs, axis=1), dh_next, dc_next, grads


def _fails_with(check, fn, message, **kwargs):
    with pytest.raises(AssertionError) as err:
        check(fn, **kwargs)
    assert message in str(err.value), str(err.value)


# ---------------------------------------------------------------------------
# correct answers pass on every shape, seed and dtype


@pytest.mark.parametrize("kw", SHAPES)
def test_correct_answers_pass(kw):
    dtype, seed = kw["dtype"], kw["seed"]
    checkers.check_sigmoid(sigmoid, seed=seed, dtype=dtype)
    checkers.check_tanh(lambda x: 2 * sigmoid(2 * x) - 1, seed=seed, dtype=dtype)
    checkers.check_lstm_step(lstm_step, **kw)
    checkers.check_lstm_forward(lstm_forward, T=4, **kw)
    checkers.check_rnn_step_backward(rnn_step_backward, **kw)
    checkers.check_lstm_step_backward(lstm_step_backward, **kw)
    checkers.check_lstm_bptt(lstm_bptt, T=4, **kw)
    for mode in lstm_ref.GRU_RESET_MODES:
        checkers.check_gru_step(functools.partial(gru_step, mode=mode), mode, **kw)


def test_param_count():
    checkers.check_lstm_param_count(lambda D, H: 4 * (D * H + H * H + H))
    checkers.check_lstm_param_count(4 * (12 * 100 + 100 * 100 + 100), D=12, H=100)
    _fails_with(checkers.check_lstm_param_count, lambda D, H: D * H + H * H + H, "vanilla RNN's count")
    _fails_with(checkers.check_lstm_param_count, lambda D, H: 4 * (D * H + H * H), "biases are missing")
    _fails_with(checkers.check_lstm_param_count, lambda D, H: 4 * (D * H + H * H + 2 * H), "one bias vector")
    _fails_with(checkers.check_lstm_param_count, lambda D, H: 3 * (D * H + H * H + H), "GRU's count")
    _fails_with(checkers.check_lstm_param_count, lambda D, H: 4.0 * (D * H + H * H + H), "must be an integer")


# ---------------------------------------------------------------------------
# each mistake is named


def naive_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def textbook_tanh(x):
    return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))  # inf / inf = NaN once exp overflows


@pytest.mark.parametrize(
    "check, fn, message",
    [
        (checkers.check_sigmoid, naive_sigmoid, "overflows for large |x|"),
        (checkers.check_sigmoid, lambda x: sigmoid(-x), "sign inside exp is flipped"),
        (checkers.check_sigmoid, np.tanh, "returns tanh(x), not the sigmoid"),
        (checkers.check_sigmoid, lambda x: sigmoid(x).astype(np.float32), "dtype float32"),
        (checkers.check_sigmoid, lambda x: None, "output is None"),
        (checkers.check_tanh, sigmoid, "returns the sigmoid, not tanh"),
        (checkers.check_tanh, lambda x: 2 * sigmoid(x) - 1, "the argument must be 2x"),
        (checkers.check_tanh, textbook_tanh, "tanh on inputs of shape (13,): output has NaN or inf values (2 of 13) "
         "where the expected values are finite: exp overflows for inputs of large magnitude (x = -1000, 1000); "
         "never evaluate exp of a large positive number, e.g. write tanh(x) = 2 sigmoid(2x) - 1"),
        (checkers.check_sigmoid, lambda x: np.exp(x) / (1 + np.exp(x)), "exp overflows for inputs of large magnitude "
         "(x = 1000); never evaluate exp of a large positive number, e.g. use exp(-|x|)"),
    ],
)  # fmt: skip
def test_activation_mistakes(check, fn, message):
    _fails_with(check, fn, message)


def test_nan_or_inf_is_named_with_its_inputs():
    _fails_with(checkers.check_tanh, lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1), "output has NaN or inf "
                "values (2 of 13) where the expected values are finite: exp overflows for inputs of large magnitude "
                "(x = 80, 1000)", dtype=np.float32)
    _fails_with(checkers.check_sigmoid, lambda x: x / x * sigmoid(x), "output has NaN or inf values (1 of 13) where "
                "the expected values are finite: for x = 0")
    _fails_with(checkers.check_lstm_step, lambda *a: (np.full_like(a[1], np.nan), lstm_step(*a)[1]),
                "lstm_step: h has NaN or inf values (15 of 15) where the expected values are finite")  # fmt: skip


LSTM_STEP_MISTAKES = [
    (dict(order="figo"), "the i and f gate blocks look swapped"),
    (dict(order="ifog"), "the g and o gate blocks look swapped"),
    (dict(order="goif"), "the gate blocks look permuted: your code takes i from the g block"),
    (dict(bias=0.0), "the bias b is missing"),
    (dict(bias=2.0), "the bias b is added twice"),
    (dict(acts="stts"), "gate f uses tanh; it must use sigmoid"),
    (dict(acts="ssss"), "gate g uses sigmoid; it must use tanh"),
    (dict(forget=False), "the forget gate is ignored"),
    (dict(h_of="c"), "h = o * c misses the tanh"),
    (dict(h_of="tanh(c_prev)"), "h uses the previous cell state"),
    (dict(output=False), "the output gate is ignored"),
    (dict(swap_return=True), "h and c are swapped in the return value"),
    (dict(stack="hx/WU"), "the concatenation order is wrong: [h_prev, x] against the stacked [W; U]"),
    (dict(stack="xh/UW"), "the concatenation order is wrong: [x, h_prev] against [U; W]"),
    (dict(transpose_U=True), "the recurrent weight blocks look transposed"),
    (dict(shift_c=0.1), "wrong h (max abs error"),
]


@pytest.mark.parametrize("mistake, message", LSTM_STEP_MISTAKES)
def test_lstm_step_mistakes(mistake, message):
    _fails_with(checkers.check_lstm_step, functools.partial(lstm_step, **mistake), message)


def test_lstm_step_shape_dtype_and_return_value():
    _fails_with(checkers.check_lstm_step, lambda *a: None, "lstm_step returned None; it must return (h, c)")
    _fails_with(checkers.check_lstm_step, lambda *a: lstm_step(*a)[0], "returned 1 value(s)")
    _fails_with(checkers.check_lstm_step, lambda *a: tuple(v.T for v in lstm_step(*a)), "h has shape (5, 3), expected (N, H) = (3, 5) (transposed?)")
    _fails_with(checkers.check_lstm_step, lambda *a: tuple(v.astype(np.float64) for v in lstm_step(*a)),
                "h has dtype float64; for float32 inputs it must be float32", dtype=np.float32)  # fmt: skip


def _float64(fn):
    """``fn`` returning float64 arrays (and grads), as when a function it calls promotes the dtype."""

    def promote(v):
        return {k: promote(w) for k, w in v.items()} if isinstance(v, dict) else v.astype(np.float64)

    def promoted(*args):
        result = fn(*args)
        return tuple(map(promote, result)) if isinstance(result, tuple) else promote(result)

    return promoted


@pytest.mark.parametrize(
    "check, fn, message",
    [
        (checkers.check_lstm_step, lstm_step, "lstm_step: h has dtype float64; for float32 inputs it must be float32: "
         "build new arrays in the inputs' dtype and check the dtype returned by your sigmoid and tanh"),
        (checkers.check_lstm_forward, lstm_forward, "hs has dtype float64; for float32 inputs it must be float32: "
         "build new arrays in the inputs' dtype and check the dtype returned by your lstm_step, sigmoid and tanh"),
        (checkers.check_lstm_bptt, lstm_bptt, "check the dtype returned by your lstm_step_backward"),
    ],
)  # fmt: skip
def test_dtype_of_a_composite_function_points_at_its_helpers(check, fn, message):
    _fails_with(check, _float64(fn), message, dtype=np.float32)


@pytest.mark.parametrize("check, fn, name", [(checkers.check_lstm_step_backward, lstm_step_backward, "dx"),
                                             (checkers.check_rnn_step_backward, rnn_step_backward, "dx"),
                                             (checkers.check_gru_step, gru_step, "h")])  # fmt: skip
def test_dtype_of_a_function_without_helpers_names_no_helper(check, fn, name):
    with pytest.raises(AssertionError) as err:
        check(_float64(fn), dtype=np.float32)
    assert str(err.value).endswith(f"{name} has dtype float64; for float32 inputs it must be float32: build new "
                                   "arrays in the inputs' dtype"), str(err.value)


@pytest.mark.parametrize("mistake, message", LSTM_STEP_MISTAKES[:4])
def test_lstm_forward_reports_step_mistakes(mistake, message):
    step = functools.partial(lstm_step, **mistake)
    _fails_with(checkers.check_lstm_forward, functools.partial(lstm_forward, step=step), f"in every step, {message}")


@pytest.mark.parametrize(
    "mistake, message",
    [
        (dict(carry=""), "the states are not carried from one step to the next"),
        (dict(carry="h"), "the cell state c is not carried"),
        (dict(carry="c"), "the hidden state h is not carried"),
        (dict(backwards=True), "the sequence is read backwards in time"),
        (dict(before=True), "off by one in time: hs[:, t] must hold h_t after step t"),
        (dict(zeros="hc"), "the sequence starts from zeros: the first step must read the given h0 and c0"),
        (dict(zeros="h"), "the sequence starts from h = 0: the first step must read the given h0"),
        (dict(zeros="c"), "the sequence starts from c = 0: the first step must read the given c0"),
    ],
)
def test_lstm_forward_mistakes(mistake, message):
    _fails_with(checkers.check_lstm_forward, functools.partial(lstm_forward, **mistake), message)


@pytest.mark.parametrize(
    "mistake, message",
    [
        (dict(deriv="none"), "the tanh derivative (1 - h^2) is missing"),
        (dict(deriv="1-tanh(h)^2"), "not 1 - tanh(h)^2"),
        (dict(sign=-1.0), "every gradient has the wrong sign"),
        (dict(transpose_dU=True), "grads['U'] looks transposed"),
        (dict(transpose_dW=True), "grads['W'] has shape (5, 4), expected (D, GH) = (4, 5) (transposed?)"),
        (dict(sum_db=False), "grads['b'] has shape (3, 5), expected (GH,) = (5,) (sum over the batch axis N)"),
    ],
)
def test_rnn_step_backward_mistakes(mistake, message):
    _fails_with(checkers.check_rnn_step_backward, functools.partial(rnn_step_backward, **mistake), message)


@pytest.mark.parametrize(
    "mistake, message",
    [
        (dict(use_dc=False), "the upstream gradient dc is ignored"),
        (dict(dh_to_c=False), "dh does not reach the cell"),
        (dict(tanh_deriv=False), "the tanh derivative on the cell is missing"),
        (dict(f_in_dc_prev=False), "dc_prev misses the forget gate"),
        (dict(grad_order="figo"), "in grads, the i and f gate blocks look swapped"),
        (dict(dc_prev_of="dc"), "dc_prev = dc * f leaves out the path through h"),
        (dict(dc_prev_of="dc", f_in_dc_prev=False), "wrong dc_prev (max abs error"),
        (dict(tanh_c_prev_in="do"), "tanh(c_prev) is used where tanh(c) belongs"),
        (dict(tanh_c_prev_in="d"), "tanh(c_prev) is used where tanh(c) belongs"),
        (dict(tanh_c_prev_in="o"), "tanh(c_prev) is used where tanh(c) belongs"),
    ],
)
def test_lstm_step_backward_mistakes(mistake, message):
    _fails_with(checkers.check_lstm_step_backward, functools.partial(lstm_step_backward, **mistake), message)


@pytest.mark.parametrize(
    "mistake, message",
    [
        (dict(accumulate="overwrite"), "not accumulated over time: grads holds only step 0's"),
        (dict(accumulate="last"), "not accumulated over time: grads holds only the last step's"),
        (dict(carry_h=False), "dh_prev is not carried back"),
        (dict(carry_c=False), "dc_prev is not carried back"),
        (dict(carry_h=False, carry_c=False), "no state gradient is carried back in time"),
        (dict(dout_shift=1), "not dhs[:, t+1]"),
        (dict(dout_shift=-1), "not dhs[:, t-1]"),
        (dict(stop=0), "the loop over t stops before step 0 (range(T-1, 0, -1)): use reversed(range(T))"),
    ],
)
def test_lstm_bptt_mistakes(mistake, message):
    _fails_with(checkers.check_lstm_bptt, functools.partial(lstm_bptt, **mistake), message)


def test_lstm_bptt_skipping_step_0_is_named_for_two_steps():
    # with T = 2 the weight gradients alone are those of "only the last step's"
    _fails_with(checkers.check_lstm_bptt, functools.partial(lstm_bptt, stop=0), "stops before step 0", T=2)


@pytest.mark.parametrize(
    "mode, mistake, message",
    [
        ("after-multiplication", dict(order="zrn"), "the r and z gate blocks look swapped"),
        ("after-multiplication", dict(flip_update=True), "the update is reversed"),
        ("after-multiplication", dict(reset=False), "the reset gate is not applied"),
        ("before-multiplication", dict(bias=0.0), "the bias b is missing"),
        ("recurrent-bias-after-multiplication", dict(mode="after-multiplication", order="nzr"), "the r and n gate blocks"),
        ("after-multiplication", dict(mode="before-multiplication"), "placed as in 'before-multiplication'"),
        ("before-multiplication", dict(mode="after-multiplication"), "placed as in 'after-multiplication'"),
        ("recurrent-bias-after-multiplication", dict(bh_rz=False), "the recurrent bias bh is added to the n block only"),
        ("recurrent-bias-after-multiplication", dict(bh_n_outside=True), "bh_n is added outside the reset gate"),
        ("recurrent-bias-after-multiplication", dict(mode="before-multiplication", bh_n_outside=True),
         "placed as in 'before-multiplication'"),
        ("after-multiplication", dict(r_in_update=True), "the update uses r"),
        ("recurrent-bias-after-multiplication", dict(r_in_update=True), "the update uses r"),
    ],
)
def test_gru_step_mistakes(mode, mistake, message):
    _fails_with(checkers.check_gru_step, functools.partial(gru_step, **{"mode": mode, **mistake}), message,
                reset_mode=mode)  # fmt: skip


# ---------------------------------------------------------------------------
# calling the reference implementation earns nothing


def _torch_lstm_cell(x, h_prev, c_prev, params):
    cell = torch.nn.LSTMCell(x.shape[1], h_prev.shape[1]).double()
    h, c = cell(torch.from_numpy(x), (torch.from_numpy(h_prev), torch.from_numpy(c_prev)))
    return h.detach().numpy(), c.detach().numpy()


def _torch_kernel(x, h_prev, c_prev, params):
    w = [torch.from_numpy(params[k].T.copy()) for k in ("W", "U")]
    h, c = torch.lstm_cell(torch.from_numpy(x), (torch.from_numpy(h_prev), torch.from_numpy(c_prev)), *w,
                           torch.from_numpy(params["b"]))  # fmt: skip
    return h.numpy(), c.numpy()


@pytest.mark.parametrize(
    "check, fn, name",
    [
        (checkers.check_lstm_step, lambda x, h, c, p: lstm_ref.lstm_step_forward(x, h, c, p)[:2],
         "lstm_ref.lstm_step_forward"),
        (checkers.check_lstm_step, _torch_lstm_cell, "torch.nn.LSTMCell"),
        (checkers.check_lstm_step, _torch_kernel, "torch.lstm_cell"),
        (checkers.check_lstm_forward,
         lambda x, p, h0, c0: lstm_forward(x, p, h0, c0, step=lambda *a: lstm_ref.lstm_step_forward(*a)[:2]),
         "lstm_ref.lstm_step_forward"),
        (checkers.check_rnn_step_backward, lstm_ref.rnn_step_backward, "lstm_ref.rnn_step_backward"),
        (checkers.check_lstm_step_backward, lstm_ref.lstm_step_backward, "lstm_ref.lstm_step_backward"),
        (checkers.check_lstm_bptt, functools.partial(lstm_bptt, step_backward=lstm_ref.lstm_step_backward),
         "lstm_ref.lstm_step_backward"),
        (checkers.check_gru_step, lambda x, h, p: lstm_ref.gru_step_forward(x, h, p, "after-multiplication")[0],
         "lstm_ref.gru_step_forward"),
    ],
)  # fmt: skip
def test_calling_the_reference_is_refused(check, fn, name):
    _fails_with(check, fn, f"calls the reference implementation {name}; implement it from the equations")


def test_profiler_is_restored_after_a_check():
    def previous(frame, event, arg):
        return None

    sys.setprofile(previous)
    try:
        checkers.check_lstm_step(lstm_step)
        assert sys.getprofile() is previous
    finally:
        sys.setprofile(None)


def test_an_answer_that_changes_its_inputs_in_place_fails():
    # The student's function gets copies, so the reference never sees the change; the change is
    # a mistake of its own, as a caller still needs what it passed (tanh(c) in lstm_step, say).
    def vandal(dh, dc, cache):
        result = lstm_step_backward(dh, dc, cache)
        cache.gates[...] = 0.0
        cache.params["W"][...] = 0.0
        return result

    _fails_with(checkers.check_lstm_step_backward, vandal, "lstm_step_backward changes its input cache in place")

    def doubling_tanh(x):
        x *= 2
        return 2 * sigmoid(x) - 1

    _fails_with(checkers.check_tanh, doubling_tanh, "tanh changes its input x in place")
    checkers.check_tanh(lambda x: 2 * sigmoid(2 * x) - 1)


def test_checker_arguments_are_validated():
    with pytest.raises(ValueError, match="reset_mode must be one of"):
        checkers.check_gru_step(gru_step, "after")
    with pytest.raises(ValueError, match="with both D and H"):
        checkers.check_lstm_param_count(4 * (3 * 5 + 25 + 5), D=3)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        checkers.check_lstm_step(lstm_step, dtype=np.float16)


def bptt_loss(arrays, dhs, *, weights=None, reduce=np.sum):
    params = {k: arrays[k] for k in ("W", "U", "b")}
    _, caches = checkers.lstm_step_caches(arrays["x"], params, arrays["h0"], arrays["c0"])
    hs = np.stack([cache.tanh_c * np.split(cache.gates, 4, axis=1)[3] for cache in caches], axis=1)  # h = o tanh(c)
    return float(reduce(hs * (dhs if weights is None else weights(dhs))))


def bptt_gradients(arrays, dhs, *, bptt=lstm_bptt):
    params = {k: arrays[k] for k in ("W", "U", "b")}
    _, caches = checkers.lstm_step_caches(arrays["x"], params, arrays["h0"], arrays["c0"])
    dx, dh0, dc0, grads = bptt(dhs, caches)
    return {"x": dx, "h0": dh0, "c0": dc0, **grads}


def test_gradient_checking():
    checkers.check_bptt_loss(bptt_loss)
    checkers.check_bptt_gradients(bptt_loss, bptt_gradients, T=4, seed=3)
    _fails_with(checkers.check_bptt_loss, functools.partial(bptt_loss, weights=np.ones_like), "the loss ignores dhs")
    _fails_with(checkers.check_bptt_loss, functools.partial(bptt_loss, reduce=np.mean), "the loss is a mean")
    _fails_with(checkers.check_bptt_loss, lambda a, d: np.ones(1), "must return one number")
    overwritten = functools.partial(bptt_gradients, bptt=functools.partial(lstm_bptt, accumulate="overwrite"))
    _fails_with(functools.partial(checkers.check_bptt_gradients, bptt_loss), overwritten, "relative error dW")
    with pytest.raises(AssertionError, match="must return a dict with the keys"):
        checkers.check_bptt_gradients(bptt_loss, lambda a, d: {"x": a["x"]})


def _reference_gradients(arrays, dhs):
    out, _, cache = lstm_ref.lstm_forward(arrays["x"], {k: arrays[k] for k in ("W", "U", "b")}, arrays["h0"],
                                          arrays["c0"])
    dx, dh0, dc0, grads = lstm_ref.lstm_backward(dhs, cache)
    return {"x": dx, "h0": dh0, "c0": dc0, **grads}


def test_bptt_gradients_may_run_the_given_forward_pass_but_not_the_reference_backward():
    checkers.check_bptt_gradients(bptt_loss, bptt_gradients)  # lstm_step_caches runs lstm_ref.lstm_step_forward
    _fails_with(functools.partial(checkers.check_bptt_gradients, bptt_loss), _reference_gradients,
                "bptt_gradients calls the reference implementation lstm_ref.lstm_backward")


def _windows(series, window, horizon=1):
    s = np.asarray(series, dtype=float).reshape(len(series), -1)  # (T, D)
    n = len(s) - window - horizon + 1
    if n < 1:
        raise ValueError(f"series too short: {len(s)} steps")
    X = np.stack([s[k : k + window] for k in range(n)])  # (N, W, D)
    y = np.stack([s[k + window : k + window + horizon].ravel() for k in range(n)])  # (N, horizon * D)
    return X, y


@pytest.mark.parametrize("series, window, horizon", [
    (np.sin(np.linspace(0, 3, 40)), 10, 1), (np.random.default_rng(0).normal(size=(30, 3)), 5, 4),
    (np.zeros(5), 5, 1), (np.zeros(4), 2, 3), (np.zeros(5), 4, 1)])  # fmt: skip
def test_windows(series, window, horizon):
    checkers.check_windows(_windows, series, window, horizon)


def test_windows_mistakes_and_the_reference():
    series = np.random.default_rng(1).normal(size=(20, 2))
    def shifted(s, w, h):  # y_k = s[k + W - 1 : k + W - 1 + h]
        X, _ = _windows(s, w, h)
        return X, np.stack([s[k + w - 1 : k + w - 1 + h].reshape(-1) for k in range(len(X))])

    for horizon in (1, 3):
        _fails_with(functools.partial(checkers.check_windows, series=series, window=4, horizon=horizon), shifted,
                    "y is shifted back one step (it starts at the last value of each window)")
    _fails_with(functools.partial(checkers.check_windows, series=series, window=4), lambda s, w, h: _windows(s, w + 1, h),
                "X has shape (15, 5, 2), expected (N, W, D) = (16, 4, 2)")
    _fails_with(functools.partial(checkers.check_windows, series=np.zeros(3), window=3), lambda s, w, h: (s, s),
                "make_windows accepted a series of length 3 for window=3, horizon=1")
    _fails_with(functools.partial(checkers.check_windows, series=series, window=4), data.windows,
                "make_windows calls the reference implementation lstm_ref.data.windows")


def _load(cell, params, *, biases=("b", "bh"), transpose=True):
    with torch.no_grad():
        cell.weight_ih.copy_(torch.as_tensor(params["W"].T if transpose else params["W"]))
        cell.weight_hh.copy_(torch.as_tensor(params["U"].T))
        for name, key in zip(("bias_ih", "bias_hh"), biases):
            getattr(cell, name).copy_(torch.as_tensor(params[key]))


def test_load_gru_cell():
    checkers.check_load_gru_cell(_load)
    checkers.check_load_gru_cell(_load, D=7, H=3, seed=11)
    _fails_with(checkers.check_load_gru_cell, functools.partial(_load, biases=("bh", "b")),
                "bias_ih and bias_hh are swapped")
    _fails_with(checkers.check_load_gru_cell, functools.partial(_load, biases=("b",)), "bias_hh is not loaded")
    _fails_with(checkers.check_load_gru_cell, functools.partial(_load, transpose=False),
                "nn.GRUCell stores weight_ih (3H, D) = W.T")

    def converted(cell, params):  # the library's conversion instead of the student's own
        cell.load_state_dict(interop.to_torch(params, "gru"), strict=False)

    _fails_with(checkers.check_load_gru_cell, converted, "load_gru_cell calls the reference implementation")

    def with_grad(cell, params):  # the copy outside torch.no_grad()
        cell.weight_ih.copy_(torch.as_tensor(params["W"].T))

    _fails_with(checkers.check_load_gru_cell, with_grad, "copy inside `with torch.no_grad():`")

    def blank(cell, params):  # the release's answer cell
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        checkers.check_load_gru_cell(blank)


# ---------------------------------------------------------------------------
# One mistake, one test: a function is judged with the course's version of a failing helper

GATES_ANSWERS = '''
import numpy as np
import lstm_ref

def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)

def tanh(x):
    return 2 * sigmoid(2 * x) - 1

def lstm_step(x, h_prev, c_prev, params):
    H = h_prev.shape[1]
    z = np.concatenate([x, h_prev], axis=1) @ np.concatenate([params["W"], params["U"]]) + params["b"]
    i, f, o = (sigmoid(z[:, k * H : (k + 1) * H]) for k in (0, 1, 3))
    c = f * c_prev + i * tanh(z[:, 2 * H : 3 * H])
    return o * tanh(c), c

def lstm_forward(x, params, h0, c0):
    h, c, hs, cs = h0, c0, [], []
    for t in range(x.shape[1]):
        h, c = lstm_step(x[:, t], h, c, params)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, axis=1), np.stack(cs, axis=1)
'''
FLIPPED_SIGMOID = "def sigmoid(x):\n    return 1 / (1 + np.exp(x))\n"
STILL_STEP = "def lstm_step(x, h_prev, c_prev, params):\n    return h_prev, c_prev\n"


def notebook(source: str, **answers: str) -> dict:
    """A notebook's namespace after running ``source`` and then each of ``answers`` (one answer cell each)."""
    namespace: dict = {}
    for cell in (source, *answers.values()):
        exec(cell, namespace)
    return namespace


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_failing_helper_costs_only_its_own_test(dtype):
    nb = notebook(GATES_ANSWERS, sigmoid=FLIPPED_SIGMOID)
    before = dict(nb)
    _fails_with(checkers.check_sigmoid, nb["sigmoid"], "the sign inside exp is flipped", dtype=dtype)
    _fails_with(checkers.check_tanh, nb["tanh"], "tanh", dtype=dtype)  # the helper not named: the failure cascades
    checkers.check_tanh(nb["tanh"], sigmoid=nb["sigmoid"], dtype=dtype)
    checkers.check_lstm_step(nb["lstm_step"], sigmoid=nb["sigmoid"], tanh=nb["tanh"], dtype=dtype)
    checkers.check_lstm_forward(nb["lstm_forward"], lstm_step=nb["lstm_step"], dtype=dtype)
    assert nb == before, "the student's own functions are back in place"


OFF_BY_ONE_FORWARD = "def lstm_forward" + GATES_ANSWERS.split("def lstm_forward")[1].replace(
    "        h, c = lstm_step(x[:, t], h, c, params)\n        hs.append(h)\n        cs.append(c)\n",
    "        hs.append(h)\n        cs.append(c)\n        h, c = lstm_step(x[:, t], h, c, params)\n")


def test_a_function_judged_with_the_course_helper_says_so_and_may_still_fail():
    gates = {"lstm_step": "lstm_step", "sigmoid": "sigmoid", "tanh": "tanh"}
    nb = notebook(GATES_ANSWERS, lstm_step=STILL_STEP, lstm_forward=OFF_BY_ONE_FORWARD)
    _fails_with(checkers.check_lstm_forward, nb["lstm_forward"],
                "lstm_forward (run with the course's lstm_step in place of yours, which fails its own test): "
                "off by one in time", **{k: nb[v] for k, v in gates.items()})
    nb = notebook(GATES_ANSWERS, sigmoid=FLIPPED_SIGMOID, lstm_step=STILL_STEP, lstm_forward=OFF_BY_ONE_FORWARD)
    _fails_with(checkers.check_lstm_forward, nb["lstm_forward"],
                "lstm_forward (run with the course's lstm_step in place of yours, which fails its own test): "
                "off by one in time", **{k: nb[v] for k, v in gates.items()})
    # A step that is right given a right sigmoid keeps serving the forward pass: only the sigmoid stands in.
    nb = notebook(GATES_ANSWERS, sigmoid=FLIPPED_SIGMOID, lstm_forward=OFF_BY_ONE_FORWARD)
    _fails_with(checkers.check_lstm_forward, nb["lstm_forward"],
                "lstm_forward (run with the course's sigmoid in place of yours, which fails its own test): "
                "off by one in time", **{k: nb[v] for k, v in gates.items()})
    swapped = GATES_ANSWERS.replace("return o * tanh(c), c", "return c, o * tanh(c)")
    nb = notebook(swapped, sigmoid=FLIPPED_SIGMOID)
    _fails_with(checkers.check_lstm_step, nb["lstm_step"],
                "lstm_step (run with the course's sigmoid in place of yours, which fails its own test): "
                "h and c are swapped", sigmoid=nb["sigmoid"], tanh=nb["tanh"])
    nb = notebook(swapped, sigmoid=FLIPPED_SIGMOID, tanh="def tanh(x):\n    return 2 * sigmoid(2 * x)\n")
    _fails_with(checkers.check_lstm_step, nb["lstm_step"],
                "lstm_step (run with the course's sigmoid and tanh in place of yours, which fail their own tests): "
                "h and c are swapped", sigmoid=nb["sigmoid"], tanh=nb["tanh"])


def test_a_helper_reached_otherwise_than_by_its_name_is_named_as_such():
    nb = notebook(GATES_ANSWERS, sigmoid=FLIPPED_SIGMOID, tanh="sig = sigmoid\ndef tanh(x):\n    return 2 * sig(2 * x) - 1\n")
    _fails_with(checkers.check_tanh, nb["tanh"], "tanh (your sigmoid fails its own test, and tanh did not call it by "
                "name, so the course's could not stand in)", sigmoid=nb["sigmoid"])
    nb = notebook(GATES_ANSWERS, sigmoid=FLIPPED_SIGMOID, tanh="def tanh(x):\n    return 2 * sigmoid(x=2 * x) - 1\n")
    checkers.check_tanh(nb["tanh"], sigmoid=nb["sigmoid"])  # the course's version takes keywords too


def test_tanh_must_come_from_sigmoid():
    message = "tanh gives the right values but does not call sigmoid (by that name)"
    for tanh in ("def tanh(x):\n    return np.tanh(x)\n", "sig = sigmoid\ndef tanh(x):\n    return 2 * sig(2 * x) - 1\n"):
        nb = notebook(GATES_ANSWERS, tanh=tanh)
        _fails_with(checkers.check_tanh, nb["tanh"], message, sigmoid=nb["sigmoid"])
        checkers.check_tanh(nb["tanh"])  # no sigmoid given: values only
        # the step that calls it is judged with the course's tanh, and passes
        checkers.check_lstm_step(nb["lstm_step"], sigmoid=nb["sigmoid"], tanh=nb["tanh"])
    nb = notebook(GATES_ANSWERS)
    before = dict(nb)
    checkers.check_tanh(nb["tanh"], sigmoid=nb["sigmoid"], dtype=np.float32)
    assert nb == before, "the student's sigmoid is back in place"


def test_an_error_with_the_course_helper_names_how_it_is_called():
    # The student's step returns (h, c, z) and their forward pass unpacks three values.
    three = GATES_ANSWERS.replace("c = f * c_prev", "c = c_prev").replace("return o * tanh(c), c", "return o * tanh(c), c, z")
    nb = notebook(three.replace("h, c = lstm_step(x[:, t], h, c, params)", "h, c, _ = lstm_step(x[:, t], h, c, params)"))
    _fails_with(checkers.check_lstm_forward, nb["lstm_forward"],
                "lstm_forward (run with the course's lstm_step in place of yours, which fails its own test): "
                "ValueError: not enough values to unpack (expected 3, got 2) (the course's version: "
                "lstm_step(x, h_prev, c_prev, params) -> (h, c))", lstm_step=nb["lstm_step"])


def test_the_helper_is_checked_at_the_sizes_of_the_call():
    # A step that breaks for a batch of one: the forward pass over a batch of one is judged with the course's step.
    squeezed = GATES_ANSWERS.replace("    c = f * c_prev + i * tanh(z[:, 2 * H : 3 * H])\n",
                                     "    c = np.squeeze(f * c_prev + i * tanh(z[:, 2 * H : 3 * H]))\n")
    nb = notebook(squeezed)
    checkers.check_lstm_step(nb["lstm_step"])
    _fails_with(checkers.check_lstm_step, nb["lstm_step"], "c has shape (2,)", N=1, D=6, H=2, seed=102)
    checkers.check_lstm_forward(nb["lstm_forward"], lstm_step=nb["lstm_step"], N=1, T=1, D=2, H=3, seed=202)


def test_calling_the_course_version_or_the_reference_directly_is_refused_when_a_helper_fails():
    cheat = BPTT_ANSWERS.replace("= lstm_step_backward(", "= lstm_ref.lstm_step_backward(")
    nb = notebook("import lstm_ref\n" + cheat)
    nb["lstm_step_backward"] = functools.partial(lstm_step_backward, use_dc=False)
    _fails_with(checkers.check_lstm_bptt, nb["lstm_bptt"], "calls the reference implementation "
                "lstm_ref.lstm_step_backward", lstm_step_backward=nb["lstm_step_backward"])
    nb = notebook(GATES_ANSWERS, lstm_step=STILL_STEP,
                  lstm_forward=OFF_BY_ONE_FORWARD.replace("lstm_step(", "checkers._course_lstm_step("))
    nb["checkers"] = checkers
    _fails_with(checkers.check_lstm_forward, nb["lstm_forward"], "calls the reference implementation "
                "lstm_ref.lstm_step_forward", lstm_step=nb["lstm_step"])


def test_a_working_helper_is_kept_as_it_is():
    # A step returning more than (h, c) passes check_lstm_step; the forward that unpacks it keeps it.
    nb = notebook(GATES_ANSWERS.replace("return o * tanh(c), c", "return o * tanh(c), c, z").replace(
        "h, c = lstm_step(x[:, t], h, c, params)", "h, c, _ = lstm_step(x[:, t], h, c, params)"))
    checkers.check_lstm_forward(nb["lstm_forward"], lstm_step=nb["lstm_step"])


def test_calling_the_reference_is_refused_beside_a_course_helper_and_the_names_come_back():
    nb = notebook(GATES_ANSWERS, lstm_step=STILL_STEP, lstm_forward=(
        "def lstm_forward(x, params, h0, c0):\n"
        "    lstm_step(x[:, 0], h0, c0, params)\n"
        "    hs, _, cache = lstm_ref.lstm_forward(x, params, h0, c0)\n"
        "    return hs, cache.c[1:].transpose(1, 0, 2)\n"))
    before = dict(nb)
    _fails_with(checkers.check_lstm_forward, nb["lstm_forward"],
                "calls the reference implementation lstm_ref.lstm_forward", lstm_step=nb["lstm_step"])
    assert nb == before


BPTT_ANSWERS = '''
import numpy as np
from lstm_ref.checkers import lstm_step_caches

def lstm_bptt(dhs, caches):
    N, T, H = dhs.shape
    dh_next, dc_next = np.zeros((N, H), dhs.dtype), np.zeros((N, H), dhs.dtype)
    dxs, grads = [None] * T, {k: np.zeros_like(v) for k, v in caches[0].params.items()}
    for t in reversed(range(T)):
        dxs[t], dh_next, dc_next, step = lstm_step_backward(dhs[:, t] + dh_next, dc_next, caches[t])
        for k in grads:
            grads[k] += step[k]
    return np.stack(dxs, axis=1), dh_next, dc_next, grads

def bptt_gradients(arrays, dhs):
    params = {k: arrays[k] for k in ("W", "U", "b")}
    _, caches = lstm_step_caches(arrays["x"], params, arrays["h0"], arrays["c0"])
    dx, dh0, dc0, grads = lstm_bptt(dhs, caches)
    return {"x": dx, "h0": dh0, "c0": dc0, **grads}
'''


def test_bptt_is_judged_with_the_course_step_backward_and_the_gradient_check_with_the_course_loss():
    nb = notebook(BPTT_ANSWERS)
    nb["lstm_step_backward"] = functools.partial(lstm_step_backward, use_dc=False)  # the student's, wrong
    loss = functools.partial(bptt_loss, reduce=np.mean)
    _fails_with(checkers.check_lstm_step_backward, nb["lstm_step_backward"], "the upstream gradient dc is ignored")
    checkers.check_lstm_bptt(nb["lstm_bptt"], lstm_step_backward=nb["lstm_step_backward"], dtype=np.float32)
    checkers.check_bptt_gradients(loss, nb["bptt_gradients"], lstm_bptt=nb["lstm_bptt"])
    _fails_with(functools.partial(checkers.check_bptt_gradients, loss), nb["bptt_gradients"],
                "finite differences of the course's bptt_loss (yours fails its own test)")  # lstm_bptt not named

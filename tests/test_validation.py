"""Bad input to the NumPy backend gets a ValueError/TypeError naming the argument
and the expected form, never a silent broadcast."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from conftest import random_params

import lstm_ref

N, T, D, H = 2, 3, 4, 5


@pytest.fixture
def lstm(rng):
    return rng.standard_normal((N, T, D)), random_params("lstm", D, H, {"variant": "standard"}, rng)


def _with(a, index, value):
    a = a.copy()
    a[index] = value
    return a


def test_sequence_input_errors(lstm):
    x, p = lstm
    cases = [
        (lambda: lstm_ref.lstm_forward(x[0], p), ValueError, "x must be a batch-first sequence batch of shape (N, T, D)"),
        (lambda: lstm_ref.lstm_forward(x[:, :0], p), ValueError, "x must have N >= 1, T >= 1"),
        (lambda: lstm_ref.lstm_forward(x[:0], p), ValueError, "x must have N >= 1"),
        (lambda: lstm_ref.lstm_forward(x.astype(int), p), TypeError, "x must be a float32 or float64 numpy array"),
        (lambda: lstm_ref.lstm_forward(x.tolist(), p), TypeError, "x must be a float32 or float64 numpy array, got list"),
        (lambda: lstm_ref.lstm_forward(_with(x, (0, 0, 0), np.nan), p), ValueError, "x contains NaN or inf"),
        (lambda: lstm_ref.lstm_forward(x[..., :3], p), ValueError, "params['W'] must have shape (D, 4H) = (3, 20), got (4, 20)"),
        (lambda: lstm_ref.lstm_forward(x, {**p, "U": p["U"][:, :15]}), ValueError, "params['U'] must have shape (H, 4H) = (5, 20), got (5, 15)"),
        (lambda: lstm_ref.lstm_forward(x, {**p, "b": p["b"][None]}), ValueError, "params['b'] must have shape (4H,) = (20,), got (1, 20)"),
        (lambda: lstm_ref.lstm_forward(x, {**p, "b": _with(p["b"], 3, np.inf)}), ValueError, "params['b'] contains NaN or inf"),
        (lambda: lstm_ref.lstm_forward(x, {k: p[k] for k in ("W", "U")}), ValueError, "missing ['b']"),
        (lambda: lstm_ref.lstm_forward(x, {**p, "p_i": p["b"][:H]}), ValueError, "unexpected ['p_i']"),
        (lambda: lstm_ref.lstm_forward(x, [p["W"], p["U"], p["b"]]), ValueError, "params must be a dict of arrays"),
        (lambda: lstm_ref.lstm_forward(x, p, np.zeros((N, H + 1))), ValueError, "h0 must have shape (N, H) = (2, 5), got (2, 6)"),
        (lambda: lstm_ref.lstm_forward(x, p, None, np.zeros(H)), ValueError, "c0 must have shape (N, H) = (2, 5), got (5,)"),
        (lambda: lstm_ref.lstm_forward(x, p, variant="peepholes"), ValueError, "unknown variant 'peepholes'; expected one of 'standard'"),
        (lambda: lstm_ref.lstm_forward(x, p, return_sequences="no"), TypeError, "return_sequences must be True or False, got 'no'"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            call()


def test_backward_input_errors(lstm, rng):
    x, p = lstm
    out, _, cache = lstm_ref.lstm_forward(x, p)
    with pytest.raises(ValueError, match=re.escape("dout must have shape (N, T, H) = (2, 3, 5), got (2, 5)")):
        lstm_ref.lstm_backward(out[:, -1], cache)
    with pytest.raises(ValueError, match=re.escape("dh_T must have shape (N, H) = (2, 5), got (1, 5)")):
        lstm_ref.lstm_backward(out, cache, np.zeros((1, H)))
    _, _, last_cache = lstm_ref.lstm_forward(x, p, return_sequences=False)
    with pytest.raises(ValueError, match=re.escape("dout must have shape (N, H) = (2, 5), got (2, 3, 5)")):
        lstm_ref.lstm_backward(out, last_cache)
    h, c, step_cache = lstm_ref.lstm_step_forward(x[:, 0], out[:, 0], out[:, 0], p)
    with pytest.raises(ValueError, match=re.escape("dc must have shape (N, H) = (2, 5), got (2, 1)")):
        lstm_ref.lstm_step_backward(h, c[:, :1], step_cache)
    with pytest.raises(TypeError, match="cache must be the LSTMCache that lstm_forward returned, got NoneType"):
        lstm_ref.lstm_backward(out, None)
    with pytest.raises(TypeError, match="cache must be the LSTMStepCache that lstm_step_forward returned, got LSTMCache"):
        lstm_ref.lstm_step_backward(h, c, cache)
    q = random_params("gru", D, H, {}, rng)
    _, _, gru_cache = lstm_ref.gru_forward(x, q)
    with pytest.raises(TypeError, match="cache must be the RNNCache that rnn_forward returned, got GRUCache"):
        lstm_ref.rnn_backward(out, gru_cache)
    with pytest.raises(TypeError, match="cache must be the StackedCache that stacked_forward returned, got GRUCache"):
        lstm_ref.stacked_backward(out, gru_cache)


def test_step_input_errors(lstm, rng):
    x, p = lstm
    h = rng.standard_normal((N, H))
    with pytest.raises(ValueError, match=re.escape("x must have shape (N, D), got (2, 3, 4)")):
        lstm_ref.lstm_step_forward(x, h, h, p)
    with pytest.raises(ValueError, match=re.escape("h_prev must have shape (N, H) = (2, 5), got (5,)")):
        lstm_ref.lstm_step_forward(x[:, 0], h[0], h, p)
    with pytest.raises(ValueError, match=re.escape("c_prev must have shape (N, H) = (2, 5), got (1, 5)")):
        lstm_ref.lstm_step_forward(x[:, 0], h, h[:1], p)  # would broadcast silently without the check
    with pytest.raises(TypeError, match="h_prev must be a float32 or float64 numpy array"):
        lstm_ref.rnn_step_forward(x[:, 0], h.astype(np.int64), random_params("rnn", D, H, {}, rng))
    with warnings.catch_warnings():  # np.matrix itself warns that it is on its way out
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrices = {k: np.asmatrix(v) for k, v in random_params("gru", D, H, {}, rng).items()}
    with pytest.raises(TypeError, match=re.escape("params['U'] must be a float32 or float64 numpy array, got numpy.matrix")):
        lstm_ref.gru_step_forward(x[:, 0], h, matrices)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_return_sequences_must_be_a_bool(cell, rng):
    x = rng.standard_normal((N, T, D))
    params = random_params(cell, D, H, {}, rng)
    with pytest.raises(TypeError, match="return_sequences must be True or False, got 0"):
        getattr(lstm_ref, f"{cell}_forward")(x, params, return_sequences=0)


def test_gru_mode_errors(rng):
    x = rng.standard_normal((N, T, D))
    p = random_params("gru", D, H, {"reset_mode": "after-multiplication"}, rng)
    with pytest.raises(ValueError, match="unknown reset_mode 'reset_after'; expected one of 'after-multiplication'"):
        lstm_ref.gru_forward(x, p, reset_mode="reset_after")
    with pytest.raises(ValueError, match=re.escape("missing ['bh']")):
        lstm_ref.gru_forward(x, p, reset_mode="recurrent-bias-after-multiplication")
    with pytest.raises(ValueError, match=re.escape("unexpected ['bh']")):
        lstm_ref.gru_forward(x, {**p, "bh": p["b"]}, reset_mode="after-multiplication")


def test_layer_errors(lstm, rng):
    x, p = lstm
    q = random_params("rnn", D, H, {}, rng)
    with pytest.raises(ValueError, match="unknown cell 'LSTM'; expected one of 'lstm', 'gru', 'rnn'"):
        lstm_ref.stacked_forward("LSTM", x, [p])
    with pytest.raises(ValueError, match="layers must be a non-empty list"):
        lstm_ref.stacked_forward("lstm", x, [])
    with pytest.raises(ValueError, match=re.escape("initial_states must be None or a list with one entry per layer (1)")):
        lstm_ref.stacked_forward("lstm", x, [p], [None, None])
    with pytest.raises(ValueError, match=re.escape("layers[0]: must be a pair (params_fw, params_bw)")):
        lstm_ref.stacked_forward("lstm", x, [p], bidirectional=True)
    with pytest.raises(ValueError, match=re.escape("layers[1]: params['W'] must have shape (D, 4H) = (5, 20), got (4, 20)")):
        lstm_ref.stacked_forward("lstm", x, [p, p])  # layer 1 reads layer 0's H = 5 features
    with pytest.raises(TypeError, match=re.escape("layers[0]: its initial state must be None or a pair (forward, backward)")):
        lstm_ref.stacked_forward("rnn", x, [(q, q)], [np.zeros((N, H))], bidirectional=True)
    with pytest.raises(ValueError, match="params_fw and params_bw must have the same hidden size H, got 5 and 6"):
        lstm_ref.bidirectional_forward("rnn", x, q, random_params("rnn", D, H + 1, {}, rng))
    out, _, cache = lstm_ref.stacked_forward("rnn", x, [(q, q)], bidirectional=True)
    with pytest.raises(TypeError, match=re.escape("dfinal_states[0] must be None or a pair (forward, backward)")):
        lstm_ref.stacked_backward(out, cache, [np.zeros((N, H))])
    with pytest.raises(TypeError, match=re.escape("initial state of an LSTM must be a tuple (h, c)")):
        lstm_ref.stacked_forward("lstm", x, [p], [np.zeros((N, H))])
    with pytest.raises(TypeError, match="unexpected keyword argument 'reset_mode'"):
        lstm_ref.stacked_forward("lstm", x, [p], reset_mode="after-multiplication")
    out, _, cache = lstm_ref.bidirectional_forward("lstm", x, p, p)
    with pytest.raises(ValueError, match=re.escape("dout must have a last dimension of 2H = 10 ([forward | backward]), got (2, 3, 5)")):
        lstm_ref.bidirectional_backward(out[..., :H], cache)

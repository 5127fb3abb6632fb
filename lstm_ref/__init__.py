"""lstm_ref: a reference LSTM, GRU and vanilla RNN library for teaching.

One model, three spellings: NumPy (pure step functions with explicit caches and
backprop through time), PyTorch (the same equations with autograd, and thin
wrappers over ``nn.LSTM``/``nn.GRU``), and MATLAB-style / Keras-style front ends
(``lstm_ref.matlab``, ``lstm_ref.keras``) that reproduce each framework's
defaults on purpose.

Layout conventions (written once, here; every module follows them)
--------------------------------------------------------------------
Sizes: N batch, T time steps, D input features, H hidden units.
Data is batch-first: a sequence batch ``x`` is ``(N, T, D)``, a step ``x_t`` is ``(N, D)``.

Weights are oriented so that a step is a right-multiplication, with every gate
fused into one matrix (columns grouped in gate blocks of width H)::

    z = x_t @ W + h_prev @ U + b          # (N, G*H)

LSTM (gate order i, f, g, o, as in PyTorch and MATLAB; Keras calls g "c")::

    W (D, 4H), U (H, 4H), b (4H,)        blocks [i | f | g | o]
    i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
    c = f * c_prev + i * g
    h = o * tanh(c)

  Variants (Greff et al. 2017): ``peephole`` adds p_i, p_f, p_o (H,) with
  i = sigmoid(z_i + p_i * c_prev), f = sigmoid(z_f + p_f * c_prev),
  o = sigmoid(z_o + p_o * c); ``coupled`` (CIFG) has blocks [i | g | o] and
  f = 1 - i; ``no_forget`` has blocks [i | g | o] and f = 1; ``no_output`` has
  blocks [i | f | g] and o = 1.

GRU (gate order r, z, n, as in PyTorch and MATLAB's r, z, h~)::

    W (D, 3H), U (H, 3H), b (3H,)        blocks [r | z | n]
    r = sigmoid(x W_r + h_prev U_r + b_r)
    z = sigmoid(x W_z + h_prev U_z + b_z)
    h = (1 - z) * n + z * h_prev

  with the candidate n by reset-gate placement (MATLAB's ResetGateMode names):
  ``after-multiplication`` (MATLAB default): n = tanh(x W_n + b_n + r * (h_prev U_n));
  ``before-multiplication`` (Keras reset_after=False): n = tanh(x W_n + (r * h_prev) U_n + b_n);
  ``recurrent-bias-after-multiplication`` (PyTorch nn.GRU, Keras reset_after=True):
  a second bias bh (3H,) added to h_prev U in all three blocks, inside r * (...) for n.

Vanilla RNN: W (D, H), U (H, H), b (H,); h = tanh(x W + h_prev U + b).

One bias per layer (PyTorch's two LSTM biases only ever appear as their sum),
except the GRU's recurrent bias bh above. Parameters travel as dicts of arrays
keyed by these names; gradients come back as dicts with the same keys.
Conversions to and from each framework's layout live in ``lstm_ref.interop``.
"""

from ._gru import GRU_RESET_MODES, GRUCache, GRUStepCache, gru_backward, gru_forward, gru_step_backward, gru_step_forward
from ._layers import (
    CELLS,
    BidirectionalCache,
    StackedCache,
    bidirectional_backward,
    bidirectional_forward,
    stacked_backward,
    stacked_forward,
)
from ._lstm import (
    LSTM_VARIANTS,
    LSTMCache,
    LSTMStepCache,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
)
from ._rnn import RNNCache, RNNStepCache, rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward

__all__ = [
    "CELLS",
    "GRU_RESET_MODES",
    "LSTM_VARIANTS",
    "BidirectionalCache",
    "GRUCache",
    "GRUStepCache",
    "LSTMCache",
    "LSTMStepCache",
    "RNNCache",
    "RNNStepCache",
    "StackedCache",
    "bidirectional_backward",
    "bidirectional_forward",
    "gru_backward",
    "gru_forward",
    "gru_step_backward",
    "gru_step_forward",
    "lstm_backward",
    "lstm_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "stacked_backward",
    "stacked_forward",
]

"""Parameter initialisers of Keras, MATLAB and PyTorch, in lstm_ref's layout.

Each takes a ``seed`` (an int or a ``numpy.random.Generator``) and is
deterministic given it. The algorithms are the frameworks' own; the random
numbers come from NumPy, so values match a framework's distribution, not
its draws.

- ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)). For an
  input weight W (D, G*H), as Keras (kernel) and MATLAB (InputWeights,
  'glorot') count it: fan_in = D, fan_out = G*H.
- ``orthogonal``: QR of a standard Gaussian (max(r, c), min(r, c)) matrix,
  Q's columns multiplied by the signs of diag(R) so that Q is uniformly
  (Haar) distributed, transposed when the shape is wide. For U (H, G*H) this
  is Keras' recurrent_kernel initialiser and MATLAB's 'orthogonal' for
  RecurrentWeights (QR of randn(G*H, H), U = Q.T): U @ U.T = I.
- ``unit_forget_bias``: zeros, with the forget block of an LSTM bias at 1
  (Keras unit_forget_bias=True, MATLAB 'unit-forget-gate').
- ``pytorch_uniform``: U(-1/sqrt(H), 1/sqrt(H)), PyTorch's rule for every
  parameter of nn.LSTM / nn.GRU / nn.RNN.

``init_lstm_params``, ``init_gru_params`` and ``init_rnn_params`` draw a
whole params dict per framework scheme:

==========  ==============  =============  ====================================
scheme      W               U              biases
==========  ==============  =============  ====================================
"keras"     glorot_uniform  orthogonal     LSTM: unit_forget_bias; GRU, RNN: 0
"matlab"    glorot_uniform  orthogonal     as "keras" (the same defaults)
"pytorch"   pytorch_uniform pytorch_uniform  b = bias_ih + bias_hh, each uniform;
                                           GRU bh = its own uniform draw
==========  ==============  =============  ====================================

Peephole weights start at 0 under "keras"/"matlab" (neither framework has
them) and uniform under "pytorch". LSTM variants without a forget gate get
a zero bias (there is no forget block to set to 1).

References: Glorot & Bengio (2010); Saxe, McClelland & Ganguli (2014);
Jozefowicz, Zaremba & Sutskever (2015) for the unit forget bias.
"""

from __future__ import annotations

import numpy as np

from ._gru import gru_param_dims
from ._lstm import LSTM_VARIANTS, lstm_param_dims
from ._rnn import rnn_param_dims
from ._validate import check_choice, check_float_dtype, rng_from_seed

SCHEMES = ("keras", "matlab", "pytorch")



def _as(dtype: object, a: np.ndarray) -> np.ndarray:
    """``a`` cast to ``dtype``, which must be one of the backends' float32 and float64."""
    return a.astype(check_float_dtype("dtype", dtype))


def _shape(shape: tuple[int, ...], ndim: int | None = None) -> tuple[int, ...]:
    shape = tuple(shape)
    if (ndim is not None and len(shape) != ndim) or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        want = f"{ndim} positive ints" if ndim else "positive ints"
        raise ValueError(f"shape must be a tuple of {want}, got {shape}")
    return shape


def glorot_uniform(
    shape: tuple[int, int], seed: int | np.random.Generator, *, dtype: np.dtype = np.float64
) -> np.ndarray:
    """Glorot (Xavier) uniform on (fan_in, fan_out) = ``shape``: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _shape(shape, 2)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return _as(dtype, rng_from_seed(seed).uniform(-a, a, size=shape))


def _qr_orthogonal(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Keras' Orthogonal on a given Gaussian ``a`` (max(r, c), min(r, c)): sign-fixed Q, transposed if wide."""
    q, r = np.linalg.qr(a)  # (max, min), (min, min)
    q *= np.sign(np.diag(r))
    return q.T if shape[0] < shape[1] else q


def orthogonal(
    shape: tuple[int, int], seed: int | np.random.Generator, *, gain: float = 1.0, dtype: np.dtype = np.float64
) -> np.ndarray:
    """A random orthogonal matrix: orthonormal columns (tall) or rows (wide), times ``gain``."""
    rows, cols = _shape(shape, 2)
    a = rng_from_seed(seed).standard_normal((max(rows, cols), min(rows, cols)))
    return _as(dtype, gain * _qr_orthogonal(a, (rows, cols)))


def unit_forget_bias(H: int, variant: str = "standard", *, dtype: np.dtype = np.float64) -> np.ndarray:
    """An LSTM bias (G*H,) of zeros with the forget block f at 1 (none for variants without f)."""
    gates = LSTM_VARIANTS[check_choice("variant", variant, LSTM_VARIANTS)]
    (H,) = _shape((H,))
    b = np.zeros(len(gates) * H)
    if "f" in gates:
        k = gates.index("f")
        b[k * H : (k + 1) * H] = 1
    return _as(dtype, b)


def pytorch_uniform(
    shape: tuple[int, ...], H: int, seed: int | np.random.Generator, *, dtype: np.dtype = np.float64
) -> np.ndarray:
    """PyTorch's default for recurrent layers: U(-1/sqrt(H), 1/sqrt(H)) for every parameter."""
    shape = _shape(shape)
    k = 1.0 / np.sqrt(_shape((H,))[0])
    return _as(dtype, rng_from_seed(seed).uniform(-k, k, size=shape))


def _draw(dims: dict, scheme: str, H: int, rng: np.random.Generator, bias, dtype) -> dict[str, np.ndarray]:
    """Draw every entry of a params dict with the shapes ``dims`` for ``scheme``.

    ``bias()`` gives the Keras/MATLAB bias b; recurrent biases bh and
    peepholes are zeros under those schemes.
    """
    check_choice("scheme", scheme, SCHEMES)
    shapes = {k: tuple(size for _, size in d) for k, d in dims.items()}
    if scheme == "pytorch":
        params = {k: pytorch_uniform(s, H, rng, dtype=dtype) for k, s in shapes.items()}
        if "bh" not in params:  # one bias here stands for PyTorch's bias_ih + bias_hh
            params["b"] += pytorch_uniform(shapes["b"], H, rng, dtype=dtype)
        return params
    params = {k: _as(dtype, np.zeros(s)) for k, s in shapes.items()}
    params["W"] = glorot_uniform(shapes["W"], rng, dtype=dtype)
    params["U"] = orthogonal(shapes["U"], rng, dtype=dtype)
    params["b"] = _as(dtype, bias())
    return params


def init_lstm_params(
    D: int,
    H: int,
    *,
    scheme: str = "keras",
    variant: str = "standard",
    seed: int | np.random.Generator,
    dtype: np.dtype = np.float64,
) -> dict[str, np.ndarray]:
    """LSTM params (W (D, G*H), U (H, G*H), b (G*H,), peepholes) drawn as ``scheme`` does."""
    dims = lstm_param_dims(*_shape((D, H)), variant)
    return _draw(dims, scheme, H, rng_from_seed(seed), lambda: unit_forget_bias(H, variant), dtype)


def init_gru_params(
    D: int,
    H: int,
    *,
    scheme: str = "keras",
    reset_mode: str = "after-multiplication",
    seed: int | np.random.Generator,
    dtype: np.dtype = np.float64,
) -> dict[str, np.ndarray]:
    """GRU params (W (D, 3H), U (H, 3H), b (3H,), and bh (3H,) in the recurrent-bias mode)."""
    dims = gru_param_dims(*_shape((D, H)), reset_mode)
    return _draw(dims, scheme, H, rng_from_seed(seed), lambda: np.zeros(3 * H), dtype)


def init_rnn_params(
    D: int, H: int, *, scheme: str = "keras", seed: int | np.random.Generator, dtype: np.dtype = np.float64
) -> dict[str, np.ndarray]:
    """Tanh RNN params (W (D, H), U (H, H), b (H,)); Keras SimpleRNN's defaults for "keras"/"matlab"."""
    dims = rnn_param_dims(*_shape((D, H)))
    return _draw(dims, scheme, H, rng_from_seed(seed), lambda: np.zeros(H), dtype)

"""A Keras-style front end: Keras 3's API and defaults over the lstm_ref engine.

The seed's Keras lines run with only the import changed::

    from lstm_ref.keras import Sequential, LSTM, Dense
    model = Sequential([LSTM(64, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(X, y, epochs=10, batch_size=32)

Keras 3 defaults reproduced (PARITY.md, Keras column; checked against Keras
3.15.1 on its PyTorch backend by tests/test_keras_parity.py): glorot_uniform
kernels, orthogonal recurrent kernels, zero biases with unit_forget_bias,
Adam (lr 1e-3, epsilon 1e-7 added to the un-corrected sqrt(v)), mse as the
mean over the last axis then the batch, shuffling every epoch, the last
partial batch kept, ``validation_split`` taking the last fraction before
shuffling, per-epoch loss as the batch-size-weighted mean, hard_sigmoid as
clip(x/6 + 0.5, 0, 1), GRU with reset_after=True and gate order z, r, h.
``get_weights``/``set_weights`` use Keras' exact shapes and order, so weights
move between this and real Keras both ways. ``pad_sequences`` (also
``utils.pad_sequences``) is Keras' utility with its defaults: padding and
truncating "pre".

Masks, as Keras' (tests/test_keras_masking.py): ``Embedding(mask_zero=True)``
masks padding (id 0), ``Masking(mask_value=0.0)`` the steps of numeric
sequences whose features all equal ``mask_value`` (zeroing them). The (N, T)
mask passes Dense and Dropout; an LSTM or GRU keeps its state at a masked
step and, with return_sequences=True, repeats its last output there (0
before the first kept step); a Bidirectional layer with return_sequences=True
outputs 0 there. A recurrent layer with return_sequences=False ends the mask.
A mask that reaches the model's output (per-step tagging, many-to-many
regression) leaves the masked steps out of the loss, each kept step weighing
N T / V (V kept steps; ``training.masked_mean``), and out of the metrics
(``training.metric_sums``), in fit, its validation and evaluate.
``LSTM(go_backwards=True, return_sequences=True)`` returns its outputs in the
order it read them, last step first, as Keras does.

``SimpleRNN`` is Keras' vanilla RNN (kernel (D, H), recurrent_kernel (H, H),
bias (H,)), usable wherever LSTM and GRU are (stacked, Bidirectional,
masked). ``Bidirectional`` merges the two directions by ``merge_mode``
'concat', 'sum', 'mul' or 'ave'. Activations are Keras' names for Dense and
the recurrent layers alike (``ACTIVATIONS``; 'hard_sigmoid' is Keras 3's).
LSTM, GRU and SimpleRNN take Keras' ``dropout`` and ``recurrent_dropout``
(``_RNN``): masks of the inputs and of h_{t-1}, in fit only.

Training as Keras' fit: the optimisers' ``clipnorm`` (variable by variable; a
GRU's (2, 3H) bias is one variable), ``global_clipnorm`` and ``clipvalue``
(``_Clipping``); ``callbacks=[EarlyStopping(...)]`` with Keras' rules.
``compile`` takes the spellings Keras 3 takes ('Adam', 'MSE',
'MeanSquaredError', 'acc', ...) and refuses others with the list; History
keys are the metric names as given ('acc' and 'val_acc'). Lists of x or y are
converted as ``np.asarray`` converts them; integer or bool features are cast to
float, as Keras casts them, and token ids for an Embedding stay integer. Bad
data is named before training: a ragged list (Keras refuses it; pad it with
``pad_sequences``), strings (Keras: "Invalid dtype") or complex numbers in x
or y, sparse class labels outside [0, classes) and Embedding ids outside
[0, input_dim) (Keras on PyTorch fails inside torch for both, and reads id -1
as the last row, which this refuses).

Randomness (initialisers, shuffling, dropout) draws from one generator,
seeded with 0 at import and reseeded by ``utils.set_random_seed`` (Keras'
``keras.utils.set_random_seed``), so a script gives the same numbers on
every run.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch

from lstm_ref import init, interop
from lstm_ref import layers as L
from lstm_ref import training
from lstm_ref._validate import check_positive_int, check_real, is_real_number, rng_from_seed
from lstm_ref.presets import preset

_rng = np.random.default_rng(0)


def set_random_seed(seed: int) -> None:
    """Reseed the generator behind initialisers, shuffling and dropout with a non-negative int (Keras, too,
    refuses floats and None)."""
    global _rng
    _rng = rng_from_seed(seed)


def pad_sequences(sequences: Sequence, maxlen: int | None = None, dtype: str = "int32", padding: str = "pre",
                  truncating: str = "pre", value: float = 0.0) -> np.ndarray:
    """Keras' ``keras.utils.pad_sequences``: N sequences (lists or arrays of T_n steps) as one
    (N, maxlen, ...) array, padded with ``value`` and cut to ``maxlen`` steps (the longest by default).

    ``padding`` and ``truncating`` are "pre" (Keras' default: the padding comes first and the
    first steps are cut) or "post". Each step may itself be a vector; empty sequences come
    out as padding only.
    """
    for name, where in (("padding", padding), ("truncating", truncating)):
        if where not in ("pre", "post"):
            raise ValueError(f"{name} must be 'pre' or 'post', got {where!r}")
    if isinstance(value, str):
        raise ValueError(f"value must be a number, got the string {value!r}")
    try:
        arrays = [np.asarray(seq, dtype=dtype) for seq in sequences]
    except TypeError as exc:
        raise ValueError(f"sequences must be a list of sequences (lists or arrays of steps): {exc}") from None
    if any(a.ndim == 0 for a in arrays):
        raise ValueError("sequences must be a list of sequences (lists or arrays of steps), found a single number")
    step_shapes = {a.shape[1:] for a in arrays if len(a)}
    if len(step_shapes) > 1:
        raise ValueError(f"every step of every sequence must have one shape, got {sorted(step_shapes)}")
    if maxlen is None:
        maxlen = max((len(a) for a in arrays), default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 1:
        raise ValueError(f"maxlen must be a positive int or None, got {maxlen!r}")
    x = np.full((len(arrays), maxlen, *next(iter(step_shapes), ())), value, dtype=dtype)  # (N, maxlen, ...)
    for row, a in zip(x, arrays):
        kept = a[max(0, len(a) - maxlen):] if truncating == "pre" else a[:maxlen]
        if not len(kept):
            continue
        if padding == "pre":
            row[maxlen - len(kept):] = kept
        else:
            row[: len(kept)] = kept
    return x


utils = SimpleNamespace(set_random_seed=set_random_seed, pad_sequences=pad_sequences)

KERAS = preset("keras")


# ---------------------------------------------------------------- initialisers
INITIALIZERS = {
    "glorot_uniform": init.glorot_uniform,
    "orthogonal": init.orthogonal,  # Keras' Orthogonal: QR of a normal matrix, signs fixed
    "zeros": lambda shape, rng: np.zeros(shape),
    "ones": lambda shape, rng: np.ones(shape),
    "uniform": lambda shape, rng: rng.uniform(-0.05, 0.05, size=shape),
    "random_uniform": lambda shape, rng: rng.uniform(-0.05, 0.05, size=shape),
    "random_normal": lambda shape, rng: 0.05 * rng.standard_normal(shape),
    "he_uniform": lambda shape, rng: rng.uniform(-1, 1, size=shape) * math.sqrt(6.0 / shape[0]),
}


def _init(name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in INITIALIZERS:
        raise ValueError(f"initializer must be one of {tuple(INITIALIZERS)}, got {name!r}")
    return INITIALIZERS[name](shape, _rng)


# ---------------------------------------------------------------- optimisers
class _Clipping:
    """Keras 3's gradient clipping, an argument of every optimiser (keras/src/optimizers/base_optimizer.py).

    Before each update, one of (at most one may be set):

    * ``clipnorm``: each variable's gradient g becomes g c / max(||g||, c)
      (``_clip_by_norm``), variable by variable: a GRU's bias (2, 3H) is one
      variable, lstm_ref's b and bh together (``Sequential.fit`` passes
      ``learnables`` to the engine's "l2norm");
    * ``global_clipnorm``: all gradients scaled by c min(1/||G||, 1/c), ||G||
      the norm of all of them together (``clip_by_global_norm``, no epsilon;
      the engine's "global-l2norm", which adds none either);
    * ``clipvalue``: every element clipped to [-c, c] ("absolute-value").

    As in Keras, a value of 0 or below (or None) clips nothing.
    """

    def _set_clipping(self, clipnorm: float | None, clipvalue: float | None,
                      global_clipnorm: float | None) -> None:
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm

    def clipping(self) -> dict:
        """The ``Preset`` fields that make the engine clip as this optimiser does ({} for none)."""
        for value, method in ((self.clipnorm, "l2norm"), (self.global_clipnorm, "global-l2norm"),
                              (self.clipvalue, "absolute-value")):
            if value and value > 0:  # Keras: ``if self.clipnorm and self.clipnorm > 0``
                return {"gradient_threshold": float(value), "gradient_threshold_method": method}
        return {}


class Adam(_Clipping, training.Adam):
    """keras.optimizers.Adam: epsilon added to the un-corrected sqrt(v); clipping as ``_Clipping``."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, eps_placement="keras")
        self._set_clipping(clipnorm, clipvalue, global_clipnorm)


class SGD(_Clipping, training.SGD):
    """keras.optimizers.SGD: ``v = momentum v - lr g; w += v``; clipping as ``_Clipping``."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, momentum)
        self._set_clipping(clipnorm, clipvalue, global_clipnorm)


class RMSprop(_Clipping, training.RMSprop):
    """keras.optimizers.RMSprop: ``w -= lr g / sqrt(v + eps)``; clipping as ``_Clipping``."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, epsilon: float = 1e-7,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, rho, epsilon, eps_placement="keras")
        self._set_clipping(clipnorm, clipvalue, global_clipnorm)


optimizers = SimpleNamespace(Adam=Adam, SGD=SGD, RMSprop=RMSprop)


# --------------------------------------------------------------------- layers
class Layer:
    """A Keras layer description; ``build(input_shape)`` makes its torch module."""

    keras_name = "layer"

    def __init__(self, input_shape: tuple | None = None, name: str | None = None, **unsupported: object) -> None:
        if unsupported:
            raise TypeError(f"{type(self).__name__}: lstm_ref.keras does not implement Keras' "
                            f"{', '.join(sorted(unsupported))}")
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.name = name
        self.module: torch.nn.Module | None = None
        self.output_shape: tuple | None = None

    def build(self, input_shape: tuple) -> tuple:
        """Create the module for inputs of ``input_shape`` (without the batch); return the output shape."""
        raise NotImplementedError

    def compute_mask(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """Keras' compute_mask: the (N, T) bool mask of the output (True: a step to read) from the
        input x and its mask; a layer passes its input's mask on unless it makes or ends one."""
        return mask

    def call(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output for x, whose steps ``mask`` (N, T) marks (None: all), and the output's mask."""
        return self.module(x), self.compute_mask(x, mask)

    def get_weights(self) -> list[np.ndarray]:
        """The weights in Keras' layout and order."""
        return []

    def keras_variables(self) -> dict[str, str]:
        """The Keras variable each of the module's parameters belongs to (parameter name -> variable
        name), where several make one (``_Clipping``'s clipnorm clips variable by variable)."""
        return {}

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load weights given in Keras' layout and order."""
        self._check_weights(weights)

    def _check_weights(self, weights: Sequence[np.ndarray]) -> None:
        """The given list must match ``get_weights()`` in count and shapes."""
        shapes = [w.shape for w in self.get_weights()]
        if len(weights) != len(shapes):
            raise ValueError(f"layer {self.name!r} takes {len(shapes)} weight arrays, got {len(weights)}")
        for k, (w, shape) in enumerate(zip(weights, shapes)):
            if np.shape(w) != shape:
                raise ValueError(f"layer {self.name!r}: weight {k} must have shape {shape}, got {np.shape(w)}")

    def _assign(self, key: str, value: np.ndarray) -> None:
        """Copy a (shape-checked) array into the module's parameter ``key``."""
        param = getattr(self.module, key)
        with torch.no_grad():
            param.copy_(torch.as_tensor(value, dtype=param.dtype))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


class Dense(Layer):
    """keras.layers.Dense(units, activation=None, use_bias=True, ...)."""

    keras_name = "dense"

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", bias_initializer: str = "zeros",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = _keras_activation(activation)
        self.use_bias = use_bias
        self.initializers = (kernel_initializer, bias_initializer)

    def build(self, input_shape):
        params = {"W": _init(self.initializers[0], (input_shape[-1], self.units))}
        if self.use_bias:
            params["b"] = _init(self.initializers[1], (self.units,))
        self.module = L.Dense(params, activation_name=self.activation)
        return (*input_shape[:-1], self.units)

    def get_weights(self):
        return [_np(p) for p in self.module.parameters()]

    def set_weights(self, weights):
        self._check_weights(weights)
        for key, value in zip(self.module.params(), weights):
            self._assign(key, value)


class Embedding(Layer):
    """keras.layers.Embedding(input_dim, output_dim, mask_zero=False); init uniform(-0.05, 0.05).

    With ``mask_zero=True`` token id 0 is padding, m_t = (x_t != 0) (N, T):
    the recurrent layers after it skip those steps (``lstm_ref.layers``
    LSTM/GRU ``mask``), and where the mask reaches the output (a tagger:
    ``LSTM(H, return_sequences=True)``, ``Dense(K, activation="softmax")``)
    the loss and metrics leave them out, as in Keras.
    """

    keras_name = "embedding"

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: str = "uniform", mask_zero: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.initializer = embeddings_initializer
        self.mask_zero = bool(mask_zero)

    def build(self, input_shape):
        self.module = L.Embedding({"E": _init(self.initializer, (self.input_dim, self.output_dim))})
        return (*input_shape, self.output_dim)

    def compute_mask(self, x, mask=None):
        return (x != 0) if self.mask_zero else None  # (N, T)

    def get_weights(self):
        return [_np(self.module.E)]

    def set_weights(self, weights):
        self._check_weights(weights)
        self._assign("E", weights[0])


class _MaskSteps(torch.nn.Module):
    """x (N, T, D) with the steps whose D features all equal ``mask_value`` set to 0."""

    def __init__(self, mask_value: float) -> None:
        super().__init__()
        self.mask_value = mask_value

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        return (x != self.mask_value).any(dim=-1)  # (N, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask(x).unsqueeze(-1), x, torch.zeros((), dtype=x.dtype))  # (N, T, D)


class Masking(Layer):
    """keras.layers.Masking(mask_value=0.0): skip the steps whose features all equal ``mask_value``.

    The mask m_t = any_d(x_td != mask_value) (N, T) reaches the recurrent
    layers after it, as Embedding(mask_zero=True)'s does: at a masked step
    they keep their state. The output is x with the masked steps set to 0.
    Dense and Dropout between pass the mask on, as in Keras; where it
    reaches the model's output (``LSTM(16, return_sequences=True)``,
    ``Dense(1)``: one target per step) the loss and metrics leave the masked
    steps out.
    """

    keras_name = "masking"

    def __init__(self, mask_value: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not is_real_number(mask_value):
            raise TypeError(f"mask_value must be a number (the value padded steps hold in every feature), "
                            f"got {type(mask_value).__name__} {mask_value!r}")
        if math.isnan(mask_value):
            raise ValueError("mask_value must not be NaN: NaN equals nothing, so no step would be masked; "
                             "pad with a number such as 0.0")
        self.mask_value = float(mask_value)

    def build(self, input_shape):
        _check_sequence_shape(self, input_shape)
        self.module = _MaskSteps(self.mask_value)
        return input_shape

    def compute_mask(self, x, mask=None):
        return self.module.mask(x)  # (N, T)


class Dropout(Layer):
    """keras.layers.Dropout(rate): zeroes a fraction while training, scales the rest."""

    keras_name = "dropout"

    def __init__(self, rate: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if not (is_real_number(rate) and 0.0 <= rate <= 1.0):  # Keras 3 takes 1 too (every value dropped)
            raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")
        self.rate = float(rate)

    def build(self, input_shape):
        self.module = torch.nn.Dropout(self.rate)
        return input_shape


class _RNN(Layer):
    """What the recurrent layers share: units, activation, initialisers, output choice, dropout.

    ``dropout`` and ``recurrent_dropout`` are Keras' (``lstm_ref.layers``
    module docstring): in fit only, masks of x_t and of h_{t-1}, drawn from
    torch's RNG once per batch and used at every step (fit seeds torch's RNG
    from ``set_random_seed``'s generator, so runs repeat); predict and
    evaluate ignore them. Keras clips a rate silently into [0, 1], and at 1
    its LSTM and GRU drop nothing or everything depending on the path: rates
    outside [0, 1) are refused here, naming the argument.
    """

    cell = "lstm"  # the cell name of lstm_ref.interop
    reset_mode: str | None = None
    bias_keys: tuple[str, ...] = ("b",)  # biases, zero when use_bias=False

    def __init__(self, units: int, activation: str = "tanh", use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", recurrent_initializer: str = "orthogonal",
                 bias_initializer: str = "zeros", return_sequences: bool = False, go_backwards: bool = False,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dropout = L.dropout_rate("dropout", dropout)
        self.recurrent_dropout = L.dropout_rate("recurrent_dropout", recurrent_dropout)
        self.units = check_positive_int("units", units)
        self.activation = _keras_activation(activation)
        self.use_bias = use_bias
        self.initializers = (kernel_initializer, recurrent_initializer, bias_initializer)
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards

    def _kernels(self, D: int, G: int) -> dict[str, np.ndarray]:
        H = self.units
        return {"W": _init(self.initializers[0], (D, G * H)),
                "U": _init(self.initializers[1], (H, G * H))}

    def _options(self) -> dict:
        return dict(return_sequences=self.return_sequences, reverse=self.go_backwards, dropout=self.dropout,
                    recurrent_dropout=self.recurrent_dropout)

    def _output_shape(self, input_shape):
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def call(self, x, mask):
        """Keras' RNN: at a masked step the state and the output stay those of the step before.

        With return_sequences the mask goes on with the (N, T, H) outputs;
        with go_backwards Keras leaves those outputs in the order the layer
        read them (the last step first) and the mask as it came, and so does
        this. Without return_sequences the mask ends here.
        """
        out = self.module(x, mask)  # (N, T, H) or (N, H)
        if not self.return_sequences:
            return out, None
        return (out.flip(1) if self.go_backwards else out), mask

    def _keras_weights(self) -> list[np.ndarray]:
        """[kernel, recurrent_kernel, bias] by ``lstm_ref.interop.to_keras`` (zero bias without use_bias)."""
        p = {k: _np(v) for k, v in self.module.params().items()}
        for key in self.bias_keys:
            p.setdefault(key, np.zeros(p["U"].shape[1], dtype=p["U"].dtype))
        return interop.to_keras(p, self.cell, reset_mode=self.reset_mode)

    def get_weights(self):
        weights = self._keras_weights()
        return weights if self.use_bias else weights[:2]

    def set_weights(self, weights):
        self._check_weights(weights)
        if not self.use_bias:
            weights = [*weights, np.zeros_like(self._keras_weights()[2])]
        params = interop.from_keras(list(weights), self.cell, reset_mode=self.reset_mode)
        for key in self.module.params():
            self._assign(key, params[key])


class _GatedRNN(_RNN):
    """What LSTM and GRU add: the gates' ``recurrent_activation``."""

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid", *args,
                 **kwargs) -> None:  # Keras' order: units, activation, recurrent_activation, use_bias, ...
        super().__init__(units, activation, *args, **kwargs)
        self.recurrent_activation = _keras_activation(recurrent_activation)

    def _options(self) -> dict:
        return dict(super()._options(), cell_activation=self.activation,
                    recurrent_activation=self.recurrent_activation)


class SimpleRNN(_RNN):
    """keras.layers.SimpleRNN(units, activation='tanh', ...): ``h_t = act(x_t W + h_{t-1} U + b)``.

    Weights as Keras' (keras/src/layers/rnn/simple_rnn.py): kernel (D, H) = W,
    recurrent_kernel (H, H) = U, bias (H,) = b; defaults glorot_uniform,
    orthogonal, zeros. Masks, go_backwards and Bidirectional as for LSTM.
    """

    keras_name = "simple_rnn"
    cell = "rnn"

    def build(self, input_shape):
        _check_sequence_shape(self, input_shape)
        params = self._kernels(input_shape[-1], 1)
        if self.use_bias:
            params["b"] = _init(self.initializers[2], (self.units,))
        self.module = L.SimpleRNN(params, activation_name=self.activation, **self._options())
        return self._output_shape(input_shape)


class LSTM(_GatedRNN):
    """keras.layers.LSTM(units, ...): gate order i, f, c(=g), o as lstm_ref's.

    Weights: kernel (D, 4H) = W, recurrent_kernel (H, 4H) = U, bias (4H,) = b
    (the same layout, no conversion). unit_forget_bias=True (default) sets
    the forget block of the bias to 1.
    """

    keras_name = "lstm"

    def __init__(self, units: int, *args, unit_forget_bias: bool = True, **kwargs) -> None:
        super().__init__(units, *args, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    def build(self, input_shape):
        _check_sequence_shape(self, input_shape)
        params = self._kernels(input_shape[-1], 4)
        if self.use_bias:
            H = self.units
            b = _init(self.initializers[2], (4 * H,))
            if self.unit_forget_bias:
                b[H : 2 * H] = 1.0  # forget block
            params["b"] = b
        self.module = L.LSTM(params, **self._options())
        return self._output_shape(input_shape)


class GRU(_GatedRNN):
    """keras.layers.GRU(units, reset_after=True, ...).

    reset_after=True is lstm_ref's ``recurrent-bias-after-multiplication``
    (bias (2, 3H): row 0 = b, row 1 = bh); reset_after=False is
    ``before-multiplication`` (bias (3H,)). Keras orders the blocks z, r, h;
    get_weights/set_weights reorder them (``lstm_ref.interop``).
    """

    keras_name = "gru"
    cell = "gru"

    def __init__(self, units: int, *args, reset_after: bool = True, **kwargs) -> None:
        super().__init__(units, *args, **kwargs)
        self.reset_after = reset_after
        self.reset_mode = "recurrent-bias-after-multiplication" if reset_after else "before-multiplication"
        self.bias_keys = ("b", "bh") if reset_after else ("b",)

    def build(self, input_shape):
        _check_sequence_shape(self, input_shape)
        params = self._kernels(input_shape[-1], 3)
        if self.use_bias:
            bias = _init(self.initializers[2], (2, 3 * self.units) if self.reset_after else (3 * self.units,))
            params.update({"b": bias[0], "bh": bias[1]} if self.reset_after else {"b": bias})
        self.module = L.GRU(params, reset_mode=self.reset_mode, **self._options())
        return self._output_shape(input_shape)

    def keras_variables(self):
        return {"b": "bias", "bh": "bias"} if self.reset_after and self.use_bias else {}  # bias (2, 3H)


class Bidirectional(Layer):
    """keras.layers.Bidirectional(layer, merge_mode='concat').

    The backward copy reads the sequence reversed; weights are the forward
    layer's then the backward layer's, as in Keras. ``merge_mode`` "concat"
    (H + H features, forward first), "sum", "mul" or "ave" (H features:
    ``lstm_ref.layers.MERGE_MODES``). Keras' ``None`` returns the two outputs
    as a list, which a Sequential model cannot pass on: refused.
    """

    keras_name = "bidirectional"

    def __init__(self, layer: _RNN, merge_mode: str = "concat", **kwargs) -> None:
        if merge_mode is None:
            raise ValueError("merge_mode=None returns the forward and backward outputs as two tensors, which a "
                             f"Sequential model cannot pass on: use one of {tuple(L.MERGE_MODES)}")
        if merge_mode not in L.MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {tuple(L.MERGE_MODES)}, got {merge_mode!r}")
        if not isinstance(layer, _RNN):
            raise TypeError(f"layer must be an LSTM, GRU or SimpleRNN, got {type(layer).__name__}")
        super().__init__(input_shape=kwargs.pop("input_shape", layer.input_shape), **kwargs)
        self.forward_layer = layer
        self.backward_layer = _backward_copy(layer)
        self.merge_mode = merge_mode

    def build(self, input_shape):
        shape = self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        self.module = L.Bidirectional(self.forward_layer.module, self.backward_layer.module, self.merge_mode)
        return (*shape[:-1], 2 * shape[-1]) if self.merge_mode == "concat" else shape

    def call(self, x, mask):
        """Both directions under the mask; with return_sequences the outputs at masked steps are 0
        (Keras sets zero_output_for_mask on the wrapped layers, so every merge gives 0) and the mask goes on."""
        out = self.module(x, mask)  # (N, T, 2H or H) or (N, 2H or H)
        if not self.forward_layer.return_sequences:
            return out, None
        if mask is not None:
            out = torch.where(mask.unsqueeze(-1), out, torch.zeros((), dtype=out.dtype))  # (N, T, 2H or H)
        return out, mask

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def keras_variables(self):
        return {f"{side}.{param}": f"{side}.{var}" for side, layer in
                (("forward_layer", self.forward_layer), ("backward_layer", self.backward_layer))
                for param, var in layer.keras_variables().items()}

    def set_weights(self, weights):
        self._check_weights(weights)
        half = len(weights) // 2
        self.forward_layer.set_weights(weights[:half])
        self.backward_layer.set_weights(weights[half:])


def _backward_copy(layer: _RNN) -> _RNN:
    """The same layer description reading the sequence backwards (unbuilt)."""
    copy = object.__new__(type(layer))
    copy.__dict__.update(layer.__dict__)
    copy.go_backwards = not layer.go_backwards
    copy.module = None
    return copy


class Input:
    """keras.Input(shape): the per-sample input shape, e.g. (None, 1) or (None,) for token ids."""

    def __init__(self, shape: tuple, dtype: str | None = None) -> None:
        self.shape = tuple(shape)


# Keras activation name -> lstm_ref.layers.ACTIVATIONS name; None is "linear", as in Keras.
ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "softsign": "softsign", "linear": "linear",
               "softmax": "softmax", "hard_sigmoid": "hard_sigmoid_keras"}


def _keras_activation(name: str | None) -> str:
    """The lstm_ref name of a Keras activation (Dense and the recurrent layers alike)."""
    if name is None:
        return "linear"
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)} or None, got {name!r}")
    return ACTIVATIONS[name]


def _check_sequence_shape(layer: Layer, input_shape: tuple) -> None:
    if len(input_shape) != 2:
        raise ValueError(
            f"{type(layer).__name__} expects inputs of shape (batch, timesteps, features), "
            f"i.e. input_shape=(timesteps, features) such as (None, 1); got {input_shape}"
        )


# ---------------------------------------------------------------------- model
class History:
    """keras.callbacks.History: ``history`` maps 'loss', 'val_loss', metrics to per-epoch lists."""

    def __init__(self, history: dict[str, list[float]], epochs: int, params: dict) -> None:
        self.history = history
        self.epoch = list(range(epochs))
        self.params = params


def _crossentropy(y_pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keras' loss 'crossentropy'/'ce' (any case; compile_utils.get_loss), resolved by the shapes:
    binary for one output unit, else categorical (one-hot targets) or sparse (class ids)."""
    loss = training.binary_crossentropy if y_pred.shape[-1] == 1 else training.crossentropy
    return loss(y_pred, y, mask=mask)


# The names Keras 3 takes for each loss: function, alias and class name (keras/src/losses/__init__.py
# ALL_OBJECTS_DICT, looked up as given: 'MSE' is an alias, 'Mse' is refused).
LOSSES = {name: fn for fn, names in (
    (training.mse, ("mse", "MSE", "mean_squared_error", "MeanSquaredError")),
    (training.mae, ("mae", "MAE", "mean_absolute_error", "MeanAbsoluteError")),
    (training.binary_crossentropy, ("binary_crossentropy", "bce", "BCE", "BinaryCrossentropy")),
    (training.crossentropy, ("categorical_crossentropy", "CategoricalCrossentropy",
                             "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")),
) for name in names}
SHAPE_RESOLVED_LOSSES = ("crossentropy", "ce")  # any case


def _accuracy(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Keras' 'accuracy', resolved by the shapes alone (compile_utils.is_binary_or_sparse_categorical):
    binary for one output unit, categorical (argmax) for targets of the outputs' shape, else sparse."""
    if y_pred.shape[-1] == 1:
        y = training._align_target(y_pred, y)
        return ((y_pred > 0.5).to(y.dtype) == y).to(y_pred.dtype).mean(dim=-1)
    if y.shape == y_pred.shape:  # one-hot
        y = y.argmax(dim=-1)
    elif y.ndim == y_pred.ndim:
        y = y.squeeze(-1)
    return (y_pred.argmax(dim=-1) == y.long()).to(y_pred.dtype)  # (N,) or (N, T)


def _stepwise(fn):
    """A Keras metric function: fn's values averaged over the last axis, (N,) or (N, T) per step."""

    def metric(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = training._align_target(y_pred, y)
        return fn(y_pred, y).mean(dim=-1)

    return metric


# The names Keras 3 takes for each metric (keras/src/metrics/__init__.py ALL_OBJECTS_DICT, as given), besides
# 'accuracy'/'acc' in any case (``_accuracy``). History keys are the names as the user wrote them.
METRICS = {name: fn for fn, names in (
    (_stepwise(lambda p, y: (p - y).abs()), ("mae", "MAE", "mean_absolute_error", "MeanAbsoluteError")),
    (_stepwise(lambda p, y: (p - y) ** 2), ("mse", "MSE", "mean_squared_error", "MeanSquaredError")),
) for name in names}
ACCURACY_NAMES = ("accuracy", "acc")  # any case: resolved by the shapes (compile_utils.get_metric)


def _is_accuracy(name: str) -> bool:
    return name.lower() in ACCURACY_NAMES


def _get_loss(name: str):
    """The loss for a Keras loss name (``LOSSES``, or 'crossentropy'/'ce' in any case)."""
    if isinstance(name, str) and name.lower() in SHAPE_RESOLVED_LOSSES:
        return _crossentropy
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, or 'crossentropy'/'ce' in any case, got {name!r}")
    return LOSSES[name]


def _get_metric(name: str):
    """The metric for a Keras metric name (``METRICS``, or 'accuracy'/'acc' in any case)."""
    if isinstance(name, str) and _is_accuracy(name):
        return _accuracy
    if not isinstance(name, str) or name not in METRICS:
        raise ValueError(f"metrics must be among {tuple(METRICS)}, or 'accuracy'/'acc' in any case, got {name!r}")
    return METRICS[name]


def _as_array(name: str, a: object) -> np.ndarray:
    """x or y as a NumPy array, a list converted as ``np.asarray`` converts it (integer ids stay integer).

    A ragged list (samples of different shapes) is refused, as Keras refuses it, and so are strings
    (Keras: "Invalid dtype: str32"), each saying what to do instead, and complex numbers (``check_real``).
    """
    try:
        a = np.asarray(a)
    except ValueError:  # NumPy: "setting an array element with a sequence ... inhomogeneous shape"
        raise ValueError(f"{name} is a ragged list (samples of different shapes, such as sequences of different "
                         f"lengths), which Keras refuses: pad them to one length first, e.g. {name} = "
                         f"pad_sequences({name}, padding='post', dtype='float32') (lstm_ref.keras.pad_sequences; "
                         f"the default dtype 'int32' for token ids), with Masking() or Embedding(mask_zero=True) "
                         f"to skip the padding") from None
    if a.dtype.kind in "SU":
        raise ValueError(f"{name} holds strings (dtype {a.dtype}); Keras takes numbers only: give class ids, e.g. "
                         f"classes, {name} = np.unique({name}, return_inverse=True)")
    return check_real(name, a)


OPTIMIZERS = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}  # by name in any case, as Keras' optimizers.get


class EarlyStopping:
    """keras.callbacks.EarlyStopping: stop training when ``monitor`` has stopped improving.

    As keras/src/callbacks/early_stopping.py and monitor_callback.py (3.15).
    The direction: "min" or "max", or for "auto" min for a loss and the
    metric's own (max for accuracy, min for mae/mse), an error for a monitor
    that names neither; a mode other than the three warns and is "auto".
    After each epoch e (from 0) whose logs hold v = logs[monitor]:

    * before ``start_from_epoch``, or with ``monitor`` missing from the logs
      (a warning naming the available ones), nothing happens;
    * ``wait`` += 1; v improves when v + |min_delta| < best (min; for max
      v - |min_delta| > best); the first value always improves (``baseline``
      is not the first best). An improvement records best (and, with
      ``restore_best_weights``, the weights) and resets ``wait`` to 0 unless
      it fails to improve on ``baseline``;
    * otherwise training stops once ``wait`` >= ``patience`` and e > 0
      (never after the first epoch): the History holds the epochs run,
      this last one included.

    At the end, with ``restore_best_weights``, the weights of the best epoch
    come back (those of the first epoch monitored if none improved), whether
    or not training stopped early.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"EarlyStopping mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor, self.mode = monitor, mode
        self.min_delta = abs(min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.sign: int | None = None  # +1: higher is better, -1: lower is better (set at the first epoch's end)
        self.model: Sequential | None = None
        self.on_train_begin()

    def on_train_begin(self) -> None:
        """Start afresh (an EarlyStopping may serve several fit calls)."""
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best: float | None = None
        self.best_weights: list[np.ndarray] | None = None

    def _direction(self) -> int:
        if self.mode != "auto":
            return 1 if self.mode == "max" else -1
        metric = self.monitor.removeprefix("val_")
        if metric == "loss" or metric in self.model._compiled["metrics"]:
            return 1 if _is_accuracy(metric) else -1  # a metric's _direction: "up" for the accuracies only
        raise ValueError(f"EarlyStopping callback received monitor={self.monitor}, but Keras isn't able to "
                         "automatically determine whether that metric should be maximized or minimized. Pass "
                         "`mode='max'` in order to monitor based on the highest metric value, or pass "
                         "`mode='min'` in order to use the lowest value.")

    def _improves(self, value: float, reference: float | None) -> bool:
        return reference is None or self.sign * (value - self.sign * self.min_delta - reference) > 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Judge epoch ``epoch`` (from 0) by its logs; sets ``model.stop_training`` to stop."""
        if self.sign is None:
            self.sign = self._direction()
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._improves(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self) -> None:
        """Report the stop (verbose) and bring back the best weights (restore_best_weights)."""
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


callbacks = SimpleNamespace(EarlyStopping=EarlyStopping)


def _keras_history(result: training.History, validation: bool) -> dict[str, list[float]]:
    """The engine's History as Keras' ``history`` dict (and per-epoch logs), in Keras' order: loss and
    the metrics sorted by name, then their val_ forms sorted (Keras flattens its metric results with
    optree, which sorts dict keys)."""
    metrics = {k: v for k, v in result.metrics.items() if not k.startswith("val_")}
    history = dict(sorted({"loss": result.loss, **metrics}.items()))
    if validation:
        val_metrics = {k: v for k, v in result.metrics.items() if k.startswith("val_")}
        history.update(sorted({"val_loss": result.val_loss, **val_metrics}.items()))
    return history


class _Stack(torch.nn.Sequential):
    """The layers' modules in order, passing Keras' mask along (each layer's ``call``).

    An ``Embedding(mask_zero=True)`` or a ``Masking`` layer makes the mask
    from its input; Dense and Dropout pass it on; the recurrent layers read
    it and pass it on with return_sequences, or end it. A mask that reaches
    the output comes out of ``forward_with_mask``, for the loss and metrics.
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__(*(layer.module for layer in layers))
        self.keras_layers = list(layers)

    def forward_with_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The outputs and the (N, T) bool mask that reaches them (None when none does)."""
        mask = None
        for layer in self.keras_layers:
            x, mask = layer.call(x, mask)
        return x, mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_mask(x)[0]


class Sequential:
    """keras.Sequential: a stack of layers, compiled, fitted and evaluated like Keras.

    Args:
        layers: the layers; the first may carry ``input_shape`` or an
            ``Input`` may come first (otherwise the model builds on first use).
        name: the model's name in ``summary()``.
    """

    def __init__(self, layers: Sequence[Layer | Input] | None = None, name: str = "sequential") -> None:
        self.name = name
        self.layers: list[Layer] = []
        self._input_shape: tuple | None = None
        self.module: _Stack | None = None
        self._compiled: dict | None = None
        self.stop_training = False  # set by a callback (EarlyStopping) to end fit after this epoch
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Layer | Input) -> None:
        """Append a layer (or set the input shape with an ``Input``)."""
        if isinstance(layer, Input):
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"layers must be lstm_ref.keras layers, got {type(layer).__name__}")
        if not self.layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = layer.input_shape
        names = [lay.name for lay in self.layers]
        if layer.name is None:
            count = sum(n == layer.keras_name or n.startswith(layer.keras_name + "_") for n in names)
            layer.name = layer.keras_name if count == 0 else f"{layer.keras_name}_{count}"
        self.layers.append(layer)
        self.module = None
        if self._input_shape is not None:
            self.build(self._input_shape)

    def build(self, input_shape: tuple) -> None:
        """Create every layer's module for per-sample inputs of ``input_shape``."""
        self._input_shape = tuple(input_shape)
        shape = self._input_shape
        for layer in self.layers:
            if layer.module is None:
                layer.output_shape = layer.build(shape)
            shape = layer.output_shape
        self.module = _Stack(self.layers)

    def _inputs(self, x: object) -> np.ndarray:
        """x as an array (``_as_array``), the model built for its samples if not built yet, else checked
        against the input shape (None: any size). Integers and bools are cast to float, as Keras casts them,
        unless the first layer is an Embedding, which reads them as token ids."""
        x = _as_array("x", x)
        sample = x.shape[1:]
        if self.module is None:
            self.build(sample)
        expected = self._input_shape
        if len(sample) != len(expected) or any(e is not None and e != s for e, s in zip(expected, sample)):
            raise ValueError(f"x holds samples of shape {sample}, but the model takes samples of shape "
                             f"{expected} (x of shape (batch, {', '.join(map(str, expected))}))")
        token_ids = bool(self.layers) and isinstance(self.layers[0], Embedding)
        return x if token_ids or x.dtype.kind not in "biu" else x.astype(np.float32)  # the layers' dtype

    def compile(self, optimizer: str | training.Optimizer = "rmsprop",
                loss: str | None = None, metrics: Sequence[str] | None = None) -> None:
        """Choose the optimiser, loss and metrics by the names Keras 3 takes, or an optimiser object.

        Optimisers: 'adam', 'rmsprop', 'sgd' in any case ('Adam', 'RMSprop');
        losses: ``LOSSES`` as written ('mse', 'MSE', 'MeanSquaredError', ...)
        or 'crossentropy'/'ce' in any case; metrics: ``METRICS`` as written, or
        'accuracy'/'acc' in any case. The History keys are the metric names as
        given ('acc', 'val_acc'), as in Keras.
        """
        if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
            optimizer = OPTIMIZERS[optimizer.lower()]()
        elif not isinstance(optimizer, training.Optimizer):
            raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)} (any case) or an optimizer object, "
                             f"got {optimizer!r}")
        self._compiled = {"optimizer": optimizer, "loss": _get_loss(loss),
                          "metrics": {name: _get_metric(name) for name in metrics or []}}

    @property
    def optimizer(self):
        return None if self._compiled is None else self._compiled["optimizer"]

    def _targets(self, y: object) -> np.ndarray:
        """y as an array (``_as_array``); for a crossentropy with class-id targets, checked to hold ids of
        the output's classes (cast to int, as Keras casts them) before training starts."""
        y = _as_array("y", y)
        n_classes, rank = self.layers[-1].output_shape[-1], 1 + len(self.layers[-1].output_shape)
        sparse = y.ndim < rank or (y.shape[-1] == 1 and n_classes > 1)  # compile_utils.is_binary_or_sparse_categorical
        if self._compiled["loss"] in (training.crossentropy, _crossentropy) and n_classes > 1 and sparse:
            training.check_class_ids(y.astype(np.int64), n_classes)
        return y

    def _learnables(self) -> dict[str, str]:
        """``training.fit``'s learnables: the model's parameters that make one Keras variable (a GRU's bias)."""
        return {f"{k}.{param}": f"{k}.{var}" for k, layer in enumerate(self.layers)
                for param, var in layer.keras_variables().items()}

    def fit(self, x: object, y: object, batch_size: int | None = None, epochs: int = 1,
            verbose: str | int = "auto", callbacks: Sequence[EarlyStopping] | None = None,
            validation_split: float = 0.0, validation_data: tuple | None = None, shuffle: bool = True) -> History:
        """Train like keras Model.fit; returns a ``History`` of per-epoch values.

        Where a mask reaches the output, y holds a target per step ((N, T),
        (N, T, 1), class ids (N, T) or one-hot (N, T, K)) and the loss and
        metrics of every mini-batch, of the validation data and of the
        per-epoch History leave the masked steps out, as Keras does: the loss
        is the mean over the mini-batch's kept steps, the metrics the mean
        over the epoch's kept steps.

        The optimiser's clipnorm, global_clipnorm or clipvalue clip the
        gradients as Keras' (``_Clipping``). ``callbacks``: ``EarlyStopping``
        objects (others are refused), judged after every epoch as Keras does.
        """
        if self._compiled is None:
            raise RuntimeError("call compile(optimizer, loss) before fit")
        others = [type(cb).__name__ for cb in callbacks or [] if not isinstance(cb, EarlyStopping)]
        if others:
            raise TypeError(f"callbacks: lstm_ref.keras implements EarlyStopping only, got {', '.join(others)}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        x, y = self._inputs(x), self._targets(y)
        if validation_data is not None:
            x_val, y_val = training.validation_pair(validation_data)
            validation_data = (self._inputs(x_val), self._targets(y_val))
        elif validation_split:
            split = int(math.floor(len(x) * (1.0 - validation_split)))  # Keras: the last fraction
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        optimizer = self._compiled["optimizer"]
        clipping = optimizer.clipping() if isinstance(optimizer, _Clipping) else {}
        config = preset(KERAS, shuffle="every-epoch" if shuffle else "never", **clipping)
        batch_size = 32 if batch_size is None else batch_size
        self.stop_training = False
        for callback in callbacks or []:
            callback.model = self
            callback.on_train_begin()

        def stop(result: training.History) -> bool:
            logs = {key: values[-1] for key, values in _keras_history(result, validation_data is not None).items()}
            for callback in callbacks or []:
                callback.on_epoch_end(len(result.loss) - 1, logs)
            return self.stop_training

        result = training.fit(
            self.module, x, y, config=config, epochs=epochs, batch_size=batch_size,
            optimizer=optimizer, loss=self._compiled["loss"],
            metrics=self._compiled["metrics"], validation_data=validation_data, learnables=self._learnables(),
            seed=_rng, verbose=0 if verbose == 0 else 1, forward_with_mask=self.module.forward_with_mask,
            stop=stop,
        )
        for callback in callbacks or []:
            callback.on_train_end()
        return History(_keras_history(result, validation_data is not None), len(result.loss),
                       {"verbose": 1 if verbose == "auto" else verbose, "epochs": epochs,
                        "steps": training.n_batches(len(x), batch_size, drop_last=False)})

    def predict(self, x: object, batch_size: int | None = None, verbose: str | int = "auto") -> np.ndarray:
        """Outputs for x, batch by batch (dropout off)."""
        x = self._inputs(x)  # builds the model on first use
        return training.predict(self.module, x, batch_size=32 if batch_size is None else batch_size)

    def evaluate(self, x: object, y: object, batch_size: int | None = None,
                 verbose: str | int = "auto") -> float | list[float]:
        """The loss (and metrics, as a list ``[loss, *metrics]``) on x, y; masked as in ``fit``."""
        if self._compiled is None:
            raise RuntimeError("call compile(optimizer, loss) before evaluate")
        x = self._inputs(x)
        if y is not None:
            y = self._targets(y)
        scores = training.evaluate(self.module, x, y, loss=self._compiled["loss"],
                                   metrics=self._compiled["metrics"],
                                   batch_size=32 if batch_size is None else batch_size,
                                   forward_with_mask=self.module.forward_with_mask)
        values = list(scores.values())
        return values[0] if len(values) == 1 else values

    def __call__(self, x: object) -> np.ndarray:
        return self.predict(x)

    def count_params(self) -> int:
        """Number of scalar weights."""
        return sum(w.size for w in self.get_weights())

    def get_weights(self) -> list[np.ndarray]:
        """All weights in Keras' layout and order, layer by layer."""
        self._require_built()
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load weights from ``get_weights`` of this or of a real Keras model."""
        self._require_built()
        weights = list(weights)
        counts = [len(layer.get_weights()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(f"the model takes {sum(counts)} weight arrays, got {len(weights)}")
        start = 0
        for layer, count in zip(self.layers, counts):
            layer.set_weights(weights[start : start + count])
            start += count

    def _require_built(self) -> None:
        if self.module is None:
            raise RuntimeError("the model is not built yet: give input_shape, an Input, or call fit/predict first")

    def summary(self) -> None:
        """Print Keras' summary table: layers, output shapes, parameter counts."""
        self._require_built()
        widths = (33, 24, 15)
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *shape)),
                 f"{sum(w.size for w in layer.get_weights()):,}")
                for layer, shape in ((lay, lay.output_shape) for lay in self.layers)]

        def line(left, mid, right, fill):
            return left + mid.join(fill * w for w in widths) + right

        def row(cells, edge):
            a, b, c = cells
            return edge + edge.join([f" {a:<{widths[0] - 2}} ", f" {b:<{widths[1] - 2}} ",
                                     f" {c:>{widths[2] - 2}} "]) + edge

        out = [f'Model: "{self.name}"', line("┏", "┳", "┓", "━"),
               row(("Layer (type)", "Output Shape", "Param #"), "┃"), line("┡", "╇", "┩", "━")]
        for k, cells in enumerate(rows):
            out.append(row(cells, "│"))
            out.append(line("├", "┼", "┤", "─") if k < len(rows) - 1 else line("└", "┴", "┘", "─"))
        total = self.count_params()
        size = _readable_size(4 * total)
        out += [f" Total params: {total:,} ({size})", f" Trainable params: {total:,} ({size})",
                " Non-trainable params: 0 (0.00 B)"]
        print("\n".join(out))


def _readable_size(n_bytes: float) -> str:
    """Keras' readable_memory_size: 1024-based units with two decimals."""
    units = ["B", "KB", "MB", "GB"]
    while n_bytes >= 1024 and len(units) > 1:
        n_bytes /= 1024
        units.pop(0)
    return f"{n_bytes:.2f} {units[0]}"


layers = SimpleNamespace(LSTM=LSTM, GRU=GRU, SimpleRNN=SimpleRNN, Dense=Dense, Embedding=Embedding, Masking=Masking,
                         Bidirectional=Bidirectional, Dropout=Dropout, Input=Input)

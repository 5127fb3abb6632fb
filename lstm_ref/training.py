"""The training engine under both front ends: losses, optimisers, mini-batches.

``fit(model, x, y, config=preset("matlab"))`` trains any ``torch.nn.Module``
the way one framework does, every difference taken from a ``Preset``
(``lstm_ref.presets``; facts in PARITY.md):

* losses: ``mse`` (Keras: mean over the last axis, then over the batch),
  ``half_mse`` (MATLAB regressionLayer), ``mae``, ``crossentropy`` (sparse or
  one-hot targets, from logits or probabilities) and ``binary_crossentropy``;
  all but ``half_mse`` take a per-step ``mask`` (N, T), Keras' masked loss
  over sequence outputs (``masked_mean``), and the metrics likewise
  (``fit(forward_with_mask=...)``);
* optimisers: ``Adam`` and ``RMSprop`` with either epsilon placement, ``SGD``
  with momentum;
  one update over all parameters with ``torch._foreach`` ops;
* L2 regularisation with per-parameter factors (biases exempt by default),
  gradient clipping per parameter (MATLAB ``l2norm``), globally
  (``global-l2norm``) or element-wise (``absolute-value``);
* mini-batches by index slices of tensors already on the device: shuffled
  every epoch, once, or never; last partial batch kept or dropped; variable
  length sequences padded right with zeros to the longest of each mini-batch
  (MATLAB's SequenceLength 'longest'; the network runs over the padding, as
  MATLAB's does).

It is lean on purpose (no DataLoader, no per-batch host copies), float32 by
default, seeded (initialisation is the model's; shuffling and dropout take
``seed``), shows a tqdm progress bar (a widget in notebooks) unless
``verbose=0``, and calls ``callback(IterationInfo)`` after every iteration so
that a front end can print its own log (MATLAB's verbose table).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lstm_ref._validate import check_positive_int, check_real, rng_from_seed
from lstm_ref.presets import PADDINGS, SEQUENCE_LENGTHS, Preset, preset as make_preset

Tensor = torch.Tensor
LossFn = Callable[..., Tensor]  # (y_pred, y) -> scalar; (y_pred, y, mask=mask) where outputs carry a mask
MetricFn = Callable[[Tensor, Tensor], Tensor]
ForwardFn = Callable[[Tensor], tuple[Tensor, Tensor | None]]  # x -> (y_pred, mask (N, T) bool or None)

# Keras backend.epsilon(): probabilities are clipped to [eps, 1 - eps] before log.
PROBABILITY_EPSILON = 1e-7


# --------------------------------------------------------------------- losses
def _align_target(y_pred: Tensor, y: Tensor) -> Tensor:
    """Give y the rank of y_pred where they differ by a trailing 1 (Keras rule)."""
    aligned = y.unsqueeze(-1) if y.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1 else y
    if aligned.shape != y_pred.shape:
        raise ValueError(
            f"targets of shape {tuple(y.shape)} do not match predictions of "
            f"shape {tuple(y_pred.shape)}"
        )
    return aligned


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Keras' default loss reduction ("sum_over_batch_size") of per-step losses under a mask.

    values (N, T) are the losses of each step (already averaged over the
    last axis of the outputs); mask (N, T) bool marks the steps kept. As
    keras/src/losses/loss.py (``apply_mask``, then ``reduce_values``), with
    M = N T steps of which V are kept, each kept step weighs w = M / V and
    a masked one 0, and the loss is

        sum_nt(w_nt * values_nt) / M  =  (sum of the kept values) / V,

    0 when no step is kept (Keras' ``divide_no_nan``: no epsilon in Keras
    3.15). Without a mask: the mean of values.
    """
    if mask is None:
        return values.mean()
    if mask.shape != values.shape:
        raise ValueError(f"mask must have the shape of the per-step losses {tuple(values.shape)}, "
                         f"got {tuple(mask.shape)}")
    total = torch.tensor(float(mask.numel()), dtype=values.dtype, device=values.device)
    valid = mask.to(values.dtype).sum()
    kept_weight = torch.where(valid == 0, torch.zeros_like(valid), total / valid)  # divide_no_nan
    weights = torch.where(mask, kept_weight, torch.zeros_like(kept_weight))  # (N, T)
    return (values * weights).sum() / total


def _reduce(elementwise: Tensor, mask: Tensor | None) -> Tensor:
    """The mean of elementwise losses (N, ..., K); under a mask (N, T), Keras' masked mean of their
    per-step means over the last axis."""
    return elementwise.mean() if mask is None else masked_mean(elementwise.mean(dim=-1), mask)


def mse(y_pred: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Keras ``mse``: mean over the last axis, then over the batch (and steps, or the kept steps
    of ``mask`` (N, T), see ``masked_mean``)."""
    return _reduce((y_pred - _align_target(y_pred, y)) ** 2, mask)


def mae(y_pred: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Keras ``mae``: mean absolute error, same reduction as ``mse``."""
    return _reduce((y_pred - _align_target(y_pred, y)).abs(), mask)


def half_mse(y_pred: Tensor, y: Tensor) -> Tensor:
    """MATLAB regressionLayer's half mean squared error.

    Per observation ``0.5 * sum_i (t_i - y_i)^2`` over the R responses, mean
    over the N observations of the mini-batch; for sequence outputs
    (N, S, R) the sum also runs over the S steps and is divided by S.
    """
    y = _align_target(y_pred, y)
    n_steps = y_pred.shape[1] if y_pred.ndim == 3 else 1
    return 0.5 * ((y_pred - y) ** 2).sum() / (y_pred.shape[0] * n_steps)


def crossentropy(y_pred: Tensor, y: Tensor, mask: Tensor | None = None, *, from_logits: bool = False) -> Tensor:
    """Categorical cross-entropy, mean over the observations (or the kept steps of ``mask``, see ``masked_mean``).

    ``y`` holds class indices (sparse, shape of y_pred without its last axis,
    or with a trailing 1; on the CPU an index outside the K classes is an
    IndexError, ``check_class_ids``) or one-hot rows (the shape of y_pred). ``y_pred``
    holds logits when ``from_logits`` else probabilities, which are
    renormalised and clipped to [1e-7, 1 - 1e-7] before the log, as Keras does
    (keras/src/backend/torch/nn.py).
    """
    if from_logits:
        log_p = torch.log_softmax(y_pred, dim=-1)
    else:
        p = y_pred / y_pred.sum(dim=-1, keepdim=True)
        log_p = torch.log(p.clamp(PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON))
    if y.shape == y_pred.shape and y.is_floating_point():
        return masked_mean(-(y * log_p).sum(dim=-1), mask)
    if y.ndim == y_pred.ndim and y.shape[-1] == 1:
        y = y.squeeze(-1)
    if y.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"crossentropy targets must be class indices of shape "
            f"{tuple(y_pred.shape[:-1])} or one-hot of shape {tuple(y_pred.shape)}, "
            f"got {tuple(y.shape)}"
        )
    ids = y.long()
    if ids.device.type == "cpu":  # on an accelerator the check would wait for the device at every batch
        check_class_ids(ids, y_pred.shape[-1])
    return masked_mean(-log_p.gather(-1, ids.unsqueeze(-1)).squeeze(-1), mask)


def check_class_ids(ids: Tensor | np.ndarray, n_classes: int) -> None:
    """Sparse class ids (integers) must lie in [0, n_classes), else an IndexError naming the first outside,
    in Keras' words (torch's nll_loss on Keras' PyTorch backend: "Target 3 is out of bounds.")."""
    outside = ids[(ids < 0) | (ids >= n_classes)]
    if len(outside):
        raise IndexError(f"Received a label value of {int(outside[0])} which is outside the valid range of "
                         f"[0, {n_classes}): the model outputs {n_classes} classes, so sparse labels must be "
                         f"class ids 0..{n_classes - 1}")


def binary_crossentropy(y_pred: Tensor, y: Tensor, mask: Tensor | None = None, *,
                        from_logits: bool = False) -> Tensor:
    """Binary cross-entropy, mean over all outputs (under ``mask``, as ``mse``).

    Probabilities are clipped to [1e-7, 1 - 1e-7] first (Keras); from logits
    it is the numerically stable ``binary_cross_entropy_with_logits``.
    """
    y = _align_target(y_pred, y).to(y_pred.dtype)
    if from_logits:
        elementwise = torch.nn.functional.binary_cross_entropy_with_logits(y_pred, y, reduction="none")
    else:
        p = y_pred.clamp(PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
        elementwise = torch.nn.functional.binary_cross_entropy(p, y, reduction="none")
    return _reduce(elementwise, mask)


LOSS_FUNCTIONS: dict[str, LossFn] = {
    "mse": mse,
    "half_mse": half_mse,
    "mae": mae,
    "crossentropy": crossentropy,
    "binary_crossentropy": binary_crossentropy,
}


def get_loss(loss: str | LossFn) -> LossFn:
    """A loss by name (see ``LOSS_FUNCTIONS``) or a callable passed through."""
    if callable(loss):
        return loss
    if loss not in LOSS_FUNCTIONS:
        raise ValueError(f"loss must be a callable or one of {tuple(LOSS_FUNCTIONS)}, got {loss!r}")
    return LOSS_FUNCTIONS[loss]


# ----------------------------------------------------------------- optimisers
class Adam:
    """Adam (Kingma & Ba 2015) with a framework's epsilon placement.

    With m, v the moving averages of g and g^2 and t the step (from 1)::

        m = b1 m + (1 - b1) g        v = b2 v + (1 - b2) g^2
        keras:   w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
        pytorch: w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    The two agree when eps is negligible against sqrt(v) and differ early in
    training and for parameters with tiny gradients. The state lives on the
    object; ``step`` updates a fixed list of parameters in place.
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        eps_placement: str = "keras",
    ) -> None:
        if eps_placement not in ("keras", "pytorch"):
            raise ValueError(f"eps_placement must be 'keras' or 'pytorch', got {eps_placement!r}")
        self.learning_rate = float(learning_rate)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.eps_placement = eps_placement
        self.iterations = 0
        self._m: list[Tensor] = []
        self._v: list[Tensor] = []

    @torch.no_grad()
    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        """Apply one update to ``params`` in place."""
        if self.iterations == 0:
            self._m = [torch.zeros_like(p) for p in params]
            self._v = [torch.zeros_like(p) for p in params]
        self.iterations += 1
        t = self.iterations
        b1, b2 = self.beta_1, self.beta_2
        torch._foreach_lerp_(self._m, list(grads), 1.0 - b1)
        torch._foreach_mul_(self._v, b2)
        torch._foreach_addcmul_(self._v, list(grads), list(grads), 1.0 - b2)
        denom = torch._foreach_sqrt(self._v)
        if self.eps_placement == "keras":
            step_size = self.learning_rate * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        else:
            torch._foreach_div_(denom, math.sqrt(1.0 - b2**t))
            step_size = self.learning_rate / (1.0 - b1**t)
        torch._foreach_add_(denom, self.epsilon)
        torch._foreach_addcdiv_(list(params), self._m, denom, -step_size)


class SGD:
    """Stochastic gradient descent with momentum mu (heavy ball), in two forms::

        velocity: v = mu v - lr g;  w += v      (Keras SGD, MATLAB sgdm)
        buffer:   u = mu u + g;     w -= lr u   (torch.optim.SGD)

    The two give the same weights while the learning rate is constant
    (v = -lr u); after a learning-rate drop the velocity form still carries
    the old rate's steps, the buffer form rescales them at once.
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 momentum_form: str = "velocity") -> None:
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        if momentum_form not in ("velocity", "buffer"):
            raise ValueError(f"momentum_form must be 'velocity' or 'buffer', got {momentum_form!r}")
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.momentum_form = momentum_form
        self.iterations = 0
        self._state: list[Tensor] = []

    @torch.no_grad()
    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        """Apply one update to ``params`` in place."""
        self.iterations += 1
        if self.momentum == 0.0:
            torch._foreach_add_(list(params), list(grads), alpha=-self.learning_rate)
            return
        if not self._state:
            self._state = [torch.zeros_like(p) for p in params]
        torch._foreach_mul_(self._state, self.momentum)
        if self.momentum_form == "velocity":
            torch._foreach_add_(self._state, list(grads), alpha=-self.learning_rate)
            torch._foreach_add_(list(params), self._state)
        else:
            torch._foreach_add_(self._state, list(grads))
            torch._foreach_add_(list(params), self._state, alpha=-self.learning_rate)


class RMSprop:
    """RMSprop (Tieleman & Hinton 2012) with a framework's epsilon placement::

        v = rho v + (1 - rho) g^2
        keras:   w -= lr * g / sqrt(v + eps)      (keras/src/optimizers/rmsprop.py)
        pytorch: w -= lr * g / (sqrt(v) + eps)    (torch.optim.RMSprop; MATLAB's
                                                   documented rmsprop update)
    """

    def __init__(self, learning_rate: float = 1e-3, rho: float = 0.9, epsilon: float = 1e-7,
                 eps_placement: str = "keras") -> None:
        if eps_placement not in ("keras", "pytorch"):
            raise ValueError(f"eps_placement must be 'keras' or 'pytorch', got {eps_placement!r}")
        self.learning_rate = float(learning_rate)
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        self.eps_placement = eps_placement
        self.iterations = 0
        self._v: list[Tensor] = []

    @torch.no_grad()
    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        """Apply one update to ``params`` in place."""
        if self.iterations == 0:
            self._v = [torch.zeros_like(p) for p in params]
        self.iterations += 1
        torch._foreach_mul_(self._v, self.rho)
        torch._foreach_addcmul_(self._v, list(grads), list(grads), 1.0 - self.rho)
        if self.eps_placement == "keras":
            denom = torch._foreach_sqrt(torch._foreach_add(self._v, self.epsilon))
        else:
            denom = torch._foreach_add(torch._foreach_sqrt(self._v), self.epsilon)
        torch._foreach_addcdiv_(list(params), list(grads), denom, -self.learning_rate)


Optimizer = Adam | SGD | RMSprop


def make_optimizer(optimizer: str | Optimizer, config: Preset) -> Optimizer:
    """``"adam"``, ``"rmsprop"``, ``"sgdm"``/``"sgd"`` with the preset's hyperparameters,
    or an optimiser object as is."""
    if isinstance(optimizer, (Adam, SGD, RMSprop)):
        return optimizer
    if optimizer == "adam":
        return Adam(config.learning_rate, config.beta_1, config.beta_2,
                    config.adam_epsilon, config.eps_placement)
    if optimizer == "rmsprop":
        return RMSprop(config.learning_rate, config.rho, config.adam_epsilon, config.eps_placement)
    if optimizer in ("sgd", "sgdm"):
        return SGD(config.learning_rate, config.momentum, config.momentum_form)
    raise ValueError(
        f"optimizer must be 'adam', 'rmsprop', 'sgdm', 'sgd' or an Adam/RMSprop/SGD object, "
        f"got {optimizer!r}"
    )


# ------------------------------------------------ regularisation and clipping
def is_bias(name: str) -> bool:
    """Whether a parameter name (``model.named_parameters()``) names a bias.

    Biases are ``b``/``bh`` in the lstm_ref layout and ``bias*`` in torch's.
    """
    leaf = name.rsplit(".", 1)[-1]
    return leaf in ("b", "bh") or leaf.startswith("bias")


@torch.no_grad()
def add_l2(grads: list[Tensor], params: Sequence[Tensor], factors: Sequence[float], l2: float) -> None:
    """``g += l2 * factor * w`` for every parameter (in place)."""
    for g, w, factor in zip(grads, params, factors):
        if factor != 0.0 and l2 != 0.0:
            g.add_(w, alpha=l2 * factor)


@torch.no_grad()
def clip_gradients(grads: list[Tensor], threshold: float, method: str,
                   groups: Sequence[int] | Tensor | None = None) -> None:
    """Clip gradients in place (no-op for an infinite threshold).

    * ``l2norm`` (MATLAB's default): each learnable whose gradient has
      ||g||_2 > threshold is scaled by threshold / ||g||_2, learnable by
      learnable. ``groups[k]`` numbers the learnable that ``grads[k]`` is
      part of, its norm that of all its parts together (MATLAB's
      bilstmLayer holds both directions in one InputWeights, one
      RecurrentWeights and one Bias); None: each gradient a learnable;
    * ``global-l2norm``: all together by the norm of their concatenation, as
      MATLAB's and Keras' ``global_clipnorm`` (torch.nn.utils.clip_grad_norm_
      divides by the norm plus 1e-6 instead);
    * ``absolute-value``: every element clamped to [-threshold, threshold].
    """
    if math.isinf(threshold):
        return
    if method == "absolute-value":
        for g in grads:
            g.clamp_(-threshold, threshold)
        return
    norms = torch.stack(torch._foreach_norm(grads))  # (P,)
    if method == "global-l2norm":
        norms = torch.linalg.vector_norm(norms).expand(len(grads))
    elif method != "l2norm":
        raise ValueError(
            f"method must be 'l2norm', 'global-l2norm' or 'absolute-value', got {method!r}"
        )
    elif groups is not None:
        index = torch.as_tensor(groups, device=norms.device)
        norms = torch.zeros_like(norms).index_add_(0, index, norms**2).sqrt()[index]  # each learnable's norm
    scale = (threshold / norms).clamp(max=1.0)  # (P,)
    torch._foreach_mul_(grads, list(scale.unbind()))


# -------------------------------------------------------------- mini-batches
def epoch_orders(n: int, epochs: int, shuffle: str, rng: np.random.Generator) -> list[np.ndarray]:
    """The sample order of every epoch under a shuffle policy.

    ``every-epoch``: a new permutation each epoch; ``once``: one permutation
    reused by every epoch (MATLAB's default); ``never``: 0..n-1.
    """
    if shuffle == "every-epoch":
        return [rng.permutation(n) for _ in range(epochs)]
    if shuffle == "once":
        return [rng.permutation(n)] * epochs
    if shuffle == "never":
        return [np.arange(n)] * epochs
    raise ValueError(f"shuffle must be 'every-epoch', 'once' or 'never', got {shuffle!r}")


def n_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Mini-batches per epoch with the last partial one dropped or kept.

    1000 samples at 32: 31 dropped (MATLAB), 32 kept (the last of 8; Keras, PyTorch).
    """
    return n // batch_size if drop_last else -(-n // batch_size)


def pad_sequences(sequences: Sequence[np.ndarray], padding: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Pad variable-length sequences with zeros, after them ("right") or before them ("left").

    Args:
        sequences: N arrays of shape (T_n, D) (or (T_n,) for D = 1).
        padding: "right" or "left".
    Returns:
        x: (N, T_max, D) padded; lengths: (N,) the T_n.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    arrays = [np.asarray(s, dtype=float) for s in sequences]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    if not arrays or any(a.ndim != 2 or a.shape[0] == 0 for a in arrays):
        raise ValueError("sequences must be a non-empty list of non-empty (T_n, D) arrays")
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        raise ValueError(f"all sequences must have the same D features, got {sorted(dims)}")
    lengths = np.array([a.shape[0] for a in arrays])
    x = np.zeros((len(arrays), lengths.max(), dims.pop()))  # (N, T_max, D)
    for n, a in enumerate(arrays):
        x[n, _steps(len(a), x.shape[1], padding)] = a
    return x, lengths


def _steps(length: int, padded: int, padding: str) -> slice:
    """The time steps of a sequence of ``length`` in a padded one of ``padded`` steps."""
    return slice(0, length) if padding == "right" else slice(padded - length, padded)


@dataclass
class Data:
    """A data set on the device: inputs, targets (None for prediction), lengths.

    ``lengths`` is set when x holds variable-length sequences, padded on
    the side ``padding`` names; each mini-batch of them is cropped to its
    longest or its shortest sequence, as ``sequence_length`` says.
    """

    x: Tensor  # (N, T, D) float, or (N, T) integer token ids
    y: Tensor | None  # (N, ...)
    lengths: np.ndarray | None  # (N,)
    padding: str = "right"
    sequence_length: str = "longest"

    def batches(self, order: np.ndarray, batch_size: int, drop_last: bool
                ) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Mini-batches in ``order``: one gather per epoch, then slices (views).

        Padded sequences are cropped to the longest (or the shortest) in each
        mini-batch: its first steps, or its last when padded left.
        """
        index = torch.from_numpy(order).to(self.x.device)
        x = self.x.index_select(0, index)  # (N, T, D) in this epoch's order
        y = None if self.y is None else self.y.index_select(0, index)
        lengths = None if self.lengths is None else self.lengths[order]
        for k in range(n_batches(len(order), batch_size, drop_last)):
            rows = slice(k * batch_size, (k + 1) * batch_size)
            xb = x[rows]  # (B, T, D): a view
            if lengths is not None:
                crop = lengths[rows].max() if self.sequence_length == "longest" else lengths[rows].min()
                xb = xb[:, _steps(int(crop), xb.shape[1], self.padding)]
            yield xb, (None if y is None else y[rows])


def _to_tensor(a: object, name: str, dtype: torch.dtype, device: torch.device, *,
               keep_integers: bool) -> Tensor:
    arr = check_real(name, a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    integer = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)
    return torch.as_tensor(arr, dtype=torch.long if integer and keep_integers else dtype, device=device)


def prepare_data(x: object, y: object | None, dtype: torch.dtype, device: torch.device,
                 padding: str = "right", sequence_length: str = "longest") -> Data:
    """Arrays (or a list of variable-length sequences for x, padded as ``padding`` says and cropped per
    mini-batch as ``sequence_length`` says: ``Data``) onto the device.

    Integer inputs stay integer (token ids for an Embedding); float inputs
    and all targets take ``dtype`` (class indices are cast back by the loss).
    """
    if sequence_length not in SEQUENCE_LENGTHS:
        raise ValueError(f"sequence_length must be one of {SEQUENCE_LENGTHS}, got {sequence_length!r}")
    lengths = None
    if isinstance(x, (list, tuple)):
        x, lengths = pad_sequences(x, padding)
    xt = _to_tensor(x, "x", dtype, device, keep_integers=True)
    if y is None:
        return Data(xt, None, lengths, padding, sequence_length)
    yt = _to_tensor(y, "y", dtype, device, keep_integers=False)
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(f"x and y must hold the same number of samples, got {xt.shape[0]} and {yt.shape[0]}")
    return Data(xt, yt, lengths, padding, sequence_length)


# ------------------------------------------------------------------ the loop
@dataclass
class IterationInfo:
    """What ``fit`` passes to ``callback`` after every iteration."""

    epoch: int  # from 1
    iteration: int  # from 1, over the whole run
    loss: float  # this mini-batch's loss, before the update
    learning_rate: float
    elapsed: float  # seconds since fit started
    batch_size: int
    y_pred: Tensor  # this mini-batch's predictions (detached)
    y: Tensor  # its targets
    end_of_epoch: bool


@dataclass
class History:
    """What ``fit`` returns.

    ``loss`` per epoch is the batch-size-weighted mean of the epoch's
    mini-batch losses, as Keras reports it (keras/src/backend/torch/trainer.py:
    the loss tracker is updated with sample_weight = batch size); metrics
    likewise. ``iteration_loss`` is every mini-batch's loss (MATLAB's
    info.TrainingLoss). ``val_loss`` and ``val_<metric>`` per epoch when
    validation data was given.
    """

    loss: list[float] = field(default_factory=list)
    iteration_loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    val_loss: list[float] = field(default_factory=list)
    config: Preset | None = None


def _trainable(model: torch.nn.Module, config: Preset, l2_factors: Mapping[str, float] | None,
               learnables: Mapping[str, str] | None) -> tuple[list[Tensor], list[float], list[int] | None]:
    """The trainable parameters, their L2 factors and the number of the learnable each is part of
    (None where each is a learnable of its own)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names = {n for n, _ in named}
    for arg, given in (("l2_factors", l2_factors), ("learnables", learnables)):
        unknown = sorted(set(given or {}) - names)
        if unknown:
            raise ValueError(f"{arg} names unknown parameters {unknown}")
    factors, learnables = dict(l2_factors or {}), dict(learnables or {})
    numbers: dict[str, int] = {}
    groups = [numbers.setdefault(learnables.get(n, n), len(numbers)) for n, _ in named]
    return [p for _, p in named], [
        factors.get(n, config.bias_l2_factor if is_bias(n) else 1.0) for n, _ in named
    ], (groups if len(numbers) < len(named) else None)


def _unmasked(model: torch.nn.Module) -> ForwardFn:
    return lambda x: (model(x), None)


def _loss(loss_fn: LossFn, y_pred: Tensor, y: Tensor, mask: Tensor | None) -> Tensor:
    """The mini-batch loss; a mask goes to the loss as its ``mask`` keyword."""
    return loss_fn(y_pred, y) if mask is None else loss_fn(y_pred, y, mask=mask)


def metric_sums(values: Tensor, mask: Tensor | None) -> tuple[float, float]:
    """One mini-batch's update of Keras' Mean metric: (sum of per-sample values, their count).

    values (N,) or (N, T, ...) are averaged per sample; a mask (N, T) bool
    weighs the steps as Keras' sample weights (keras/src/metrics/
    reduction_metrics.py: sample_weight = mask), each sample counting the
    mean of its mask::

        sum_n mean_t(m_nt v_nt),  sum_n mean_t(m_nt)

    so that over an epoch sum / count is the mean over the kept steps.
    """
    if mask is None:
        return float(values.reshape(len(values), -1).mean(dim=1).sum()), float(len(values))
    if values.shape[: mask.ndim] != mask.shape:
        raise ValueError(f"a masked metric must give per-step values of shape {tuple(mask.shape)} (or more "
                         f"axes), got {tuple(values.shape)}")
    weights = mask.to(values.dtype).reshape(*mask.shape, *(1,) * (values.ndim - mask.ndim)).expand_as(values)
    return (float((values * weights).flatten(1).mean(dim=1).sum()),
            float(weights.flatten(1).mean(dim=1).sum()))


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    x: object,
    y: object,
    *,
    loss: str | LossFn = "mse",
    metrics: Mapping[str, MetricFn] | None = None,
    batch_size: int = 32,
    forward_with_mask: ForwardFn | None = None,
) -> dict[str, float]:
    """Loss and metrics over a data set, batch-size-weighted over mini-batches.

    ``forward_with_mask`` as for ``fit``. Returns ``{"loss": ..., <metric>: ...}``;
    the model is put in eval mode.
    """
    if y is None:
        raise ValueError("y must hold the targets to score the predictions against, got None")
    batch_size = check_positive_int("batch_size", batch_size)
    param = next(model.parameters())
    data = prepare_data(x, y, param.dtype, param.device)
    return _evaluate(model, forward_with_mask or _unmasked(model), data, get_loss(loss), metrics or {},
                     batch_size)


@torch.no_grad()
def _evaluate(model: torch.nn.Module, forward: ForwardFn, data: Data, loss_fn: LossFn,
              metrics: Mapping[str, MetricFn], batch_size: int) -> dict[str, float]:
    model.eval()
    loss_total = 0.0
    sums = {name: [0.0, 0.0] for name in metrics}  # per metric: total, count
    n = data.x.shape[0]
    for xb, yb in data.batches(np.arange(n), batch_size, drop_last=False):
        y_pred, mask = forward(xb)
        loss_total += float(_loss(loss_fn, y_pred, yb, mask)) * len(xb)
        _add_metrics(sums, metrics, y_pred, yb, mask)
    return {"loss": loss_total / n, **_metric_results(sums)}


def _add_metrics(sums: dict[str, list[float]], metrics: Mapping[str, MetricFn], y_pred: Tensor, y: Tensor,
                 mask: Tensor | None) -> None:
    for name, metric in metrics.items():
        total, count = metric_sums(metric(y_pred, y), mask)
        sums[name][0] += total
        sums[name][1] += count


def _metric_results(sums: Mapping[str, list[float]]) -> dict[str, float]:
    """total / count per metric, 0 where nothing was counted (Keras' divide_no_nan)."""
    return {name: total / count if count else 0.0 for name, (total, count) in sums.items()}


def validation_pair(validation_data: object) -> tuple[object, object]:
    """``validation_data`` as the pair (x_val, y_val) it must be."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        got = (f"a {type(validation_data).__name__} of length {len(validation_data)}"
               if isinstance(validation_data, (tuple, list)) else type(validation_data).__name__)
        raise ValueError(f"validation_data must be a pair (x_val, y_val), got {got}")
    return validation_data[0], validation_data[1]


def fit(
    model: torch.nn.Module,
    x: object,
    y: object,
    *,
    config: Preset | str = "keras",
    epochs: int | None = None,
    batch_size: int | None = None,
    optimizer: str | Optimizer = "adam",
    loss: str | LossFn | None = None,
    metrics: Mapping[str, MetricFn] | None = None,
    validation_data: tuple[object, object] | None = None,
    l2_factors: Mapping[str, float] | None = None,
    learnables: Mapping[str, str] | None = None,
    learning_rate_schedule: Callable[[int], float] | None = None,
    seed: int | np.random.Generator = 0,
    verbose: int = 1,
    callback: Callable[[IterationInfo], bool | None] | None = None,
    stop: Callable[[History], bool] | None = None,
    forward_with_mask: ForwardFn | None = None,
) -> History:
    """Train ``model`` in place the way ``config``'s framework does.

    Args:
        model: a ``torch.nn.Module`` mapping a mini-batch x to predictions;
            its parameters' dtype and device decide the data's.
        x: (N, T, D) array, a list of N (T_n, D) sequences (padded right with
            zeros to the longest of each mini-batch), or (N, T) integer ids.
        y: (N, ...) targets: values for the regression losses, class indices
            or one-hot rows for ``crossentropy``.
        config: a ``Preset`` or a preset name; supplies everything below that
            is None (loss, epochs, batch_size) and the shuffle, partial batch,
            Adam, L2 and clipping policies.
        optimizer: "adam", "rmsprop", "sgdm"/"sgd" (with the preset's
            momentum), or an ``Adam``/``RMSprop``/``SGD`` object (its own
            hyperparameters win).
        loss: a name of ``LOSS_FUNCTIONS`` or a callable ``(y_pred, y) -> scalar``
            (with ``forward_with_mask``: ``(y_pred, y, mask=...)``, the mask
            None or (N, T) bool).
        metrics: name -> callable ``(y_pred, y) -> (N,)`` per-sample values
            or (N, T) per-step values, averaged over the epoch's samples
            (Keras' metric reduction; masked steps left out, ``metric_sums``).
        validation_data: (x_val, y_val) evaluated after every epoch.
        l2_factors: per-parameter L2 factors by ``named_parameters`` name
            (default 1 for weights, ``config.bias_l2_factor`` for biases).
        learnables: ``named_parameters`` name -> the learnable it is part of,
            for ``l2norm`` clipping (``clip_gradients``): parameters mapped to
            one name are clipped together (default: each parameter alone).
        learning_rate_schedule: epoch (from 0) -> multiplier of the optimiser's
            base learning rate (MATLAB 'piecewise': ``lambda e: 0.2 ** (e // 125)``).
        seed: a non-negative int or a ``numpy.random.Generator``; seeds the
            shuffling and the torch RNG used by dropout (the global torch RNG
            is restored afterwards).
        verbose: 0 silent; otherwise a tqdm progress bar over the iterations.
        callback: called with an ``IterationInfo`` after every iteration; a
            true return value ends training there (MATLAB's ValidationPatience).
        stop: called with the ``History`` after every epoch (its loss, metrics
            and validation scores recorded); True ends training there (Keras'
            EarlyStopping).
        forward_with_mask: x -> (predictions, mask) where the model's outputs
            (N, T, ...) carry a Keras mask (N, T) bool (None where they
            don't): the loss and metrics then leave out the masked steps as
            Keras does (``masked_mean``, ``metric_sums``). Default:
            ``(model(x), None)``.
    Returns:
        A ``History``.
    """
    config = make_preset(config) if isinstance(config, str) else config
    if y is None:
        raise ValueError("y must hold the targets to train on, got None")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = check_positive_int("epochs", config.epochs if epochs is None else epochs)
    batch_size = check_positive_int("batch_size", config.batch_size if batch_size is None else batch_size)
    rng = rng_from_seed(seed)
    loss_fn = get_loss(config.loss if loss is None else loss)
    metrics = dict(metrics or {})
    forward = forward_with_mask or _unmasked(model)
    opt = make_optimizer(optimizer, config)
    base_lr = opt.learning_rate
    params, factors, groups = _trainable(model, config, l2_factors, learnables)
    if not params:
        raise ValueError("model has no trainable parameters")
    if groups is not None:  # indexed once here, not at every step's clipping
        groups = torch.as_tensor(groups, device=params[0].device)
    data = prepare_data(x, y, params[0].dtype, params[0].device, config.padding, config.sequence_length)
    val = (prepare_data(*validation_pair(validation_data), params[0].dtype, params[0].device, config.padding,
                        config.sequence_length)
           if validation_data is not None else None)
    n = data.x.shape[0]
    orders = epoch_orders(n, epochs, config.shuffle, rng)
    batches_per_epoch = n_batches(n, batch_size, config.drop_last)
    if batches_per_epoch == 0:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {n} samples and the preset drops "
            f"partial mini-batches: no iteration would run"
        )

    history = History(config=config, metrics={name: [] for name in metrics})
    if val is not None:
        history.metrics.update({"val_" + name: [] for name in metrics})
    # tqdm.auto: a widget in notebooks, a text bar in terminals; disabled is a no-op
    progress = tqdm(total=epochs * batches_per_epoch, unit="it", desc="training", disable=not verbose)
    start = time.perf_counter()
    iteration = 0
    devices = [params[0].device] if params[0].device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(rng.integers(2**63 - 1)))
        for epoch in range(epochs):
            if learning_rate_schedule is not None:
                opt.learning_rate = base_lr * learning_rate_schedule(epoch)
            model.train()
            batch_losses, sizes = [], []
            sums = {name: [0.0, 0.0] for name in metrics}  # per metric: total, count
            batches = data.batches(orders[epoch], batch_size, config.drop_last)
            stopped = False
            for k, (xb, yb) in enumerate(batches):
                y_pred, mask, batch_loss = _train_step(forward, xb, yb, loss_fn, params, factors, groups, config, opt)
                iteration += 1
                batch_losses.append(batch_loss)
                sizes.append(len(xb))
                _add_metrics(sums, metrics, y_pred, yb, mask)
                progress.update(1)
                stopped = callback is not None and bool(callback(IterationInfo(
                    epoch=epoch + 1, iteration=iteration, loss=float(batch_loss),
                    learning_rate=opt.learning_rate, elapsed=time.perf_counter() - start,
                    batch_size=len(xb), y_pred=y_pred, y=yb,
                    end_of_epoch=k == batches_per_epoch - 1,
                )))
                if stopped:
                    break
            losses = torch.stack(batch_losses).double().cpu().numpy()  # (batches,)
            history.iteration_loss.extend(losses.tolist())
            weights = np.asarray(sizes, dtype=float)
            history.loss.append(float(losses @ weights / weights.sum()))
            for name, value in _metric_results(sums).items():
                history.metrics[name].append(value)
            if val is not None:
                scores = _evaluate(model, forward, val, loss_fn, metrics, batch_size)
                history.val_loss.append(scores["loss"])
                for name in metrics:
                    history.metrics["val_" + name].append(scores[name])
            progress.set_postfix(epoch=epoch + 1, loss=f"{history.loss[-1]:.4g}")
            if stopped or (stop is not None and stop(history)):
                break
    progress.close()
    model.eval()
    return history


def _train_step(forward: ForwardFn, xb: Tensor, yb: Tensor, loss_fn: LossFn,
                params: list[Tensor], factors: list[float], groups: Tensor | None,
                config: Preset, opt: Optimizer) -> tuple[Tensor, Tensor | None, Tensor]:
    """One iteration: forward, gradients, L2 term, clipping, update.

    Returns the mini-batch's predictions, their mask (None without one) and
    loss (all detached).
    """
    y_pred, mask = forward(xb)
    batch_loss = _loss(loss_fn, y_pred, yb, mask)
    grads = list(torch.autograd.grad(batch_loss, params))
    add_l2(grads, params, factors, config.l2)
    clip_gradients(grads, config.gradient_threshold, config.gradient_threshold_method, groups)
    opt.step(params, grads)
    return y_pred.detach(), mask, batch_loss.detach()


@torch.no_grad()
def predict(model: torch.nn.Module, x: object, *, batch_size: int = 32, padding: str = "right",
            sequence_length: str = "longest",
            call: Callable[[Tensor, slice], Tensor] | None = None) -> np.ndarray | list[np.ndarray]:
    """The model's outputs for x in eval mode (dropout off), mini-batch by mini-batch.

    Variable-length sequences are padded as ``padding`` says ("right" or
    "left") and each mini-batch cropped as ``sequence_length`` says
    ("longest" or "shortest", ``Data``). ``call(xb, rows)``, where given, runs the model on the mini-batch xb of
    the observations ``rows`` (a stateful front end reads and writes their
    states there); by default ``model(xb)``.

    Returns an (N, ...) array; for a list of variable-length sequences and a
    model with sequence outputs, a list of N (T_n, R) arrays cropped to each
    sequence's length (to its mini-batch's shortest, with "shortest").
    """
    batch_size = check_positive_int("batch_size", batch_size)
    param = next(model.parameters())
    data = prepare_data(x, None, param.dtype, param.device, padding, sequence_length)
    model.eval()
    batches = data.batches(np.arange(data.x.shape[0]), batch_size, drop_last=False)
    outs = [(model(xb) if call is None else call(xb, slice(k * batch_size, k * batch_size + len(xb)))).cpu().numpy()
            for k, (xb, _) in enumerate(batches)]
    if data.lengths is not None and outs[0].ndim == 3:  # (N_b, T_b, R) with T_b varying
        sequences = (seq for out in outs for seq in out)
        return [seq[_steps(min(length, len(seq)), len(seq), padding)] for seq, length in zip(sequences, data.lengths)]
    return np.concatenate(outs, axis=0)

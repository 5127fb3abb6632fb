"""Vanilla (Elman) tanh RNN cell and sequence layer, NumPy backend.

One step, W (D, H), U (H, H), b (H,)::

    h = tanh(x_t @ W + h_prev @ U + b)                 # (N, H)

Backward::

    da = dh * (1 - h^2)      dh_prev = da @ U.T       dx = da @ W.T
    dW = x.T @ da            dU = h_prev.T @ da       db = sum_N da

Reference: Elman, "Finding Structure in Time" (1990); torch.nn.RNN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._sequence import backward_upstream, batch_first, flat, input_grad, input_projection, state_or_zeros, time_major
from ._validate import Dim, check_array, check_bool, check_cache, check_dtype, check_params, check_sequence, infer_hidden_size


def rnn_param_dims(D: int, H: int) -> dict[str, tuple[Dim, ...]]:
    """Expected parameter shapes of a tanh RNN, in named sizes."""
    return {"W": (("D", D), ("H", H)), "U": (("H", H), ("H", H)), "b": (("H", H),)}


def _core_forward(a, h_prev, params, h) -> None:
    """The recurrent part of one step: ``a`` (N, H) holds x W + b; writes h."""
    a += h_prev @ params["U"]  # (N, H)
    np.tanh(a, out=h)


def _core_backward(dh, h, params, da) -> np.ndarray:
    """Writes the pre-activation gradient into ``da`` (N, H); returns dh_prev."""
    np.multiply(h, h, out=da)
    np.subtract(1, da, out=da)
    da *= dh  # dh * (1 - h^2)
    return da @ params["U"].T  # (N, H)


def _param_grads(x, h_prev, da) -> dict[str, np.ndarray]:
    """Weight gradients from stacked rows x (M, D), h_prev (M, H), da (M, H)."""
    return {"W": x.T @ da, "U": h_prev.T @ da, "b": da.sum(axis=0)}


class RNNStepCache(NamedTuple):
    """What ``rnn_step_backward`` needs from one forward step."""

    x: np.ndarray  #: input x_t (N, D)
    h_prev: np.ndarray  #: previous hidden state (N, H)
    h: np.ndarray  #: new hidden state (N, H)
    params: dict  #: the checked parameters, in the computation dtype


class RNNCache(NamedTuple):
    """What ``rnn_backward`` needs from a sequence forward pass (time-major)."""

    x: np.ndarray  #: inputs (T, N, D)
    h: np.ndarray  #: hidden states (T+1, N, H), h[0] = h0
    params: dict  #: the checked parameters, in the computation dtype
    return_sequences: bool  #: whether the output was every step or the last


def rnn_step_forward(x: np.ndarray, h_prev: np.ndarray, params: dict) -> tuple[np.ndarray, RNNStepCache]:
    """One tanh RNN step, h = tanh(x W + h_prev U + b).

    Args:
        x: input x_t (N, D), float32 or float64; the output dtype follows it.
        h_prev: previous hidden state (N, H).
        params: ``{"W": (D, H), "U": (H, H), "b": (H,)}``.

    Returns:
        (h, cache): the new state (N, H) and an ``RNNStepCache``.
    """
    dtype = check_dtype("x", x)
    H = infer_hidden_size("params", params)
    x = check_array("x", x, (("N", None), ("D", None)))
    N, D = x.shape
    p = check_params("params", params, rnn_param_dims(D, H), dtype)
    h_prev = check_array("h_prev", h_prev, (("N", N), ("H", H)), dtype)
    a = x @ p["W"] + p["b"]  # (N, H)
    _core_forward(a, h_prev, p, a)
    return a, RNNStepCache(x, h_prev, a, p)


def rnn_step_backward(dh: np.ndarray, cache: RNNStepCache) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Backward of ``rnn_step_forward``: (dx (N, D), dh_prev (N, H), grads)."""
    check_cache(cache, RNNStepCache, "rnn_step_forward")
    N, H = cache.h.shape
    dh = check_array("dh", dh, (("N", N), ("H", H)), cache.h.dtype)
    da = np.empty_like(cache.h)
    dh_prev = _core_backward(dh, cache.h, cache.params, da)
    return da @ cache.params["W"].T, dh_prev, _param_grads(cache.x, cache.h_prev, da)


def rnn_forward(
    x: np.ndarray, params: dict, h0: np.ndarray | None = None, *, return_sequences: bool = True
) -> tuple[np.ndarray, np.ndarray, RNNCache]:
    """Run a tanh RNN over a batch of sequences.

    Args:
        x: inputs (N, T, D), batch-first, float32 or float64.
        params: as for ``rnn_step_forward``.
        h0: initial state (N, H); zeros when None.
        return_sequences: output h at every step (N, T, H), or only the last (N, H).

    Returns:
        (out, h_T, cache): the final state (N, H) and an ``RNNCache``.
    """
    N, T, D = check_sequence("x", x)
    return_sequences = check_bool("return_sequences", return_sequences)
    dtype = x.dtype
    H = infer_hidden_size("params", params)
    p = check_params("params", params, rnn_param_dims(D, H), dtype)
    x_tm = time_major(x)  # (T, N, D)
    a = input_projection(x_tm, p["W"], p["b"])  # (T, N, H)
    h = np.empty((T + 1, N, H), dtype)
    h[0] = state_or_zeros("h0", h0, N, H, dtype)
    for t in range(T):
        _core_forward(a[t], h[t], p, h[t + 1])
    out = batch_first(h[1:]) if return_sequences else h[T].copy()
    return out, h[T].copy(), RNNCache(x_tm, h, p, return_sequences)


def rnn_backward(
    dout: np.ndarray, cache: RNNCache, dh_T: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Backprop through time for ``rnn_forward``.

    ``dout`` is the upstream gradient of ``out`` ((N, T, H), or (N, H) after
    ``return_sequences=False``) and ``dh_T`` that of the final state (zeros
    when None). Returns (dx (N, T, D), dh0 (N, H), grads summed over time and batch).
    """
    check_cache(cache, RNNCache, "rnn_forward")
    dout_tm, (dh,) = backward_upstream(dout, cache, dh_T=dh_T)  # (T, N, H), (N, H)
    da = np.empty_like(dout_tm)  # (T, N, H)
    for t in reversed(range(len(da))):
        dh = _core_backward(dh + dout_tm[t], cache.h[t + 1], cache.params, da[t])
    grads = _param_grads(flat(cache.x), flat(cache.h[:-1]), flat(da))
    return input_grad(da, cache.params["W"]), dh, grads

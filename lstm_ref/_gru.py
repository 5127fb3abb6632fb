"""GRU cell and sequence layer, NumPy backend, with backprop through time.

One step, gate order r, z, n, weights fused as in the package docstring
(W (D, 3H), U (H, 3H), b (3H,))::

    r = sigmoid(x W_r + h_prev U_r + b_r)             # (N, H)
    z = sigmoid(x W_z + h_prev U_z + b_z)             # (N, H)
    h = (1 - z) * n + z * h_prev                      # (N, H)

with the candidate n by reset-gate placement (``reset_mode``, MATLAB's names):

- ``"after-multiplication"`` (MATLAB's default):
  n = tanh(x W_n + b_n + r * (h_prev U_n)).
- ``"before-multiplication"`` (Keras reset_after=False):
  n = tanh(x W_n + (r * h_prev) U_n + b_n).
- ``"recurrent-bias-after-multiplication"`` (PyTorch nn.GRU, Keras
  reset_after=True): a second bias bh (3H,) is added to h_prev U in all three
  blocks, n = tanh(x W_n + b_n + r * (h_prev U_n + bh_n)).

Backward, with a = the pre-activation of n::

    dn = dh * (1 - z)     dz = dh * (h_prev - n)     dh_prev = dh * z + ...
    da = dn * (1 - n^2)   dz_pre = dz * z (1 - z)    dr_pre = dr * r (1 - r)
    after modes:  dr = da * (h_prev U_n + bh_n),  d(h_prev U_n) = r * da
    before mode:  d(r * h_prev) = da @ U_n.T,     dr = d(r * h_prev) * h_prev

References: Cho et al., "Learning Phrase Representations using RNN
Encoder-Decoder" (2014); MathWorks gruLayer ResetGateMode; torch.nn.GRU.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._sequence import backward_upstream, batch_first, sigmoid_, flat, input_grad, input_projection, state_or_zeros, time_major
from ._validate import Dim, check_array, check_bool, check_cache, check_choice, check_dtype, check_params, check_sequence, infer_hidden_size

GRU_RESET_MODES = ("after-multiplication", "before-multiplication", "recurrent-bias-after-multiplication")


def gru_param_dims(D: int, H: int, reset_mode: str = "after-multiplication") -> dict[str, tuple[Dim, ...]]:
    """Expected parameter shapes of a GRU with ``reset_mode``, in named sizes."""
    check_choice("reset_mode", reset_mode, GRU_RESET_MODES)
    dims: dict[str, tuple[Dim, ...]] = {
        "W": (("D", D), ("3H", 3 * H)),
        "U": (("H", H), ("3H", 3 * H)),
        "b": (("3H", 3 * H),),
    }
    if reset_mode == "recurrent-bias-after-multiplication":
        dims["bh"] = (("3H", 3 * H),)
    return dims


def _core_forward(a, h_prev, params, reset_mode, hn, h) -> None:
    """The recurrent part of one step, shared by the step and sequence functions.

    On entry ``a`` (N, 3H) holds the input projection x W + b; on exit the
    activated gates [r | z | n]. Writes into ``hn`` (N, H) the n-block
    recurrent term that backward needs (h_prev U_n + bh_n in the after
    modes, r * h_prev in the before mode) and the new state into ``h``.
    """
    H = h_prev.shape[1]
    U = params["U"]
    rz, a_n = a[:, : 2 * H], a[:, 2 * H :]
    if reset_mode == "before-multiplication":
        rz += h_prev @ U[:, : 2 * H]  # (N, 2H)
        sigmoid_(rz)
        np.multiply(rz[:, :H], h_prev, out=hn)  # r * h_prev
        a_n += hn @ U[:, 2 * H :]
    else:
        ah = h_prev @ U  # (N, 3H)
        if reset_mode == "recurrent-bias-after-multiplication":
            ah += params["bh"]
        rz += ah[:, : 2 * H]
        sigmoid_(rz)
        hn[...] = ah[:, 2 * H :]
        a_n += rz[:, :H] * hn
    n = np.tanh(a_n, out=a_n)
    z = rz[:, H:]
    np.subtract(h_prev, n, out=h)
    h *= z
    h += n  # (1 - z) * n + z * h_prev


def _core_backward(dh, gates, h_prev, hn, params, reset_mode, dax, dah) -> np.ndarray:
    """Backward through the recurrent part of one step; returns dh_prev (N, H).

    Writes the gradient of the input projection x W + b into ``dax`` and
    that of the recurrent terms (h_prev U (+ bh), or (r * h_prev) U_n for the
    n block in the before mode) into ``dah``, both (N, 3H).
    """
    H = h_prev.shape[1]
    U = params["U"]
    r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    dr, dz, da = dax[:, :H], dax[:, H : 2 * H], dax[:, 2 * H :]
    np.subtract(1, z, out=da)
    da *= dh
    da *= 1 - n * n  # dn * (1 - n^2)
    np.subtract(h_prev, n, out=dz)
    dz *= dh
    dz *= z * (1 - z)
    dh_prev = dh * z  # (N, H)
    if reset_mode == "before-multiplication":
        drh = da @ U[:, 2 * H :].T  # d(r * h_prev) (N, H)
        np.multiply(drh, h_prev, out=dr)
        dh_prev += drh * r
    else:
        np.multiply(da, hn, out=dr)
    dr *= r * (1 - r)
    dah[:, : 2 * H] = dax[:, : 2 * H]
    if reset_mode == "before-multiplication":
        dah[:, 2 * H :] = da
        dh_prev += dah[:, : 2 * H] @ U[:, : 2 * H].T
    else:
        np.multiply(da, r, out=dah[:, 2 * H :])
        dh_prev += dah @ U.T
    return dh_prev


def _param_grads(x, h_prev, hn, dax, dah, reset_mode) -> dict[str, np.ndarray]:
    """Weight gradients from stacked rows: x (M, D), h_prev, hn (M, H), dax, dah (M, 3H).

    M is N for one step and T*N for a sequence (BPTT sums over time).
    """
    grads = {"W": x.T @ dax, "U": h_prev.T @ dah, "b": dax.sum(axis=0)}
    if reset_mode == "before-multiplication":
        H = h_prev.shape[1]
        grads["U"][:, 2 * H :] = hn.T @ dah[:, 2 * H :]  # U_n multiplies r * h_prev
    if reset_mode == "recurrent-bias-after-multiplication":
        grads["bh"] = dah.sum(axis=0)
    return grads


class GRUStepCache(NamedTuple):
    """What ``gru_step_backward`` needs from one forward step."""

    x: np.ndarray  #: input x_t (N, D)
    h_prev: np.ndarray  #: previous hidden state (N, H)
    gates: np.ndarray  #: activated gates [r | z | n] (N, 3H)
    hn: np.ndarray  #: h_prev U_n + bh_n (after modes) or r * h_prev (before mode), (N, H)
    params: dict  #: the checked parameters, in the computation dtype
    reset_mode: str  #: the reset-gate placement


class GRUCache(NamedTuple):
    """What ``gru_backward`` needs from a sequence forward pass (time-major)."""

    x: np.ndarray  #: inputs (T, N, D)
    h: np.ndarray  #: hidden states (T+1, N, H), h[0] = h0
    gates: np.ndarray  #: activated gates (T, N, 3H)
    hn: np.ndarray  #: the n-block recurrent term per step (T, N, H), as in GRUStepCache
    params: dict  #: the checked parameters, in the computation dtype
    reset_mode: str  #: the reset-gate placement
    return_sequences: bool  #: whether the output was every step or the last


def gru_step_forward(
    x: np.ndarray, h_prev: np.ndarray, params: dict, reset_mode: str = "after-multiplication"
) -> tuple[np.ndarray, GRUStepCache]:
    """One GRU step (equations in the module docstring).

    Args:
        x: input x_t (N, D), float32 or float64; the output dtype follows it.
        h_prev: previous hidden state (N, H).
        params: ``{"W": (D, 3H), "U": (H, 3H), "b": (3H,)}`` plus ``"bh": (3H,)``
            for ``reset_mode="recurrent-bias-after-multiplication"``.
        reset_mode: "after-multiplication", "before-multiplication" or
            "recurrent-bias-after-multiplication".

    Returns:
        (h, cache): the new state (N, H) and a ``GRUStepCache``.
    """
    dtype = check_dtype("x", x)
    H = infer_hidden_size("params", params)
    x = check_array("x", x, (("N", None), ("D", None)))
    N, D = x.shape
    p = check_params("params", params, gru_param_dims(D, H, reset_mode), dtype)
    h_prev = check_array("h_prev", h_prev, (("N", N), ("H", H)), dtype)
    a = x @ p["W"] + p["b"]  # (N, 3H)
    hn, h = np.empty((N, H), dtype), np.empty((N, H), dtype)
    _core_forward(a, h_prev, p, reset_mode, hn, h)
    return h, GRUStepCache(x, h_prev, a, hn, p, reset_mode)


def gru_step_backward(dh: np.ndarray, cache: GRUStepCache) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Backward of ``gru_step_forward``.

    Args:
        dh: upstream gradient of h (N, H).
        cache: the ``GRUStepCache`` of the forward step.

    Returns:
        (dx (N, D), dh_prev (N, H), grads) with grads keyed like the parameters.
    """
    check_cache(cache, GRUStepCache, "gru_step_forward")
    N, H = cache.h_prev.shape
    dh = check_array("dh", dh, (("N", N), ("H", H)), cache.h_prev.dtype)
    dax, dah = np.empty_like(cache.gates), np.empty_like(cache.gates)  # (N, 3H)
    dh_prev = _core_backward(dh, cache.gates, cache.h_prev, cache.hn, cache.params, cache.reset_mode, dax, dah)
    grads = _param_grads(cache.x, cache.h_prev, cache.hn, dax, dah, cache.reset_mode)
    return dax @ cache.params["W"].T, dh_prev, grads


def gru_forward(
    x: np.ndarray,
    params: dict,
    h0: np.ndarray | None = None,
    *,
    reset_mode: str = "after-multiplication",
    return_sequences: bool = True,
) -> tuple[np.ndarray, np.ndarray, GRUCache]:
    """Run a GRU over a batch of sequences.

    Args:
        x: inputs (N, T, D), batch-first, float32 or float64.
        params: as for ``gru_step_forward``.
        h0: initial state (N, H); zeros when None.
        reset_mode: the reset-gate placement (module docstring).
        return_sequences: output h at every step (N, T, H), or only the last (N, H).

    Returns:
        (out, h_T, cache): the final state (N, H) and a ``GRUCache``.
    """
    N, T, D = check_sequence("x", x)
    return_sequences = check_bool("return_sequences", return_sequences)
    dtype = x.dtype
    H = infer_hidden_size("params", params)
    p = check_params("params", params, gru_param_dims(D, H, reset_mode), dtype)
    x_tm = time_major(x)  # (T, N, D)
    gates = input_projection(x_tm, p["W"], p["b"])  # (T, N, 3H)
    h = np.empty((T + 1, N, H), dtype)
    hn = np.empty((T, N, H), dtype)
    h[0] = state_or_zeros("h0", h0, N, H, dtype)
    for t in range(T):
        _core_forward(gates[t], h[t], p, reset_mode, hn[t], h[t + 1])
    out = batch_first(h[1:]) if return_sequences else h[T].copy()
    return out, h[T].copy(), GRUCache(x_tm, h, gates, hn, p, reset_mode, return_sequences)


def gru_backward(
    dout: np.ndarray, cache: GRUCache, dh_T: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Backprop through time for ``gru_forward``.

    Args:
        dout: upstream gradient of ``out``: (N, T, H), or (N, H) when the
            forward pass had ``return_sequences=False``.
        cache: the ``GRUCache`` of the forward pass.
        dh_T: upstream gradient of the final state (N, H); zeros when None.

    Returns:
        (dx (N, T, D), dh0 (N, H), grads), weight gradients summed over time
        and batch, keyed like the parameters.
    """
    check_cache(cache, GRUCache, "gru_forward")
    dout_tm, (dh,) = backward_upstream(dout, cache, dh_T=dh_T)  # (T, N, H), (N, H)
    dax, dah = np.empty_like(cache.gates), np.empty_like(cache.gates)  # (T, N, 3H)
    for t in reversed(range(len(dax))):
        dh = _core_backward(
            dh + dout_tm[t], cache.gates[t], cache.h[t], cache.hn[t], cache.params, cache.reset_mode, dax[t], dah[t]
        )
    grads = _param_grads(flat(cache.x), flat(cache.h[:-1]), flat(cache.hn), flat(dax), flat(dah), cache.reset_mode)
    return input_grad(dax, cache.params["W"]), dh, grads

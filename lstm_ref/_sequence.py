"""Helpers shared by the LSTM, GRU and RNN sequence functions.

The sequence functions work on time-major buffers (T, N, ...) so that each
step reads and writes contiguous (N, ...) slices, and move everything that
does not depend on the recurrence out of the time loop: the input
projection x W + b is one matmul over all T*N rows before the loop, and the
gradients of W, U, b and x are matmuls over the stored per-step
pre-activation gradients after it.
"""

from __future__ import annotations

import numpy as np

from ._validate import check_array


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """sigmoid(a) = 1 / (1 + exp(-a)) in place, computed as 0.5 + 0.5 * tanh(a / 2).

    The same function (exactly so in real arithmetic; the halvings are exact
    in floating point), free of exp's overflow, and several times faster
    than scipy.special.expit because NumPy's tanh is vectorised. Absolute
    error about one rounding of 0.5 (1e-16 in float64); values below that
    (a < -37 in float64) come out as 0.
    """
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def time_major(x: np.ndarray) -> np.ndarray:
    """Batch-first (N, T, D) to a contiguous time-major copy (T, N, D)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, N, D)


def batch_first(a: np.ndarray) -> np.ndarray:
    """Time-major (T, N, K) to a contiguous batch-first array (N, T, K)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))  # (N, T, K)


def input_projection(x_tm: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x W + b for every step at once: (T, N, D) -> (T, N, G*H), one matmul."""
    T, N, D = x_tm.shape
    if D == 1:  # an outer product, the same numbers; NumPy's matmul is several times slower at inner size 1
        z = x_tm.reshape(T * N, 1) * W  # (T*N, G*H)
    else:
        z = x_tm.reshape(T * N, D) @ W  # (T*N, G*H)
    z += b
    return z.reshape(T, N, -1)  # (T, N, G*H)


def flat(a: np.ndarray) -> np.ndarray:
    """(T, N, K) -> (T*N, K) without a copy where possible."""
    return a.reshape(-1, a.shape[-1])


def state_or_zeros(name: str, s: np.ndarray | None, N: int, H: int, dtype: np.dtype) -> np.ndarray:
    """A checked state (N, H) in ``dtype`` (an initial state, or the upstream
    gradient of a final state), zeros when ``s`` is None."""
    if s is None:
        return np.zeros((N, H), dtype)
    return check_array(name, s, (("N", N), ("H", H)), dtype)


def upstream_outputs(
    dout: np.ndarray, N: int, T: int, H: int, return_sequences: bool, dtype: np.dtype, time_major_out: bool = True
) -> np.ndarray:
    """The upstream gradient of the outputs as a time-major (T, N, H) array, or batch-first (N, T, H).

    With ``return_sequences=False`` the output was h at the last step, so
    ``dout`` is (N, H) and only step T-1 receives it. Batch-first
    (``time_major_out=False``) is the checked ``dout`` itself, or a view, for
    a caller that reads it row slice by row slice and so saves the copy.
    """
    if return_sequences:
        d = check_array("dout", dout, (("N", N), ("T", T), ("H", H)), dtype)
        return time_major(d) if time_major_out else d
    d = check_array("dout", dout, (("N", N), ("H", H)), dtype)
    d_tm = np.zeros((T, N, H), dtype)
    d_tm[-1] = d
    return d_tm if time_major_out else d_tm.transpose(1, 0, 2)


def backward_upstream(
    dout: np.ndarray, cache, time_major_out: bool = True, **final_state_grads: np.ndarray | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Checked upstream gradients of a sequence backward pass.

    ``cache`` is a sequence cache with ``x`` (T, N, D), ``h`` (T+1, N, H) and
    ``return_sequences``. Returns dout as time-major (T, N, H), or
    batch-first (N, T, H) with ``time_major_out=False``, and each named
    final-state gradient as (N, H), zeros where None.
    """
    T, N, _ = cache.x.shape
    H, dtype = cache.h.shape[2], cache.h.dtype
    d = upstream_outputs(dout, N, T, H, cache.return_sequences, dtype, time_major_out)  # (T, N, H) or (N, T, H)
    return d, [state_or_zeros(name, g, N, H, dtype) for name, g in final_state_grads.items()]


def input_grad(dz: np.ndarray, W: np.ndarray) -> np.ndarray:
    """dx = dz W^T for every step at once: (T, N, G*H) -> batch-first (N, T, D), one matmul."""
    T, N, _ = dz.shape
    return batch_first((flat(dz) @ W.T).reshape(T, N, W.shape[0]))

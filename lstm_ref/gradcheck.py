"""Numerical gradient checking by centred finite differences.

For a scalar function f of named arrays, the centred difference

    df/da_k ~ (f(a + eps e_k) - f(a - eps e_k)) / (2 eps)

has error O(eps^2) from truncation plus about |f| * 1e-16 / eps from
rounding, so in float64 with eps = 1e-6 it agrees with a correct analytic
gradient to about 1e-9 relative. Use float64; float32 arrays are accepted
but their differences are dominated by rounding.

Typical use, with a random upstream gradient (never all ones, which hides
errors that cancel across outputs)::

    dout = rng.standard_normal(out.shape)
    f = lambda a: np.sum(lstm_forward(a["x"], {"W": a["W"], ...})[0] * dout)
    errors = gradcheck(f, {"x": x, "W": W, ...}, {"x": dx, "W": grads["W"], ...})
    assert max(errors.values()) < 1e-7

Reference: cs231n ``gradient_check.py``; the same check is in micrograd's tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np

from ._validate import check_dtype


def _copies(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(arrays, Mapping) or not arrays:
        raise TypeError("arrays must be a non-empty dict of float numpy arrays keyed by name")
    for name, a in arrays.items():
        check_dtype(f"arrays[{name!r}]", a)
        if a.size == 0:
            raise ValueError(f"arrays[{name!r}] is empty (shape {a.shape}): there is nothing to check")
    return {name: a.copy() for name, a in arrays.items()}


def numerical_gradient(
    f: Callable[[dict[str, np.ndarray]], float], arrays: Mapping[str, np.ndarray], eps: float = 1e-6
) -> dict[str, np.ndarray]:
    """Centred-difference gradient of the scalar ``f(arrays)`` with respect to every array.

    ``f`` receives a dict with the same keys as ``arrays``; it is called on
    private copies, perturbed one element at a time, so the caller's arrays
    are never modified (even if ``f`` raises). Returns a dict of gradients
    shaped like the arrays.
    """
    if not (isinstance(eps, float) and eps > 0):
        raise ValueError(f"eps must be a positive float, got {eps!r}")
    work = _copies(arrays)
    if eps < 1e-4 and any(a.dtype == np.float32 for a in work.values()):
        warnings.warn(f"float32 arrays with eps={eps:g}: the differences are mostly rounding (relative errors "
                      "of 1e-2 and more for a correct gradient); use float64, or eps=1e-2", stacklevel=2)

    def value() -> float:
        v = f(work)
        if np.ndim(v) != 0 or not np.isfinite(v):
            raise ValueError(f"f must return a finite scalar, got {v!r:.60}")
        return float(v)

    grads = {}
    for name, a in work.items():
        g = np.zeros_like(a)
        flat_a, flat_g = a.reshape(-1), g.reshape(-1)  # views of the private copy
        for k in range(flat_a.size):
            old = flat_a[k]
            flat_a[k] = old + eps
            f_plus = value()
            flat_a[k] = old - eps
            f_minus = value()
            flat_a[k] = old
            flat_g[k] = (f_plus - f_minus) / (2 * eps)
        grads[name] = g
    return grads


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |analytic - numeric| / max(max |analytic|, max |numeric|), 0 when both are zero.

    Relative to the larger array's largest magnitude, not element by element,
    so that elements that are zero (or nearly) do not turn rounding noise
    into a large relative error. A NaN or infinity in either array gives
    inf, so that ``max(errors.values()) < tol`` fails (``max`` passes over a
    NaN that is not first). The two must have one shape: broadcasting
    (3,) against (3, 1) would compare every element with every other.
    """
    if np.shape(analytic) != np.shape(numeric):
        raise ValueError(f"analytic and numeric must have the same shape, got {np.shape(analytic)} and "
                         f"{np.shape(numeric)}")
    if not (np.isfinite(analytic).all() and np.isfinite(numeric).all()):
        return float("inf")
    scale = max(np.abs(analytic).max(), np.abs(numeric).max())
    diff = np.abs(analytic - numeric).max()
    return 0.0 if scale == 0 else float(diff / scale)


def gradcheck(
    f: Callable[[dict[str, np.ndarray]], float],
    arrays: Mapping[str, np.ndarray],
    analytic: Mapping[str, np.ndarray],
    eps: float = 1e-6,
) -> dict[str, float]:
    """The ``relative_error`` of each analytic gradient against ``numerical_gradient``.

    ``analytic`` must have the same keys as ``arrays`` and arrays of the
    same shapes. Returns {name: relative error}; in float64 a correct
    gradient gives errors below about 1e-7.
    """
    if not isinstance(analytic, Mapping) or set(analytic) != set(arrays):
        raise ValueError(f"analytic must be a dict with the keys of arrays {sorted(arrays)}, got {sorted(analytic)}")
    for name, a in arrays.items():
        if np.shape(analytic[name]) != np.shape(a):
            raise ValueError(f"analytic[{name!r}] must have shape {np.shape(a)}, got {np.shape(analytic[name])}")
    numeric = numerical_gradient(f, arrays, eps)
    return {name: relative_error(np.asarray(analytic[name]), numeric[name]) for name in arrays}

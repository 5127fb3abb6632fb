"""Shared input validation for the NumPy backend, and the argument checks the other modules share.

Every public function checks its inputs here so that a wrong shape, a
non-float dtype, a NaN or an unknown option name fails at once with a
message that names the argument and the expected form (shapes in the
named sizes N, T, D, H), instead of broadcasting silently. Seeds, counts,
dtypes and data of real numbers are checked here for the whole package
(initialisers, data generators, training engine and front ends) alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# A dimension of an expected shape: its label in named sizes ("4H") and its
# value, or None where any size is accepted (and then read off the array).
Dim = tuple[str, "int | None"]


def check_cache(cache: object, cls: type, forward: str) -> None:
    """``cache`` must be the ``cls`` that ``forward`` returned, else TypeError."""
    if not isinstance(cache, cls):
        raise TypeError(f"cache must be the {cls.__name__} that {forward} returned, got {type(cache).__name__}")


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}"
        )
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool (Python's or NumPy's), else raise TypeError: a string such as
    "no" would read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def rng_from_seed(seed: object) -> np.random.Generator:
    """A generator from ``seed``: a non-negative int (not a bool), or a ``numpy.random.Generator`` used as is."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")


def is_real_number(value: object) -> bool:
    """Whether ``value`` is one real number: a Python or NumPy int or float, not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an int if it is a Python or NumPy integer >= 1 (not a bool), else raise ValueError."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_float_dtype(name: str, dtype: object) -> np.dtype:
    """``dtype`` (a NumPy dtype, type or name) as float32 or float64, the backends' dtypes, else TypeError.

    None is refused, although ``np.dtype(None)`` is float64.
    """
    try:
        ok = dtype is not None and np.dtype(dtype) in FLOAT_DTYPES
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"{name} must be float32 or float64 (the backends' dtypes), got {dtype!r}")
    return np.dtype(dtype)


def check_real(name: str, a: object) -> np.ndarray:
    """``a`` as a NumPy array of real numbers (bool, int or float), else ValueError.

    Complex values would lose their imaginary part in a cast to float, and
    strings be parsed as numbers or fail later in a framework's own words.
    """
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":  # bool, signed and unsigned int, float
        raise ValueError(f"{name} must hold real numbers (bool, int or float), got dtype {arr.dtype}")
    return arr


def check_dtype(name: str, a: object) -> np.dtype:
    """Return the dtype of ``a`` (float32 or float64), else raise TypeError."""
    dtype = getattr(a, "dtype", None)
    if isinstance(a, np.matrix):
        raise TypeError(f"{name} must be a float32 or float64 numpy array, got numpy.matrix (use np.asarray)")
    if not isinstance(a, np.ndarray) or dtype not in FLOAT_DTYPES:
        got = f"{type(a).__name__} of dtype {dtype}" if dtype is not None else type(a).__name__
        raise TypeError(f"{name} must be a float32 or float64 numpy array, got {got}")
    return dtype


def _tuple_text(items: Sequence[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _describe(dims: Sequence[Dim]) -> str:
    labels = _tuple_text([label for label, _ in dims])
    if all(value is None for _, value in dims):
        return labels
    return f"{labels} = {_tuple_text(['?' if value is None else str(value) for _, value in dims])}"


def check_array(name: str, a: object, dims: Sequence[Dim], dtype: np.dtype | None = None) -> np.ndarray:
    """Check a float array's shape and values; return it cast to ``dtype``.

    ``dims`` lists the expected dimensions as (label, size) pairs, size None
    meaning any. Raises TypeError for a non-array or non-float dtype and
    ValueError for a wrong shape, a zero-sized dimension or a NaN/inf.
    """
    check_dtype(name, a)
    if a.ndim != len(dims) or any(v is not None and v != s for (_, v), s in zip(dims, a.shape)):
        raise ValueError(f"{name} must have shape {_describe(dims)}, got {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty: got shape {a.shape} for {_describe(dims)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a if dtype is None else a.astype(dtype, copy=False)


def check_params(
    name: str, params: object, shapes: Mapping[str, Sequence[Dim]], dtype: np.dtype
) -> dict[str, np.ndarray]:
    """Check a parameter dict against ``shapes`` (key -> dims); return a new dict of the arrays in ``dtype``.

    Missing or unexpected keys raise ValueError, so that for example a GRU
    recurrent bias ``bh`` passed to a mode that has none is never ignored.
    An array already in ``dtype`` is the caller's own, not a copy: the
    caches keep it, so a backward pass sees the parameters as they are
    when it runs (change them after it, as a training step does).
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"{name} must be a dict of arrays keyed {sorted(shapes)}, got {type(params).__name__}")
    missing = [k for k in shapes if k not in params]
    extra = [k for k in params if k not in shapes]
    if missing or extra:
        raise ValueError(
            f"{name} must have exactly the keys {list(shapes)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
        )
    return {k: check_array(f"{name}[{k!r}]", params[k], dims, dtype) for k, dims in shapes.items()}


def check_sequence(name: str, x: object) -> tuple[int, int, int]:
    """Check a batch-first sequence batch (N, T, D); return (N, T, D)."""
    check_dtype(name, x)
    if x.ndim != 3:
        raise ValueError(f"{name} must be a batch-first sequence batch of shape (N, T, D), got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{name} must have N >= 1, T >= 1 and D >= 1 (shape (N, T, D)), got {x.shape}")
    check_array(name, x, (("N", None), ("T", None), ("D", None)))
    return x.shape


def infer_hidden_size(name: str, params: object, key: str = "U") -> int:
    """Read the hidden size H off ``params[key]`` (shape (H, G*H))."""
    if not isinstance(params, Mapping) or key not in params:
        raise ValueError(f"{name} must be a dict of arrays with a recurrent weight {key!r} of shape (H, G*H)")
    U = params[key]
    check_dtype(f"{name}[{key!r}]", U)
    if U.ndim != 2 or U.shape[0] == 0:
        raise ValueError(f"{name}[{key!r}] must have shape (H, G*H) with H >= 1, got {U.shape}")
    return U.shape[0]

"""LSTM cell and sequence layer, NumPy backend, with backprop through time.

One step, gate order i, f, g, o, weights fused as in the package docstring::

    z = x_t @ W + h_prev @ U + b                       # (N, 4H)
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c = f * c_prev + i * g                             # (N, H)
    h = o * tanh(c)                                    # (N, H)

Variants (Greff et al. 2017), selected by ``variant``:

- ``"standard"``: the equations above; W (D, 4H), U (H, 4H), b (4H,).
- ``"peephole"``: as standard plus p_i, p_f, p_o (H,):
  i = sigmoid(z_i + p_i * c_prev), f = sigmoid(z_f + p_f * c_prev),
  o = sigmoid(z_o + p_o * c).
- ``"coupled"`` (CIFG): blocks [i | g | o], W (D, 3H), f = 1 - i.
- ``"no_forget"``: blocks [i | g | o], W (D, 3H), f = 1 (c = c_prev + i * g).
- ``"no_output"``: blocks [i | f | g], W (D, 3H), o = 1 (h = tanh(c)).

Backward, with dc_t = dc + dh * o * (1 - tanh(c)^2) the total gradient of c::

    dz_o = dh * tanh(c) * o (1 - o)       dz_i = dc_t * g * i (1 - i)
    dz_f = dc_t * c_prev * f (1 - f)      dz_g = dc_t * i * (1 - g^2)
    dc_prev = dc_t * f                    dh_prev = dz @ U.T
    dx = dz @ W.T    dW = x.T @ dz    dU = h_prev.T @ dz    db = sum_N dz

References: Hochreiter & Schmidhuber, "Long Short-Term Memory" (1997);
Gers, Schmidhuber & Cummins, "Learning to Forget" (2000); Greff et al.,
"LSTM: A Search Space Odyssey" (2017).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache, partial
from typing import NamedTuple, TypeVar

import numpy as np

from ._sequence import backward_upstream, flat, state_or_zeros, time_major
from ._validate import Dim, check_array, check_bool, check_cache, check_choice, check_dtype, check_params, check_sequence, infer_hidden_size

# Gate blocks of W, U and b per variant, in column order.
LSTM_VARIANTS: dict[str, str] = {
    "standard": "ifgo",
    "peephole": "ifgo",
    "coupled": "igo",
    "no_forget": "igo",
    "no_output": "ifg",
}
_PEEPHOLES = ("p_i", "p_f", "p_o")
# The sequence functions run in chunks of k steps whose (k, N, G*H) gate
# arrays take about this many bytes: large enough that the matmuls over the
# chunk's k*N rows (input projection, weight gradients) run at full speed and
# the local derivatives cost a few NumPy calls per chunk, small enough that
# the chunk stays in cache between those matmuls and the step loop.
_CHUNK_BYTES = 2**20
# NumPy ufunc buffer size (elements) for the chunk passes of _local_grads. A
# gate block of k steps is k contiguous runs of H*N elements; where a run is
# shorter than NumPy's default buffer (8192), NumPy copies the runs through
# the buffer to make longer inner loops, which here costs more than it saves
# (block passes 2 to 3 times slower at H*N = 2048). A smaller buffer, scoped
# by np.errstate as NumPy documents for np.setbufsize, lets the passes run on
# the arrays directly.
_BLOCK_BUFSIZE = 1024
# Per-step matmuls of fewer multiply-adds than this (U^T h: N H G*H) run on one
# BLAS thread, the whole batch in the calling thread: waking a second thread
# for each costs more than it saves there. From it on, the sequence functions
# split the batch over the BLAS threads (``_batch_rows``). Below it the
# forward pass also multiplies by a transposed view of the weights instead
# of a contiguous copy (``_forward_constants``).
_THREADED_MIN = 2**21
_R = TypeVar("_R")


def lstm_param_dims(D: int, H: int, variant: str = "standard") -> dict[str, tuple[Dim, ...]]:
    """Expected parameter shapes of an LSTM ``variant``, in named sizes."""
    G = len(LSTM_VARIANTS[check_choice("variant", variant, LSTM_VARIANTS)])
    dims: dict[str, tuple[Dim, ...]] = {
        "W": (("D", D), (f"{G}H", G * H)),
        "U": (("H", H), (f"{G}H", G * H)),
        "b": ((f"{G}H", G * H),),
    }
    if variant == "peephole":
        dims.update({k: (("H", H),) for k in _PEEPHOLES})
    return dims


@cache
def _blas_pools():
    """threadpoolctl's controller of the loaded BLAS libraries (found once, on first use)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@cache
def _row_pool() -> ThreadPoolExecutor:
    """The threads that run the batch's row slices (``_batch_rows``), created on first use."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="lstm_ref-rows")


# A child forked after the pool started has none of its threads, and work
# submitted there would wait for them forever: the child makes its own.
os.register_at_fork(after_in_child=_row_pool.cache_clear)


@contextmanager
def _batch_rows(N: int, step_work: int) -> Iterator[list[slice]]:
    """Split the batch's N rows over the BLAS threads, each slice on one BLAS thread, in the block.

    ``step_work`` is a step's matmul in multiply-adds (N H G*H). The N
    sequences of a batch are independent, so from ``_THREADED_MIN`` on,
    where BLAS has k >= 2 threads, the block gets k contiguous row slices
    (fewer if N < k) for ``_over_rows`` to run in k Python threads, each
    calling a BLAS limited to one thread. NumPy releases the GIL in its
    ufunc loops and BLAS calls, so the elementwise passes run on every
    core, where a product split by BLAS left them on one; only the
    Python-level code of each step is serialised. With 2 threads, float32
    forward + backward took 32 ms split against 37 ms with the whole batch
    and BLAS splitting each product, at N = 64, T = 100, D = 32, H = 128
    (torch 38 ms), and 406 against 490 ms at N = 128, T = 200, D = 64,
    H = 256 (torch 447 ms), with less process CPU time (768 against 972
    ms: no BLAS thread spinning between products). Below ``_THREADED_MIN``
    the block gets the whole batch and BLAS one thread: there a step's ~20
    NumPy calls cost more in dispatch than in arithmetic, and two threads
    taking turns at the GIL made N = 32, T = 10, H = 64 take 1.7 ms split
    against 0.8 ms; and while OpenBLAS splits a product across its threads
    from about 2^18 multiply-adds on, waking them for each step's small
    matmul made the same shape take about 4 ms instead of 1 ms. With N = 1
    above ``_THREADED_MIN`` BLAS keeps its threads. The thread counts are
    read and set through threadpoolctl's controllers of the loaded
    libraries, found once, and restored on exit; nothing changes where BLAS
    runs on one thread already. (threadpoolctl's own ``limit`` context
    builds its objects and queries every library on each use: 10 us with
    two BLAS threads, against 2 us here.)
    """
    threads = [(lib, n) for lib, n in ((lib, lib.get_num_threads()) for lib in _blas_pools().lib_controllers) if n]
    parts = min(N, max((n for _, n in threads), default=1)) if step_work >= _THREADED_MIN else 1
    limited = [(lib, n) for lib, n in threads if n > 1] if parts > 1 or step_work < _THREADED_MIN else []
    for lib, _ in limited:
        lib.set_num_threads(1)
    try:
        yield [slice(N * k // parts, N * (k + 1) // parts) for k in range(parts)]
    finally:
        for lib, n in limited:
            lib.set_num_threads(n)


def _over_rows(fn: Callable[[slice], _R], rows: list[slice]) -> list[_R]:
    """``fn`` of each row slice, in order: in the calling thread for one slice, else one pool thread each."""
    return [fn(rows[0])] if len(rows) == 1 else list(_row_pool().map(fn, rows))


def _blocks(a: np.ndarray, variant: str) -> dict[str, np.ndarray]:
    """Views of the gate blocks of a feature-major (..., G*H, N) array, keyed by gate letter."""
    gates = LSTM_VARIANTS[variant]
    H = a.shape[-2] // len(gates)
    return {name: a[..., k * H : (k + 1) * H, :] for k, name in enumerate(gates)}


def _forward_constants(params: dict, variant: str, H: int, N: int) -> dict:
    """What the forward core multiplies by: [W; U; b] transposed, the sigmoid gates' rows halved.

    sigmoid(a) = 0.5 tanh(a / 2) + 0.5, so with the rows of [W; U; b]^T of
    the sigmoid gates (i, f, o) and the peepholes halved, z holds z_g and
    z_i / 2, z_f / 2, z_o / 2, and one tanh call over the contiguous
    (G*H, N) block followed by ``* 0.5 + 0.5`` on the sigmoid gates'
    blocks activates every gate. Halving is exact in floating point, so
    the gates are those of the equations bit for bit. "WUb_T" = [W; U; b]^T
    (G*H, D+H+1) multiplies the column [x_t; h_(t-1); 1]
    (D+H+1, N), so that one matmul per step gives the whole pre-activation,
    input and bias included: at N = 32, H = 64 a separate input projection
    and the pass adding U^T h_prev to it cost 2 us a step, and at every
    benchmark shape the longer inner dimension costs the step's matmul no
    more than the projection did. Where the step's matmul is small (under
    ``_THREADED_MIN`` multiply-adds, N * (D+H+1) * G*H) "WUb_T" is a
    transposed view of [W; U; b], which OpenBLAS multiplies as fast there
    (within 5 %), and the call saves the transposing copy (NumPy copies a
    transposed array element by element: about 15 us at D = 1, H = 64);
    above, a contiguous copy multiplies up to 20 % faster per step
    (N = 64, H = 128). The peepholes are (H, 1) columns, to
    broadcast over the batch. "sigmoid_rows" are the row slices that the
    one tanh call leaves for ``* 0.5 + 0.5`` (the blocks before and after
    g, less a peephole o, which sees c), and "half" is 0.5 as a 0-d array:
    NumPy dispatches an array operand faster than a Python float, which
    counts at small sizes, where a step's time is mostly per-call overhead.
    """
    gates = LSTM_VARIANTS[variant]
    k_g = gates.index("g")
    WUb = np.concatenate([params["W"], params["U"], params["b"][None]])  # (D+H+1, G*H)
    for cols in (slice(0, k_g * H), slice((k_g + 1) * H, None)):  # the sigmoid gates' columns
        WUb[:, cols] *= 0.5
    small = WUb.size * N < _THREADED_MIN  # the step's matmul
    consts = {"WUb_T": WUb.T if small else WUb.T.copy(), "half": np.array(0.5, WUb.dtype)}
    consts.update({k: (params[k] * 0.5)[:, None] for k in _PEEPHOLES if k in params})
    n = (3 if variant == "peephole" else len(gates)) * H
    consts["sigmoid_rows"] = [rows for rows in (slice(0, k_g * H), slice((k_g + 1) * H, n)) if rows.stop > rows.start]
    return consts


def _half_affine(a: np.ndarray, half: np.ndarray) -> None:
    """a <- 0.5 a + 0.5 in place (``half`` = 0.5): sigmoid(2 z) from tanh(z)."""
    a *= half
    a += half


def _core_forward(xh, z, c_prev, fwd, variant, c, tanh_c, h) -> None:
    """One step, shared by the step and sequence functions.

    Every array is feature-major: xh = [x_t; h_(t-1); 1] (D+H+1, N), z
    (G*H, N), the states (H, N), so that each gate block is a contiguous
    (H, N) array and every elementwise call of the sequence loop runs on
    equal-shaped contiguous operands, NumPy's fast path (a strided or
    broadcast operand costs about 1.5 us more per call, as much as the
    arithmetic of an (H, N) block at N = 32, H = 64). ``c_prev`` and ``h``
    may be transposed views of (N, H) arrays, as in the step function; the
    sequence function writes h into the h rows of the next step's xh, a
    feature-major chunk buffer, and copies each chunk into its
    batch-row-major h (as the output and the weight gradients read it) at
    once: writing each step's h through a transposed view, between the
    matmuls, cost 20 ms of 270 in the forward pass at N = 128, H = 256.

    ``fwd`` comes from ``_forward_constants``. Writes the activated gates
    into ``z``, and c, tanh(c) and h into the given arrays, so that the
    sequence loop fills its preallocated buffers: every operation writes
    into an existing array, because a fresh temporary per step costs as
    much as an elementwise pass (new pages from the allocator). ``tanh_c``
    serves as scratch until tanh(c) is written into it.
    """
    np.dot(fwd["WUb_T"], xh, out=z)  # W^T x_t + U^T h_(t-1) + b (G*H, N)
    gates = LSTM_VARIANTS[variant]
    gate = z.reshape(-1, *c.shape)  # (G, H, N): i first, then f where present, o last where present
    i, g = gate[0], gate[gates.index("g")]
    if variant == "peephole":
        f = gate[1]
        i += np.multiply(fwd["p_i"], c_prev, out=tanh_c)
        f += np.multiply(fwd["p_f"], c_prev, out=tanh_c)
    act = z[: 3 * c.shape[0]] if variant == "peephole" else z  # all gates but a peephole o, which sees c
    np.tanh(act, out=act)
    for rows in fwd["sigmoid_rows"]:
        _half_affine(z[rows], fwd["half"])
    if "f" in gates:
        np.multiply(gate[1], c_prev, out=c)
        c += np.multiply(i, g, out=tanh_c)
    elif variant == "coupled":  # f = 1 - i
        np.subtract(g, c_prev, out=c)
        c *= i
        c += c_prev
    else:  # no_forget: f = 1
        np.multiply(i, g, out=c)
        c += c_prev
    np.tanh(c, out=tanh_c)
    if "o" in gates:
        o = gate[-1]
        if variant == "peephole":  # sigmoid of the halved pre-activation, as above
            o += np.multiply(fwd["p_o"], c, out=h)
            np.tanh(o, out=o)
            _half_affine(o, fwd["half"])
        np.multiply(o, tanh_c, out=h)
    else:  # no_output: o = 1
        h[...] = tanh_c


def _chunk_steps(T: int, step_bytes: int) -> int:
    """Steps per chunk, 1 to T, for per-step (G*H, N) arrays of ``step_bytes``."""
    return max(1, min(T, _CHUNK_BYTES // step_bytes))


def _local_grads(gates, c_prev, tanh_c, variant, dz, dh_dc) -> None:
    """Each gate's local derivative times its path to c or h, for one or many steps.

    Feature-major like ``_core_forward``: fills ``dz`` (..., G*H, N), laid
    out like ``gates``, with what does not depend on the upstream gradients::

        dc/dz_i = g i (1 - i)  (coupled: (g - c_prev) i (1 - i))
        dc/dz_f = c_prev f (1 - f)     dc/dz_g = i (1 - g^2)     dh/dz_o = tanh(c) o (1 - o)

    and ``dh_dc`` (..., H, N) with dc/dh = o (1 - tanh(c)^2) (1 - tanh(c)^2
    without an output gate). Run over a chunk of steps at once, these
    passes cost a few NumPy calls per chunk instead of per step.
    """
    gate, d = _blocks(gates, variant), _blocks(dz, variant)
    i, g = gate["i"], gate["g"]
    np.subtract(1, gates, out=dz)
    dz *= gates  # s (1 - s) for every block; g's is replaced next
    np.multiply(g, g, out=d["g"])
    np.subtract(1, d["g"], out=d["g"])
    d["g"] *= i
    if variant == "coupled":
        d["i"] *= np.subtract(g, c_prev, out=dh_dc)  # dh_dc as scratch until written below
    else:
        d["i"] *= g
    if "f" in gate:
        d["f"] *= c_prev
    np.multiply(tanh_c, tanh_c, out=dh_dc)
    np.subtract(1, dh_dc, out=dh_dc)  # 1 - tanh(c)^2
    if "o" in gate:
        d["o"] *= tanh_c
        dh_dc *= gate["o"]


def _carry_gate(gates: np.ndarray, variant: str) -> np.ndarray | None:
    """The block of feature-major gates (..., G*H, N) that dc_prev = dc_t f reads: f; i for coupled (f = 1 - i); None where f = 1."""
    return _blocks(gates, variant).get("i" if variant == "coupled" else "f")


def _core_backward(dh, dc, dz, dh_dc, carry, params, variant, dc_t) -> None:
    """Backward through the recurrent part of one step, in place, feature-major.

    On entry ``dh``, ``dc`` (H, N) hold the upstream gradients of h and c,
    and ``dz`` (G*H, N), ``dh_dc`` (H, N) what ``_local_grads`` wrote; on
    exit ``dh``, ``dc`` hold dh_prev and dc_prev and ``dz`` the
    pre-activation gradient, by the chain rule with the total gradient of c
    dc_t = dc + dh dh_dc::

        dz_o = dh dh/dz_o     dz_i, dz_f, dz_g = dc_t dc/dz_i, ...     dc_prev = dc_t f     dh_prev = U dz

    ``carry`` is the step's block from ``_carry_gate``: f, or i where f =
    1 - i (coupled) is recomputed from it, one subtraction instead of a
    stored buffer. ``dc_t`` (H, N) is scratch; ``dc`` and ``dh`` serve as
    scratch once consumed, so that no step allocates. The c-path blocks
    (all but o, which is last when present) are multiplied by dc_t in one
    broadcast call.
    """
    d = dz.reshape(-1, *dh.shape)  # (G, H, N)
    np.multiply(dh, dh_dc, out=dc_t)
    dc_t += dc  # total gradient of c (H, N)
    n_c = len(d) - (variant != "no_output")  # blocks on the path to c
    if n_c < len(d):
        d[n_c] *= dh  # dz_o
        if variant == "peephole":
            dc_t += np.multiply(d[n_c], params["p_o"][:, None], out=dc)  # o sees c through p_o
    d[:n_c] *= dc_t  # dz_i, dz_f, dz_g
    if carry is None:  # no_forget: f = 1
        dc[...] = dc_t
    elif variant == "coupled":  # f = 1 - i
        np.subtract(1, carry, out=dc)
        dc *= dc_t
    else:
        np.multiply(dc_t, carry, out=dc)
    if variant == "peephole":
        dc += np.multiply(d[0], params["p_i"][:, None], out=dh)
        dc += np.multiply(d[1], params["p_f"][:, None], out=dh)
    np.dot(params["U"], dz, out=dh)  # dh_prev (H, N)


def _add_param_grads(grads, xh, dz, c_prev, c, variant) -> None:
    """Add the weight gradients of k steps into ``grads`` (BPTT sums over time).

    xh = [x_t | h_(t-1) | 1] (k*N, D+H+1) holds the steps' rows; dz (G*H,
    k, N) is feature-major with the steps in the middle, so that its k*N
    columns merge and dW, dU, db are one matmul: ``grads["WUb_T"]`` (G*H,
    D+H+1) accumulates [dW; dU; db]^T. c_prev, c (k, H, N) are the cell
    states the peepholes saw.
    """
    grads["WUb_T"] += dz.reshape(dz.shape[0], -1) @ xh  # (G*H, k*N) @ (k*N, D+H+1)
    if variant == "peephole":
        dgate = _blocks(dz.transpose(1, 0, 2), variant)  # (k, H, N) each
        grads["p_i"] += np.einsum("khn,khn->h", dgate["i"], c_prev)
        grads["p_f"] += np.einsum("khn,khn->h", dgate["f"], c_prev)
        grads["p_o"] += np.einsum("khn,khn->h", dgate["o"], c)


def _zero_grads(params: dict, D: int) -> dict[str, np.ndarray]:
    """Zeroed accumulators for ``_add_param_grads``."""
    H, GH = params["U"].shape
    grads = {k: np.zeros_like(params[k]) for k in _PEEPHOLES if k in params}
    return {"WUb_T": np.zeros((GH, D + H + 1), params["U"].dtype), **grads}


def _split_grads(grads: dict, D: int) -> dict[str, np.ndarray]:
    """The accumulated gradients keyed like the parameters: W (D, G*H), U (H, G*H), b from "WUb_T"."""
    WUb = grads.pop("WUb_T").T  # (D+H+1, G*H)
    return {"W": WUb[:D].copy(), "U": WUb[D:-1].copy(), "b": WUb[-1].copy(), **grads}


class LSTMStepCache(NamedTuple):
    """What ``lstm_step_backward`` needs from one forward step."""

    x: np.ndarray  #: input x_t (N, D)
    h_prev: np.ndarray  #: previous hidden state (N, H)
    c_prev: np.ndarray  #: previous cell state (N, H)
    gates: np.ndarray  #: activated gates (N, G*H) in the variant's block order
    c: np.ndarray  #: new cell state (N, H)
    tanh_c: np.ndarray  #: tanh(c) (N, H)
    params: dict  #: the checked parameters, in the computation dtype
    variant: str  #: the LSTM variant


class LSTMCache(NamedTuple):
    """What ``lstm_backward`` needs from a sequence forward pass (time-major).

    ``lstm_forward`` fills c, gates and tanh_c with transposed views of its
    feature-major buffers ((T+1, H, N), ...): the shapes and values below,
    in memory order (T, feature, N); x and h are plain arrays.
    """

    x: np.ndarray  #: inputs (T, N, D)
    h: np.ndarray  #: hidden states (T+1, N, H), h[0] = h0
    c: np.ndarray  #: cell states (T+1, N, H), c[0] = c0
    gates: np.ndarray  #: activated gates (T, N, G*H)
    tanh_c: np.ndarray  #: tanh(c) for steps 1..T, (T, N, H)
    params: dict  #: the checked parameters, in the computation dtype
    variant: str  #: the LSTM variant
    return_sequences: bool  #: whether the output was every step or the last


def _check_step(x, params, variant):
    dtype = check_dtype("x", x)
    H = infer_hidden_size("params", params)
    x = check_array("x", x, (("N", None), ("D", None)))
    p = check_params("params", params, lstm_param_dims(x.shape[1], H, variant), dtype)
    return x, p, x.shape[0], H, dtype


def lstm_step_forward(
    x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, params: dict, variant: str = "standard"
) -> tuple[np.ndarray, np.ndarray, LSTMStepCache]:
    """One LSTM step (equations in the module docstring).

    Args:
        x: input x_t (N, D), float32 or float64; the output dtype follows it.
        h_prev, c_prev: previous states (N, H).
        params: ``{"W": (D, G*H), "U": (H, G*H), "b": (G*H,)}`` plus
            ``p_i, p_f, p_o`` (H,) for ``variant="peephole"``; G = 4 for
            standard and peephole, else 3.
        variant: "standard", "peephole", "coupled", "no_forget" or "no_output".

    Returns:
        (h, c, cache): new states (N, H) and an ``LSTMStepCache``.
    """
    x, p, N, H, dtype = _check_step(x, params, variant)
    h_prev = check_array("h_prev", h_prev, (("N", N), ("H", H)), dtype)
    c_prev = check_array("c_prev", c_prev, (("N", N), ("H", H)), dtype)
    fwd = _forward_constants(p, variant, H, N)
    D = x.shape[1]
    xh = np.ones((D + H + 1, N), dtype)
    xh[:D], xh[D:-1] = x.T, h_prev.T  # [x^T; h_prev^T; 1] (D+H+1, N)
    z = np.empty((fwd["WUb_T"].shape[0], N), dtype)  # feature-major (G*H, N)
    c, tanh_c = np.empty((H, N), dtype), np.empty((H, N), dtype)
    h = np.empty((N, H), dtype)
    _core_forward(xh, z, c_prev.T, fwd, variant, c, tanh_c, h.T)
    return h, c.T.copy(), LSTMStepCache(x, h_prev, c_prev, z.T, c.T, tanh_c.T, p, variant)


def lstm_step_backward(
    dh: np.ndarray, dc: np.ndarray, cache: LSTMStepCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Backward of ``lstm_step_forward``.

    Args:
        dh, dc: upstream gradients of h and c (N, H).
        cache: the ``LSTMStepCache`` of the forward step.

    Returns:
        (dx (N, D), dh_prev (N, H), dc_prev (N, H), grads) with grads keyed
        like the parameters.
    """
    check_cache(cache, LSTMStepCache, "lstm_step_forward")
    N, H = cache.c.shape
    dh = check_array("dh", dh, (("N", N), ("H", H)), cache.c.dtype)
    dc = check_array("dc", dc, (("N", N), ("H", H)), cache.c.dtype)
    dh_prev, dc_prev = dh.T.copy(), dc.T.copy()  # feature-major (H, N), updated in place by the core
    gates = cache.gates.T  # (G*H, N)
    dz, dh_dc = np.empty(gates.shape, gates.dtype), np.empty_like(dh_prev)
    _local_grads(gates, cache.c_prev.T, cache.tanh_c.T, cache.variant, dz, dh_dc)
    carry = _carry_gate(gates, cache.variant)
    _core_backward(dh_prev, dc_prev, dz, dh_dc, carry, cache.params, cache.variant, np.empty_like(dh_dc))
    D = cache.x.shape[1]
    grads = _zero_grads(cache.params, D)
    xh = np.concatenate([cache.x, cache.h_prev, np.ones((N, 1), dh.dtype)], axis=1)  # (N, D+H+1)
    _add_param_grads(grads, xh, dz[:, None], cache.c_prev.T[None], cache.c.T[None], cache.variant)
    dx = dz.T @ cache.params["W"].T  # (N, D)
    return dx, dh_prev.T.copy(), dc_prev.T.copy(), _split_grads(grads, D)


def lstm_forward(
    x: np.ndarray,
    params: dict,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    *,
    variant: str = "standard",
    return_sequences: bool = True,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], LSTMCache]:
    """Run an LSTM over a batch of sequences.

    Args:
        x: inputs (N, T, D), batch-first, float32 or float64.
        params: as for ``lstm_step_forward``.
        h0, c0: initial states (N, H); zeros when None.
        variant: the LSTM variant (module docstring).
        return_sequences: output h at every step (N, T, H), or only the
            last (N, H) as Keras' default and MATLAB's OutputMode 'last'.

    Returns:
        (out, (h_T, c_T), cache): final states (N, H) and an ``LSTMCache``.
    """
    N, T, D = check_sequence("x", x)
    return_sequences = check_bool("return_sequences", return_sequences)
    dtype = x.dtype
    H = infer_hidden_size("params", params)
    p = check_params("params", params, lstm_param_dims(D, H, variant), dtype)
    x_tm = time_major(x)  # (T, N, D)
    GH = p["U"].shape[1]
    gates = np.empty((T, GH, N), dtype)  # feature-major, as every buffer of the loop but h
    h = np.empty((T + 1, N, H), dtype)
    c = np.empty((T + 1, H, N), dtype)
    tanh_c = np.empty((T, H, N), dtype)
    h[0] = state_or_zeros("h0", h0, N, H, dtype)
    c[0] = state_or_zeros("c0", c0, N, H, dtype).T
    out = np.empty((N, T, H), dtype) if return_sequences else None
    with _batch_rows(N, N * H * GH) as rows:
        fwd = _forward_constants(p, variant, H, rows[0].stop)
        _over_rows(partial(_forward_rows, x_tm, fwd, variant, h, c, gates, tanh_c, out), rows)
    if not return_sequences:
        out = h[T].copy()
    c_, gates_, tanh_c_ = (a.transpose(0, 2, 1) for a in (c, gates, tanh_c))  # (T+1, N, H), (T, N, G*H), (T, N, H)
    return out, (h[T].copy(), c[T].T.copy()), LSTMCache(x_tm, h, c_, gates_, tanh_c_, p, variant, return_sequences)


def _forward_rows(x_tm, fwd, variant, h, c, gates, tanh_c, out, cols) -> None:
    """The sequence loop of ``lstm_forward`` over the batch rows ``cols``, in chunks of steps.

    Fills the rows ``cols`` of the buffers h (T+1, N, H) and, feature-major,
    c (T+1, H, N), gates (T, G*H, N), tanh_c (T, H, N), from h[0] and c[0],
    and, unless ``out`` is None, those of the batch-first output out (N, T,
    H), copied per chunk from h while the chunk is in cache: a slice of the
    batch copies its own rows in its own thread. For the whole batch the
    steps write straight into these buffers; a slice of it
    (``_batch_rows``) runs on its own feature-major chunk buffers, so that
    every elementwise call still sees contiguous operands, and copies each
    chunk into its columns of the shared ones at once.
    """
    T, N, D = x_tm.shape
    n, H, GH = cols.stop - cols.start, h.shape[2], gates.shape[1]
    K = _chunk_steps(T, n * GH * gates.itemsize)
    xh = np.ones((K + 1, D + H + 1, n), gates.dtype)  # [x_t; h_(t-1); 1] of the chunk's steps, h_t written into the next
    xh[0, D:-1] = h[0, cols].T
    whole = n == N
    own = None if whole else (np.empty((K, GH, n), c.dtype), np.empty((K + 1, H, n), c.dtype), np.empty((K, H, n), c.dtype))
    for start in range(0, T, K):
        end = min(T, start + K)
        k = end - start
        xh[:k, :D] = x_tm[start:end, cols].transpose(0, 2, 1)  # (k, D, n)
        if whole:
            g_k, c_k, tanh_c_k = gates[start:end], c[start : end + 1], tanh_c[start:end]
        else:
            g_k, c_k, tanh_c_k = own
            c_k[0] = c[start, :, cols]  # c_(start), written by the previous chunk
        for t in range(k):
            _core_forward(xh[t], g_k[t], c_k[t], fwd, variant, c_k[t + 1], tanh_c_k[t], xh[t + 1, D:-1])
        h[start + 1 : end + 1, cols] = xh[1 : k + 1, D:-1].transpose(0, 2, 1)  # one transposing copy per chunk
        if out is not None:
            out[cols, start:end] = h[start + 1 : end + 1, cols].transpose(1, 0, 2)  # (n, k, H)
        if not whole:
            gates[start:end, :, cols] = g_k[:k]
            c[start + 1 : end + 1, :, cols] = c_k[1 : k + 1]
            tanh_c[start:end, :, cols] = tanh_c_k[:k]
        xh[0, D:-1] = xh[k, D:-1]


def lstm_backward(
    dout: np.ndarray, cache: LSTMCache, dh_T: np.ndarray | None = None, dc_T: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Backprop through time for ``lstm_forward``.

    Args:
        dout: upstream gradient of ``out``: (N, T, H), or (N, H) when the
            forward pass had ``return_sequences=False``.
        cache: the ``LSTMCache`` of the forward pass.
        dh_T, dc_T: upstream gradients of the final states (N, H); zeros when None.

    Returns:
        (dx (N, T, D), dh0 (N, H), dc0 (N, H), grads), weight gradients
        summed over time and batch, keyed like the parameters.
    """
    check_cache(cache, LSTMCache, "lstm_forward")
    dout, (dh, dc) = backward_upstream(dout, cache, time_major_out=False, dh_T=dh_T, dc_T=dc_T)  # (N, T, H), (N, H)
    T, N, D = cache.x.shape
    dx, dh0, dc0 = np.empty((N, T, D), dh.dtype), np.empty_like(dh), np.empty_like(dc)
    with _batch_rows(N, N * cache.params["U"].size) as rows:
        grads, *more = _over_rows(partial(_backward_rows, dout, cache, (dh, dc), (dx, dh0, dc0)), rows)
    for g in more:  # the slices' weight gradients, added in a fixed order
        for k in grads:
            grads[k] += g[k]
    return dx, dh0, dc0, _split_grads(grads, D)


def _backward_rows(dout, cache, final_grads, out, cols) -> dict[str, np.ndarray]:
    """Backprop through time of ``lstm_backward`` over the batch rows ``cols``, in chunks of steps.

    Reads the rows ``cols`` of dout (N, T, H) and of the final states'
    upstream gradients ``final_grads`` = (dh_T, dc_T) (N, H), writes those
    of ``out`` = (dx (N, T, D), dh0, dc0 (N, H)), and returns the rows'
    weight gradients as accumulated by ``_add_param_grads``, which
    ``lstm_backward`` adds in slice order. A slice of the batch
    (``_batch_rows``) reads the forward buffers through views of its
    columns, runs of n elements: the chunk's derivative passes and each
    step's carry gate read them so, and write contiguous arrays.
    """
    p, variant = cache.params, cache.variant
    gates, c, tanh_c = (a.transpose(0, 2, 1)[..., cols] for a in (cache.gates, cache.c, cache.tanh_c))  # feature-major views
    T, GH, n = gates.shape
    dh, dc = final_grads
    D, H = cache.x.shape[2], dh.shape[1]
    dh_, dc_ = dh[cols].T.copy(), dc[cols].T.copy()  # feature-major (H, n), updated in place by the core, step by step
    K = _chunk_steps(T, n * GH * dh.itemsize)
    dz = np.empty((K, GH, n), dh.dtype)
    dh_dc = np.empty((K, H, n), dh.dtype)
    dc_t = np.empty_like(dh_)  # scratch (H, n)
    dz_k = np.empty((GH, K, n), dh.dtype)  # the chunk's dz with the steps in the middle
    dout_k = np.empty((K, H, n), dh.dtype)  # the chunk's dout, feature-major
    xh = np.empty((K, n, D + H + 1), dh.dtype)  # [x_t | h_(t-1) | 1] rows of the chunk
    xh[..., -1] = 1
    dx_ = np.empty((T, n, D), dh.dtype)
    grads = _zero_grads(p, D)
    carry = _carry_gate(gates, variant)  # (T, H, n) or None
    for end in range(T, 0, -K):
        start = max(0, end - K)
        k = end - start
        with np.errstate():  # scopes the buffer size
            np.setbufsize(_BLOCK_BUFSIZE)
            _local_grads(gates[start:end], c[start:end], tanh_c[start:end], variant, dz[:k], dh_dc[:k])
        dout_k[:k] = dout[cols, start:end].transpose(1, 2, 0)  # one transposing copy per chunk
        for t in reversed(range(k)):
            dh_ += dout_k[t]
            _core_backward(dh_, dc_, dz[t], dh_dc[t], carry if carry is None else carry[start + t], p, variant, dc_t)
        dz_k[:, :k] = dz[:k].transpose(1, 0, 2)
        xh[:k, :, :D] = cache.x[start:end, cols]
        xh[:k, :, D:-1] = cache.h[start:end, cols]
        xh_k = xh[:k].reshape(k * n, -1)  # (k*n, D+H+1)
        _add_param_grads(grads, xh_k, dz_k[:, :k], c[start:end], c[start + 1 : end + 1], variant)
        np.dot(dz_k[:, :k].reshape(GH, -1).T, p["W"].T, out=flat(dx_[start:end]))  # (k*n, D)
    dx, dh0, dc0 = out
    dx[cols] = dx_.transpose(1, 0, 2)  # (n, T, D)
    dh0[cols], dc0[cols] = dh_.T, dc_.T
    return grads

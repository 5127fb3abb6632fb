"""Answer checkers for the course notebooks.

Each ``check_*`` function takes a student's function, runs it and the
reference implementation of ``lstm_ref`` on fresh random inputs (non-zero
biases and states, seeded), and raises ``AssertionError`` with a message that
says *what* is wrong. To diagnose, the checker evaluates the reference under
each usual mistake (swapped gate blocks, missing or doubled bias, wrong
activation, h and c swapped, forget gate ignored, BPTT gradients not
accumulated, off-by-one in time, ...) and reports the mistake whose output the
student's output matches.

Shapes and seeds are keyword arguments so that hidden tests re-check on other
shapes; the tolerances depend only on the dtype (:data:`TOLERANCES`) and are the
same for public and hidden tests.

An answer that calls the reference implementation (``lstm_ref``'s NumPy or
PyTorch cells, ``torch.nn.LSTM``/``GRU``/``RNN`` and their kernels, Keras'
recurrent layers) earns nothing: the student's function runs under a profiler
hook (``sys.setprofile``) and any call into those modules fails the check.

Calling conventions (parameter dicts as in the package docstring: W (D, GH),
U (H, GH), b (GH,), gate blocks [i|f|g|o] for the LSTM and [r|z|n] for the GRU):

==========================  =====================================================
checker                     student function
==========================  =====================================================
check_sigmoid, check_tanh   ``fn(x) -> y``, elementwise, same shape and dtype
check_lstm_step             ``fn(x, h_prev, c_prev, params) -> (h, c[, ...])``
check_lstm_forward          ``fn(x, params, h0, c0) -> (hs, cs)``, both (N, T, H)
check_lstm_param_count      ``fn(D, H) -> int``, or the number for D and H
check_gru_step              ``fn(x, h_prev, params) -> h`` or ``(h, ...)``
check_rnn_step_backward     ``fn(dh, cache) -> (dx, dh_prev, grads)``
check_lstm_step_backward    ``fn(dh, dc, cache) -> (dx, dh_prev, dc_prev, grads)``
check_lstm_bptt             ``fn(dhs, caches) -> (dx, dh0, dc0, grads)``
==========================  =====================================================

The caches are those of ``lstm_ref.rnn_step_forward`` and
``lstm_ref.lstm_step_forward``; ``caches`` is the list of the T step caches of
a sequence, oldest first, and ``dhs`` (N, T, H) the upstream gradient of every
hidden state.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

import lstm_ref

Params = Mapping[str, np.ndarray]
# The predicted outputs of the reference, or of the reference under one mistake,
# keyed by output name ("h", "c", "grads['W']", ...). A mistake may predict only
# some of the outputs (e.g. the gradient blocks but not dx).
Outputs = dict[str, np.ndarray]


class Tolerance(NamedTuple):
    """``|got - expected| <= atol + rtol * |expected|`` elementwise."""

    rtol: float
    atol: float


TOLERANCES = {
    np.dtype(np.float64): Tolerance(rtol=1e-7, atol=1e-9),
    np.dtype(np.float32): Tolerance(rtol=1e-4, atol=1e-5),
}

LSTM_GATES = "ifgo"
GRU_GATES = "rzn"
# A pre-activation this large saturates the sigmoid to exactly 1.0 in float64
# and float32: used to evaluate the reference with a gate switched off (= 1).
_SATURATE = 60.0


# ---------------------------------------------------------------------------
# Refusing the reference implementation


_REFERENCE_FUNCTIONS = (
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "gru_step_forward", "gru_forward",
)  # fmt: skip
# Other files of reference cells, as (package, path inside it). They are located
# without being imported: importing torch or keras here would cost seconds per check.
_REFERENCE_SOURCES = (
    ("lstm_ref", "_sequence.py"),
    ("lstm_ref", "_layers.py"),
    ("lstm_ref", "torch_backend.py"),
    ("torch", "nn/modules/rnn.py"),
    ("keras", "src/layers/rnn/lstm.py"),
    ("keras", "src/layers/rnn/gru.py"),
    ("keras", "src/layers/rnn/simple_rnn.py"),
)
# torch's fused recurrent kernels are C functions: they show up as "c_call" events.
_TORCH_KERNELS = frozenset(
    ("lstm", "lstm_cell", "gru", "gru_cell", "rnn_tanh", "rnn_tanh_cell", "rnn_relu", "rnn_relu_cell")
)


@functools.cache
def _reference_files() -> frozenset[str]:
    files = {
        os.path.realpath(getattr(lstm_ref, name).__code__.co_filename)
        for name in _REFERENCE_FUNCTIONS
        if hasattr(lstm_ref, name)
    }
    for package, path in _REFERENCE_SOURCES:
        spec = importlib.util.find_spec(package)  # a top-level package is found without importing it
        if spec is not None and spec.origin:
            files.add(os.path.realpath(os.path.join(os.path.dirname(spec.origin), *path.split("/"))))
    return frozenset(files)


def _public_name(frame: Any) -> str:
    """``lstm_ref.lstm_step_forward`` for a frame of a function lstm_ref exports, else module.qualname."""
    code = frame.f_code
    exported = getattr(lstm_ref, code.co_name, None)
    if getattr(exported, "__code__", None) is code:
        return f"lstm_ref.{code.co_name}"
    module, qualname = frame.f_globals.get("__name__", "?"), getattr(code, "co_qualname", code.co_name)
    if module == "torch.nn.modules.rnn":
        return f"torch.nn.{qualname.split('.')[0]}"
    return f"{module}.{qualname}"


def _call(fn: Callable[..., Any], what: str, *args: Any) -> Any:
    """Call the student's ``fn(*args)``; fail if it calls into a reference implementation."""
    if not callable(fn):
        raise AssertionError(f"{what} must be a function, got {type(fn).__name__}")
    files = _reference_files()
    called: list[str] = []

    def hook(frame: Any, event: str, arg: Any) -> None:
        if called:
            return
        if event == "call" and os.path.realpath(frame.f_code.co_filename) in files:
            called.append(_public_name(frame))
        elif event == "c_call" and getattr(arg, "__name__", None) in _TORCH_KERNELS:
            owner = getattr(arg, "__module__", None) or type(getattr(arg, "__self__", None)).__module__
            if owner.startswith("torch"):
                called.append(f"torch.{arg.__name__}")

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(previous)
        if called:
            raise AssertionError(
                f"{what} calls the reference implementation {called[0]}; implement it from the equations"
            )
    return result


# ---------------------------------------------------------------------------
# Comparing outputs and diagnosing mistakes


class Mistake(NamedTuple):
    """A usual mistake: what to tell the student, and the outputs it produces."""

    message: str
    outputs: Callable[[], Outputs]


def _tolerance(dtype: np.dtype) -> Tolerance:
    if np.dtype(dtype) not in TOLERANCES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return TOLERANCES[np.dtype(dtype)]


def _close(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> bool:
    return got.shape == expected.shape and bool(
        np.all(np.isfinite(got)) and np.allclose(got, expected, rtol=tol.rtol, atol=tol.atol)
    )


def _shape_problem(name: str, got: Any, expected: np.ndarray, dims: Mapping[str, str]) -> str | None:
    """Why ``got`` cannot be compared with ``expected`` (type, shape, dtype), or None."""
    want = f"{dims[name]} = {expected.shape}" if name in dims else str(expected.shape)
    if got is None:
        return f"{name} is None: return an array of shape {want}"
    if not isinstance(got, np.ndarray) or got.dtype.kind != "f":
        kind = type(got).__name__ if not isinstance(got, np.ndarray) else f"an array of dtype {got.dtype}"
        return f"{name} is {kind}; expected a float numpy array of shape {want}"
    if got.shape != expected.shape:
        hint = ""
        if got.shape == expected.shape[::-1] and got.ndim == 2:
            hint = " (transposed?)"
        elif got.ndim == expected.ndim + 1 and got.shape[1:] == expected.shape:
            hint = " (sum over the batch axis N)"
        return f"{name} has shape {got.shape}, expected {want}{hint}"
    if got.dtype != expected.dtype:
        return f"{name} has dtype {got.dtype}; for {expected.dtype} inputs it must be {expected.dtype}"
    return None


def _compare(what: str, got: Outputs, expected: Outputs, mistakes: Sequence[Mistake], tol: Tolerance,
             dims: Mapping[str, str] = {}) -> None:  # fmt: skip
    """Pass if ``got`` equals ``expected``; else raise the best diagnosis."""
    got = {k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in got.items()}  # NumPy scalars of 0-d math
    for name, exp in expected.items():
        problem = _shape_problem(name, got.get(name), exp, dims)
        if problem:
            raise AssertionError(f"{what}: {problem}")
    wrong = [name for name in expected if not _close(got[name], expected[name], tol)]
    if not wrong:
        return
    for mistake in mistakes:
        predicted = mistake.outputs()
        if all(_close(got[name], value, tol) for name, value in predicted.items()):
            raise AssertionError(f"{what}: {mistake.message}")
    right = [name for name in expected if name not in wrong]
    errors = ", ".join(f"{name} (max abs error {np.max(np.abs(got[name] - expected[name])):.3g})" for name in wrong)
    raise AssertionError(
        f"{what}: wrong {errors}" + (f"; {', '.join(right)} correct" if right else "")
        + " -- no usual mistake explains it: compare your code with the equations line by line"
    )


def _outputs(what: str, result: Any, names: Sequence[str], form: str) -> Outputs:
    """Name the parts of a student's return value ``result`` (a tuple ``form``)."""
    if result is None:
        raise AssertionError(f"{what} returned None; it must return {form}")
    parts = result if isinstance(result, tuple) else (result,)
    if len(parts) < len(names):
        raise AssertionError(f"{what} returned {len(parts)} value(s); it must return {form}")
    return dict(zip(names, parts))


def _grads_outputs(what: str, grads: Any, keys: Sequence[str]) -> Outputs:
    if not isinstance(grads, Mapping):
        raise AssertionError(f"{what}: grads must be a dict with keys {', '.join(map(repr, keys))}, "
                             f"got {type(grads).__name__}")  # fmt: skip
    missing = [k for k in keys if k not in grads]
    if missing:
        raise AssertionError(f"{what}: grads has no key {', '.join(map(repr, missing))}")
    return {f"grads['{k}']": grads[k] for k in keys}


# ---------------------------------------------------------------------------
# Random inputs


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_params(D: int, H: int, gates: int, rng: np.random.Generator, dtype: np.dtype,
                  recurrent_bias: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
    """Random W (D, GH), U (H, GH) and non-zero b (GH,) (and bh (GH,)) in ``dtype``."""
    params = {
        "W": rng.normal(0.0, 1.0 / np.sqrt(D), (D, gates * H)),
        "U": rng.normal(0.0, 1.0 / np.sqrt(H), (H, gates * H)),
        "b": rng.normal(0.0, 0.5, gates * H),
    }
    if recurrent_bias:
        params["bh"] = rng.normal(0.0, 0.5, gates * H)
    return {k: v.astype(dtype) for k, v in params.items()}


def _normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(dtype)


# ---------------------------------------------------------------------------
# Parameter transforms that turn the reference into a mistake


def _blocks(a: np.ndarray, gates: int) -> list[np.ndarray]:
    return np.split(a, gates, axis=-1)


def _permuted(params: Params, src: Sequence[int], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Params whose gate block q is the original block ``src[q]`` (for ``keys``)."""
    out = dict(params)
    for k in keys:
        blocks = _blocks(params[k], len(src))
        out[k] = np.concatenate([blocks[s] for s in src], axis=-1)
    return out


def _with_block(params: Params, gate: int, gates: int, keys: Sequence[str],
                value: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:  # fmt: skip
    """Params with gate block ``gate`` of ``keys`` replaced by ``value(block)``."""
    out = dict(params)
    for k in keys:
        blocks = _blocks(params[k], gates)
        blocks[gate] = value(blocks[gate])
        out[k] = np.concatenate(blocks, axis=-1)
    return out


def _gate_forced_to_one(params: Params, gate: int, gates: int) -> dict[str, np.ndarray]:
    """Params whose gate ``gate`` is sigmoid(_SATURATE) = 1 for every input."""
    zeroed = _with_block(params, gate, gates, [k for k in ("W", "U", "bh") if k in params], np.zeros_like)
    return _with_block(zeroed, gate, gates, ["b"], lambda b: np.full_like(b, _SATURATE))


def _permutation_message(names: str, src: Sequence[int]) -> str:
    moved = [q for q, s in enumerate(src) if s != q]
    if len(moved) == 2:
        return f"the {names[moved[0]]} and {names[moved[1]]} gate blocks look swapped (the block order is {', '.join(names)})"
    used = ", ".join(f"{names[q]} from the {names[s]} block" for q, s in enumerate(src) if s != q)
    return f"the gate blocks look permuted: your code takes {used} (the block order is {', '.join(names)})"


def _permutations(gates: int) -> list[tuple[int, ...]]:
    return [p for p in itertools.permutations(range(gates)) if p != tuple(range(gates))]


# ---------------------------------------------------------------------------
# sigmoid and tanh


_ACTIVATION_PROBE = np.array([-1000.0, -80.0, -30.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 2.0, 30.0, 80.0, 1000.0])


def _reference_sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_activation(fn: Callable[[np.ndarray], np.ndarray], what: str, reference: Callable[[np.ndarray], np.ndarray],
                      others: Mapping[str, Callable[[np.ndarray], np.ndarray]], seed: int,
                      dtype: np.dtype) -> None:  # fmt: skip
    tol = _tolerance(dtype)
    rng = _rng(seed)
    for x in (_ACTIVATION_PROBE.astype(dtype), _normal(rng, (3, 4, 5), dtype, 3.0), np.asarray(0.7, dtype)):
        with np.errstate(all="ignore"):
            got = _call(fn, what, x.copy())
        expected = reference(x)
        mistakes = [Mistake(msg, lambda f=f, x=x: {"output": f(x).astype(x.dtype)}) for msg, f in others.items()]
        _compare(f"{what} on inputs of shape {x.shape}", {"output": got}, {"output": expected}, mistakes, tol)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            _call(fn, what, _ACTIVATION_PROBE.astype(dtype))
        except FloatingPointError as err:
            raise AssertionError(
                f"{what} overflows for large |x| ({err}): never evaluate exp of a large positive number, "
                "e.g. use exp(-|x|) and pick the formula by the sign of x"
            ) from None


def check_sigmoid(fn: Callable[[np.ndarray], np.ndarray], *, seed: int = 0, dtype: np.dtype = np.float64) -> None:
    """Check ``fn(x) = 1 / (1 + exp(-x))`` elementwise, exact and without overflow for |x| up to 1000."""
    others = {
        "returns sigmoid(-x): the sign inside exp is flipped": lambda x: _reference_sigmoid(-x),
        "returns tanh(x), not the sigmoid": np.tanh,
        "returns exp(-x) / (1 + exp(-x)) = 1 - sigmoid(x)": lambda x: 1.0 - _reference_sigmoid(x),
    }
    _check_activation(fn, "sigmoid", _reference_sigmoid, others, seed, np.dtype(dtype))


def check_tanh(fn: Callable[[np.ndarray], np.ndarray], *, seed: int = 0, dtype: np.dtype = np.float64) -> None:
    """Check ``fn(x) = tanh(x) = 2 sigmoid(2x) - 1`` elementwise, without overflow for |x| up to 1000."""
    others = {
        "returns the sigmoid, not tanh": _reference_sigmoid,
        "returns 2 sigmoid(x) - 1 = tanh(x/2): the argument must be 2x": lambda x: 2.0 * _reference_sigmoid(x) - 1.0,
        "returns 2 sigmoid(2x) without the - 1": lambda x: 2.0 * _reference_sigmoid(2.0 * x),
    }
    _check_activation(fn, "tanh", np.tanh, others, seed, np.dtype(dtype))


# ---------------------------------------------------------------------------
# LSTM forward


def _lstm_gate_model(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, params: Params, *,
                     activations: str = "ssts", h_from: str = "tanh(c)") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The LSTM step with one gate's activation or the output line changed.

    ``activations`` names the activation of i, f, g, o ("s" sigmoid, "t" tanh);
    ``h_from`` is "tanh(c)" (correct), "c" (tanh missing) or "tanh(c_prev)".
    Only mistakes that no parameter transform of the reference can express are
    evaluated here; the rest go through ``lstm_ref.lstm_step_forward``.
    """
    z = x @ params["W"] + h_prev @ params["U"] + params["b"]  # (N, 4H)
    act = {"s": _reference_sigmoid, "t": np.tanh}
    i, f, g, o = (act[a](block) for a, block in zip(activations, _blocks(z, 4)))  # (N, H) each
    c = f * c_prev + i * g  # (N, H)
    h = o * {"tanh(c)": np.tanh(c), "c": c, "tanh(c_prev)": np.tanh(c_prev)}[h_from]  # (N, H)
    return h.astype(x.dtype), c.astype(x.dtype)


LSTMStep = Callable[[np.ndarray, np.ndarray, np.ndarray, Params], tuple[np.ndarray, np.ndarray]]


def _reference_lstm_step(x: np.ndarray, h: np.ndarray, c: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    h_next, c_next, _ = lstm_ref.lstm_step_forward(x, h, c, params)
    return h_next, c_next


def _lstm_step_mistakes(params: Params, D: int, H: int) -> list[tuple[str, LSTMStep]]:
    """The usual mistakes of an LSTM step, each as a step function (x, h, c, params-ignored) -> (h, c)."""
    ref = _reference_lstm_step

    def with_params(p: Params) -> LSTMStep:
        return lambda x, h, c, _: ref(x, h, c, p)

    def gate_model(**kw: str) -> LSTMStep:
        return lambda x, h, c, _: _lstm_gate_model(x, h, c, params, **kw)

    def swapped_return(x: np.ndarray, h: np.ndarray, c: np.ndarray, _: Params) -> tuple[np.ndarray, np.ndarray]:
        h_next, c_next = ref(x, h, c, params)
        return c_next, h_next

    stacked = np.concatenate([params["W"], params["U"]], axis=0)  # (D+H, 4H), [W; U]
    swapped_stack = np.concatenate([params["U"], params["W"]], axis=0)  # (H+D, 4H), [U; W]
    mistakes: list[tuple[str, LSTMStep]] = [
        ("the forget gate is ignored: c = c_prev + i * g, as if f = 1", with_params(_gate_forced_to_one(params, 1, 4))),
        ("the output gate is ignored: h = tanh(c), as if o = 1", with_params(_gate_forced_to_one(params, 3, 4))),
        ("the bias b is missing", with_params({**params, "b": np.zeros_like(params["b"])})),
        ("the bias b is added twice", with_params({**params, "b": 2 * params["b"]})),
        ("h and c are swapped in the return value: return (h, c)", swapped_return),
        ("the concatenation order is wrong: [h_prev, x] against the stacked [W; U] (x must come first)",
         with_params({**params, "W": stacked[H:], "U": stacked[:H]})),
        ("the concatenation order is wrong: [x, h_prev] against [U; W] (stack W over U)",
         with_params({**params, "W": swapped_stack[:D], "U": swapped_stack[D:]})),
        ("the recurrent weight blocks look transposed: use h_prev @ U, not U.T",
         with_params(_with_block_all(params, "U", 4, np.transpose))),
        ("h = o * c misses the tanh: h = o * tanh(c)", gate_model(h_from="c")),
        ("h uses the previous cell state: h = o * tanh(c) with the new c", gate_model(h_from="tanh(c_prev)")),
    ]
    if D == H:
        mistakes.append(("the input weight blocks look transposed: use x @ W, not W.T",
                         with_params(_with_block_all(params, "W", 4, np.transpose))))  # fmt: skip
    for gate, name in enumerate(LSTM_GATES):
        wrong = "ssts"[:gate] + ("s" if name == "g" else "t") + "ssts"[gate + 1:]
        right, used = ("tanh", "sigmoid") if name == "g" else ("sigmoid", "tanh")
        mistakes.append((f"gate {name} uses {used}; it must use {right}", gate_model(activations=wrong)))
    for src in _permutations(4):
        mistakes.append((_permutation_message(LSTM_GATES, src), with_params(_permuted(params, src, ("W", "U", "b")))))
    return mistakes


def _with_block_all(params: Params, key: str, gates: int, fn: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """Params with ``fn`` applied to every gate block of ``params[key]``."""
    out = dict(params)
    out[key] = np.concatenate([fn(block) for block in _blocks(params[key], gates)], axis=-1)
    return out


_STATE_DIMS = {"h": "(N, H)", "c": "(N, H)", "hs": "(N, T, H)", "cs": "(N, T, H)"}


def check_lstm_step(fn: Callable[..., Any], *, N: int = 3, D: int = 4, H: int = 5, seed: int = 0,
                    dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check one LSTM step ``fn(x, h_prev, c_prev, params) -> (h, c)`` against ``lstm_ref.lstm_step_forward``.

    Inputs: x (N, D), h_prev and c_prev (N, H) non-zero, params W (D, 4H),
    U (H, 4H), b (4H,) non-zero. Keep D != H so that transposes cannot hide.
    """
    dtype = np.dtype(dtype)
    rng = _rng(seed)
    params = random_params(D, H, 4, rng, dtype)
    x, h0, c0 = _normal(rng, (N, D), dtype), _normal(rng, (N, H), dtype, 0.5), _normal(rng, (N, H), dtype)
    what = "lstm_step"
    got = _outputs(what, _call(fn, what, x, h0.copy(), c0.copy(), {k: v.copy() for k, v in params.items()}),
                   ("h", "c"), "(h, c)")  # fmt: skip
    expected = dict(zip(("h", "c"), _reference_lstm_step(x, h0, c0, params)))
    mistakes = [
        Mistake(msg, lambda step=step: dict(zip(("h", "c"), step(x, h0, c0, params))))
        for msg, step in _lstm_step_mistakes(params, D, H)
    ]
    _compare(what, got, expected, mistakes, _tolerance(dtype), _STATE_DIMS)


def _lstm_sequence(step: LSTMStep, x: np.ndarray, params: Params, h0: np.ndarray, c0: np.ndarray, *,
                   carry: str = "hc", shift: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """All states of a sequence (hs, cs) (N, T, H) by ``step``; ``carry`` names the
    states passed from step to step (the others restart from h0/c0); with
    ``shift=1`` slot t holds the state before step t (off by one)."""
    N, T, _ = x.shape
    h, c = h0, c0
    hs, cs = [], []
    for t in range(T):
        if shift:
            hs.append(h)
            cs.append(c)
        h_next, c_next = step(x[:, t], h, c, params)
        h = h_next if "h" in carry else h0
        c = c_next if "c" in carry else c0
        if not shift:
            hs.append(h_next)
            cs.append(c_next)
    return np.stack(hs, axis=1), np.stack(cs, axis=1)  # (N, T, H) each


def check_lstm_forward(fn: Callable[..., Any], *, N: int = 2, T: int = 6, D: int = 3, H: int = 4, seed: int = 0,
                       dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check a sequence forward ``fn(x, params, h0, c0) -> (hs, cs)`` against ``lstm_ref.lstm_step_forward`` step by step.

    x (N, T, D); h0, c0 (N, H) non-zero; hs and cs (N, T, H) hold h_t and c_t
    after each step t = 0 .. T-1.
    """
    dtype = np.dtype(dtype)
    rng = _rng(seed)
    params = random_params(D, H, 4, rng, dtype)
    x, h0, c0 = _normal(rng, (N, T, D), dtype), _normal(rng, (N, H), dtype, 0.5), _normal(rng, (N, H), dtype)
    what = "lstm_forward"
    got = _outputs(what, _call(fn, what, x.copy(), {k: v.copy() for k, v in params.items()}, h0.copy(), c0.copy()),
                   ("hs", "cs"), "(hs, cs), each (N, T, H)")  # fmt: skip
    ref = _reference_lstm_step

    def seq(step: LSTMStep = ref, **kw: Any) -> Callable[[], Outputs]:
        return lambda: dict(zip(("hs", "cs"), _lstm_sequence(step, x, params, h0, c0, **kw)))

    expected = seq()()
    mistakes = [
        Mistake("the states are not carried from one step to the next (every step starts from h0, c0)", seq(carry="")),
        Mistake("the cell state c is not carried from one step to the next", seq(carry="h")),
        Mistake("the hidden state h is not carried from one step to the next", seq(carry="c")),
        Mistake("off by one in time: hs[:, t] must hold h_t after step t, not the state before it", seq(shift=1)),
        Mistake("the sequence is read backwards in time", lambda: {
            k: v[:, ::-1] for k, v in zip(("hs", "cs"), _lstm_sequence(ref, x[:, ::-1], params, h0, c0))}),
    ]
    mistakes += [Mistake(f"in every step, {msg}", seq(step)) for msg, step in _lstm_step_mistakes(params, D, H)]
    _compare(what, got, expected, mistakes, _tolerance(dtype), _STATE_DIMS)


def check_lstm_param_count(fn_or_value: Callable[[int, int], int] | int, *, D: int | None = None,
                           H: int | None = None) -> None:  # fmt: skip
    """Check the number of parameters of one LSTM layer, 4 (D H + H^2 + H).

    Pass a function ``fn(D, H)`` (checked on several sizes), or a number together with D and H.
    """
    sizes = [(D, H)] if D is not None and H is not None else [(3, 5), (12, 100), (64, 7)]
    for d, h in sizes:
        got = fn_or_value if not callable(fn_or_value) else _call(fn_or_value, "the parameter count", d, h)
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
            raise AssertionError(f"the parameter count must be an integer, got {got!r} ({type(got).__name__})")
        rnn = d * h + h * h + h
        wrong = {
            rnn: "that is a vanilla RNN's count: an LSTM has 4 gate blocks (i, f, g, o), each with its own W, U and b",
            4 * (d * h + h * h): "the 4H biases are missing",
            4 * (d * h + h * h + 2 * h): "the course's layer has one bias vector of 4H (PyTorch's two biases only add up)",
            3 * rnn: "that is a GRU's count (3 blocks); an LSTM has 4 (i, f, g, o)",
            4 * (d * h + h): "the recurrent weights U (H, 4H) are missing",
        }
        if got != 4 * rnn:
            reason = wrong.get(int(got), "the count is 4 (D H + H^2 + H)")
            raise AssertionError(f"parameter count for D={d}, H={h}: got {got}, expected {4 * rnn}; {reason}")


# ---------------------------------------------------------------------------
# GRU forward


def check_gru_step(fn: Callable[..., Any], reset_mode: str = "after-multiplication", *, N: int = 3, D: int = 4,
                   H: int = 5, seed: int = 0, dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check one GRU step ``fn(x, h_prev, params) -> h`` against ``lstm_ref.gru_step_forward`` with ``reset_mode``.

    The student's function implements the one ``reset_mode`` it is checked for
    (wrap a function with a mode argument in ``functools.partial``). params has
    W (D, 3H), U (H, 3H), b (3H,), and bh (3H,) for "recurrent-bias-after-multiplication".
    """
    dtype = np.dtype(dtype)
    rng = _rng(seed)
    recurrent_bias = reset_mode == "recurrent-bias-after-multiplication"
    params = random_params(D, H, 3, rng, dtype, recurrent_bias=recurrent_bias)
    x, h0 = _normal(rng, (N, D), dtype), _normal(rng, (N, H), dtype, 0.5)
    what = f"gru_step ({reset_mode})"
    got = _outputs(what, _call(fn, what, x, h0.copy(), {k: v.copy() for k, v in params.items()}), ("h",), "h")

    def ref(p: Params, mode: str = reset_mode) -> Callable[[], Outputs]:
        return lambda: {"h": lstm_ref.gru_step_forward(x, h0, p, mode)[0]}

    bias_keys = ("b", "bh") if recurrent_bias else ("b",)
    mistakes = [
        Mistake("the update is reversed: h = (1 - z) * n + z * h_prev, not z * n + (1 - z) * h_prev",
                ref(_with_block(params, 1, 3, ("W", "U") + bias_keys, np.negative))),
        Mistake("the reset gate is not applied (as if r = 1)", ref(_gate_forced_to_one(params, 0, 3))),
        Mistake("the bias b is missing", ref({**params, "b": np.zeros_like(params["b"])})),
        Mistake("the bias b is added twice", ref({**params, "b": 2 * params["b"]})),
    ]
    if recurrent_bias:
        mistakes.append(Mistake("the recurrent bias bh is missing", ref({**params, "bh": np.zeros_like(params["bh"])})))
    for mode in ("after-multiplication", "before-multiplication"):
        if mode != reset_mode:
            mistakes.append(Mistake(f"the reset gate is placed as in '{mode}', not '{reset_mode}'",
                                    ref({k: v for k, v in params.items() if k != "bh"}, mode)))  # fmt: skip
    mistakes += [Mistake(_permutation_message(GRU_GATES, src), ref(_permuted(params, src, ("W", "U") + bias_keys)))
                 for src in _permutations(3)]  # fmt: skip
    _compare(what, got, ref(params)(), mistakes, _tolerance(dtype), _STATE_DIMS)


# ---------------------------------------------------------------------------
# Backward


_GRAD_DIMS = {
    "dx": "(N, D)", "dh_prev": "(N, H)", "dc_prev": "(N, H)", "dh0": "(N, H)", "dc0": "(N, H)",
    "grads['W']": "(D, GH)", "grads['U']": "(H, GH)", "grads['b']": "(GH,)",
}  # fmt: skip
_PARAM_KEYS = ("W", "U", "b")


def _named_grads(grads: Mapping[str, np.ndarray]) -> Outputs:
    return {f"grads['{k}']": grads[k] for k in _PARAM_KEYS}


def _scaled(outputs: Outputs, factor: float) -> Outputs:
    return {k: factor * v for k, v in outputs.items()}


def _permuted_grads(grads: Outputs, src: Sequence[int]) -> Outputs:
    return {k: np.concatenate([_blocks(v, len(src))[s] for s in src], axis=-1) for k, v in grads.items()}


def check_rnn_step_backward(fn: Callable[..., Any], *, N: int = 3, D: int = 4, H: int = 5, seed: int = 0,
                            dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check ``fn(dh, cache) -> (dx, dh_prev, grads)`` against ``lstm_ref.rnn_step_backward``.

    ``cache`` comes from ``lstm_ref.rnn_step_forward(x, h_prev, params)``;
    grads has W (D, H), U (H, H), b (H,).
    """
    dtype = np.dtype(dtype)
    rng = _rng(seed)
    params = random_params(D, H, 1, rng, dtype)
    x, h0, dh = _normal(rng, (N, D), dtype), _normal(rng, (N, H), dtype, 0.5), _normal(rng, (N, H), dtype)
    h, cache = lstm_ref.rnn_step_forward(x, h0, params)
    what = "rnn_step_backward"
    got = _outputs(what, _call(fn, what, dh.copy(), cache), ("dx", "dh_prev", "grads"), "(dx, dh_prev, grads)")
    got.update(_grads_outputs(what, got.pop("grads"), _PARAM_KEYS))

    def ref(upstream: np.ndarray) -> Outputs:
        dx, dh_prev, grads = lstm_ref.rnn_step_backward(upstream, cache)
        return {"dx": dx, "dh_prev": dh_prev, **_named_grads(grads)}

    expected = ref(dh)
    deriv = 1.0 - h**2  # (N, H) tanh'(a) = 1 - h^2
    mistakes = [
        Mistake("the tanh derivative (1 - h^2) is missing", lambda: ref(dh / deriv)),
        Mistake("the tanh derivative is 1 - h^2 with h = tanh(a) itself, not 1 - tanh(h)^2",
                lambda: ref(dh * (1.0 - np.tanh(h) ** 2) / deriv)),
        Mistake("every gradient has the wrong sign", lambda: _scaled(expected, -1.0)),
        Mistake("grads['U'] looks transposed: dU = h_prev.T @ da", lambda: {"grads['U']": expected["grads['U']"].T}),
    ]
    _compare(what, got, expected, mistakes, _tolerance(dtype), _GRAD_DIMS)


def _gate_activations(x: np.ndarray, h_prev: np.ndarray, params: Params) -> list[np.ndarray]:
    """i, f, g, o (N, H) each: used only to build mistake hypotheses from the cell state."""
    z = x @ params["W"] + h_prev @ params["U"] + params["b"]  # (N, 4H)
    zi, zf, zg, zo = _blocks(z, 4)
    return [_reference_sigmoid(zi), _reference_sigmoid(zf), np.tanh(zg), _reference_sigmoid(zo)]


def check_lstm_step_backward(fn: Callable[..., Any], *, N: int = 3, D: int = 4, H: int = 5, seed: int = 0,
                             dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check ``fn(dh, dc, cache) -> (dx, dh_prev, dc_prev, grads)`` against ``lstm_ref.lstm_step_backward``.

    ``cache`` comes from ``lstm_ref.lstm_step_forward(x, h_prev, c_prev, params)``;
    dh and dc (N, H) are the upstream gradients of h and c; grads has W (D, 4H),
    U (H, 4H), b (4H,).
    """
    dtype = np.dtype(dtype)
    rng = _rng(seed)
    params = random_params(D, H, 4, rng, dtype)
    x, h0, c0 = _normal(rng, (N, D), dtype), _normal(rng, (N, H), dtype, 0.5), _normal(rng, (N, H), dtype)
    dh, dc = _normal(rng, (N, H), dtype), _normal(rng, (N, H), dtype)
    h, c, cache = lstm_ref.lstm_step_forward(x, h0, c0, params)
    what = "lstm_step_backward"
    got = _outputs(what, _call(fn, what, dh.copy(), dc.copy(), cache), ("dx", "dh_prev", "dc_prev", "grads"),
                   "(dx, dh_prev, dc_prev, grads)")  # fmt: skip
    got.update(_grads_outputs(what, got.pop("grads"), _PARAM_KEYS))

    def ref(dh_: np.ndarray, dc_: np.ndarray) -> Outputs:
        dx, dh_prev, dc_prev, grads = lstm_ref.lstm_step_backward(dh_, dc_, cache)
        return {"dx": dx, "dh_prev": dh_prev, "dc_prev": dc_prev, **_named_grads(grads)}

    expected = ref(dh, dc)
    i, f, g, o = _gate_activations(x, h0, params)
    tanh_c = np.tanh(c)
    through_tanh = dh * o * (1.0 - tanh_c**2)  # (N, H) the part of dh that reaches c
    mistakes = [
        Mistake("the upstream gradient dc is ignored: the cell gradient is dc + dh * o * (1 - tanh(c)^2)",
                lambda: ref(dh, np.zeros_like(dc))),
        Mistake("dh does not reach the cell: the cell gradient is dc + dh * o * (1 - tanh(c)^2)",
                lambda: ref(dh, dc - through_tanh)),
        Mistake("the tanh derivative on the cell is missing: dc + dh * o * (1 - tanh(c)^2), not dc + dh * o",
                lambda: ref(dh, dc - through_tanh + dh * o)),
        Mistake("dc_prev misses the forget gate: dc_prev = (cell gradient) * f",
                lambda: {"dc_prev": expected["dc_prev"] / f}),
        Mistake("every gradient has the wrong sign", lambda: _scaled(expected, -1.0)),
    ]
    grads = {k: v for k, v in expected.items() if k.startswith("grads")}
    mistakes += [
        Mistake(f"in grads, {_permutation_message(LSTM_GATES, src)}", lambda src=src: _permuted_grads(grads, src))
        for src in _permutations(4)
    ]
    _compare(what, got, expected, mistakes, _tolerance(dtype), _GRAD_DIMS)


def _bptt_model(dhs: np.ndarray, caches: Sequence[Any], *, accumulate: str = "all", carry: str = "hc",
                dout_shift: int = 0, dx_shift: int = 0) -> Outputs:  # fmt: skip
    """BPTT through the reference step backward, optionally with one usual mistake.

    ``accumulate``: "all" (correct: sum over t), "first" (grads of step 0 only:
    overwritten in a loop running backwards) or "last" (step T-1 only);
    ``carry``: the state gradients passed back from step to step;
    ``dout_shift``: step t reads dhs[:, t + dout_shift] with Python's indexing (-1
    is the last step) and zero past the end;
    ``dx_shift``: dx of step t is stored at t + dx_shift (dropped outside).
    """
    N, T, H = dhs.shape
    dh_next = np.zeros((N, H), dhs.dtype)
    dc_next = np.zeros((N, H), dhs.dtype)
    dxs: list[np.ndarray] = [np.zeros(0)] * T
    total: dict[str, np.ndarray] = {}
    for t in reversed(range(T)):
        s = t + dout_shift
        upstream = dhs[:, s] if s < T else np.zeros((N, H), dhs.dtype)
        dx, dh_prev, dc_prev, grads = lstm_ref.lstm_step_backward(upstream + dh_next, dc_next, caches[t])
        dxs[t] = dx
        dh_next = dh_prev if "h" in carry else np.zeros_like(dh_prev)
        dc_next = dc_prev if "c" in carry else np.zeros_like(dc_prev)
        if accumulate == "all":
            total = {k: total.get(k, 0) + grads[k] for k in _PARAM_KEYS}
        elif accumulate == "first" or (accumulate == "last" and t == T - 1):
            total = {k: grads[k] for k in _PARAM_KEYS}
    dx_all = np.stack(dxs, axis=1)  # (N, T, D)
    if dx_shift:
        shifted = np.zeros_like(dx_all)
        if dx_shift > 0:
            shifted[:, dx_shift:] = dx_all[:, :-dx_shift]
        else:
            shifted[:, :dx_shift] = dx_all[:, -dx_shift:]
        dx_all = shifted
    return {"dx": dx_all, "dh0": dh_next, "dc0": dc_next, **_named_grads(total)}


def lstm_step_caches(x: np.ndarray, params: Params, h0: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Run ``lstm_ref.lstm_step_forward`` over a sequence x (N, T, D): hs (N, T, H) and the T step caches."""
    h, c = h0, c0
    hs, caches = [], []
    for t in range(x.shape[1]):
        h, c, cache = lstm_ref.lstm_step_forward(x[:, t], h, c, params)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches  # (N, T, H), T caches


def check_lstm_bptt(fn: Callable[..., Any], *, N: int = 2, T: int = 5, D: int = 3, H: int = 4, seed: int = 0,
                    dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check backprop through time ``fn(dhs, caches) -> (dx, dh0, dc0, grads)`` against ``lstm_ref.lstm_backward``.

    ``caches`` are the T step caches of ``lstm_ref.lstm_step_forward`` over a
    sequence (see :func:`lstm_step_caches`), dhs (N, T, H) the upstream
    gradient of every h_t. dx (N, T, D); dh0, dc0 (N, H); grads summed over time.
    """
    dtype = np.dtype(dtype)
    rng = _rng(seed)
    params = random_params(D, H, 4, rng, dtype)
    x, h0, c0 = _normal(rng, (N, T, D), dtype), _normal(rng, (N, H), dtype, 0.5), _normal(rng, (N, H), dtype)
    dhs = _normal(rng, (N, T, H), dtype)
    _, caches = lstm_step_caches(x, params, h0, c0)
    what = "lstm_bptt"
    got = _outputs(what, _call(fn, what, dhs.copy(), list(caches)), ("dx", "dh0", "dc0", "grads"),
                   "(dx, dh0, dc0, grads)")  # fmt: skip
    got.update(_grads_outputs(what, got.pop("grads"), _PARAM_KEYS))
    _, _, seq_cache = lstm_ref.lstm_forward(x, params, h0, c0, variant="standard")
    dx, dh0, dc0, grads = lstm_ref.lstm_backward(dhs, seq_cache)
    expected = {"dx": dx, "dh0": dh0, "dc0": dc0, **_named_grads(grads)}

    def model(**kw: Any) -> Callable[[], Outputs]:
        return lambda: _bptt_model(dhs, caches, **kw)

    def predicted(keys: set[str], **kw: Any) -> Callable[[], Outputs]:
        return lambda: {k: v for k, v in _bptt_model(dhs, caches, **kw).items() if k in keys}

    weights = {k for k in expected if k.startswith("grads")}
    # Without the carry, what a student returns as dh0/dc0 varies: judge dx and the weights.
    dx_weights = weights | {"dx"}
    mistakes = [
        Mistake("the weight gradients are not accumulated over time: grads holds only step 0's (use +=)",
                predicted(weights, accumulate="first")),
        Mistake("the weight gradients are not accumulated over time: grads holds only the last step's (use +=)",
                predicted(weights, accumulate="last")),
        Mistake("dh_prev is not carried back to the previous step (add it to dhs[:, t-1])",
                predicted(dx_weights, carry="c")),
        Mistake("dc_prev is not carried back to the previous step", predicted(dx_weights, carry="h")),
        Mistake("no state gradient is carried back in time: each step sees only dhs[:, t]",
                predicted(dx_weights, carry="")),
        Mistake("off by one in time: step t must use dhs[:, t], not dhs[:, t+1]", model(dout_shift=1)),
        Mistake("off by one in time: step t must use dhs[:, t], not dhs[:, t-1]", model(dout_shift=-1)),
        Mistake("off by one in time: dx of step t belongs at dx[:, t]", model(dx_shift=1)),
        Mistake("off by one in time: dx of step t belongs at dx[:, t]", model(dx_shift=-1)),
    ]
    _compare(what, got, expected, mistakes, _tolerance(dtype), {**_GRAD_DIMS, "dx": "(N, T, D)"})

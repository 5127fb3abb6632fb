"""Answer checkers for the course notebooks.

Each ``check_*`` function takes a student's function, runs it and the
reference implementation of ``lstm_ref`` on fresh random inputs (non-zero
biases and states, seeded), and raises ``AssertionError`` with a message that
says *what* is wrong. To diagnose, the checker evaluates the reference under
each usual mistake (swapped gate blocks, missing or doubled bias, wrong
activation, h and c swapped, forget gate ignored, BPTT gradients not
accumulated, off-by-one in time, ...) and reports the mistake whose output the
student's output matches; else it reports NaN or inf where the reference is
finite (an overflow), or which outputs differ and by how much.

Shapes, seed and dtype are keyword arguments so that hidden tests re-check on
other shapes; the tolerances depend only on the dtype (:data:`TOLERANCES`) and
are the same for public and hidden tests.

An answer that calls the reference implementation (``lstm_ref``'s NumPy or
PyTorch cells, its data windows and weight conversions, ``torch.nn.LSTM``/
``GRU``/``RNN`` and their fused kernels, Keras' recurrent layers) earns
nothing: the student's function runs under a profiler hook (``sys.setprofile``)
and any call from its code into those files fails the check, but for a forward
pass that the task hands the student (``check_bptt_gradients``).

A checked function that calls one of the student's earlier functions
(``tanh`` calls ``sigmoid``, ``lstm_forward`` calls ``lstm_step``, ...) gets
that helper by keyword: where the helper fails its own check, the function
runs with the course's version bound to the helper's name in its module for
the call, so that one mistake costs the points of one test.

Calling conventions (parameter dicts as in the package docstring: W (D, GH),
U (H, GH), b (GH,), gate blocks [i|f|g|o] for the LSTM and [r|z|n] for the GRU):

==========================  =====================================================
checker                     student function
==========================  =====================================================
check_sigmoid, check_tanh   ``fn(x) -> y``, elementwise, same shape and dtype
check_lstm_step             ``fn(x, h_prev, c_prev, params) -> (h, c[, ...])``
check_lstm_forward          ``fn(x, params, h0, c0) -> (hs, cs)``, both (N, T, H)
check_lstm_param_count      ``fn(D, H) -> int``, or the number for given D and H
check_gru_step              ``fn(x, h_prev, params) -> h`` or ``(h, ...)``
check_load_gru_cell         ``fn(cell, params)``: params into a ``torch.nn.GRUCell``, in place
check_rnn_step_backward     ``fn(dh, cache) -> (dx, dh_prev, grads)``
check_lstm_step_backward    ``fn(dh, dc, cache) -> (dx, dh_prev, dc_prev, grads)``
check_lstm_bptt             ``fn(dhs, caches) -> (dx, dh0, dc0, grads)``
check_bptt_loss             ``fn(arrays, dhs) -> float``, sum(hs * dhs)
check_bptt_gradients        ``grads_fn(arrays, dhs) -> dict`` against finite differences of ``loss_fn``
check_windows               ``fn(series, window, horizon) -> (X, y)``, sliding windows
==========================  =====================================================

The caches are those of ``lstm_ref.rnn_step_forward`` and
``lstm_ref.lstm_step_forward``; ``caches`` is the list of the T step caches of
a sequence, oldest first (:func:`lstm_step_caches`), and ``dhs`` (N, T, H) the
upstream gradient of every hidden state. The student's function gets copies of
every input, so it cannot change what the reference sees.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy.special import expit

import lstm_ref
from lstm_ref.gradcheck import gradcheck

Params = Mapping[str, np.ndarray]
# The outputs of the reference, or of the reference under one mistake, keyed by
# name ("h", "dx", "grads['W']", ...). A mistake may predict only some outputs.
Outputs = dict[str, np.ndarray]
# One step of a recurrence with fixed parameters: (x_t, h_prev, c_prev) -> (h, c).
Step = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


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
_PARAM_KEYS = ("W", "U", "b")
# A pre-activation this large saturates the sigmoid to exactly 1.0 in float32
# and float64: the reference with such a gate block computes "gate ignored".
_SATURATE = 60.0

# ---------------------------------------------------------------------------
# Refusing the reference implementation

_REFERENCE_FUNCTIONS = (
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward",
)  # fmt: skip
# The reference forward passes, which an answer may call where the task gives it the forward pass.
_FORWARD_PASSES = ("lstm_ref.lstm_step_forward", "lstm_ref.lstm_forward")
# Other files of reference cells, as (package, path inside it). They are located
# without being imported: importing torch or keras here would cost seconds per check.
_REFERENCE_SOURCES = (
    ("lstm_ref", "_sequence.py"),
    ("lstm_ref", "_layers.py"),
    ("lstm_ref", "torch_backend.py"),
    ("lstm_ref", "data.py"),
    ("lstm_ref", "interop.py"),
    ("torch", "nn/modules/rnn.py"),
    ("keras", "src/layers/rnn/lstm.py"),
    ("keras", "src/layers/rnn/gru.py"),
    ("keras", "src/layers/rnn/simple_rnn.py"),
)
# torch's fused recurrent kernels are C functions: they show up as "c_call" events.
_TORCH_KERNELS = frozenset(
    ("lstm", "lstm_cell", "gru", "gru_cell", "rnn_tanh", "rnn_tanh_cell", "rnn_relu", "rnn_relu_cell")
)


@functools.lru_cache(maxsize=4096)
def _realpath(path: str) -> str:
    """``os.path.realpath``, once per file name: the profiler hook of ``_call`` asks at every call."""
    return os.path.realpath(path)


@functools.cache
def _reference_files() -> frozenset[str]:
    files = {os.path.realpath(getattr(lstm_ref, name).__code__.co_filename) for name in _REFERENCE_FUNCTIONS}
    for package, path in _REFERENCE_SOURCES:
        spec = importlib.util.find_spec(package)  # a top-level package is found without importing it
        if spec is not None and spec.origin:
            files.add(os.path.realpath(os.path.join(os.path.dirname(spec.origin), *path.split("/"))))
    return frozenset(files)


def _public_name(frame: Any) -> str:
    """``lstm_ref.lstm_step_forward`` for a function lstm_ref exports, ``torch.nn.LSTM``, else module.qualname."""
    code = frame.f_code
    if getattr(getattr(lstm_ref, code.co_name, None), "__code__", None) is code:
        return f"lstm_ref.{code.co_name}"
    module, qualname = frame.f_globals.get("__name__", "?"), getattr(code, "co_qualname", code.co_name)  # 3.11+
    if module == "torch.nn.modules.rnn":
        return f"torch.nn.{qualname.split('.')[0]}"
    return f"{module}.{qualname}"


def _fails(check: Callable[[Any], None], fn: Any) -> bool:
    """Whether ``check(fn)`` fails in any way: a wrong answer, a refused one, one that raises."""
    try:
        check(fn)
    except Exception:
        return True
    return False


class _Helper(NamedTuple):
    """A function of the student's that a checked function calls by its name, and what stands in for it."""

    fn: Any  #: the student's function as the test passes it; None: not given
    check: Callable[[Any], None]  #: its own check, at the checked call's sizes, seed and dtype, with its helpers
    course: Callable[..., Any]  #: the course's version, called as the task calls the student's
    form: str  #: that call, for messages: "lstm_step(x, h_prev, c_prev, params) -> (h, c)"


class _Substitution:
    """The course's versions of the student's helpers that fail their own checks, for one checked function.

    One mistake costs one test: the checked function runs with these bound to
    the helpers' names (``stand_ins``) and is judged on its own. A helper that
    passes its check keeps serving the answer as it is (extra return values
    and all). ``label`` is the checked function's name for messages, with a
    note on the course's versions it ran with, or could not reach.
    """

    def __init__(self, what: str, helpers: Mapping[str, _Helper], *, judged: bool = True) -> None:
        """``judged=False``: the course's versions stand in for every helper given, failing or not (to
        see whether the checked function calls them)."""
        self.what, self.judged = what, judged
        self.replaced = {name: h for name, h in helpers.items()
                         if h.fn is not None and (not judged or _fails(h.check, h.fn))}  # fmt: skip
        self.called: set[str] = set()

    def stand_ins(self) -> dict[str, Callable[..., Any]]:
        """A fresh function per replaced helper, to bind to its name: it records the call and runs the course's version.

        Only these functions' frames may call the reference (:func:`_call`): an
        answer calling the course's version or the reference directly is refused.
        """

        def stand_in(name: str, course: Callable[..., Any]) -> Callable[..., Any]:
            def course_version(*args: Any, **kwargs: Any) -> Any:
                self.called.add(name)
                return course(*args, **kwargs)

            return course_version

        return {name: stand_in(name, helper.course) for name, helper in self.replaced.items()}

    def label(self) -> str:
        if not self.replaced:
            return self.what
        used = [name for name in self.replaced if name in self.called]
        if used:  # a helper of a replaced helper is not called: no word on it
            note = f"{self.what} (run with the course's {' and '.join(used)} in place of yours"
            if not self.judged:
                return note + ")"
            return note + (", which fails its own test)" if len(used) == 1 else ", which fail their own tests)")
        if not self.judged:
            return self.what
        them, fail = ("it", "fails its own test") if len(self.replaced) == 1 else ("them", "fail their own tests")
        return (f"{self.what} (your {' and '.join(self.replaced)} {fail}, and {self.what} did not call {them} by "
                "name, so the course's could not stand in)")

    def forms(self) -> str:
        """How the course's versions that ran are called."""
        return "; ".join(self.replaced[name].form for name in self.replaced if name in self.called)


def _changed(before: Any, after: Any) -> bool:
    """Whether ``after``, the copy of ``before`` that the student's code was given, differs from it now.

    Arrays are compared, and the dicts, lists and tuples (caches included) that hold them; other objects
    (numbers, generators, torch modules) are not.
    """
    if isinstance(before, np.ndarray):
        return not (isinstance(after, np.ndarray) and after.shape == before.shape
                    and np.array_equal(after, before, equal_nan=before.dtype.kind in "fc"))  # fmt: skip
    if isinstance(before, Mapping):
        return not isinstance(after, Mapping) or set(before) != set(after) or any(
            _changed(before[k], after[k]) for k in before)  # fmt: skip
    if isinstance(before, (list, tuple)):
        return not isinstance(after, (list, tuple)) or len(before) != len(after) or any(map(_changed, before, after))
    return False


def _call(fn: Callable[..., Any], what: str, *args: Any, names: Sequence[str] = (), allowed: Sequence[str] = (),
          substitution: _Substitution | None = None) -> Any:  # fmt: skip
    """``fn(*copies of args)``, failing if it calls into a reference implementation or changes an argument.

    A call from the answer's code into a reference file fails, unless the
    function's public name (``_public_name``) is in ``allowed`` (a forward pass
    the task hands the student, say): until that call returns, nothing is
    checked. With a ``substitution``, its stand-ins are bound for the call to
    their names among the module globals of ``fn`` (:func:`_substituted`), and
    they may call the reference; an exception raised after one ran is reported
    with the note, as it may come from calling the course's version otherwise
    than the task says. The grader's kernel, which runs a remote answer, reads
    ``allowed`` and the stand-ins from the hook. ``names`` name the arguments
    in messages.
    """
    if not callable(fn):
        raise AssertionError(f"{what} must be a function, got {type(fn).__name__}")
    copies = copy.deepcopy(args)
    stand_ins = substitution.stand_ins() if substitution else {}
    exempt = frozenset(f.__code__ for f in stand_ins.values())
    files = _reference_files()
    called: list[str] = []
    running: list[Any] = []  # the frame of an allowed reference call in progress

    def hook(frame: Any, event: str, arg: Any) -> None:
        if called:
            return
        if running:
            if event == "return" and frame is running[0]:
                running.clear()
        elif event == "call" and frame.f_code in exempt:
            running.append(frame)
        elif event == "call" and _realpath(frame.f_code.co_filename) in files:
            name = _public_name(frame)
            if name in allowed:
                running.append(frame)
            else:
                called.append(name)
        elif event == "c_call" and getattr(arg, "__name__", None) in _TORCH_KERNELS:
            owner = getattr(arg, "__module__", None) or type(getattr(arg, "__self__", None)).__module__
            if owner.startswith("torch"):
                called.append(f"torch.{arg.__name__}")

    hook.allowed, hook.substitutes = tuple(allowed), stand_ins
    label = substitution.label if substitution else lambda: what
    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        with _substituted(fn, stand_ins):
            result = fn(*copies)
    except AssertionError:
        raise
    except Exception as exc:
        if not (substitution and substitution.called) or called:
            raise
        raise AssertionError(f"{label()}: {type(exc).__name__}: {exc} (the course's version: {substitution.forms()})"
                             ) from exc  # fmt: skip
    finally:
        sys.setprofile(previous)
        if called:
            raise AssertionError(f"{label()} calls the reference implementation {called[0]}; implement it from the equations")
    for k, (before, after) in enumerate(zip(args, copies)):
        if _changed(before, after):
            name = names[k] if k < len(names) else f"argument {k + 1}"
            raise AssertionError(f"{label()} changes its input {name} in place: the caller still needs it, "
                                 "so compute into new arrays (y = 2 * x, not x *= 2)")
    return result


@contextlib.contextmanager
def _substituted(fn: Callable[..., Any], stand_ins: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Within the block, the module globals of ``fn`` (a function or a ``functools.partial`` of one)
    named in ``stand_ins`` that exist there are bound to those functions; all restored on exit."""
    namespace = getattr(getattr(fn, "func", fn), "__globals__", {})
    saved = {name: namespace[name] for name in stand_ins if name in namespace}
    namespace.update({name: stand_ins[name] for name in saved})
    try:
        yield
    finally:
        namespace.update(saved)


# ---------------------------------------------------------------------------
# Comparing outputs and diagnosing mistakes


class Mistake(NamedTuple):
    """A usual mistake: what to tell the student, and the outputs it produces."""

    message: str
    outputs: Callable[[], Outputs]


def _float_dtype(dtype: Any) -> np.dtype:
    """The checker's ``dtype`` argument as a NumPy dtype with a tolerance, else ValueError."""
    if np.dtype(dtype) not in TOLERANCES:
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    return np.dtype(dtype)


def _close(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> bool:
    return got.shape == expected.shape and bool(
        np.all(np.isfinite(got)) and np.allclose(got, expected, rtol=tol.rtol, atol=tol.atol)
    )


def _shape_problem(name: str, got: Any, expected: np.ndarray, dims: Mapping[str, str], calls: str = "") -> str | None:
    """Why ``got`` cannot be compared with ``expected`` (type, shape, dtype), or None.

    ``calls`` names the student's functions that the checked function calls
    ("your sigmoid and tanh"): a wrong dtype may come from any of them.
    """
    want = f"{dims[name]} = {expected.shape}" if name in dims else str(expected.shape)
    if got is None:
        return f"{name} is None: return an array of shape {want}"
    if not isinstance(got, np.ndarray) or got.dtype.kind != "f":
        # An object that stays in the grader's student kernel names its type there (grader.trusted.Remote).
        kind = f"an array of dtype {got.dtype}" if isinstance(got, np.ndarray) else (
            getattr(got, "__kernel_type__", None) or type(got).__name__)
        return f"{name} is {kind}; expected a float numpy array of shape {want}"
    if got.shape != expected.shape:
        hint = ""
        if got.ndim == 2 and got.shape == expected.shape[::-1]:
            hint = " (transposed?)"
        elif got.ndim == expected.ndim + 1 and got.shape[1:] == expected.shape:
            hint = " (sum over the batch axis N)"
        return f"{name} has shape {got.shape}, expected {want}{hint}"
    if got.dtype != expected.dtype:
        hint = ": build new arrays in the inputs' dtype" + (f" and check the dtype returned by {calls}" if calls else "")
        return f"{name} has dtype {got.dtype}; for {expected.dtype} inputs it must be {expected.dtype}{hint}"
    return None


def _nonfinite_problem(name: str, got: np.ndarray, expected: np.ndarray,
                       explain: Callable[[np.ndarray], str] | None) -> str | None:  # fmt: skip
    """What to say when ``got`` is NaN or inf where ``expected`` is finite, or None.

    ``explain(bad)`` says why, given the mask of those entries; by default, the usual causes.
    """
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if not bad.any():
        return None
    why = explain(bad) if explain else "an exp that overflows or a division by zero gives them"
    return f"{name} has NaN or inf values ({bad.sum()} of {bad.size}) where the expected values are finite: {why}"


def _compare(what: str, got: Outputs, expected: Outputs, mistakes: Sequence[Mistake], dims: Mapping[str, str], *,
             calls: str = "", explain_nonfinite: Callable[[np.ndarray], str] | None = None) -> None:  # fmt: skip
    """Pass if ``got`` equals ``expected``; else raise the first mistake that explains it, or what differs.

    A mistake never explains NaN or inf (:func:`_close`); without one, NaN or inf
    where the expected values are finite is reported before the errors, explained
    by ``explain_nonfinite`` (see :func:`_nonfinite_problem`). ``calls``: see :func:`_shape_problem`.
    """
    tol = TOLERANCES[next(iter(expected.values())).dtype]
    got = {k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in got.items()}  # 0-d math gives scalars
    for name, value in expected.items():
        problem = _shape_problem(name, got.get(name), value, dims, calls)
        if problem:
            raise AssertionError(f"{what}: {problem}")
    wrong = [name for name in expected if not _close(got[name], expected[name], tol)]
    if not wrong:
        return
    for mistake in mistakes:
        if all(_close(got[name], value, tol) for name, value in mistake.outputs().items()):
            raise AssertionError(f"{what}: {mistake.message}")
    for name in wrong:
        problem = _nonfinite_problem(name, got[name], expected[name], explain_nonfinite)
        if problem:
            raise AssertionError(f"{what}: {problem}")
    right = [name for name in expected if name not in wrong]
    errors = ", ".join(f"{name} (max abs error {np.max(np.abs(got[name] - expected[name])):.3g})" for name in wrong)
    raise AssertionError(
        f"{what}: wrong {errors}" + (f"; {', '.join(right)} correct" if right else "")
        + " -- no usual mistake explains it: compare your code with the equations line by line"
    )


def _named_grads(grads: Mapping[str, np.ndarray]) -> Outputs:
    return {f"grads['{k}']": grads[k] for k in _PARAM_KEYS}


def _outputs(what: str, result: Any, names: Sequence[str], form: str) -> Outputs:
    """Name the parts of a student's return value ``result`` (a tuple ``form``); a grads dict is flattened."""
    if result is None:
        raise AssertionError(f"{what} returned None; it must return {form}")
    parts = result if isinstance(result, tuple) else (result,)
    if len(parts) < len(names):
        raise AssertionError(f"{what} returned {len(parts)} value(s); it must return {form}")
    named = dict(zip(names, parts))
    if "grads" in named:
        grads = named.pop("grads")
        if not isinstance(grads, Mapping):
            raise AssertionError(f"{what}: grads must be a dict with keys 'W', 'U', 'b', got {type(grads).__name__}")
        missing = [k for k in _PARAM_KEYS if k not in grads]
        if missing:
            raise AssertionError(f"{what}: grads has no key {', '.join(map(repr, missing))}")
        named.update(_named_grads(grads))
    return named


# ---------------------------------------------------------------------------
# Random inputs and the parameter transforms that turn the reference into a mistake


def _random_params(D: int, H: int, gates: int, rng: np.random.Generator, dtype: np.dtype,
                   recurrent_bias: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
    """W (D, GH), U (H, GH), a non-zero b (GH,) (and bh (GH,)) in ``dtype``."""
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


def _blocks(a: np.ndarray, gates: int) -> list[np.ndarray]:
    return np.split(a, gates, axis=-1)


def _permuted(params: Params, src: Sequence[int], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Params whose gate block q of each of ``keys`` is the original block ``src[q]``."""
    return {**params, **{k: np.concatenate([_blocks(params[k], len(src))[s] for s in src], axis=-1) for k in keys}}


def _with_block(params: Params, gate: int, gates: int, keys: Sequence[str],
                change: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:  # fmt: skip
    """Params with gate block ``gate`` of each of ``keys`` replaced by ``change(block)``."""
    out = dict(params)
    for k in keys:
        blocks = _blocks(params[k], gates)
        blocks[gate] = change(blocks[gate])
        out[k] = np.concatenate(blocks, axis=-1)
    return out


def _every_block(params: Params, key: str, gates: int, change: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """Params with ``change`` applied to every gate block of ``params[key]``."""
    return {**params, key: np.concatenate([change(block) for block in _blocks(params[key], gates)], axis=-1)}


def _gate_forced_to_one(params: Params, gate: int, gates: int) -> dict[str, np.ndarray]:
    """Params whose gate ``gate`` is sigmoid(_SATURATE) = 1 for every input."""
    zeroed = _with_block(params, gate, gates, [k for k in ("W", "U", "bh") if k in params], np.zeros_like)
    return _with_block(zeroed, gate, gates, ["b"], lambda b: np.full_like(b, _SATURATE))


def _permutation_message(names: str, src: Sequence[int]) -> str:
    order = ", ".join(names)
    moved = [q for q, s in enumerate(src) if s != q]
    if len(moved) == 2:
        return f"the {names[moved[0]]} and {names[moved[1]]} gate blocks look swapped (the block order is {order})"
    used = ", ".join(f"{names[q]} from the {names[s]} block" for q in moved for s in [src[q]])
    return f"the gate blocks look permuted: your code takes {used} (the block order is {order})"


def _permutations(gates: int) -> list[tuple[int, ...]]:
    return [p for p in itertools.permutations(range(gates)) if p != tuple(range(gates))]


# ---------------------------------------------------------------------------
# sigmoid and tanh

_ACTIVATION_PROBE = np.array([-1000.0, -80.0, -30.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 2.0, 30.0, 80.0, 1000.0])
Activation = Callable[[np.ndarray], np.ndarray]
# NaN or inf only at |x| >= this is blamed on exp overflowing (the first to overflow, exp(2x), does from |x| = 44).
_OVERFLOW_FROM = 20.0


def _check_activation(fn: Activation, what: str, reference: Activation, others: Mapping[str, Activation],
                      advice: str, seed: int, dtype: np.dtype,
                      helpers: Mapping[str, _Helper] | None = None) -> None:  # fmt: skip
    """Values on extreme, random and 0-d inputs (overflow warnings silenced), then no overflow at all.

    NaN or inf in the output is reported with the inputs that give it. ``advice``
    completes "never evaluate exp of a large positive number, e.g. ..." for an
    output that overflows to NaN or inf, or overflows on the way.
    """
    substitution = _Substitution(what, helpers or {})
    rng = np.random.default_rng(seed)
    never = f"never evaluate exp of a large positive number, e.g. {advice}"
    for x in (_ACTIVATION_PROBE.astype(dtype), _normal(rng, (3, 4, 5), dtype, 3.0), np.asarray(0.7, dtype)):
        with np.errstate(all="ignore"):
            got = _call(fn, what, x, names=("x",), substitution=substitution)
        mistakes = [Mistake(msg, lambda f=f, x=x: {"output": f(x).astype(x.dtype)}) for msg, f in others.items()]

        def overflow(bad: np.ndarray, x: np.ndarray = x) -> str:
            inputs = np.unique(x[bad])
            listed = ", ".join(f"{v:g}" for v in inputs[:4]) + (", ..." if len(inputs) > 4 else "")
            if np.abs(inputs).min() < _OVERFLOW_FROM:
                return f"for x = {listed}"
            return f"exp overflows for inputs of large magnitude (x = {listed}); {never}"

        _compare(f"{substitution.label()} on inputs of shape {x.shape}", {"output": got}, {"output": reference(x)},
                 mistakes, {}, explain_nonfinite=overflow)  # fmt: skip
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            _call(fn, what, _ACTIVATION_PROBE.astype(dtype), names=("x",), substitution=substitution)
        except FloatingPointError as err:
            raise AssertionError(f"{substitution.label()} overflows for large |x| ({err}): {never}") from None


def check_sigmoid(fn: Activation, *, seed: int = 0, dtype: np.dtype = np.float64) -> None:
    """Check ``fn(x) = 1 / (1 + exp(-x))`` elementwise, to rounding, without overflow for |x| up to 1000."""
    others = {
        "returns sigmoid(-x): the sign inside exp is flipped": lambda x: expit(-x),
        "returns tanh(x), not the sigmoid": np.tanh,
    }
    advice = "use exp(-|x|) and pick the formula by the sign of x"
    _check_activation(fn, "sigmoid", expit, others, advice, seed, _float_dtype(dtype))


def check_tanh(fn: Activation, *, sigmoid: Activation | None = None, seed: int = 0,
               dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check ``fn(x) = tanh(x) = 2 sigmoid(2x) - 1`` elementwise, without overflow for |x| up to 1000.

    ``sigmoid``: the student's sigmoid, which ``fn`` must call by that name
    (the task: tanh in terms of sigmoid); where it fails ``check_sigmoid``,
    ``fn`` runs with the course's in its place.
    """
    dtype = _float_dtype(dtype)
    others = {
        "returns the sigmoid, not tanh": expit,
        "returns 2 sigmoid(x) - 1 = tanh(x/2): the argument must be 2x": lambda x: 2.0 * expit(x) - 1.0,
        "returns 2 sigmoid(2x) without the - 1": lambda x: 2.0 * expit(2.0 * x),
    }
    advice = "write tanh(x) = 2 sigmoid(2x) - 1 with a sigmoid that never overflows"
    helpers = _activation_helpers(sigmoid, None, seed, dtype)
    _check_activation(fn, "tanh", np.tanh, others, advice, seed, dtype, helpers)
    if sigmoid is not None:  # right values: from sigmoid, as the task asks, or from another tanh?
        spy = _Substitution("tanh", {"sigmoid": helpers["sigmoid"]}, judged=False)
        _call(fn, "tanh", _ACTIVATION_PROBE.astype(dtype), names=("x",), substitution=spy)
        if not spy.called:
            raise AssertionError("tanh gives the right values but does not call sigmoid (by that name): write "
                                 "tanh(x) = 2 sigmoid(2x) - 1 with your sigmoid, as the task asks")


def _course_sigmoid(x: np.ndarray) -> np.ndarray:
    """The course's ``sigmoid(x)``."""
    return expit(x)


def _course_tanh(x: np.ndarray) -> np.ndarray:
    """The course's ``tanh(x)``."""
    return np.tanh(x)


def _activation_helpers(sigmoid: Activation | None, tanh: Activation | None, seed: int, dtype: np.dtype,
                        ) -> dict[str, _Helper]:  # fmt: skip
    """The student's sigmoid and tanh (which calls sigmoid) as helpers, checked as their test cells check them."""
    return {
        "sigmoid": _Helper(sigmoid, functools.partial(check_sigmoid, seed=seed, dtype=dtype), _course_sigmoid,
                          "sigmoid(x)"),
        "tanh": _Helper(tanh, functools.partial(check_tanh, sigmoid=sigmoid, seed=seed, dtype=dtype), _course_tanh,
                       "tanh(x)"),
    }  # fmt: skip


# ---------------------------------------------------------------------------
# LSTM forward

_STATE_DIMS = {"h": "(N, H)", "c": "(N, H)", "hs": "(N, T, H)", "cs": "(N, T, H)"}
_STEP_ARGS = ("x", "h_prev", "c_prev", "params")


def _course_lstm_step(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray,
                      params: Params) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The course's ``lstm_step(x, h_prev, c_prev, params) -> (h, c)``: ``lstm_ref.lstm_step_forward``'s states."""
    h, c, _ = lstm_ref.lstm_step_forward(x, h_prev, c_prev, params)
    return h, c


def _lstm_step(params: Params) -> Step:
    """The reference step with ``params``."""
    return lambda x, h, c: _course_lstm_step(x, h, c, params)


def _lstm_gate_model(params: Params, activations: str = "ssts", h_from: str = "tanh(c)") -> Step:
    """The LSTM step with other gate activations or another output line.

    ``activations`` names the activation of i, f, g, o ("s" sigmoid, "t" tanh);
    ``h_from`` is "c" (tanh missing) or "tanh(c_prev)". Only mistakes that no
    parameter transform of the reference expresses are computed here.
    """

    def step(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = x @ params["W"] + h_prev @ params["U"] + params["b"]  # (N, 4H)
        act = {"s": expit, "t": np.tanh}
        i, f, g, o = (act[a](block) for a, block in zip(activations, _blocks(z, 4)))  # (N, H) each
        c = f * c_prev + i * g  # (N, H)
        h = o * {"tanh(c)": np.tanh(c), "c": c, "tanh(c_prev)": np.tanh(c_prev)}[h_from]  # (N, H)
        return h, c

    return step


def _lstm_step_mistakes(params: Params, D: int, H: int) -> list[tuple[str, Step]]:
    """The usual mistakes of an LSTM step, each as the step function that makes it."""
    ref = _lstm_step(params)

    def swapped_return(x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h_next, c_next = ref(x, h, c)
        return c_next, h_next

    WU = np.concatenate([params["W"], params["U"]], axis=0)  # (D+H, 4H), [W; U]
    UW = np.concatenate([params["U"], params["W"]], axis=0)  # (H+D, 4H), [U; W]
    mistakes = [
        ("the forget gate is ignored: c = c_prev + i * g, as if f = 1", _lstm_step(_gate_forced_to_one(params, 1, 4))),
        ("the output gate is ignored: h = tanh(c), as if o = 1", _lstm_step(_gate_forced_to_one(params, 3, 4))),
        ("the bias b is missing", _lstm_step({**params, "b": np.zeros_like(params["b"])})),
        ("the bias b is added twice", _lstm_step({**params, "b": 2 * params["b"]})),
        ("h and c are swapped in the return value: return (h, c)", swapped_return),
        ("the concatenation order is wrong: [h_prev, x] against the stacked [W; U] (x must come first)",
         _lstm_step({**params, "W": WU[H:], "U": WU[:H]})),
        ("the concatenation order is wrong: [x, h_prev] against [U; W] (stack W over U)",
         _lstm_step({**params, "W": UW[:D], "U": UW[D:]})),
        ("the recurrent weight blocks look transposed: use h_prev @ U, not U.T",
         _lstm_step(_every_block(params, "U", 4, np.transpose))),
        ("h = o * c misses the tanh: h = o * tanh(c)", _lstm_gate_model(params, h_from="c")),
        ("h uses the previous cell state: h = o * tanh(c) with the new c", _lstm_gate_model(params, h_from="tanh(c_prev)")),
    ]  # fmt: skip
    if D == H:
        mistakes.append(("the input weight blocks look transposed: use x @ W, not W.T",
                         _lstm_step(_every_block(params, "W", 4, np.transpose))))  # fmt: skip
    for k, name in enumerate(LSTM_GATES):
        used, right = ("sigmoid", "tanh") if name == "g" else ("tanh", "sigmoid")
        activations = "ssts"[:k] + used[0] + "ssts"[k + 1 :]
        mistakes.append((f"gate {name} uses {used}; it must use {right}", _lstm_gate_model(params, activations)))
    for src in _permutations(4):
        mistakes.append((_permutation_message(LSTM_GATES, src), _lstm_step(_permuted(params, src, _PARAM_KEYS))))
    return mistakes


def _lstm_inputs(
    shape: tuple[int, ...], H: int, seed: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], np.random.Generator]:
    """x ``shape`` (N, D) or (N, T, D), non-zero h0 and c0 (N, H), params, and the generator for more."""
    rng = np.random.default_rng(seed)
    params = _random_params(shape[-1], H, 4, rng, dtype)
    x, h0, c0 = _normal(rng, shape, dtype), _normal(rng, (shape[0], H), dtype, 0.5), _normal(rng, (shape[0], H), dtype)
    return x, h0, c0, params, rng


def check_lstm_step(fn: Callable[..., Any], *, sigmoid: Activation | None = None, tanh: Activation | None = None,
                    N: int = 3, D: int = 4, H: int = 5, seed: int = 0, dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check one LSTM step ``fn(x, h_prev, c_prev, params) -> (h, c)`` against ``lstm_ref.lstm_step_forward``.

    x (N, D); h_prev, c_prev (N, H) non-zero; params W (D, 4H), U (H, 4H),
    b (4H,) non-zero. Keep D != H so that a transposed weight cannot hide.
    ``sigmoid``, ``tanh``: the student's, which ``fn`` calls; one that fails
    its own check is replaced by the course's while ``fn`` runs.
    """
    dtype = _float_dtype(dtype)
    substitution = _Substitution("lstm_step", _activation_helpers(sigmoid, tanh, seed, dtype))
    x, h0, c0, params, _ = _lstm_inputs((N, D), H, seed, dtype)
    expected = dict(zip(("h", "c"), _lstm_step(params)(x, h0, c0)))
    result = _call(fn, "lstm_step", x, h0, c0, params, names=_STEP_ARGS, substitution=substitution)
    what = substitution.label()
    got = _outputs(what, result, ("h", "c"), "(h, c)")
    mistakes = [
        Mistake(msg, lambda step=step: dict(zip(("h", "c"), step(x, h0, c0))))
        for msg, step in _lstm_step_mistakes(params, D, H)
    ]
    _compare(what, got, expected, mistakes, _STATE_DIMS, calls="your sigmoid and tanh")


def _lstm_sequence(step: Step, x: np.ndarray, h0: np.ndarray, c0: np.ndarray, *, carry: str = "hc",
                   before: bool = False) -> Outputs:  # fmt: skip
    """hs and cs (N, T, H) of a sequence by ``step``. ``carry`` names the states
    passed from step to step (the others restart from h0, c0); with ``before``
    slot t holds the states before step t (off by one)."""
    h, c = h0, c0
    hs, cs = [], []
    for t in range(x.shape[1]):
        h_next, c_next = step(x[:, t], h, c)
        hs.append(h if before else h_next)
        cs.append(c if before else c_next)
        h = h_next if "h" in carry else h0
        c = c_next if "c" in carry else c0
    return {"hs": np.stack(hs, axis=1), "cs": np.stack(cs, axis=1)}  # (N, T, H) each


def check_lstm_forward(fn: Callable[..., Any], *, lstm_step: Callable[..., Any] | None = None,
                       sigmoid: Activation | None = None, tanh: Activation | None = None, N: int = 2, T: int = 6,
                       D: int = 3, H: int = 4, seed: int = 0, dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check a sequence forward ``fn(x, params, h0, c0) -> (hs, cs)`` against ``lstm_ref.lstm_forward``.

    x (N, T, D); h0, c0 (N, H) non-zero; hs[:, t] and cs[:, t] (N, H) are the
    states after the step that reads x[:, t]. ``lstm_step``, ``sigmoid``,
    ``tanh``: the student's, which ``fn`` calls (``lstm_step`` calls the
    other two); one that fails its own check (``check_lstm_step`` with the
    others, at these N, D, H, seed and dtype) is replaced by the course's while
    ``fn`` runs.
    """
    dtype = _float_dtype(dtype)
    check_step = functools.partial(check_lstm_step, sigmoid=sigmoid, tanh=tanh, N=N, D=D, H=H, seed=seed, dtype=dtype)
    form = "lstm_step(x, h_prev, c_prev, params) -> (h, c)"
    substitution = _Substitution("lstm_forward", {
        **_activation_helpers(sigmoid, tanh, seed, dtype),
        "lstm_step": _Helper(lstm_step, check_step, _course_lstm_step, form),
    })  # fmt: skip
    x, h0, c0, params, _ = _lstm_inputs((N, T, D), H, seed, dtype)
    hs, _, cache = lstm_ref.lstm_forward(x, params, h0, c0, variant="standard")
    expected = {"hs": hs, "cs": cache.c[1:].transpose(1, 0, 2)}  # cache.c is time-major (T+1, N, H), c[0] = c0
    result = _call(fn, "lstm_forward", x, params, h0, c0, names=("x", "params", "h0", "c0"), substitution=substitution)
    what = substitution.label()
    got = _outputs(what, result, ("hs", "cs"), "(hs, cs), each (N, T, H)")
    ref = _lstm_step(params)
    zeros = np.zeros_like(h0)

    def seq(step: Step = ref, h_0: np.ndarray = h0, c_0: np.ndarray = c0, **kw: Any) -> Callable[[], Outputs]:
        return lambda: _lstm_sequence(step, x, h_0, c_0, **kw)

    def backwards() -> Outputs:
        return {k: v[:, ::-1] for k, v in _lstm_sequence(ref, x[:, ::-1], h0, c0).items()}

    mistakes = [
        Mistake("the states are not carried from one step to the next (every step starts from h0, c0)", seq(carry="")),
        Mistake("the cell state c is not carried from one step to the next", seq(carry="h")),
        Mistake("the hidden state h is not carried from one step to the next", seq(carry="c")),
        Mistake("the sequence starts from zeros: the first step must read the given h0 and c0", seq(h_0=zeros, c_0=zeros)),
        Mistake("the sequence starts from h = 0: the first step must read the given h0", seq(h_0=zeros)),
        Mistake("the sequence starts from c = 0: the first step must read the given c0", seq(c_0=zeros)),
        Mistake("off by one in time: hs[:, t] must hold h_t after step t, not the state before it", seq(before=True)),
        Mistake("the sequence is read backwards in time", backwards),
    ]
    mistakes += [Mistake(f"in every step, {msg}", seq(step)) for msg, step in _lstm_step_mistakes(params, D, H)]
    _compare(what, got, expected, mistakes, _STATE_DIMS, calls="your lstm_step, sigmoid and tanh")


def check_lstm_param_count(fn_or_value: Callable[[int, int], int] | int, *, D: int | None = None,
                           H: int | None = None) -> None:  # fmt: skip
    """Check the number of parameters of one LSTM layer, 4 (D H + H^2 + H).

    Pass a function ``fn(D, H)`` (checked on several sizes), or a number together with D and H.
    """
    if callable(fn_or_value) == (D is not None and H is not None) or (D is None) != (H is None):
        raise ValueError("pass a function fn(D, H) alone, or a number with both D and H")
    sizes = [(D, H)] if D is not None else [(3, 5), (12, 100), (64, 7)]
    for d, h in sizes:
        got = _call(fn_or_value, "the parameter count", d, h) if callable(fn_or_value) else fn_or_value
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
            raise AssertionError(f"the parameter count must be an integer, got {got!r} ({type(got).__name__})")
        rnn = d * h + h * h + h
        reasons = {
            rnn: "that is a vanilla RNN's count: an LSTM has 4 gate blocks (i, f, g, o), each with its own W, U and b",
            4 * (d * h + h * h): "the 4H biases are missing",
            4 * (d * h + h * h + 2 * h): "the course's layer has one bias vector of 4H (PyTorch's two biases only add up)",
            3 * rnn: "that is a GRU's count (3 blocks); an LSTM has 4 (i, f, g, o)",
            4 * (d * h + h): "the recurrent weights U (H, 4H) are missing",
        }
        if got != 4 * rnn:
            reason = reasons.get(int(got), "the count is 4 (D H + H^2 + H)")
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
    if reset_mode not in lstm_ref.GRU_RESET_MODES:
        raise ValueError(f"reset_mode must be one of {', '.join(lstm_ref.GRU_RESET_MODES)}, got {reset_mode!r}")
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    recurrent_bias = reset_mode == "recurrent-bias-after-multiplication"
    params = _random_params(D, H, 3, rng, dtype, recurrent_bias=recurrent_bias)
    x, h0 = _normal(rng, (N, D), dtype), _normal(rng, (N, H), dtype, 0.5)

    def ref(p: Params, mode: str = reset_mode) -> Callable[[], Outputs]:
        return lambda: {"h": lstm_ref.gru_step_forward(x, h0, p, mode)[0]}

    def r_in_update() -> Outputs:  # h = (1 - z) n + z r h_prev
        r, z, n = np.split(lstm_ref.gru_step_forward(x, h0, params, reset_mode)[1].gates, 3, axis=1)
        return {"h": (1 - z) * n + z * r * h0}

    expected = ref(params)()
    what = f"gru_step ({reset_mode})"
    got = _outputs(what, _call(fn, what, x, h0, params, names=("x", "h_prev", "params")), ("h",), "h")
    keys = ("W", "U", "b", "bh") if recurrent_bias else _PARAM_KEYS
    mistakes = [
        Mistake("the update is reversed: h = (1 - z) * n + z * h_prev, not z * n + (1 - z) * h_prev",
                ref(_with_block(params, 1, 3, keys, np.negative))),  # z -> sigmoid(-a) = 1 - z
        Mistake("the reset gate is not applied (as if r = 1)", ref(_gate_forced_to_one(params, 0, 3))),
        Mistake("the bias b is missing", ref({**params, "b": np.zeros_like(params["b"])})),
        Mistake("the bias b is added twice", ref({**params, "b": 2 * params["b"]})),
        Mistake("the update uses r: h = (1 - z) * n + z * h_prev, without the reset gate", r_in_update),
    ]
    # the other placements, with bh (where given) added to b in every block: outside r in the candidate
    summed = {"W": params["W"], "U": params["U"], "b": params["b"] + params.get("bh", 0)}
    if recurrent_bias:
        bh_n_only = {**params, "bh": np.concatenate([np.zeros(2 * H, dtype), params["bh"][2 * H :]])}  # r, z blocks 0
        mistakes += [
            Mistake("the recurrent bias bh is missing", ref({**params, "bh": np.zeros_like(params["bh"])})),
            Mistake("the recurrent bias bh is added to the n block only: h_prev U + bh for the r and z blocks too",
                    ref(bh_n_only)),
            Mistake("bh_n is added outside the reset gate: n = tanh(x W_n + b_n + r * (h_prev U_n + bh_n))",
                    ref(summed, "after-multiplication")),
        ]  # fmt: skip
    without_bh = {k: v for k, v in params.items() if k != "bh"}
    mistakes += [
        Mistake(f"the reset gate is placed as in '{mode}', not '{reset_mode}'", ref(p, mode))
        for mode in ("after-multiplication", "before-multiplication")
        for p in (without_bh, summed)
        if mode != reset_mode
    ]
    mistakes += [Mistake(_permutation_message(GRU_GATES, src), ref(_permuted(params, src, keys))) for src in _permutations(3)]
    _compare(what, got, expected, mistakes, _STATE_DIMS)


def check_load_gru_cell(fn: Callable[..., Any], *, D: int = 4, H: int = 5, seed: int = 0) -> None:
    """Check ``fn(cell, params)``: it copies a GRU's params (``"recurrent-bias-after-multiplication"``:
    W (D, 3H), U (H, 3H), b, bh (3H,)) into a float64 ``torch.nn.GRUCell(D, H)`` in place, so that the
    cell computes ``lstm_ref.gru_step_forward``: weight_ih = W^T (3H, D), weight_hh = U^T (3H, H),
    bias_ih = b, bias_hh = bh, the gate blocks r, z, n in the same order.
    """
    import torch

    rng = np.random.default_rng(seed)
    p = {"W": rng.normal(size=(D, 3 * H)), "U": rng.normal(size=(H, 3 * H)) / np.sqrt(H),
         "b": rng.normal(size=3 * H), "bh": rng.normal(size=3 * H)}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        cell = torch.nn.GRUCell(D, H, dtype=torch.float64)
    before = {name: value.detach().numpy().copy() for name, value in cell.named_parameters()}

    def load(cell: Any, params: dict) -> Any:
        fn(cell, params)
        return cell

    try:
        loaded = _call(load, "load_gru_cell", cell, p, names=("cell", "params"))
    except NotImplementedError:
        raise
    except RuntimeError as err:  # torch refuses the copy: another shape, or a parameter that records gradients
        how = ("copy inside `with torch.no_grad():`, as the parameters record gradients" if "requires grad" in str(err)
               else "nn.GRUCell stores weight_ih (3H, D) = W.T and weight_hh (3H, H) = U.T")  # fmt: skip
        raise AssertionError(f"load_gru_cell: torch refused a copy ({err}); {how}") from None
    got = {name: value.detach().numpy() for name, value in loaded.named_parameters()}
    expected = {"weight_ih": p["W"].T, "weight_hh": p["U"].T, "bias_ih": p["b"], "bias_hh": p["bh"]}
    rz_swapped = np.r_[H : 2 * H, 0:H, 2 * H : 3 * H]  # the z block first: Keras' order z, r, h
    mistakes = [
        Mistake("bias_ih and bias_hh are swapped: bias_ih = b, bias_hh = bh",
                lambda: {**expected, "bias_ih": p["bh"], "bias_hh": p["b"]}),
        Mistake("bias_hh is not loaded: nn.GRUCell adds it inside r * (h U_n + bh_n); copy bh into it",
                lambda: {**expected, "bias_hh": before["bias_hh"]}),
        Mistake("bias_hh is zero: nn.GRUCell adds it inside r * (h U_n + bh_n); copy bh into it",
                lambda: {**expected, "bias_hh": np.zeros(3 * H)}),
        Mistake("the r and z blocks are swapped: PyTorch's gate order is r, z, n, the course's",
                lambda: {name: value[rz_swapped] for name, value in expected.items()}),
    ]
    _compare("load_gru_cell", got, expected, mistakes,
             {"weight_ih": "(3H, D)", "weight_hh": "(3H, H)", "bias_ih": "(3H,)", "bias_hh": "(3H,)"})


# ---------------------------------------------------------------------------
# Backward

_GRAD_DIMS = {
    "dx": "(N, D)", "dh_prev": "(N, H)", "dc_prev": "(N, H)", "dh0": "(N, H)", "dc0": "(N, H)",
    "grads['W']": "(D, GH)", "grads['U']": "(H, GH)", "grads['b']": "(GH,)",
}  # fmt: skip


def _negated(outputs: Outputs) -> Outputs:
    return {k: -v for k, v in outputs.items()}


def check_rnn_step_backward(fn: Callable[..., Any], *, N: int = 3, D: int = 4, H: int = 5, seed: int = 0,
                            dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check ``fn(dh, cache) -> (dx, dh_prev, grads)`` against ``lstm_ref.rnn_step_backward``.

    ``cache`` comes from ``lstm_ref.rnn_step_forward(x, h_prev, params)``;
    grads has W (D, H), U (H, H), b (H,).
    """
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    params = _random_params(D, H, 1, rng, dtype)
    x, h0, dh = _normal(rng, (N, D), dtype), _normal(rng, (N, H), dtype, 0.5), _normal(rng, (N, H), dtype)
    h, cache = lstm_ref.rnn_step_forward(x, h0, params)

    def ref(upstream: np.ndarray) -> Outputs:
        dx, dh_prev, grads = lstm_ref.rnn_step_backward(upstream, cache)
        return {"dx": dx, "dh_prev": dh_prev, **_named_grads(grads)}

    expected = ref(dh)
    what = "rnn_step_backward"
    got = _outputs(what, _call(fn, what, dh, cache, names=("dh", "cache")), ("dx", "dh_prev", "grads"),
                   "(dx, dh_prev, grads)")
    deriv = 1.0 - h**2  # (N, H) tanh'(a) = 1 - h^2
    mistakes = [
        Mistake("the tanh derivative (1 - h^2) is missing", lambda: ref(dh / deriv)),
        Mistake("the tanh derivative is 1 - h^2 with h = tanh(a) itself, not 1 - tanh(h)^2",
                lambda: ref(dh * (1.0 - np.tanh(h) ** 2) / deriv)),
        Mistake("every gradient has the wrong sign", lambda: _negated(expected)),
        Mistake("grads['U'] looks transposed: dU = h_prev.T @ da", lambda: {"grads['U']": expected["grads['U']"].T}),
    ]  # fmt: skip
    _compare(what, got, expected, mistakes, _GRAD_DIMS)


def check_lstm_step_backward(fn: Callable[..., Any], *, N: int = 3, D: int = 4, H: int = 5, seed: int = 0,
                             dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check ``fn(dh, dc, cache) -> (dx, dh_prev, dc_prev, grads)`` against ``lstm_ref.lstm_step_backward``.

    ``cache`` comes from ``lstm_ref.lstm_step_forward(x, h_prev, c_prev, params)``;
    dh and dc (N, H) are the upstream gradients of h and c; grads has W (D, 4H),
    U (H, 4H), b (4H,).
    """
    x, h0, c0, params, rng = _lstm_inputs((N, D), H, seed, _float_dtype(dtype))
    dh, dc = _normal(rng, (N, H), x.dtype), _normal(rng, (N, H), x.dtype)
    _, _, cache = lstm_ref.lstm_step_forward(x, h0, c0, params)

    def ref(dh_: np.ndarray, dc_: np.ndarray, tanh_c: np.ndarray = cache.tanh_c) -> Outputs:
        dx, dh_prev, dc_prev, grads = lstm_ref.lstm_step_backward(dh_, dc_, cache._replace(tanh_c=tanh_c))
        return {"dx": dx, "dh_prev": dh_prev, "dc_prev": dc_prev, **_named_grads(grads)}

    expected = ref(dh, dc)
    what = "lstm_step_backward"
    got = _outputs(what, _call(fn, what, dh, dc, cache, names=("dh", "dc", "cache")),
                   ("dx", "dh_prev", "dc_prev", "grads"),
                   "(dx, dh_prev, dc_prev, grads)")  # fmt: skip
    _, f, _, o = _blocks(cache.gates, 4)  # activated gates (N, H) each
    through_tanh = dh * o * (1.0 - cache.tanh_c**2)  # (N, H) the part of dh that reaches c
    tanh_c_prev = np.tanh(cache.c_prev)  # (N, H)

    # The backward is linear in (dh, dc): a mistake in the cell gradient is the reference with another dc.
    def tanh_used(in_cell: np.ndarray, in_o: np.ndarray) -> Callable[[], Outputs]:
        """The reference with ``in_cell`` for tanh(c) in the cell gradient and ``in_o`` in dz_o."""
        return lambda: ref(dh, dc + dh * o * (in_o**2 - in_cell**2), in_o)

    mistakes = [
        Mistake("the upstream gradient dc is ignored: the cell gradient is dc + dh * o * (1 - tanh(c)^2)",
                lambda: ref(dh, np.zeros_like(dc))),
        Mistake("dh does not reach the cell: the cell gradient is dc + dh * o * (1 - tanh(c)^2)",
                lambda: ref(dh, dc - through_tanh)),
        Mistake("the tanh derivative on the cell is missing: dc + dh * o * (1 - tanh(c)^2), not dc + dh * o",
                lambda: ref(dh, dc - through_tanh + dh * o)),
        Mistake("dc_prev = dc * f leaves out the path through h: dc_prev = (dc + dh * o * (1 - tanh(c)^2)) * f, "
                "the cell gradient times f", lambda: {**expected, "dc_prev": dc * f}),
        Mistake("dc_prev misses the forget gate: dc_prev = (cell gradient) * f",
                lambda: {"dc_prev": expected["dc_prev"] / f}),
        Mistake("every gradient has the wrong sign", lambda: _negated(expected)),
    ]  # fmt: skip
    mistakes += [
        Mistake("tanh(c_prev) is used where tanh(c) belongs: the new cell state c enters the cell gradient "
                "dc + dh * o * (1 - tanh(c)^2) and dz_o = dh * tanh(c) * o (1 - o)", tanh_used(in_cell, in_o))
        for in_cell, in_o in ((tanh_c_prev, tanh_c_prev), (tanh_c_prev, cache.tanh_c), (cache.tanh_c, tanh_c_prev))
    ]  # fmt: skip
    expected_grads = {k: v for k, v in expected.items() if k.startswith("grads")}
    mistakes += [
        Mistake(f"in grads, {_permutation_message(LSTM_GATES, src)}",
                lambda src=src: _permuted(expected_grads, src, list(expected_grads)))
        for src in _permutations(4)
    ]  # fmt: skip
    _compare(what, got, expected, mistakes, _GRAD_DIMS)


def lstm_step_caches(x: np.ndarray, params: Params, h0: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Run ``lstm_ref.lstm_step_forward`` over a sequence x (N, T, D): hs (N, T, H) and the T step caches, oldest first."""
    h, c = h0, c0
    hs, caches = [], []
    for t in range(x.shape[1]):
        h, c, cache = lstm_ref.lstm_step_forward(x[:, t], h, c, params)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches  # (N, T, H), T caches


def _bptt_model(dhs: np.ndarray, caches: Sequence[Any], *, accumulate: str = "all", carry: str = "hc",
                dout_shift: int = 0, dx_shift: int = 0, first: int = 0) -> Outputs:  # fmt: skip
    """BPTT through the reference step backward, with one usual mistake.

    ``accumulate``: "all" (sum over t), "first" (grads of step 0 only: overwritten
    in a loop running backwards) or "last" (step T-1 only); ``carry``: the state
    gradients passed back from step to step; ``dout_shift``: step t reads
    dhs[:, t + dout_shift] with Python's indexing (-1 is the last step) and zero
    past the end; ``dx_shift``: dx of step t lands at t + dx_shift (dropped outside);
    ``first``: the loop stops after step ``first`` (dx of the steps before stays zero).
    """
    N, T, H = dhs.shape
    dh_next = np.zeros((N, H), dhs.dtype)
    dc_next = np.zeros((N, H), dhs.dtype)
    dx = np.zeros((N, T, caches[0].x.shape[1]), dhs.dtype)
    total = {k: np.zeros_like(caches[0].params[k]) for k in _PARAM_KEYS}
    for t in reversed(range(first, T)):
        s = t + dout_shift
        upstream = dhs[:, s] if s < T else np.zeros((N, H), dhs.dtype)
        dx_t, dh_prev, dc_prev, grads = lstm_ref.lstm_step_backward(upstream + dh_next, dc_next, caches[t])
        if 0 <= t + dx_shift < T:
            dx[:, t + dx_shift] = dx_t
        dh_next = dh_prev if "h" in carry else np.zeros_like(dh_prev)
        dc_next = dc_prev if "c" in carry else np.zeros_like(dc_prev)
        if accumulate == "all":
            total = {k: total[k] + grads[k] for k in _PARAM_KEYS}
        elif accumulate == "first" or t == T - 1:
            total = {k: grads[k] for k in _PARAM_KEYS}
    return {"dx": dx, "dh0": dh_next, "dc0": dc_next, **_named_grads(total)}


def _step_backward_helper(fn: Any, N: int, D: int, H: int, seed: int, dtype: np.dtype) -> dict[str, _Helper]:
    """The student's lstm_step_backward as a helper, checked at these sizes, seed and dtype."""
    check = functools.partial(check_lstm_step_backward, N=N, D=D, H=H, seed=seed, dtype=dtype)
    form = "lstm_step_backward(dh, dc, cache) -> (dx, dh_prev, dc_prev, grads)"
    return {"lstm_step_backward": _Helper(fn, check, lstm_ref.lstm_step_backward, form)}


def _course_lstm_bptt(dhs: np.ndarray, caches: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The course's ``lstm_bptt(dhs, caches) -> (dx, dh0, dc0, grads)``, by the reference step backward."""
    out = _bptt_model(dhs, caches)
    return out["dx"], out["dh0"], out["dc0"], {k: out[f"grads['{k}']"] for k in _PARAM_KEYS}


def check_lstm_bptt(fn: Callable[..., Any], *, lstm_step_backward: Callable[..., Any] | None = None, N: int = 2,
                    T: int = 5, D: int = 3, H: int = 4, seed: int = 0, dtype: np.dtype = np.float64) -> None:  # fmt: skip
    """Check backprop through time ``fn(dhs, caches) -> (dx, dh0, dc0, grads)`` against ``lstm_ref.lstm_backward``.

    ``caches`` are the T step caches of ``lstm_ref.lstm_step_forward`` over a
    sequence (:func:`lstm_step_caches`), dhs (N, T, H) the upstream gradient of
    every h_t. dx (N, T, D); dh0, dc0 (N, H); grads summed over time.
    ``lstm_step_backward``: the student's, which ``fn`` calls; where it fails
    ``check_lstm_step_backward`` (at these N, D, H, seed and dtype), ``fn``
    runs with ``lstm_ref.lstm_step_backward`` in its place.
    """
    dtype = _float_dtype(dtype)
    substitution = _Substitution("lstm_bptt", _step_backward_helper(lstm_step_backward, N, D, H, seed, dtype))
    x, h0, c0, params, rng = _lstm_inputs((N, T, D), H, seed, dtype)
    dhs = _normal(rng, (N, T, H), x.dtype)
    _, caches = lstm_step_caches(x, params, h0, c0)
    _, _, sequence_cache = lstm_ref.lstm_forward(x, params, h0, c0, variant="standard")
    dx, dh0, dc0, grads = lstm_ref.lstm_backward(dhs, sequence_cache)
    expected = {"dx": dx, "dh0": dh0, "dc0": dc0, **_named_grads(grads)}
    result = _call(fn, "lstm_bptt", dhs, caches, names=("dhs", "caches"), substitution=substitution)
    what = substitution.label()
    got = _outputs(what, result, ("dx", "dh0", "dc0", "grads"), "(dx, dh0, dc0, grads)")

    def model(keys: Sequence[str] = tuple(expected), **kw: Any) -> Callable[[], Outputs]:
        return lambda: {k: v for k, v in _bptt_model(dhs, caches, **kw).items() if k in keys}

    weights = [k for k in expected if k.startswith("grads")]
    # Without the carry, what a student returns as dh0/dc0 varies: judge dx and the weights.
    dx_weights = ["dx", *weights]
    mistakes = [
        # dx[:, 0] is whatever the student's code left there: judge the rest. Before "only the last step's",
        # which explains the weights alone when T = 2.
        Mistake("the loop over t stops before step 0 (range(T-1, 0, -1)): use reversed(range(T))",
                model(["dh0", "dc0", *weights], first=1)),
        Mistake("the weight gradients are not accumulated over time: grads holds only step 0's (use +=)",
                model(weights, accumulate="first")),
        Mistake("the weight gradients are not accumulated over time: grads holds only the last step's (use +=)",
                model(weights, accumulate="last")),
        Mistake("dh_prev is not carried back to the previous step (add it to dhs[:, t-1])", model(dx_weights, carry="c")),
        Mistake("dc_prev is not carried back to the previous step", model(dx_weights, carry="h")),
        Mistake("no state gradient is carried back in time: each step sees only dhs[:, t]", model(dx_weights, carry="")),
        Mistake("off by one in time: step t must use dhs[:, t], not dhs[:, t+1]", model(dout_shift=1)),
        Mistake("off by one in time: step t must use dhs[:, t], not dhs[:, t-1]", model(dout_shift=-1)),
        Mistake("off by one in time: dx of step t belongs at dx[:, t]", model(dx_shift=1)),
        Mistake("off by one in time: dx of step t belongs at dx[:, t]", model(dx_shift=-1)),
    ]  # fmt: skip
    _compare(what, got, expected, mistakes, {**_GRAD_DIMS, "dx": "(N, T, D)"}, calls="your lstm_step_backward")


# ---------------------------------------------------------------------------
# Gradient checking

GRADCHECK_RTOL = 1e-7  # the relative error a correct float64 gradient stays below (lstm_ref.gradcheck)


def _bptt_problem(N: int, T: int, D: int, H: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random float64 x (N, T, D), h0, c0 (N, H), W, U, b as one dict, and dhs (N, T, H)."""
    x, h0, c0, params, rng = _lstm_inputs((N, T, D), H, seed, np.dtype(np.float64))
    return {"x": x, "h0": h0, "c0": c0, **params}, _normal(rng, (N, T, H), x.dtype)


def _lstm_hs(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    params = {k: arrays[k] for k in _PARAM_KEYS}
    return lstm_ref.lstm_forward(arrays["x"], params, arrays["h0"], arrays["c0"], variant="standard")[0]


def check_bptt_loss(fn: Callable[..., Any], *, N: int = 2, T: int = 3, D: int = 2, H: int = 3, seed: int = 0) -> None:
    """Check ``fn(arrays, dhs) -> L = sum(hs * dhs)``, the scalar loss whose gradient BPTT computes.

    ``arrays`` holds x (N, T, D), h0, c0 (N, H), W, U, b (float64); hs (N, T, H)
    are the hidden states of the LSTM over x; dhs (N, T, H) is random. The
    loss may use ``lstm_ref.lstm_forward``: the forward pass is not the task here.
    """
    arrays, dhs = _bptt_problem(N, T, D, H, seed)
    hs = _lstm_hs(arrays)
    got = fn(copy.deepcopy(arrays), dhs.copy())
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (float, int, np.number, np.ndarray)) or np.ndim(got):
        raise AssertionError(f"bptt_loss must return one number (a float), got {type(got).__name__} {np.shape(got)}")
    mistakes = [
        Mistake("the loss ignores dhs: L = sum(hs * dhs), with the random upstream gradient", lambda: {"L": hs.sum()}),
        Mistake("the loss uses the last step only: sum over every step t", lambda: {"L": np.sum(hs[:, -1] * dhs[:, -1])}),
        Mistake("the loss is a mean: L = sum(hs * dhs), a sum", lambda: {"L": np.mean(hs * dhs)}),
    ]
    _compare("bptt_loss", {"L": np.asarray(got, dtype=np.float64)}, {"L": np.asarray(np.sum(hs * dhs))}, mistakes, {"L": "()"})


def _course_bptt_loss(arrays: Mapping[str, np.ndarray], dhs: np.ndarray) -> float:
    """The course's ``bptt_loss(arrays, dhs)``: sum(hs * dhs) over the reference forward pass."""
    return float(np.sum(_lstm_hs(arrays) * dhs))


def check_bptt_gradients(loss_fn: Callable[..., Any], grads_fn: Callable[..., Any], *,
                         lstm_bptt: Callable[..., Any] | None = None,
                         lstm_step_backward: Callable[..., Any] | None = None, N: int = 2, T: int = 3, D: int = 2,
                         H: int = 3, seed: int = 0) -> None:  # fmt: skip
    """Check ``grads_fn(arrays, dhs)`` against centred finite differences of ``loss_fn(arrays, dhs)``.

    Both take the ``arrays`` of :func:`check_bptt_loss`; ``grads_fn`` returns a
    dict with the same keys and shapes. Every relative error
    (``lstm_ref.gradcheck.gradcheck``, float64) must stay below :data:`GRADCHECK_RTOL`.
    Where ``loss_fn`` fails :func:`check_bptt_loss` (at these sizes and seed),
    the finite differences are those of the course's loss. ``lstm_bptt``,
    ``lstm_step_backward``: the student's, which ``grads_fn`` calls
    (``lstm_bptt`` calls the other); one that fails its own check is replaced by
    the course's while ``grads_fn`` runs.
    """
    check_bptt = functools.partial(check_lstm_bptt, lstm_step_backward=lstm_step_backward, N=N, T=T, D=D, H=H,
                                   seed=seed)  # fmt: skip
    form = "lstm_bptt(dhs, caches) -> (dx, dh0, dc0, grads)"
    substitution = _Substitution("bptt_gradients", {
        **_step_backward_helper(lstm_step_backward, N, D, H, seed, np.dtype(np.float64)),
        "lstm_bptt": _Helper(lstm_bptt, check_bptt, _course_lstm_bptt, form),
    })  # fmt: skip
    of_loss = "bptt_loss"
    if _fails(functools.partial(check_bptt_loss, N=N, T=T, D=D, H=H, seed=seed), loss_fn):
        loss_fn, of_loss = _course_bptt_loss, "the course's bptt_loss (yours fails its own test)"
    arrays, dhs = _bptt_problem(N, T, D, H, seed)
    # The forward pass is given (lstm_step_caches); the gradients must come from the student's own BPTT.
    analytic = _call(grads_fn, "bptt_gradients", arrays, dhs, names=("arrays", "dhs"), allowed=_FORWARD_PASSES,
                     substitution=substitution)  # fmt: skip
    what = substitution.label()
    if not isinstance(analytic, Mapping) or set(analytic) != set(arrays):
        keys = sorted(analytic) if isinstance(analytic, Mapping) else type(analytic).__name__
        raise AssertionError(f"{what} must return a dict with the keys {sorted(arrays)}, got {keys}")
    for name, a in arrays.items():
        problem = _shape_problem(name, analytic[name], a, {})
        if problem:
            raise AssertionError(f"{what}: {problem}")
    errors = gradcheck(lambda a: float(loss_fn(a, dhs)), arrays, analytic)
    bad = {name: error for name, error in errors.items() if not error < GRADCHECK_RTOL}
    if bad:
        listed = ", ".join(f"d{name} {error:.1e}" for name, error in bad.items())
        raise AssertionError(
            f"{what} disagrees with finite differences of {of_loss}: relative error {listed} "
            f"(must be below {GRADCHECK_RTOL:g}); the other gradients agree"
        )


# ---------------------------------------------------------------------------
# Sequence tasks


def check_windows(fn: Callable[..., Any], series: Any, window: int, horizon: int = 1) -> None:
    """Check ``fn(series, window, horizon) -> (X, y)`` against ``lstm_ref.data.windows``.

    For a series s (T,) or (T, D): X[k] = s[k : k + W] (N, W, D) and y[k] = s[k + W : k + W + horizon]
    flattened step-major (N, horizon * D), k = 0 .. N-1 with N = T - W - horizon + 1. A series too
    short for one window and its horizon must raise a ValueError naming ``series``.
    """
    from lstm_ref import data

    series = np.asarray(series, dtype=np.float64)
    try:
        X, y = data.windows(series, window, horizon)
    except ValueError:
        try:
            _call(fn, "make_windows", series, window, horizon, names=("series",))
        except ValueError as err:
            if "series" not in str(err):
                raise AssertionError(f"make_windows: the ValueError should name series, got: {err}") from None
            return
        raise AssertionError(f"make_windows accepted a series of length {len(series)} for window={window}, "
                             f"horizon={horizon}: it must raise a ValueError naming series") from None
    got = _outputs("make_windows", _call(fn, "make_windows", series, window, horizon, names=("series",)), ("X", "y"),
                   "(X, y)")
    N, D = len(X), X.shape[2]
    mistakes = [
        Mistake("y is shifted back one step (it starts at the last value of each window): y_k holds the "
                "values right after window k", lambda: {"X": X, "y": np.concatenate([X[:, -1], y[:, :-D]], axis=1)}),
        Mistake("y is feature-major: y[:, j*D:(j+1)*D] must hold the values j + 1 steps after the window",
                lambda: {"X": X, "y": y.reshape(N, horizon, D).transpose(0, 2, 1).reshape(N, -1)}),
    ]
    _compare("make_windows", got, {"X": X, "y": y}, mistakes, {"X": "(N, W, D)", "y": "(N, horizon * D)"})

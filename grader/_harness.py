"""Data-only codec and the kernel side of the grader's remote calls.

The test cells of a notebook run in the grader's trusted process; the names a
student defined live in the student's sandboxed kernel. When a test reads a
student's name or calls a student's function, the grader writes a request file
into the sandbox, runs ``_grader_rpc(request, reply)`` in the kernel, and reads
the reply file back. Both files hold plain data only: one ``.npz`` archive
(``allow_pickle=False``) with a JSON tree ``__tree__`` whose leaves point at
arrays. Whatever the student's code does in its kernel, it can only choose the
data that comes back, never run code in the grader.

This module is self-contained (NumPy and the standard library only): the grader
imports it, and its source is executed once in each student kernel.
"""
import json
import os

import numpy as np

_ARRAY_KINDS = "biufcU"  # bool, int, uint, float, complex, str: no object/void dtypes
MAX_REPLY_BYTES = 256 * 2**20


class Opaque(Exception):
    """Raised by :func:`encode` for a value that is not plain data."""


def encode(value, handle_of=None) -> tuple:
    """Split ``value`` into a JSON tree and a list of arrays.

    Supported: None, bool, int, float, complex, str, list, tuple, dict with
    str keys, NumPy arrays and scalars of bool/number/str dtype, torch tensors
    (sent as arrays). ``handle_of(obj) -> dict | None`` names other objects
    (functions, caches of a student's own class) by a handle; without it, or
    when it returns None, such an object raises :class:`Opaque`.
    """
    arrays = []

    def put(a):
        arrays.append(a)
        return len(arrays) - 1

    def walk(v):
        if isinstance(v, np.generic) and v.dtype.kind in _ARRAY_KINDS:
            return {"t": "scalar", "i": put(np.asarray(v))}
        if v is None or isinstance(v, (bool, str)):
            return {"t": "json", "v": v}
        if isinstance(v, int):
            return {"t": "int", "v": str(int(v))}
        if isinstance(v, float):
            return {"t": "float", "v": repr(float(v))}
        if isinstance(v, complex):
            return {"t": "complex", "v": [repr(float(v.real)), repr(float(v.imag))]}
        if isinstance(v, np.ndarray) and type(v) is np.ndarray and v.dtype.kind in _ARRAY_KINDS:
            return {"t": "array", "i": put(v)}
        if type(v).__module__ == "torch" and type(v).__name__ in ("Tensor", "Parameter"):
            return {"t": "torch", "i": put(v.detach().cpu().numpy().copy())}
        if type(v) in (list, tuple):
            return {"t": type(v).__name__, "v": [walk(x) for x in v]}
        if type(v) is dict and all(isinstance(k, str) for k in v):
            return {"t": "dict", "v": [[k, walk(x)] for k, x in v.items()]}
        handle = handle_of(v) if handle_of is not None else None
        if handle is None:
            raise Opaque(f"a value of type {type(v).__module__}.{type(v).__qualname__}")
        return {"t": "handle", "v": handle}

    return walk(value), arrays


def decode(tree, arrays, from_handle=None):
    """Rebuild a value from :func:`encode`'s tree and arrays (no code runs)."""

    def walk(n):
        t = n["t"]
        if t == "json":
            return n["v"]
        if t == "int":
            return int(n["v"])
        if t == "float":
            return float(n["v"])
        if t == "complex":
            return complex(float(n["v"][0]), float(n["v"][1]))
        if t == "array":
            return arrays[n["i"]]
        if t == "scalar":
            return arrays[n["i"]][()]
        if t == "torch":
            import torch

            return torch.from_numpy(arrays[n["i"]])
        if t in ("list", "tuple"):
            items = [walk(x) for x in n["v"]]
            return items if t == "list" else tuple(items)
        if t == "dict":
            return {str(k): walk(x) for k, x in n["v"]}
        if t == "handle" and from_handle is not None:
            return from_handle(n["v"])
        raise ValueError(f"unknown node type {t!r} in a grader message")

    return walk(tree)


def save(path: str, tree, arrays) -> None:
    """Write a message: arrays ``a0..`` plus the tree as ``__tree__``, then rename."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, __tree__=np.array(json.dumps(tree)), **{f"a{i}": a for i, a in enumerate(arrays)})
    os.replace(tmp, path)


def load(path: str) -> tuple:
    """Read a message written by :func:`save`; refuses pickles and oversized files."""
    if os.path.getsize(path) > MAX_REPLY_BYTES:
        raise ValueError(f"grader message {path} is larger than {MAX_REPLY_BYTES} bytes")
    with np.load(path, allow_pickle=False) as z:
        tree = json.loads(str(z["__tree__"]))
        arrays = [z[f"a{i}"] for i in range(len(z.files) - 1)]
    return tree, arrays


def _guarded(fn, args, kwargs):
    """Call ``fn`` as the course's checkers do: calling the reference implementation fails."""
    try:
        from lstm_ref.checkers import _call
    except ImportError:
        return fn(*args, **kwargs)
    import functools

    return _call(functools.partial(fn, **kwargs), getattr(fn, "__name__", "the function"), *args)


def kernel_side(user_ns: dict):
    """Return the function the grader calls in the student's kernel.

    Requests: ``{"op": "lookup", "name": str}`` answers ``{"kind": ...}`` with
    kind ``missing``, ``module`` (its name), ``import`` (a function of an
    installed module, by module and qualname), ``value`` (plain data) or
    ``handle`` (anything else); ``{"op": "call", "target": handle, "args":
    [...], "kwargs": {...}}`` answers ``{"result": value}``. A failure answers
    ``{"error": [type name, message]}``.
    """
    handles = []

    def handle_of(obj):
        handles.append(obj)
        return {"id": len(handles) - 1, "callable": callable(obj), "type": type(obj).__qualname__}

    def lookup(name):
        if name not in user_ns:
            return {"kind": "missing"}
        obj = user_ns[name]
        if type(obj).__name__ == "module":
            return {"kind": "module", "module": obj.__name__}
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if callable(obj) and isinstance(module, str) and module != "__main__" and isinstance(qualname, str):
            return {"kind": "import", "module": module, "qualname": qualname}
        try:
            encode(obj)
        except Opaque:
            return {"kind": "handle", "handle": obj}
        return {"kind": "value", "value": obj}

    def rpc(request_path, reply_path):
        try:
            req = decode(*load(request_path), from_handle=lambda h: handles[h["id"]])
            if req["op"] == "lookup":
                answer = lookup(req["name"])
            elif req.get("guard"):
                answer = {"result": _guarded(req["target"], req["args"], req["kwargs"])}
            else:
                answer = {"result": req["target"](*req["args"], **req["kwargs"])}
            tree, arrays = encode(answer, handle_of)
        except BaseException as exc:  # the grader reads the failure from the reply
            tree, arrays = encode({"error": [type(exc).__name__, str(exc)[:2000]]})
        save(reply_path, tree, arrays)

    return rpc

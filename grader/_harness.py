"""Data-only codec and the kernel side of the grader's remote calls.

The test cells of a notebook run in the grader's trusted process; the names a
student defined live in the student's sandboxed kernel. Before any test runs,
the kernel starts a thread (:func:`serve`) that listens on a Unix socket in the
sandbox folder. When a test reads a student's name or calls a student's
function, the grader connects, sends the request and reads the answer; the
kernel's main thread is idle between cells. Each message is a JSON header
(a tree whose leaves point at arrays, and each array's dtype and shape)
followed by the arrays' raw bytes, sent with its length: reading it builds
arrays of bool, number and str dtypes and nothing else.

What the kernel sends is plain data only: whatever the student's code does in
its kernel, it can only choose the data that comes back, never run code in the
grader. The grader's requests may also carry what the tests hand to a student's
function besides data, since the kernel may trust the grader:

- a test's own function (a callback) stays in the grader: the kernel gets a
  stand-in that sends each call back over the request's connection and returns
  the grader's answer (data);
- a torch module is sent pickled; after the call the kernel sends its
  ``state_dict`` back as arrays, and the grader loads it into the test's module;
- every argument comes back after the call, so that what the student's code did
  to it in place (an array written, a generator drawn from, a dict changed) is
  copied into the test's own object.

This module is self-contained (NumPy and the standard library only): the grader
imports it, and its source is executed once in each student kernel.
"""
import builtins
import importlib
import json
import math
import pickle
import socket
import struct
import threading
import time

import numpy as np

_ARRAY_KINDS = "biufcU"  # bool, int, uint, float, complex, str: no object/void dtypes
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
RECORD_PACKAGE = "lstm_ref"  # NamedTuples of this package (e.g. its caches) travel field by field
MAX_REPLY_BYTES = 256 * 2**20
MAX_HEADER_BYTES = 8 * 2**20  # the JSON part of a message: its tree and its arrays' dtypes and shapes
MAX_ARRAYS = 100_000  # arrays in one message (a list of T step caches holds about 7 T)


class Opaque(Exception):
    """Raised by :func:`encode` for a value that is not plain data."""


def encode(value, special=None) -> tuple:
    """Split ``value`` into a JSON tree and a list of arrays.

    Plain data: None, bool, int, float, complex, str, list, tuple, dict with
    str keys, NumPy arrays and scalars of bool/number/str dtype, torch tensors
    (sent as arrays), NumPy Generators (their bit generator's state) and the
    NamedTuples of ``lstm_ref`` (field by field). ``special(obj, walk) -> node
    | None`` encodes any other object (``walk`` encodes a nested value); without
    it, or when it returns None, such an object raises :class:`Opaque`.
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
        if type(v) is np.random.Generator:
            return {"t": "generator", "v": walk(v.bit_generator.state)}
        if isinstance(v, tuple) and hasattr(type(v), "_fields") and _in_record_package(type(v).__module__):
            return {"t": "record", "module": type(v).__module__, "class": type(v).__qualname__,
                    "v": [walk(x) for x in v]}
        node = special(v, walk) if special is not None else None
        if node is None:
            raise Opaque(f"a value of type {type(v).__module__}.{type(v).__qualname__}")
        return node

    return walk(value), arrays


def _in_record_package(module) -> bool:
    return isinstance(module, str) and (module == RECORD_PACKAGE or module.startswith(RECORD_PACKAGE + "."))


def _record_class(module: str, name: str):
    if not _in_record_package(module):
        raise ValueError(f"a record of module {module!r} in a grader message")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
        raise ValueError(f"{module}.{name} in a grader message is not a NamedTuple")
    return cls


def _generator(state):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r} in a grader message")
    bits = getattr(np.random, name)()
    bits.state = state
    return np.random.Generator(bits)


def decode(tree, arrays, special=None):
    """Rebuild a value from :func:`encode`'s tree and arrays.

    ``special`` maps the type of each non-data node a side accepts to
    ``f(node, walk)``; any other node is refused.
    """
    special = special or {}

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
        if t == "generator":
            return _generator(walk(n["v"]))
        if t == "record":
            cls = _record_class(str(n["module"]), str(n["class"]))
            fields = [walk(x) for x in n["v"]]
            if len(fields) != len(cls._fields):
                raise ValueError(f"{cls.__name__} in a grader message has {len(fields)} fields")
            return cls(*fields)
        if t in special:
            return special[t](n, walk)
        raise ValueError(f"unexpected node type {t!r} in a grader message")

    return walk(tree)


def dumps(tree, arrays) -> bytes:
    """A message as bytes: a JSON header (the tree, each array's dtype and shape) and the arrays' raw bytes."""
    header = json.dumps({"tree": tree, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}).encode()
    return b"".join([struct.pack("!Q", len(header)), header, *(a.tobytes() for a in arrays)])  # C order


def loads(data: bytes) -> tuple:
    """Read a message written by :func:`dumps`: arrays of bool, number and str dtypes only (no
    objects, no pickles), each within the message; refuses oversized or malformed messages."""
    if len(data) > MAX_REPLY_BYTES:
        raise ValueError(f"a grader message is larger than {MAX_REPLY_BYTES} bytes")
    if len(data) < 8:
        raise ValueError("a grader message is shorter than its header")
    (size,) = struct.unpack_from("!Q", data)
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"a grader message has a header larger than {MAX_HEADER_BYTES} bytes")
    header = json.loads(data[8:8 + size])
    if len(header["arrays"]) > MAX_ARRAYS:
        raise ValueError(f"a grader message holds more than {MAX_ARRAYS} arrays")
    offset, arrays = 8 + size, []
    for descr, shape in header["arrays"]:
        dtype = np.dtype(str(descr))
        if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.fields is not None or dtype.subdtype:
            raise ValueError(f"a grader message holds an array of dtype {descr!r}")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError(f"a grader message holds an array of shape {shape!r}")
        count = math.prod(shape)
        if offset + count * dtype.itemsize > len(data):
            raise ValueError("a grader message is shorter than its arrays")
        arrays.append(np.frombuffer(data, dtype, count, offset).reshape(shape).copy())
        offset += count * dtype.itemsize
    return header["tree"], arrays


def exception_for(error) -> Exception:
    """The exception an answer's ``"error": [type name, message]`` stands for: the built-in
    exception of that name, else a RuntimeError naming it (no other class is looked up)."""
    ename, message = error
    cls = getattr(builtins, str(ename), None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(message)
    return RuntimeError(f"{ename}: {message}")


def send(sock, data: bytes) -> None:
    """Send one length-prefixed message over a stream socket."""
    sock.sendall(struct.pack("!Q", len(data)) + data)


def receive(sock, deadline: float | None = None) -> bytes:
    """Receive one message sent by :func:`send`, by ``deadline`` (``time.monotonic()``) if given.

    The deadline bounds the whole message: each read waits only for the time
    left (``socket.timeout`` past it), so a sender that trickles a byte at a
    time cannot hold the reader longer than that.
    """
    def exactly(n):
        chunks = []
        while n:
            if deadline is not None:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(min(n, 2**20))
            if not chunk:
                raise ConnectionError("the other side closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    (size,) = struct.unpack("!Q", exactly(8))
    if size > MAX_REPLY_BYTES:
        raise ValueError(f"a grader message is larger than {MAX_REPLY_BYTES} bytes")
    return exactly(size)


def _guarded(fn, args, kwargs, allowed, substitutes):
    """Call ``fn`` as the course's checkers do: calling the reference implementation fails, but for
    the reference functions named in ``allowed``; ``fn``'s globals named in ``substitutes`` are bound
    to them meanwhile; what it does to its arguments stays on them."""
    try:
        from lstm_ref.checkers import _call, _substituted
    except ImportError as exc:  # the grader's checkers are lstm_ref's: a kernel without it grades wrong
        raise RuntimeError(f"the student's kernel cannot import lstm_ref.checkers ({exc}): the grading "
                           "environment is broken; fix the installation, then autograde again with --force") from None
    # No arguments through _call, which would copy them: the grader copies back what the call did to them.
    with _substituted(fn, substitutes):
        return _call(lambda: fn(*args, **kwargs), getattr(fn, "__name__", "the function"), allowed=tuple(allowed))


def serve(user_ns: dict, address: str) -> None:
    """Listen at ``address`` (bound before returning) and answer the grader's requests in a thread.

    One connection per request. Requests: ``{"op": "lookup", "name": str}``
    answers ``{"kind": ...}`` with kind ``missing``, ``module`` (its name),
    ``value`` (plain data) or ``handle`` (anything else, functions included:
    the grader never looks up code by a name the kernel gives); ``{"op": "call",
    "target": handle, "args": [...], "kwargs": {...}, "guard": None or [names],
    "substitutes": {name: function}, "errstate": {...}}`` (with a list, run under
    the checkers' guard, which lets the answer call the reference functions named
    there, with the target's globals of those names bound to the grader's
    functions in "substitutes" for the call; and under NumPy's
    error handling ``errstate``) answers ``{"result": value, "args": [...], "kwargs":
    {...}}``, the arguments as the call left them. A failure answers ``{"error":
    [type name, message]}``. The kernel sends ``{"reply": answer}`` last; before
    it, ``{"callback": {"id": n, "args": [...], "kwargs": {...}}}`` for each call
    of a grader's function, each answered on the same connection.
    """
    handles = []
    received = {}  # id(module) -> (module, the grader's number for it), for the current request
    stand_ins = {}  # id(function) -> (stand-in, the grader's number for its function)
    current = {}  # "conn": the connection of the request being answered

    def handle_of(obj):
        handles.append(obj)
        return {"id": len(handles) - 1, "callable": callable(obj), "type": type(obj).__qualname__}

    def outgoing(obj, walk):
        if id(obj) in stand_ins and stand_ins[id(obj)][0] is obj:
            return {"t": "callback", "v": stand_ins[id(obj)][1]}
        if id(obj) in received and received[id(obj)][0] is obj:
            return {"t": "state", "id": received[id(obj)][1], "v": walk(dict(obj.state_dict()))}
        return {"t": "handle", "v": handle_of(obj)}

    def lookup(name):
        if name not in user_ns:
            return {"kind": "missing"}
        obj = user_ns[name]
        if type(obj).__name__ == "module":
            return {"kind": "module", "module": obj.__name__}
        try:
            encode(obj)
        except Opaque:
            return {"kind": "handle", "handle": obj}
        return {"kind": "value", "value": obj}

    def stand_in(number):
        """A function that runs the grader's function ``number`` on plain data."""
        def call(*args, **kwargs):
            conn = current.get("conn")
            if conn is None:
                raise RuntimeError("the grader's function can only be called during the grader's call")
            send(conn, dumps(*encode({"callback": {"id": number, "args": list(args), "kwargs": kwargs}},
                                     outgoing)))
            answer = decode(*loads(receive(conn)), special=incoming)
            if "error" in answer:
                raise exception_for(answer["error"])
            return answer["result"]

        stand_ins[id(call)] = (call, number)
        return call

    def unpickle(node, walk):
        obj = pickle.loads(walk(node["v"]).tobytes())
        received[id(obj)] = (obj, node["id"])
        return obj

    incoming = {"handle": lambda n, walk: handles[n["v"]["id"]],
                "callback": lambda n, walk: stand_in(n["v"]),
                "pickle": unpickle}

    def answer(conn):
        try:
            req = decode(*loads(receive(conn)), special=incoming)
            if req["op"] == "lookup":
                reply = lookup(req["name"])
            else:
                args, kwargs = req["args"], req["kwargs"]
                with np.errstate(**req.get("errstate", {})):
                    if req.get("guard") is not None:
                        result = _guarded(req["target"], args, kwargs, req["guard"], req.get("substitutes") or {})
                    else:
                        result = req["target"](*args, **kwargs)
                reply = {"result": result, "args": args, "kwargs": kwargs}
            tree, arrays = encode({"reply": reply}, outgoing)
        except BaseException as exc:  # the grader reads the failure from the reply
            tree, arrays = encode({"reply": {"error": [type(exc).__name__, str(exc)[:2000]]}})
        received.clear()
        stand_ins.clear()
        send(conn, dumps(tree, arrays))

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen()

    def loop():
        while True:
            conn, _ = listener.accept()
            with conn:
                current["conn"] = conn
                try:
                    answer(conn)
                except OSError:
                    pass  # the grader gave up on this request
                finally:
                    current.clear()

    threading.Thread(target=loop, daemon=True).start()

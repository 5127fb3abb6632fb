"""Run a notebook so that the student's code cannot change its grade.

nbgrader's own ``Execute`` runs every cell, tests included, in the student's
kernel, where the student's code can redefine the checkers, swallow exceptions
with IPython hooks, or print a fake success. :class:`TrustedExecute` replaces
it in ``Autograde.autograde_preprocessors``:

- the student's cells (and the read-only setup cells) run in a sandboxed kernel
  (:mod:`grader.sandbox`) with per-cell and per-notebook time limits;
- the test cells never enter that kernel: they run in the grader's own process,
  in a namespace of their own where the setup cells ran too. A name the tests
  need and the setup did not define is looked up in the student's kernel and
  comes back as plain data (:mod:`grader._harness`); a student's function comes
  back as a :class:`Remote` whose calls run in the kernel and return data. The
  checkers, ``assert`` and NumPy the tests use are the grader's own. A test's
  own function handed to a student's function runs in the grader when the
  student's code calls it, and what the student's code does to the arguments
  of a call (an array filled in, a generator drawn from, a torch module's
  weights loaded) reaches the test's own objects (:func:`sync_back`). Requests
  travel over a Unix socket in the sandbox folder to a thread of the kernel;
  a call past the cell time limit stops the kernel;
- a hidden test's source and traceback never reach the notebook's outputs;
- a dead or killed kernel fails every later test (no reply, no points).

Warnings in a test cell are shown as ordinary output: nbgrader takes any stderr
in a test cell as a failure, and a NumPy or matplotlib warning is not one.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import io
import itertools
import json
import linecache
import math
import os
import pickle
import shutil
import socket
import sys
import time
import traceback
import warnings

import nbformat
import numpy as np
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float, Integer, List, Unicode

from . import _harness
from .sandbox import KERNEL_SOCKET, Limits, SandboxKernelManager, new_sandbox_dir, remove_sandbox_dir

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_FAILED = "A hidden test failed"
with open(_harness.__file__, encoding="utf-8") as _fh:
    _HARNESS_SOURCE = _fh.read()


class KernelStopped(RuntimeError):
    """The student's kernel died or was stopped; nothing more runs in it."""


class CannotTransfer(TypeError):
    """A test hands the student's code an object of its own that cannot cross (neither data nor a
    function, e.g. an instance of the test's class): the cell then runs in the kernel. Only the
    test's code decides this; what the student's code returns never does."""


class CappedClient(NotebookClient):
    """A notebook client that keeps at most ``output_bytes`` of outputs per notebook."""

    output_bytes = Integer(2_000_000)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._kept_bytes = 0
        self._dropped = set()

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        if self._kept_bytes + size > self.output_bytes:
            if cell_index not in self._dropped:
                self._dropped.add(cell_index)
                outs.append(nbformat.v4.new_output(
                    "stream", name="stdout",
                    text=f"[grader: output beyond {self.output_bytes} bytes per notebook dropped]\n"))
            return None
        self._kept_bytes += size
        return super().output(outs, msg, display_id, cell_index)


class Remote:
    """A student's object that stays in the student's kernel (usually a function)."""

    def __init__(self, sandbox: "Sandbox", handle: dict) -> None:
        self._sandbox, self._handle = sandbox, handle

    def __call__(self, *args, **kwargs):
        if self._sandbox.busy:
            raise RuntimeError(f"a test's function calls the student's {self._handle['type']} "
                               "while the student's code runs")
        return self._sandbox.call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<student's {self._handle['type']} (runs in the student's kernel)>"

    @property
    def __kernel_type__(self) -> str:
        """The object's type name in the kernel, for messages ("h is Tensor; expected a float numpy array")."""
        return str(self._handle["type"])

    def __getattr__(self, name: str):
        # A failure, not a reason to run the test in the kernel: the student's code chose this
        # object, and would then decide the test (np.shape(x) reads x.shape first).
        if name.startswith("__") or name in ("_sandbox", "_handle"):
            raise AttributeError(name)
        raise AttributeError(f"the tests read .{name} of the student's {self._handle['type']}, which stays in "
                             "the student's kernel: only data (arrays, numbers, strings, lists, dicts) reaches a test")


# Copied into a sandbox from the notebook's folder: data, not code or notebooks.
CODE_SUFFIXES = (".py", ".pyc", ".pth", ".so", ".ipynb")


def copy_data_files(src: str, dest: str) -> list:
    """Copy the data files of ``src`` (the assignment's files, e.g. a CSV) into ``dest``.

    Python files, notebooks and hidden files are left out: nothing shipped with
    a submission can shadow a module, and the kernel holds no other notebook.
    Symbolic links are never followed (one could point at the course's files).
    """
    copied = []
    for folder, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in files:
            if name.startswith(".") or name.endswith(CODE_SUFFIXES) or os.path.islink(os.path.join(folder, name)):
                continue
            rel = os.path.relpath(os.path.join(folder, name), src)
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copyfile(os.path.join(folder, name), os.path.join(dest, rel))
            copied.append(rel)
    return copied


def _torch_module(obj) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def sync_back(original, after):
    """Copy into a test's argument ``original`` what the student's code did to its copy ``after``.

    Arrays and tensors are written in place (same shape and dtype), a Generator
    takes the state its copy ended in, dicts and lists take the items the call
    left (recursively, so unchanged arrays keep their identity), a tuple's items
    are synced. Returns the object the test's container should hold: the test's
    own where it was updated in place, else what the call left (e.g. a new int).
    """
    if original is after:
        return original
    if isinstance(original, np.ndarray) and isinstance(after, np.ndarray):
        if original.shape != after.shape or original.dtype != after.dtype:
            return after
        if original.flags.writeable:
            np.copyto(original, after)  # what the call left: the same bits where it changed nothing
        return original
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(original, torch.Tensor) and isinstance(after, torch.Tensor):
        if original.shape != after.shape or original.dtype != after.dtype:
            return after
        if not torch.equal(original, after):
            with torch.no_grad():
                original.copy_(after)
        return original
    if isinstance(original, np.random.Generator) and isinstance(after, np.random.Generator):
        original.bit_generator.state = after.bit_generator.state
        return original
    if type(original) is dict and type(after) is dict:
        for key in [k for k in original if k not in after]:
            del original[key]
        for key, value in after.items():
            original[key] = sync_back(original[key], value) if key in original else value
        return original
    if type(original) is list and type(after) is list:
        if len(original) == len(after):
            original[:] = [sync_back(o, a) for o, a in zip(original, after)]
        else:
            original[:] = after
        return original
    if isinstance(original, tuple) and isinstance(after, tuple) and len(original) == len(after):
        for o, a in zip(original, after):
            sync_back(o, a)
        return original
    return after


def _close_zmq(kc, km) -> None:
    """Stop the client's heartbeat thread, close its channel sockets and destroy its ZeroMQ context and
    the manager's now, lingering nothing.

    nbclient leaves all of these open when it does not own the kernel manager, as here. Left open, each
    graded notebook would leave its worker a heartbeat thread that pings the dead kernel every second,
    the client's context with its I/O thread, and about ten file descriptors: a worker grading a class
    would run out of descriptors. Left to the garbage collector, a context found in a reference cycle
    with its open sockets is finalized after their weak references are cleared: its ``destroy()`` sees
    no socket to close, and ``term()`` waits for them forever.
    """
    if kc is not None:
        heartbeat = kc._hb_channel
        if heartbeat is not None and heartbeat.is_alive():
            heartbeat.stop()  # wakes the thread from its wait, joins it and closes its socket
        for name in ("shell", "iopub", "stdin", "control"):
            sock = getattr(getattr(kc, f"_{name}_channel", None), "socket", None)
            if sock is not None and not sock.closed:
                sock.close(linger=0)
        if kc._created_context:
            kc.context.destroy(linger=0)
    if km._created_context:
        km.context.destroy(linger=0)  # with the manager's control socket


class Sandbox:
    """A student's kernel: cells run with time limits, and the grader's calls into it."""

    def __init__(self, nb: nbformat.NotebookNode, limits: Limits, hidden_paths: list, data_dir: str = "") -> None:
        self.limits = limits
        self.dir = new_sandbox_dir()
        if data_dir:
            copy_data_files(data_dir, self.dir)
        kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
        self.km = SandboxKernelManager(kernel_name=kernel, sandbox_dir=self.dir, hidden_paths=hidden_paths,
                                       limits=limits)
        # The client writes each executed cell back into its notebook at the index
        # given: it gets a one-cell scratch notebook, never the submission.
        scratch = nbformat.v4.new_notebook(metadata=nb.metadata, cells=[nbformat.v4.new_code_cell()])
        self.client = CappedClient(scratch, km=self.km, timeout=int(limits.cell_timeout), allow_errors=True,
                                   interrupt_on_timeout=False, output_bytes=int(limits.output_bytes),
                                   resources={"metadata": {"path": self.dir}})
        self.deadline = math.inf  # set when the kernel is ready: its start is not the notebook's time
        self.stopped = ""
        self.busy = False
        self.socket_path = os.path.join(self.dir, KERNEL_SOCKET)
        self._numbers = itertools.count()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Sandbox":
        try:
            self._stack.enter_context(self.client.setup_kernel())
            self.deadline = time.monotonic() + self.limits.notebook_timeout
            harness = ("exec(compile({src!r}, '<grader>', 'exec'), __grader__ := {{}})\n"
                       "__grader__['serve'](get_ipython().user_ns, {sock!r})\n"
                       "del __grader__").format(src=_HARNESS_SOURCE, sock=self.socket_path)
            self._run(nbformat.v4.new_code_cell(harness), store_history=False)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc) -> None:
        kc = self.client.kc
        try:
            self._stack.close()
        finally:
            self.km.kill_all()
            _close_zmq(kc, self.km)
            remove_sandbox_dir(self.dir)

    def stop(self, reason: str) -> None:
        if not self.stopped:
            self.stopped = reason
            self.km.kill_all()

    def _run(self, cell, store_history: bool = True) -> None:
        if self.stopped:
            raise KernelStopped(self.stopped)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.stop(f"the notebook ran past its time limit of {self.limits.notebook_timeout:g} s")
            raise KernelStopped(self.stopped)
        self.client.timeout = max(1, int(min(self.limits.cell_timeout, remaining)))
        try:
            self.client.execute_cell(cell, 0, store_history=store_history)
        except CellTimeoutError:
            budget = "cell" if self.client.timeout >= self.limits.cell_timeout else "notebook"
            self.stop(f"a cell ran past the {budget} time limit ({self.client.timeout} s); the kernel was stopped")
            raise KernelStopped(self.stopped) from None
        except DeadKernelError:
            self.stop("the kernel died (it exited, crashed or ran out of memory or CPU time)")
            raise KernelStopped(self.stopped) from None

    def run_cell(self, cell) -> None:
        """Run one of the notebook's cells; a stopped kernel leaves an error output."""
        try:
            self._run(cell)
        except KernelStopped as exc:
            cell.outputs.append(nbformat.v4.new_output("error", ename="KernelStopped", evalue=str(exc),
                                                       traceback=[f"KernelStopped: {exc}"]))

    def _request(self, request: dict) -> object:
        """Send ``request`` to the kernel; return its answer with the call's arguments synced back."""
        if self.stopped:
            raise KernelStopped(self.stopped)
        sent, states = {}, []  # number -> the test's function or module; state_dicts to load

        def outgoing(obj, walk):
            if isinstance(obj, Remote):
                return {"t": "handle", "v": obj._handle}
            if not callable(obj) or isinstance(obj, type):
                return None
            number = next(self._numbers)
            sent[number] = obj
            if _torch_module(obj):
                return {"t": "pickle", "id": number, "v": walk(np.frombuffer(pickle.dumps(obj), np.uint8))}
            return {"t": "callback", "v": number}

        def sent_object(number):
            if number not in sent:
                raise ValueError(f"no object numbered {number!r} was sent")
            return sent[number]

        def state(node, walk):
            module = sent_object(node["id"])
            states.append((module, walk(node["v"])))
            return module

        incoming = {"handle": lambda node, walk: Remote(self, node["v"]),
                    "callback": lambda node, walk: sent_object(node["v"]),
                    "state": state}
        try:
            message = _harness.dumps(*_harness.encode(request, outgoing))
        except _harness.Opaque as exc:
            raise CannotTransfer(f"the tests pass {exc} to the student's code") from None
        failures = []
        self.busy = True
        try:
            answer = self._converse(message, incoming, sent, outgoing, failures)
        finally:
            self.busy = False
        if failures:
            raise failures[0]
        if not isinstance(answer, dict):
            raise KernelStopped("no valid answer from the student's kernel")
        if "error" in answer:
            raise _harness.exception_for(answer["error"])
        for module, values in states:
            if not isinstance(values, dict):
                raise KernelStopped("no valid answer from the student's kernel (a module's state is not a dict)")
            torch = sys.modules["torch"]
            module.load_state_dict({k: torch.as_tensor(v) for k, v in values.items()})
        if request["op"] == "call":
            for original, after in zip(request["args"], answer.get("args", ())):
                sync_back(original, after)
            for key, original in request["kwargs"].items():
                if key in answer.get("kwargs", {}):
                    sync_back(original, answer["kwargs"][key])
        return answer

    def _converse(self, message: bytes, incoming: dict, sent: dict, outgoing, failures: list):
        """Send one request, answer the kernel's calls of the tests' functions, return its reply.

        The call (callbacks included) may take the cell time limit, within the
        notebook's; past it, or when the kernel dies, the kernel is stopped.
        """
        deadline = min(time.monotonic() + self.limits.cell_timeout, self.deadline)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.connect(self.socket_path)
                _harness.send(sock, message)
                while True:
                    data = _harness.receive(sock, deadline)
                    try:
                        received = _harness.decode(*_harness.loads(data), special=incoming)
                    except (ValueError, KeyError, TypeError, RecursionError) as exc:
                        raise KernelStopped(f"no valid answer from the student's kernel ({exc})") from None
                    if not isinstance(received, dict) or not ("reply" in received or "callback" in received):
                        raise KernelStopped("no valid answer from the student's kernel")
                    if "reply" in received:
                        return received["reply"]
                    _harness.send(sock, self._callback(received["callback"], sent, outgoing, failures))
            except socket.timeout:
                limit = "cell" if deadline < self.deadline else "notebook"
                self.stop(f"a call into the student's code ran past the {limit} time limit; the kernel was stopped")
            except (OSError, ValueError):
                self.stop("the kernel died or stopped answering the grader (it exited, crashed, "
                          "or ran out of memory or CPU time)")
        raise KernelStopped(self.stopped)

    @staticmethod
    def _callback(call, sent: dict, outgoing, failures: list) -> bytes:
        """Run the test's function the student's code called; its answer (an exception is also kept)."""
        try:
            function = sent.get(call["id"]) if isinstance(call, dict) else None
            if function is None or _torch_module(function):
                raise ValueError("the student's kernel called a function the tests did not pass")
            tree, arrays = _harness.encode({"result": function(*call["args"], **call["kwargs"])}, outgoing)
        except BaseException as exc:  # answered to the student's code, and fails the test
            failures.append(exc)
            tree, arrays = _harness.encode({"error": [type(exc).__name__, str(exc)[:2000]]})
        return _harness.dumps(tree, arrays)

    def lookup(self, name: str) -> dict:
        return self._request({"op": "lookup", "name": name})

    def call(self, target: Remote, args: tuple, kwargs: dict):
        # Under a checker's profiler hook, the kernel runs the call under the
        # same hook, so that an answer calling the reference is refused there too
        # (but for the reference functions the hook's "allowed" names), with the
        # hook's substitutes for the student's failing helpers (the course's
        # functions, which run here when the student's code calls them);
        # and under the test's NumPy error handling (e.g. overflow raising).
        hook = sys.getprofile()
        guard = list(hook.allowed) if hasattr(hook, "allowed") else None  # None: no checker's hook
        substitutes = dict(getattr(hook, "substitutes", {}))
        return self._request({"op": "call", "target": target, "args": list(args), "kwargs": kwargs,
                              "guard": guard, "substitutes": substitutes, "errstate": np.geterr()})["result"]


class _NoShell:
    """``get_ipython()`` for instructor cells run in the grader: magics do nothing there."""

    def run_line_magic(self, *args, **kwargs) -> None:
        return None

    run_cell_magic = system = run_line_magic


class TrustedNamespace(dict):
    """The tests' globals: their own names first, then builtins, then the student's kernel."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(__name__="__main__", __builtins__=builtins, get_ipython=_NoShell)
        self._sandbox = sandbox
        self.cache = {}

    def __missing__(self, name: str):
        if name in self.cache:
            return self.cache[name]
        if name.startswith("__") or hasattr(builtins, name):
            raise KeyError(name)
        answer = self._sandbox.lookup(name)
        kind = answer["kind"]
        if kind == "missing":
            raise KeyError(name)
        if kind == "module":  # only a module the grader has imported: an import by the kernel's say could run anything
            value = sys.modules.get(str(answer["module"]))
            if value is None:
                raise NameError(f"the tests use {name!r}, the module {answer['module']!r} in the student's kernel, "
                                "which the grader has not imported (import it in a locked setup cell)")
        else:
            value = answer[kind]
        self.cache[name] = value
        return value


def split_hidden(source: str) -> list:
    """``[(first_line, code, hidden), ...]``: the cell cut at the hidden-test markers."""
    segments, current, start, hidden = [], [], 0, False
    for number, line in enumerate(source.splitlines()):
        marker = line.strip()
        if marker in (HIDDEN_BEGIN, HIDDEN_END):
            segments.append((start, "\n".join(current), hidden))
            current, start, hidden = [], number + 1, marker == HIDDEN_BEGIN
        else:
            current.append(line)
    segments.append((start, "\n".join(current), hidden))
    return [s for s in segments if s[1].strip()]


def _transform(code: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(code)


def _compile_segment(code: str, first_line: int, filename: str, last: bool):
    """Compile one segment; the last segment's final expression becomes the cell's value."""
    tree = ast.parse(_transform(code), filename)
    ast.increment_lineno(tree, first_line)
    value = None
    if last and tree.body and isinstance(tree.body[-1], ast.Expr):
        value = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return compile(tree, filename, "exec"), value


def run_trusted_cell(cell, ns: TrustedNamespace) -> dict:
    """Run an instructor's cell in ``ns``; set its outputs; return what happened.

    The result has ``passed`` (no exception), ``hidden`` (the failure came from a
    hidden test), ``ename`` and ``message``.
    """
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "cell")
    filename = f"<test cell {grade_id}>"
    linecache.cache[filename] = (len(cell.source), None, cell.source.splitlines(True), filename)
    segments = split_hidden(cell.source)
    out = io.StringIO()
    result = {"passed": True, "hidden": False, "ename": "", "message": ""}
    outputs, value = [], None
    ns.cache.clear()

    def show_warning(message, category, filename_, lineno, file=None, line=None):
        out.write(warnings.formatwarning(message, category, filename_, lineno, line))

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show_warning
        for k, (first, code, hidden) in enumerate(segments):
            try:
                code_obj, expr = _compile_segment(code, first, "<hidden test>" if hidden else filename,
                                                  k == len(segments) - 1)
                exec(code_obj, ns)
                if expr is not None:
                    value = eval(expr, ns)
            except KeyboardInterrupt:
                raise
            except CannotTransfer as exc:
                result.update(passed=False, ename="CannotTransfer", message=str(exc), untransferable=True)
                break
            except BaseException as exc:  # any failure of a test, SystemExit included, fails the cell
                result.update(passed=False, hidden=hidden, ename=type(exc).__name__, message=str(exc))
                if hidden:
                    outputs.append(nbformat.v4.new_output(
                        "error", ename=type(exc).__name__, evalue=HIDDEN_FAILED,
                        traceback=[f"{HIDDEN_FAILED} ({type(exc).__name__})."]))
                else:
                    # The test cell's own lines only: the checkers' code and the grader's paths are
                    # not the student's business; the error's message carries the diagnosis.
                    tb = traceback.TracebackException.from_exception(exc)
                    tb.stack = traceback.StackSummary.from_list([f for f in tb.stack if f.filename == filename])
                    outputs.append(nbformat.v4.new_output(
                        "error", ename=type(exc).__name__, evalue=str(exc), traceback=list(tb.format())))
                value = None
                break
    text = out.getvalue()
    if text:
        outputs.insert(0, nbformat.v4.new_output("stream", name="stdout", text=text[: 100_000]))
    if value is not None:
        outputs.append(nbformat.v4.new_output("execute_result", data={"text/plain": repr(value)},
                                              execution_count=None))
    cell.outputs = outputs
    return result


def run_in_kernel(cell, sandbox: Sandbox, why: str) -> dict:
    """Run a test cell in the student's kernel, as nbgrader does, when its objects cannot cross.

    Such a cell is not protected from the student's code (the report marks it
    ``in_kernel``). Its stderr is shown as ordinary output, and a failure in a
    cell with hidden tests shows no traceback.
    """
    cell.outputs = []
    sandbox.run_cell(cell)
    errors = [o for o in cell.outputs if o.output_type == "error"]
    hidden = any(h for _, _, h in split_hidden(cell.source))
    for output in cell.outputs:
        if output.output_type == "stream":
            output.name = "stdout"
    if errors and hidden:
        cell.outputs = [nbformat.v4.new_output("error", ename=errors[0].ename, evalue=HIDDEN_FAILED,
                                               traceback=[f"A test failed ({errors[0].ename})."])]
    first = errors[0] if errors else None
    return {"passed": not errors, "hidden": bool(errors) and hidden, "ename": first.ename if first else "",
            "message": first.evalue if first else "", "in_kernel": why}


def _is_test(cell) -> bool:
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def _is_setup(cell) -> bool:
    return cell.cell_type == "code" and utils.is_locked(cell) and not utils.is_grade(cell)


class DropEmptyMetadata(NbGraderPreprocessor):
    """Turn a cell whose nbgrader metadata ``DeduplicateIds`` emptied into a plain cell.

    nbgrader's ``OverwriteCells.add_missing_cells`` fails on such a cell (it has
    no ``grade_id``); as a plain cell it runs as the student's own code.
    """

    def preprocess_cell(self, cell, resources, index):
        if "nbgrader" in cell.metadata and "grade_id" not in cell.metadata.nbgrader:
            del cell.metadata["nbgrader"]
        return cell, resources


class TrustedExecute(NbGraderPreprocessor):
    """Execute a submission: student cells in a sandboxed kernel, tests in the grader.

    Limits and the paths hidden from the kernel are configurable (nbgrader's
    ``c.TrustedExecute.*``); ``report_dir`` receives one JSON file per
    notebook (``<student>/<assignment>/<notebook>.json``) with every test
    cell's result, hidden failures included, for the instructor.
    """

    cell_timeout = Float(Limits.cell_timeout, help="Seconds for one cell or one call into student code").tag(config=True)
    notebook_timeout = Float(Limits.notebook_timeout, help="Seconds for a whole notebook").tag(config=True)
    memory_mb = Integer(Limits.memory_mb, help="Address-space cap of the kernel (MiB)").tag(config=True)
    cpu_seconds = Integer(Limits.cpu_seconds, help="CPU-time cap of the kernel (s)").tag(config=True)
    max_processes = Integer(Limits.max_processes, help="Processes and threads of one kernel").tag(config=True)
    output_bytes = Integer(Limits.output_bytes, help="Outputs kept per notebook (bytes)").tag(config=True)
    hidden_paths = List(Unicode(), help="Paths the kernel must not see (the course root)").tag(config=True)
    report_dir = Unicode("", help="Where to write the per-notebook test report (empty: nowhere)").tag(config=True)

    def limits(self) -> Limits:
        return Limits(cell_timeout=self.cell_timeout, notebook_timeout=self.notebook_timeout,
                      memory_mb=self.memory_mb, cpu_seconds=self.cpu_seconds,
                      max_processes=self.max_processes, output_bytes=self.output_bytes)

    def preprocess(self, nb, resources):
        started = time.monotonic()
        tests = []
        data_dir = resources.get("metadata", {}).get("path", "")
        with Sandbox(nb, self.limits(), list(self.hidden_paths), data_dir) as sandbox:
            ns = TrustedNamespace(sandbox)
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                if _is_test(cell):
                    outcome = run_trusted_cell(cell, ns)
                    if outcome.get("untransferable"):
                        outcome = run_in_kernel(cell, sandbox, outcome["message"])
                    tests.append({"grade_id": cell.metadata.nbgrader["grade_id"],
                                  "points": float(cell.metadata.nbgrader.get("points", 0)), **outcome})
                    continue
                sandbox.run_cell(cell)
                if _is_setup(cell):
                    setup = nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata)
                    run_trusted_cell(setup, ns)
            stopped = sandbox.stopped
        self._close_figures()
        self._write_report(resources, {"tests": tests, "kernel_stopped": stopped,
                                       "seconds": round(time.monotonic() - started, 3)})
        return nb, resources

    @staticmethod
    def _close_figures() -> None:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    def _write_report(self, resources, report: dict) -> None:
        if not self.report_dir:
            return
        info = resources["nbgrader"]
        path = os.path.join(self.report_dir, info["student"], info["assignment"], f"{info['notebook']}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
        os.replace(path + ".tmp", path)

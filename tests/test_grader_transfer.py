"""What crosses between the tests (grader process) and the student's code (sandboxed kernel).

Plain data both ways; a test's functions stay in the grader and are called
over the sandbox's socket; what the student's code does to a call's arguments
comes back into the test's objects; the kernel can never make the grader run
code (forged replies are refused).
"""
import json
import os
import struct
import sys
import time

import nbformat
import numpy as np
import pytest
import torch

import lstm_ref
from lstm_ref.init import init_lstm_params
from grader import _harness
from grader.sandbox import Limits
from grader.trusted import Sandbox, TrustedNamespace, run_trusted_cell, sync_back


def _code(source: str, **nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=20, notebook_timeout=300), []) as box:
        yield box


def _test(sandbox, student: str, test: str) -> tuple:
    """Run ``student`` in the kernel, then ``test`` as a trusted test cell; (result, cell, namespace)."""
    cell = _code(student)
    sandbox.run_cell(cell)
    assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    ns = TrustedNamespace(sandbox)
    test_cell = _code(test, grade=True, grade_id="t", points=1)
    return run_trusted_cell(test_cell, ns), test_cell, ns


def _roundtrip(value):
    return _harness.decode(*_harness.loads(_harness.dumps(*_harness.encode(value))))


# ---------------------------------------------------------------------------
# The codec and sync_back, without a kernel


def test_the_codec_keeps_every_array_shape_dtype_and_value():
    values = [np.float64(0.5), np.array(3.0), np.zeros((0, 3)), np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2], np.array([True, False]),
              np.array(["ab", "c"]), np.array([1 + 2j]), np.arange(4, dtype=">i4")]
    back = _roundtrip(values)
    for sent, got in zip(values, back, strict=True):
        assert type(got) is type(sent) and got.dtype == sent.dtype and got.shape == sent.shape
        np.testing.assert_array_equal(got, sent)


def test_generators_and_lstm_ref_caches_are_plain_data():
    rng = np.random.default_rng(7)
    rng.normal(size=5)
    copy = _roundtrip(rng)
    assert copy is not rng and np.array_equal(copy.normal(size=4), rng.normal(size=4))

    p = init_lstm_params(3, 4, seed=0)
    x, h, c = np.ones((2, 3)), np.zeros((2, 4)), np.zeros((2, 4))
    cache = lstm_ref.lstm_step_forward(x, h, c, p)[2]
    back = _roundtrip(cache)
    assert type(back) is type(cache)
    assert all(np.array_equal(a, b) for a, b in zip(back[:-2], cache[:-2]) if isinstance(a, np.ndarray))
    assert back.variant == cache.variant and all(np.array_equal(back.params[k], v) for k, v in cache.params.items())


@pytest.mark.parametrize("node, message", [
    ({"t": "record", "module": "os", "class": "system", "v": [{"t": "json", "v": "true"}]}, "module 'os'"),
    ({"t": "record", "module": "lstm_ref", "class": "lstm_forward", "v": []}, "not a NamedTuple"),
    ({"t": "generator", "v": {"t": "dict", "v": [["bit_generator", {"t": "json", "v": "os.system"}]]}},
     "unknown bit generator"),
    ({"t": "pickle", "id": 0, "v": {"t": "array", "i": 0}}, "unexpected node type 'pickle'"),
    ({"t": "handle", "v": {"id": 0}}, "unexpected node type 'handle'"),
])  # fmt: skip
def test_decoding_refuses_anything_but_data(node, message):
    with pytest.raises(ValueError, match=message):
        _harness.decode(node, [np.frombuffer(b"\x80\x04N.", np.uint8)])


def test_sync_back_writes_in_place_and_keeps_identity():
    w, b = np.zeros(3), np.arange(3.0)
    params = {"W": w, "b": b, "old": 1}
    after = {"W": np.ones(3), "b": np.arange(3.0), "new": "x"}
    assert sync_back(params, after) is params
    assert params["W"] is w and np.array_equal(w, np.ones(3)) and params["b"] is b
    assert set(params) == {"W", "b", "new"}

    frozen = np.zeros(2)
    frozen.flags.writeable = False
    sync_back(frozen, np.ones(2))
    assert np.array_equal(frozen, np.zeros(2))

    items = [np.zeros(2), 5]
    sync_back(items, [np.full(2, 3.0), 6])
    assert np.array_equal(items[0], [3.0, 3.0]) and items[1] == 6

    rng, other = np.random.default_rng(1), np.random.default_rng(1)
    other.random(3)
    sync_back(rng, other)
    assert rng.random() == other.random()

    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    sync_back(t, torch.ones(2, dtype=torch.float64))
    assert torch.equal(t.detach(), torch.ones(2, dtype=torch.float64)) and t.requires_grad


# ---------------------------------------------------------------------------
# Real calls into a real kernel


def test_changes_to_arguments_reach_the_test(sandbox):
    result, cell, _ = _test(sandbox, (
        "def fill(a, params):\n    a[:] = 7\n    params['extra'] = 1\n"
        "def draw(rng):\n    return rng.normal(size=3)\n"
        "def pure(a):\n    return a.sum()\n"), (
        "import numpy as np\n"
        "a, params = np.zeros(4), {}\n"
        "fill(a, params)\n"
        "assert np.array_equal(a, np.full(4, 7.0)) and params == {'extra': 1}, (a, params)\n"
        "rng, twin = np.random.default_rng(5), np.random.default_rng(5)\n"
        "assert np.array_equal(draw(rng), twin.normal(size=3))\n"
        "assert rng.random() == twin.random(), 'the generator did not advance'\n"
        "window = np.array([1.0, 2.0])\n"
        "assert pure(window) == 3.0 and np.array_equal(window, [1.0, 2.0])\n"))
    assert result["passed"], cell.outputs


def test_a_tests_function_runs_in_the_grader(sandbox):
    result, cell, ns = _test(sandbox, (
        "import os\n"
        "def apply(f, x, n):\n    return [f(x + k) for k in range(n)]\n"
        "def swallow(f):\n    try:\n        f()\n    except AssertionError:\n        pass\n    return 'fine'\n"), (
        "import os\n"
        "seen = []\n"
        "def record(x):\n    seen.append((x, os.getpid()))\n    return x * 10\n"
        "assert apply(record, 1.5, 3) == [15.0, 25.0, 35.0]\n"
        "assert [x for x, _ in seen] == [1.5, 2.5, 3.5] and {p for _, p in seen} == {os.getpid()}\n"
        "assert apply(lambda v: v - 1, 1, 2) == [0, 1]\n"))
    assert result["passed"], cell.outputs
    assert ns["seen"][0][1] == os.getpid()

    # an assertion of the test's own function fails the test even if the student's code catches it
    result, cell, _ = _test(sandbox, "pass", (
        "def strict():\n    raise AssertionError('predict got the wrong window')\n"
        "swallow(strict)\n"))
    assert not result["passed"] and result["ename"] == "AssertionError", cell.outputs
    assert "wrong window" in result["message"]


def test_a_torch_module_filled_in_by_the_student(sandbox):
    result, cell, _ = _test(sandbox, (
        "import torch\n"
        "def load(layer, w):\n    with torch.no_grad():\n        layer.weight.copy_(torch.as_tensor(w))\n"
        "def reshape(layer):\n    layer.weight = torch.nn.Parameter(torch.zeros(1, 1, dtype=torch.float64))\n"), (
        "import numpy as np, torch\n"
        "layer = torch.nn.Linear(3, 2, dtype=torch.float64)\n"
        "bias = layer.bias.detach().clone()\n"
        "w = np.arange(6.0).reshape(2, 3)\n"
        "load(layer, w)\n"
        "assert np.array_equal(layer.weight.detach().numpy(), w) and torch.equal(layer.bias.detach(), bias)\n"
        "assert np.allclose(layer(torch.ones(1, 3, dtype=torch.float64)).detach().numpy(), w.sum(1) + bias.numpy())\n"))
    assert result["passed"], cell.outputs

    result, cell, _ = _test(sandbox, "pass", (
        "import torch\nreshape(torch.nn.Linear(3, 2, dtype=torch.float64))\n"))
    assert not result["passed"] and "size mismatch" in result["message"], cell.outputs


def test_the_tests_numpy_error_handling_applies_in_the_call(sandbox):
    result, cell, _ = _test(sandbox, (
        "import numpy as np\n"
        "def naive_sigmoid(x):\n    return 1 / (1 + np.exp(-x))\n"), (
        "import numpy as np\n"
        "with np.errstate(over='raise'):\n"
        "    try:\n        naive_sigmoid(np.array([-1000.0]))\n        raised = False\n"
        "    except FloatingPointError:\n        raised = True\n"
        "assert raised, 'the overflow did not raise'\n"
        "with np.errstate(all='ignore'):\n    assert naive_sigmoid(np.array([-1000.0]))[0] == 0.0\n"))
    assert result["passed"], cell.outputs


def test_forged_replies_never_run_code_in_the_grader(tmp_path):
    """The student's code replaces the kernel's server with one that answers whatever it likes."""
    marker = tmp_path / "owned"
    forge = (
        "import json, os, pickle, socket, struct, threading\nimport numpy as np\n"
        "class Evil:\n    def __reduce__(self):\n        return (__import__('builtins').open, ({marker!r}, 'w'))\n"
        "FORGED = []\n"
        "os.unlink({path!r})\n"
        "server = socket.socket(socket.AF_UNIX)\nserver.bind({path!r})\nserver.listen()\n"
        "def forge():\n"
        "    while True:\n"
        "        conn, _ = server.accept()\n"
        "        (size,) = struct.unpack('!Q', conn.recv(8))\n"
        "        while size > 0:\n            size -= len(conn.recv(size))\n"
        "        node, arrays = FORGED.pop()\n"
        "        tree = {{'t': 'dict', 'v': [['reply', {{'t': 'dict', 'v': [['result', node]]}}]]}}\n"
        "        header = json.dumps({{'tree': tree, 'arrays': arrays}}).encode()\n"
        "        body = struct.pack('!Q', len(header)) + header + pickle.dumps(Evil())\n"
        "        conn.sendall(struct.pack('!Q', len(body)) + body)\n"
        "        conn.close()\n"
        "threading.Thread(target=forge, daemon=True).start()\n")
    array = {"t": "array", "i": 0}
    nodes = [({"t": "pickle", "id": 0, "v": array}, [["|u1", [8]]]),
             ({"t": "record", "module": "builtins", "class": "open", "v": [{"t": "json", "v": str(marker)}]}, []),
             ({"t": "state", "id": 0, "v": {"t": "dict", "v": []}}, []),
             (array, [["|O", [1]]]),  # an object array would unpickle
             (array, [["|V8", [1]]]),
             (array, [["<f8", [10**6]]]),  # more than the message holds
             (array, [["<f8", [-1]]]),
             ({"t": "json", "v": 42}, [])]
    with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=20, notebook_timeout=300), []) as box:
        result, cell, ns = _test(box, "def answer():\n    return 42\n", "assert answer() == 42\n")
        assert result["passed"], cell.outputs
        answer = ns["answer"]
        box.run_cell(_code(forge.format(marker=str(marker), path=box.socket_path)))
        for forged in nodes[:-1]:
            box.run_cell(_code(f"FORGED.append({forged!r})"))
            with pytest.raises(Exception, match="no valid answer"):
                answer()
            assert not marker.exists()
        box.run_cell(_code(f"FORGED.append({nodes[-1]!r})"))
        assert answer() == 42  # the forging server is answering: only data came through


def test_a_call_past_the_cell_limit_or_a_dying_call_stops_the_kernel():
    for student, reason in (("def answer():\n    while True:\n        pass\n", "past the cell time limit"),
                            ("import os\ndef answer():\n    os._exit(3)\n", "kernel died")):
        with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=2, notebook_timeout=60), []) as box:
            result, cell, _ = _test(box, student, "answer()\n")
            assert not result["passed"] and result["ename"] == "KernelStopped", cell.outputs
            assert reason in result["message"] and reason in box.stopped
            later = run_trusted_cell(_code("answer()\n", grade=True, grade_id="u", points=1), TrustedNamespace(box))
            assert not later["passed"] and later["ename"] == "KernelStopped"  # the kernel is gone for good



def test_names_from_the_kernel_never_make_the_grader_import_or_run_code(sandbox):
    """The kernel can claim any module and name for a student's object: the grader looks nothing up by them."""
    assert "this" not in sys.modules  # a module that prints when imported
    result, cell, _ = _test(sandbox, (
        "def lstm_param_count(D, H):\n    return 4 * (D * H + H * H + H)\n"
        "lstm_param_count.__module__, lstm_param_count.__qualname__ = 'ctypes', 'string_at'\n"
        "import this as lstm_step\n"), (
        "assert lstm_param_count(3, 5) == 4 * (15 + 25 + 5)\n"))  # ctypes.string_at(3, 5) would crash the grader
    assert result["passed"], cell.outputs
    result, cell, _ = _test(sandbox, "pass", "lstm_step(1, 2)\n")
    assert not result["passed"] and result["ename"] == "NameError" and "has not imported" in result["message"]
    assert "this" not in sys.modules


def test_a_student_object_a_test_reads_fails_the_test_in_the_grader(sandbox):
    """Reading an attribute of the student's object would need the student's kernel to run the test,
    where the student's code decides it (here np.shape is patched to agree): it fails the test instead."""
    result, cell, _ = _test(sandbox, (
        "import numpy as np\n"
        "class Windows:\n    shape = (3, 2)\n"
        "def make_windows(series):\n    return Windows()\n"
        "np.shape = lambda a: (3, 2)\n"), (
        "import numpy as np\n"
        "assert np.shape(make_windows(np.arange(4.0))) == (3, 2)\n"))
    assert not result["passed"] and not result.get("untransferable"), (result, cell.outputs)


def test_a_reply_trickled_byte_by_byte_is_held_to_the_cell_limit():
    trickle = (
        "import os, socket, struct, threading, time\n"
        "os.unlink({path!r})\n"
        "server = socket.socket(socket.AF_UNIX)\nserver.bind({path!r})\nserver.listen()\n"
        "def serve():\n"
        "    conn, _ = server.accept()\n"
        "    conn.recv(1 << 20)\n"
        "    conn.sendall(struct.pack('!Q', 1000))\n"
        "    for _ in range(1000):\n        conn.sendall(b' ')\n        time.sleep(0.5)\n"
        "threading.Thread(target=serve, daemon=True).start()\n")
    with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=2, notebook_timeout=60), []) as box:
        result, cell, ns = _test(box, "def answer():\n    return 1\n", "assert answer() == 1\n")
        assert result["passed"], cell.outputs
        box.run_cell(_code(trickle.format(path=box.socket_path)))
        start = time.monotonic()
        with pytest.raises(Exception, match="past the cell time limit"):
            ns["answer"]()
        assert time.monotonic() - start < 4, "each byte restarted the wait"


def test_a_message_too_large_to_read_safely_is_refused_before_it_is_built():
    many = json.dumps({"tree": {"t": "json", "v": None}, "arrays": [["<f8", [0]]] * (_harness.MAX_ARRAYS + 1)})
    with pytest.raises(ValueError, match=f"more than {_harness.MAX_ARRAYS} arrays"):
        _harness.loads(struct.pack("!Q", len(many)) + many.encode())
    big = _harness.MAX_HEADER_BYTES + 1
    with pytest.raises(ValueError, match="header larger than"):
        _harness.loads(struct.pack("!Q", big) + b" " * big)


def test_a_failed_public_test_shows_its_own_lines_and_the_diagnosis_only(sandbox):
    result, cell, _ = _test(sandbox, "def lstm_param_count(D, H):\n    return D * H + H * H + H\n", (
        "from lstm_ref import checkers\n"
        "checkers.check_lstm_param_count(lstm_param_count)\n"))
    assert not result["passed"]
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    text = "".join(error.traceback)
    assert "<test cell t>" in text and "check_lstm_param_count(lstm_param_count)" in text
    assert "that is a vanilla RNN's count" in text
    assert "checkers.py" not in text and os.sep + "grader" + os.sep not in text, text


def test_an_object_kept_in_the_kernel_is_named_by_its_type_there(sandbox):
    result, cell, _ = _test(sandbox, (
        "import torch\n"
        "def lstm_step(x, h_prev, c_prev, params):\n"
        "    return torch.as_tensor(h_prev), torch.as_tensor(c_prev)\n"), (
        "from lstm_ref import checkers\n"
        "checkers.check_lstm_step(lstm_step)\n"))
    assert not result["passed"]
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    assert "lstm_step: h is Tensor; expected a float numpy array of shape (N, H) = (3, 5)" in error.evalue, error

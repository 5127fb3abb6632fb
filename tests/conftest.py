"""Shared test set-up: Keras on PyTorch, and one uniform view of the three cells.

The NumPy backend's cells differ in their state (LSTM: (h, c); GRU, RNN: h)
and options (LSTM ``variant``, GRU ``reset_mode``). The adapters below give
every cell the same call shape, states as tuples, so that one parametrised
suite covers every cell, variant and reset mode (``CASES``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")  # before any keras import

# Each pytest process (one per xdist worker) keeps the grader's kernel sandboxes under a temporary
# folder of its own (TMPDIR, inherited by the grader processes its tests start), so that a test's
# "no kernel or sandbox left" sees only its own process's, not those of tests running beside it.
# Kernels that run as another user pass through the folder (0o711) to their own sandbox. The folders
# go side by side in the temporary folder the run started with (xdist's workers inherit the TMPDIR
# set below in the controlling process), not into each other: the sandboxes' socket paths stay short.
_BASE = os.environ.setdefault("LSTM_COURSE_TESTS_TMP", tempfile.gettempdir())
_MADE: list = []  # removed when the process's tests end


def private_tmpdir() -> str:
    """A new temporary folder that kernels running as another user may pass through (0o711)."""
    folder = tempfile.mkdtemp(prefix="lstm-course-tests-", dir=_BASE)
    os.chmod(folder, 0o711)
    _MADE.append(folder)
    return folder


os.environ["TMPDIR"] = tempfile.tempdir = private_tmpdir()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import lstm_ref  # noqa: E402
from lstm_ref import init  # noqa: E402

# The tests multiply small matrices, fastest on one BLAS thread; a multi-threaded BLAS whose
# threads wait on cores busy with other work can be tens of times slower.
threadpool_limits(limits=1, user_api="blas")
# Likewise torch's intra-op threads: small LSTMs gain nothing from them, and oversubscribed
# threads on a busy machine slow training by an order of magnitude.
torch.set_num_threads(1)

# (cell, options) for every cell, LSTM variant and GRU reset mode.
CASES = (
    [("lstm", {"variant": v}) for v in lstm_ref.LSTM_VARIANTS]
    + [("gru", {"reset_mode": m}) for m in lstm_ref.GRU_RESET_MODES]
    + [("rnn", {})]
)
CASE_IDS = [f"{cell}-{next(iter(o.values()))}" if o else cell for cell, o in CASES]


def n_states(cell: str) -> int:
    """How many (N, H) states ``cell`` carries: 2 for the LSTM (h, c), else 1."""
    return 2 if cell == "lstm" else 1


def random_params(cell: str, D: int, H: int, options: dict, seed) -> dict[str, np.ndarray]:
    """Every parameter non-zero (biases and peepholes included): PyTorch's uniform init."""
    if cell == "lstm":
        return init.init_lstm_params(D, H, scheme="pytorch", seed=seed, **options)
    if cell == "gru":
        return init.init_gru_params(D, H, scheme="pytorch", seed=seed, **options)
    return init.init_rnn_params(D, H, scheme="pytorch", seed=seed)


def step_forward(cell, x, states, params, options):
    """One step of ``cell``: (new states tuple, cache)."""
    if cell == "lstm":
        h, c, cache = lstm_ref.lstm_step_forward(x, *states, params, **options)
        return (h, c), cache
    run = lstm_ref.gru_step_forward if cell == "gru" else lstm_ref.rnn_step_forward
    h, cache = run(x, *states, params, **options)
    return (h,), cache


def step_backward(cell, dstates, cache):
    """Backward of ``step_forward``: (dx, previous-state gradients tuple, grads)."""
    if cell == "lstm":
        dx, dh, dc, grads = lstm_ref.lstm_step_backward(*dstates, cache)
        return dx, (dh, dc), grads
    run = lstm_ref.gru_step_backward if cell == "gru" else lstm_ref.rnn_step_backward
    dx, dh, grads = run(*dstates, cache)
    return dx, (dh,), grads


def sequence_forward(cell, x, params, states0, options, return_sequences=True):
    """A sequence of ``cell``: (out, final states tuple, cache)."""
    if cell == "lstm":
        out, (h, c), cache = lstm_ref.lstm_forward(x, params, *states0, return_sequences=return_sequences, **options)
        return out, (h, c), cache
    run = lstm_ref.gru_forward if cell == "gru" else lstm_ref.rnn_forward
    out, h, cache = run(x, params, *states0, return_sequences=return_sequences, **options)
    return out, (h,), cache


def sequence_backward(cell, dout, cache, dfinal):
    """Backward of ``sequence_forward``: (dx, initial-state gradients tuple, grads)."""
    if cell == "lstm":
        dx, dh0, dc0, grads = lstm_ref.lstm_backward(dout, cache, *dfinal)
        return dx, (dh0, dc0), grads
    run = lstm_ref.gru_backward if cell == "gru" else lstm_ref.rnn_backward
    dx, dh0, grads = run(dout, cache, *dfinal)
    return dx, (dh0,), grads


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, fixed-seed generator per test."""
    return np.random.default_rng(20240521)


@pytest.fixture
def kernel_processes():
    """A function listing the processes working now in a kernel's sandbox folder (their cwd):
    kernels and what they started. The sandboxes' own root is the grader's."""
    from grader.sandbox import sandboxes_path

    root = sandboxes_path() + os.sep

    def running() -> list:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/cwd").startswith(root):
                    found.append(int(pid))
        return found

    return running


def pytest_unconfigure(config) -> None:
    for folder in _MADE:
        shutil.rmtree(folder, ignore_errors=True)

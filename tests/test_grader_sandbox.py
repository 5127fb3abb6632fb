"""The sandboxed kernel and the trusted test runner, on small real notebooks (real kernels)."""
import ast
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import nbformat
import numpy as np
import pytest
import zmq

from conftest import private_tmpdir
from grader.sandbox import (CGROUP_PREFIX, LOCK_SUFFIX, RECONNECT_MS, SCRATCH_BYTES, SCRATCH_FILES, SHM, SHM_BYTES,
                            Limits, SandboxKernelClient, _proves_iopub, describe_protections, new_sandbox_dir,
                            protections, remove_sandbox_dir, sandboxes_path, sandboxes_root, shared_folders,
                            sweep_sandboxes, zygote)
from grader.trusted import (HIDDEN_FAILED, Remote, Sandbox, TrustedNamespace, copy_data_files, run_trusted_cell,
                            split_hidden)


def _code(source: str, **nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


def _text(cell) -> str:
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.outputs)


@pytest.fixture(scope="module")
def secret_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instructor")
    (folder / "hidden_tests.txt").write_text("assert answer == 42\n")
    return str(folder)


@pytest.fixture(scope="module")
def sandbox(secret_dir):
    os.environ["GRADER_TEST_SECRET"] = "visible-to-the-grader-only"
    nb = nbformat.v4.new_notebook()
    with Sandbox(nb, Limits(cell_timeout=20, notebook_timeout=300, output_bytes=50_000), [secret_dir]) as box:
        yield box
    del os.environ["GRADER_TEST_SECRET"]


def test_protections_are_reported(sandbox):
    p = protections()
    line = describe_protections()
    assert ("no network" in line.split("|")[0]) == p["namespaces"]
    assert ("private, size-capped" in line.split("|")[0]) == p["namespaces"]
    assert all(folder in line for folder in shared_folders())
    assert "per-cell and per-notebook timeouts" in line


def test_kernel_sees_no_instructor_files_no_sign_of_grading_and_no_network(sandbox, secret_dir):
    cell = _code(
        "import os, socket\n"
        f"try:\n    print('READ', open({os.path.join(secret_dir, 'hidden_tests.txt')!r}).read())\n"
        "except OSError as exc:\n    print('hidden:', type(exc).__name__)\n"
        "print('ENV', sorted(k for k in os.environ if 'GRADER' in k or 'NBGRADER' in k))\n"
        "import sys, threading\n"
        "seen = [os.getcwd(), *os.listdir('.'), open('/proc/self/cgroup').read(), *map(str, threading.enumerate()),\n"
        "        *os.environ.values(), *get_ipython().user_ns, open('/proc/self/cmdline').read(),\n"
        "        open('/proc/self/environ').read(), *sys.argv, *sys.orig_argv]\n"
        "print('SIGNS', [s for s in seen if 'grad' in s.lower()])\n"
        "print('MODULES', [m for m in sys.modules if m.split('.')[0] in ('grader', 'nbgrader', 'launch')])\n"
        "print('UID', os.getuid())\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    print('NET open')\n"
        "except OSError as exc:\n    print('NET closed')\n")
    sandbox.run_cell(cell)
    out = _text(cell)
    assert "ENV []" in out and "SIGNS []" in out and "MODULES []" in out, out
    assert ("UID 65534" in out) == protections()["drop_root"], out
    if protections()["namespaces"]:
        assert "READ" not in out and "hidden:" in out
        assert "NET closed" in out


def test_outside_its_folder_a_kernel_writes_only_to_empty_capped_tmpfs_of_its_own(sandbox):
    """Every folder a kernel (nobody) may write to outside its own is one of the system's world-writable
    folders (shared_folders: /dev/shm, /run/lock, ...), covered by a tmpfs of the kernel's own (another
    device than the host's folder), empty (the file the host put there is not in it), capped in size and files."""
    standard = {os.path.realpath(p) for p in ("/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
                if os.path.isdir(p) and os.stat(p).st_mode & stat.S_IWOTH}
    assert standard <= set(shared_folders())
    markers = [os.path.join(folder, f"from-the-host-{uuid.uuid4().hex[:8]}") for folder in shared_folders()]
    try:
        for path in markers:
            open(path, "w").close()
        cell = _code(
            "import os\n"
            "here, writable = os.getcwd(), {}\n"
            "for folder, subdirs, _ in os.walk('/'):\n"
            "    subdirs[:] = [d for d in subdirs if os.path.join(folder, d) not in ('/proc', '/sys', here)]\n"
            "    if os.access(folder, os.W_OK):\n"
            "        fs = os.statvfs(folder)\n"
            "        writable[folder] = [os.stat(folder).st_dev, fs.f_blocks * fs.f_frsize, fs.f_files,\n"
            "                            os.listdir(folder)]\n"
            "print('WRITABLE', writable)\n")
        sandbox.run_cell(cell)
    finally:
        for path in markers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    writable = ast.literal_eval(_text(cell).split("WRITABLE ", 1)[1])
    if protections()["namespaces"]:
        for folder in shared_folders():
            device, size, files, entries = writable[folder]
            assert device != os.stat(folder).st_dev and entries == [], (folder, writable[folder])
            assert (size, files) == (SHM_BYTES if folder == SHM else SCRATCH_BYTES, SCRATCH_FILES), folder
    if protections()["drop_root"]:
        assert set(writable) == set(shared_folders()), writable


# A kernel leaves files in /dev/shm and /run/lock, shares memory with processes of its own, fills /dev/shm
# past its cap, makes a System V shared memory segment (key KEY), and names its mount namespace.
_LEAVE = (
    "import ctypes, errno, multiprocessing, os\n"
    "import numpy as np, torch\n"
    "from multiprocessing import shared_memory\n"
    "from torch.utils.data import DataLoader, TensorDataset\n"
    "for path in LEFT:\n"
    "    with open(path, 'w') as fh:\n"
    "        fh.write('left by a kernel')\n"
    "memory = shared_memory.SharedMemory(create=True, size=SHM_BYTES // 2)\n"
    "shared = np.ndarray(SHM_BYTES // 16, np.float64, memory.buf)\n"
    "child = multiprocessing.Process(target=shared.fill, args=(1.0,))\n"
    "child.start()\n"
    "child.join()\n"
    "print('SHARED', shared.sum() == shared.size)\n"
    "del shared\n"
    "memory.close()\n"
    "memory.unlink()\n"
    "batches = DataLoader(TensorDataset(torch.ones(64, 8)), batch_size=16, num_workers=2)\n"
    "print('LOADED', sum(float(batch.sum()) for batch, in batches))\n"
    "big = os.open(LEFT[0] + '-big', os.O_WRONLY | os.O_CREAT, 0o600)\n"
    "try:\n"
    "    for _ in range(SHM_BYTES // 2**20 + 2):\n"
    "        os.write(big, bytes(2**20))\n"
    "    print('OVERFLOW none')\n"
    "except OSError as exc:\n"
    "    print('OVERFLOW', errno.errorcode[exc.errno])\n"
    "finally:\n"
    "    os.close(big)\n"
    "    os.unlink(LEFT[0] + '-big')\n"
    "print('SYSV', ctypes.CDLL(None).shmget(KEY, 4096, 0o1600) >= 0)\n"  # IPC_CREAT | 0o600
    "print('NAMESPACE', os.readlink('/proc/self/ns/mnt'))\n")


def _sysv_segments() -> dict:
    """key -> id of the System V shared memory segments of this process's IPC namespace."""
    with open("/proc/sysvipc/shm") as fh:
        rows = [line.split() for line in fh][1:]
    return {int(row[0]): int(row[1]) for row in rows}


def _in_namespace(namespace: str) -> list:
    """The processes in the mount namespace ``namespace`` (``mnt:[inode]``)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/mnt") == namespace:
                found.append(int(pid))
    return found


def test_what_a_kernel_leaves_in_dev_shm_run_lock_and_ipc_ends_with_it():
    """What a kernel writes in /dev/shm and /run/lock and its System V segment reach neither the
    host nor the next kernel, and end with its namespaces; shared memory works within the cap
    (multiprocessing, torch's DataLoader workers), and writing past the cap fails with no space left."""
    name, key = f"left-{uuid.uuid4().hex[:8]}", int(uuid.uuid4().hex[:7], 16)
    left = [os.path.join("/dev/shm", name), os.path.join("/run/lock", name)]
    program = f"LEFT, KEY, SHM_BYTES = {left!r}, {key}, {SHM_BYTES}\n{_LEAVE}"
    try:
        with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=60), []) as box:
            first = _code(program)
            box.run_cell(first)
            during = [p for p in left if os.path.exists(p)], key in _sysv_segments()
        with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=20), []) as box:
            second = _code(f"import ctypes, os\nprint('SEEN', [p for p in {left!r} if os.path.exists(p)],\n"
                           f"      ctypes.CDLL(None).shmget({key}, 0, 0) >= 0)")
            box.run_cell(second)
        after = [p for p in left if os.path.exists(p)], key in _sysv_segments()
    finally:  # without namespaces, what the kernel left is the host's
        for path in left:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if key in _sysv_segments():
            ctypes.CDLL(None).shmctl(_sysv_segments()[key], 0, None)  # IPC_RMID
    out = _text(first)
    assert "SHARED True" in out and "LOADED 512.0" in out and "SYSV True" in out, out
    if protections()["namespaces"]:
        assert "OVERFLOW ENOSPC" in out, out
        assert during == after == ([], False), (during, after)
        assert "SEEN [] False" in _text(second), _text(second)
        namespace = out.split("NAMESPACE ", 1)[1].split()[0]
        _wait_for(lambda: not _in_namespace(namespace), "the kernel's mount namespace outlived it")


def test_kernels_start_preloaded_and_share_nothing(sandbox, kernel_processes):
    """Kernels fork from the zygote, which has imported torch and what its first optimizer imports
    (torch._dynamo); what one kernel changes in a
    preloaded module never reaches the next kernel, and a closed kernel's processes are gone."""
    if protections()["drop_root"]:
        assert zygote()
    first = _code("import sys\nprint('PRELOADED', 'torch' in sys.modules and 'torch._dynamo' in sys.modules)\n"
                  "import numpy.testing, lstm_ref.checkers\n"
                  "numpy.testing.assert_allclose = None\nlstm_ref.checkers.check_lstm_step = None\n")
    sandbox.run_cell(first)
    assert ("PRELOADED True" in _text(first)) == bool(zygote()), _text(first)
    before = set(kernel_processes())
    with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=20), []) as other:
        second = _code("import numpy.testing, lstm_ref.checkers\n"
                       "print('CHANGED', numpy.testing.assert_allclose is None, lstm_ref.checkers.check_lstm_step is None)")
        other.run_cell(second)
        during = set(kernel_processes())
    assert "CHANGED False False" in _text(second), _text(second)
    assert during > before
    assert set(kernel_processes()) == before


def test_a_kernel_client_retries_a_refused_connection_soon():
    """The client connects before a starting kernel listens: its sockets retry after RECONNECT_MS, not 100 ms."""
    client = SandboxKernelClient()
    socket = client.context.socket(zmq.DEALER)
    try:
        assert socket.getsockopt(zmq.RECONNECT_IVL) == RECONNECT_MS < 100
    finally:
        socket.close(linger=0)
        client.context.term()


def test_iopub_is_proven_by_the_welcome_or_the_requests_idle_status():
    def msg(msg_type, parent="", state=""):
        return {"msg_type": msg_type, "parent_header": {"msg_id": parent} if parent else {},
                "content": {"execution_state": state} if state else {}}

    assert _proves_iopub(msg("iopub_welcome"), "r1")
    assert _proves_iopub(msg("status", "r1", "idle"), "r1")
    assert not _proves_iopub(msg("status", "r1", "busy"), "r1")
    assert not _proves_iopub(msg("status", "r0", "idle"), "r1")  # an earlier request's
    assert not _proves_iopub(msg("stream", "r1"), "r1")


def test_a_dead_zygote_is_started_again():
    address = zygote()
    assert bool(address) == (sys.platform.startswith("linux") and (os.geteuid() != 0 or protections()["drop_root"]))
    if not address:
        return  # every kernel starts afresh here
    server = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):  # a process that ended since the listing
            if _stat(pid)[1] == os.getpid() and "exec(sys.stdin" in _cmdline(pid):
                server.append(pid)
    assert len(server) == 1
    os.kill(int(server[0]), signal.SIGKILL)
    while os.path.exists(f"/proc/{server[0]}"):
        with contextlib.suppress(OSError):  # reaped meanwhile
            if _stat(server[0])[0] == "Z":  # dead, not yet reaped
                break
        time.sleep(0.01)
    with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=20), []) as box:
        cell = _code("print('ran', 1 + 1)")
        box.run_cell(cell)
    assert "ran 2" in _text(cell) and zygote() != address


def _stat(pid: str) -> tuple:
    """(state letter, parent pid) of a process."""
    with open(f"/proc/{pid}/stat") as fh:
        state, parent = fh.read().rsplit(")", 1)[1].split()[:2]
    return state, int(parent)


def _cmdline(pid: str) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().decode(errors="replace")


def _descendants() -> set:
    """The processes this one started, and theirs."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            parents[int(pid)] = _stat(pid)[1]
    found, grew = {os.getpid()}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found - {os.getpid()}


def _open_paths(pid: int) -> list:
    found = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def test_a_kernel_can_neither_see_nor_open_its_sandboxs_lock_nor_hold_any_sandbox_file(sandbox):
    """The lock (held by the grader, beside the kernel's folder) is root's alone and hidden by the
    mask over the sandboxes' root; no kernel, nor the zygote it forked from, holds a file there."""
    lock = sandbox.dir + LOCK_SUFFIX
    info = os.stat(lock)
    assert info.st_uid == os.geteuid() and info.st_mode & 0o077 == 0
    with open(lock) as fh, pytest.raises(BlockingIOError):
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its owner, this process, holds it
    cell = _code(
        "import contextlib, os\n"
        "here = os.getcwd()\nroot = os.path.dirname(here)\n"
        "try:\n    open(here + '.lock').close()\n    print('OPENED')\n"
        "except OSError as exc:\n    print('LOCK', type(exc).__name__)\n"
        "with contextlib.suppress(OSError):\n    print('ROOT', os.listdir(root))\n"
        "paths = []\nfor fd in os.listdir('/proc/self/fd'):\n"
        "    with contextlib.suppress(OSError):\n        paths.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
        "print('FDS', len(paths), [p for p in paths if p.startswith(root + os.sep)\n"
        "                          and p != here and not p.startswith(here + os.sep)])\n")
    sandbox.run_cell(cell)
    out = _text(cell)
    assert "FDS " in out and " []" in out.split("FDS ")[1], out
    if protections()["namespaces"]:
        assert "LOCK FileNotFoundError" in out and f"ROOT {[os.path.basename(sandbox.dir)]!r}" in out, out
    held = {pid: [p for p in _open_paths(pid) if p.endswith(LOCK_SUFFIX)] for pid in _descendants()}
    assert len(held) >= 2 and not any(held.values()), held  # the kernel's processes, the zygote


_SLEEP = shutil.which("sleep")
_DAEMON = f"import subprocess\nsubprocess.Popen([{_SLEEP!r}, '60'])"
# Grader processes of their own, each with a sandbox in which a sleep runs; they print the sandbox's
# folder, then wait for their input to close. One has a kernel (forked from its zygote) start the
# sleep as a daemon; the other runs the sleep itself, confined as a kernel is, and kills it at the end.
_KERNEL_OWNER = (
    "import sys, nbformat\n"
    "from grader.sandbox import Limits\n"
    "from grader.trusted import Sandbox\n"
    "with Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=20), []) as box:\n"
    f"    box.run_cell(nbformat.v4.new_code_cell({_DAEMON!r}))\n"
    "    print(box.dir, flush=True)\n"
    "    sys.stdin.read()\n")
_SLEEP_OWNER = (
    "import subprocess, sys\n"
    "from grader.sandbox import SandboxKernelManager, kernel_env\n"
    "km = SandboxKernelManager()\n"
    "km.prepare_dir(fonts=False)\n"
    f"subprocess.Popen(km.sandboxed([{_SLEEP!r}, '60']), env=kernel_env(km.sandbox_dir), cwd=km.sandbox_dir)\n"
    "print(km.sandbox_dir, flush=True)\n"
    "sys.stdin.read()\n"
    "km.kill_all()\n")


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _sandbox_owner(program: str, kernel_processes) -> tuple:
    """(owner process, its sandbox folder, the folder's pids cgroup or ""), once the sleep in the
    sandbox runs (and so dies with the owner)."""
    owner = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        folder = owner.stdout.readline().strip()
        assert folder, "the owner made no sandbox"
        _wait_for(lambda: _sleeping_in(folder, kernel_processes), "the sandbox's process never started")
    except BaseException:
        with owner:
            owner.kill()
        raise
    root = protections()["pids_cgroup"]
    return owner, folder, os.path.join(root, CGROUP_PREFIX + os.path.basename(folder)) if root else ""


def _sleeping_in(folder: str, kernel_processes) -> list:
    """The processes that run ``sleep`` in ``folder``."""
    found = []
    for pid in kernel_processes():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/cwd") == folder and _cmdline(str(pid)).startswith(_SLEEP):
                found.append(pid)
    return found


def _traces(folder: str, cgroup: str) -> list:
    """What exists of a sandbox: its folder, its lock, its cgroup."""
    return [p for p in (folder, folder + LOCK_SUFFIX, cgroup) if p and os.path.lexists(p)]


def _cgroup_is_empty(cgroup: str) -> bool:
    with open(os.path.join(cgroup, "cgroup.procs")) as fh:
        return not fh.read().strip()


def test_a_killed_graders_sandbox_is_swept_once_no_process_is_left_in_it(kernel_processes):
    owner, folder, cgroup = _sandbox_owner(_KERNEL_OWNER, kernel_processes)
    with owner:
        assert len(_traces(folder, cgroup)) == (3 if cgroup else 2)
        owner.kill()  # SIGKILL: no clean-up of its own
    _wait_for(lambda: not _sleeping_in(folder, kernel_processes), "the sandbox's process outlived its grader")
    if cgroup:  # a process still in its cgroup: the sandbox stays, whole
        with subprocess.Popen([_SLEEP, "30"]) as stray:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
                fh.write(str(stray.pid))
            sweep_sandboxes()
            assert len(_traces(folder, cgroup)) == 3
            stray.kill()
        _wait_for(lambda: _cgroup_is_empty(cgroup), "the stray process never left")
    sweep_sandboxes()
    assert _traces(folder, cgroup) == []


def test_a_live_graders_sandbox_is_left_and_its_own_exit_removes_it(kernel_processes):
    owner, folder, cgroup = _sandbox_owner(_SLEEP_OWNER, kernel_processes)
    with owner:
        assert folder not in sweep_sandboxes()
        assert len(_traces(folder, cgroup)) == (3 if cgroup else 2)
    assert owner.returncode == 0  # its input closed: it killed its process and exited
    assert _traces(folder, cgroup) == []


def test_figures_show_inline_without_the_magic(sandbox):
    cell = _code("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()")
    sandbox.run_cell(cell)
    assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.outputs


def test_cwd_files_do_not_shadow_modules_and_python_is_read_only(sandbox):
    cell = _code(
        "import os, sys, numpy\n"
        "open('shadowmod.py', 'w').write('VALUE = 1\\n')\n"
        "try:\n    import shadowmod\n    print('SHADOWED')\nexcept ImportError:\n    print('not importable')\n"
        "try:\n    open(os.path.join(os.path.dirname(numpy.__file__), 'owned.py'), 'w')\n    print('WROTE numpy')\n"
        "except OSError:\n    print('numpy read-only')\n")
    sandbox.run_cell(cell)
    out = _text(cell)
    assert "not importable" in out
    if protections()["namespaces"]:
        assert "numpy read-only" in out


def test_matplotlib_starts_from_a_font_list_of_fonts_the_kernel_can_read(sandbox):
    cell = _code(
        "import glob, os\n"
        "lists = glob.glob(os.path.join(os.environ['MPLCONFIGDIR'], 'fontlist-*.json'))\n"
        "stamps = [os.stat(p).st_mtime_ns for p in lists]\n"
        "import matplotlib.font_manager as fm\n"
        "fonts = [f.fname for f in fm.fontManager.ttflist + fm.fontManager.afmlist]\n"
        "print('LISTS', len(lists), 'FONTS', len(fonts) > 0)\n"
        "print('REBUILT', stamps != [os.stat(p).st_mtime_ns for p in lists])\n"
        "print('UNREADABLE', [f for f in fonts if not os.access(f, os.R_OK)])\n")
    sandbox.run_cell(cell)
    out = _text(cell)
    assert "LISTS 1 FONTS True" in out and "REBUILT False" in out and "UNREADABLE []" in out, out


def test_tests_call_student_functions_and_get_plain_data(sandbox):
    sandbox.run_cell(_code(
        "import numpy as np\n"
        "def double(x):\n    return 2 * x\n"
        "def picky(x):\n    raise ValueError('x must be positive')\n"
        "class Box:\n    pass\n"
        "box, table = Box(), {'a': np.arange(3), 'b': (1, 2.5, 'c')}\n"))
    ns = TrustedNamespace(sandbox)
    test = _code("import numpy as np\n"
                 "assert np.array_equal(double(np.arange(3)), [0, 2, 4])\n"
                 "assert table['b'] == (1, 2.5, 'c') and table['a'].dtype == np.arange(1).dtype\n"
                 "try:\n    picky(1)\nexcept ValueError as exc:\n    assert 'positive' in str(exc)\n"
                 "np.float64(double(1.5))\n", grade=True, grade_id="t", points=1)
    result = run_trusted_cell(test, ns)
    assert result["passed"], test.outputs
    assert isinstance(ns["double"], Remote) and isinstance(ns["box"], Remote)
    assert test.outputs[-1]["data"]["text/plain"] == "np.float64(3.0)"


def test_student_redefinitions_do_not_reach_the_tests(sandbox):
    sandbox.run_cell(_code(
        "import builtins, numpy\n"
        "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
        "numpy.allclose = lambda *a, **k: True\n"
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
        "np = numpy\n"
        "def wrong(x):\n    return x + 1\n"))
    test = _code("import numpy as np\nassert np.allclose(wrong(1.0), 1.0), 'wrong is off by one'\n",
                 grade=True, grade_id="t2", points=1)
    result = run_trusted_cell(test, TrustedNamespace(sandbox))
    assert not result["passed"] and result["ename"] == "AssertionError"
    assert "wrong is off by one" in result["message"]


def test_hidden_test_failures_hide_source_and_traceback(sandbox):
    sandbox.run_cell(_code("def half(x):\n    return x / 2 if x >= 0 else x\n"))
    source = ('"""half halves."""\nassert half(4) == 2\n### BEGIN HIDDEN TESTS\n'
              "assert half(-4) == -2, 'SECRET-NEGATIVE'\n### END HIDDEN TESTS\n")
    assert [hidden for _, _, hidden in split_hidden(source)] == [False, True]
    test = _code(source, grade=True, grade_id="t3", points=1)
    result = run_trusted_cell(test, TrustedNamespace(sandbox))
    assert not result["passed"] and result["hidden"] and result["message"] == "SECRET-NEGATIVE"
    shown = str(test.outputs)
    assert HIDDEN_FAILED in shown and "SECRET-NEGATIVE" not in shown and "half(-4)" not in shown


def test_warnings_in_a_test_are_output_not_stderr(sandbox):
    sandbox.run_cell(_code("import numpy as np\ndef naive(x):\n    return 1 / (1 + np.exp(-x))\n"))
    test = _code("import numpy as np, warnings\nwarnings.warn('from the test', UserWarning)\n"
                 "assert naive(np.array([-1000.0]))[0] == 0.0\n", grade=True, grade_id="t4", points=1)
    result = run_trusted_cell(test, TrustedNamespace(sandbox))
    assert result["passed"]
    assert [o["name"] for o in test.outputs if o["output_type"] == "stream"] == ["stdout"]
    assert "from the test" in _text(test)


def test_output_is_capped(sandbox):
    cell = _code("print('x' * 10_000_000)\nfor _ in range(200):\n    print('y' * 1000)\n")
    sandbox.run_cell(cell)
    assert len(_text(cell)) < 100_000
    assert "dropped" in _text(cell)


def test_many_slow_cells_stop_at_the_notebook_limit():
    nb = nbformat.v4.new_notebook()
    cells = [_code("import time\ntime.sleep(1.5)") for _ in range(6)]  # each well under the cell limit
    with Sandbox(nb, Limits(cell_timeout=3, notebook_timeout=5), []) as box:
        for cell in cells:
            box.run_cell(cell)
        stopped = box.stopped
    assert "notebook ran past its time limit" in stopped or "time limit" in stopped
    assert sum("KernelStopped" in str(c.outputs) for c in cells) >= 2
    assert "KernelStopped" not in str(cells[0].outputs)


def test_the_notebook_limit_counts_from_the_kernel_being_ready():
    box = Sandbox(nbformat.v4.new_notebook(), Limits(cell_timeout=3, notebook_timeout=3), [])
    time.sleep(3)  # a slow kernel start (a zygote's first imports, a loaded machine) costs the notebook nothing
    with box:
        cell = _code("import time\ntime.sleep(1)\nprint('done')")
        box.run_cell(cell)
    assert "done" in _text(cell) and not box.stopped


def test_a_dead_kernel_fails_every_later_test():
    nb = nbformat.v4.new_notebook()
    with Sandbox(nb, Limits(cell_timeout=20), []) as box:
        box.run_cell(_code("def f(x):\n    return x\nimport os\nos._exit(0)"))
        result = run_trusted_cell(_code("assert f(1) == 1", grade=True, grade_id="t", points=1),
                                  TrustedNamespace(box))
    assert not result["passed"] and result["ename"] == "KernelStopped"
    assert "died" in result["message"]


def test_closed_sandboxes_leave_the_grader_no_thread_or_descriptor():
    """A worker grades hundreds of notebooks in one process: each sandbox gives back its client's
    heartbeat thread, its ZeroMQ contexts (with their I/O threads) and their sockets when it closes."""
    def grade_one():
        with Sandbox(nbformat.v4.new_notebook(), Limits(), []) as box:
            box.run_cell(_code("x = 1"))

    def in_use():
        return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))

    grade_one()  # the first also starts this process's zygote
    threads, descriptors = in_use()
    for _ in range(3):
        grade_one()
    threads_now, descriptors_now = in_use()
    assert threads_now <= threads and descriptors_now <= descriptors


def test_limits_are_validated():
    with pytest.raises(ValueError, match="cell_timeout"):
        Limits(cell_timeout=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=-1)
    assert np.isfinite(Limits().notebook_timeout)


def test_only_data_files_reach_the_sandbox(tmp_path):
    src, dest = tmp_path / "autograded", tmp_path / "sandbox"
    (src / "data").mkdir(parents=True)
    dest.mkdir()
    for name in ("data/series.csv", "numpy.py", "lstm_ref.py", "other.ipynb", ".secret", "notes.txt"):
        (src / name).write_text("x")
    (tmp_path / "gradebook.db").write_text("the instructor's")
    (src / "grades.csv").symlink_to(tmp_path / "gradebook.db")  # a link is never followed
    assert sorted(copy_data_files(str(src), str(dest))) == ["data/series.csv", "notes.txt"]
    assert not (dest / "grades.csv").exists()
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["notes.txt", "series.csv"]


def test_a_temporary_folder_too_deep_for_the_sandboxes_sockets_is_refused(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 40) / ("e" * 40)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(OSError, match=r"would take \d+ bytes, more than a Unix socket's address holds \(\d+\)"
                                      r".*set TMPDIR to a shorter one"):
        sandboxes_root()
    assert not os.path.exists(sandboxes_path())  # refused before anything is made


def test_each_user_has_a_sandboxes_folder_no_one_else_can_write(monkeypatch):
    """The sandboxes live in <tmp>/jupyter-kernels-<uid>; one that another user made first, or
    that others may write to, is refused with the reason instead of used."""
    tmp = private_tmpdir()  # short enough for the sandboxes' sockets, unlike pytest's tmp_path
    monkeypatch.setattr(tempfile, "tempdir", tmp)
    root = sandboxes_path()
    assert root == os.path.join(tmp, f"jupyter-kernels-{os.getuid()}")
    folder = new_sandbox_dir()
    assert os.path.dirname(folder) == root and oct(os.stat(root).st_mode & 0o777) == "0o711"
    remove_sandbox_dir(folder)
    os.chmod(root, 0o777)
    with pytest.raises(PermissionError, match=r"no one else may write to; it is owned by uid \d+ with mode "
                                              r"drwxrwxrwx: remove it"):
        new_sandbox_dir()
    if os.geteuid() == 0:  # only root can give the folder away
        os.chmod(root, 0o711)
        os.chown(root, 65534, 65534)
        with pytest.raises(PermissionError, match="it is owned by uid 65534"):
            new_sandbox_dir()

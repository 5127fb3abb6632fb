"""The sandboxed kernel a student's notebook runs in.

Each kernel runs in a fresh temporary folder holding only what the grader put
there, under the limits of :class:`Limits`, inside new namespaces when the
system allows them (``unshare``):

- network namespace: no network at all (the kernel talks to the grader over
  Unix sockets in its folder);
- mount namespace: every top-level folder that holds data rather than the
  system (/tmp, /home, /root, /srv, ...: course roots, other checkouts,
  gradebooks, other sandboxes) and the course root are covered by empty
  mounts; the Python installation, lstm_ref and the kernel's own folder
  (which also holds its connection file) are bound back, read-only but for
  the folder; the system's world-writable folders (:func:`shared_folders`:
  /dev/shm, /run/lock, ...), where a kernel could leave files for the host
  or the next kernel, are each covered by an empty writable tmpfs of the
  kernel's own, size-capped (:data:`SHM_BYTES` for POSIX shared memory,
  :data:`SCRATCH_BYTES` for the others), gone with the kernel;
- IPC namespace: System V IPC and POSIX message queues are the kernel's own,
  gone with it;
- PID namespace: killing the kernel's first process kills every process it
  started, daemons included;
- a pids cgroup per kernel (fork bombs), RLIMIT_AS (memory), RLIMIT_CPU,
  RLIMIT_FSIZE; root drops to ``nobody`` so it cannot undo the mounts.

:func:`protections` reports which of these the system granted.

Start-up costs only what a kernel must do. Python kernels fork from a zygote
(:func:`zygote`): one process per grader process that imported NumPy, SciPy,
matplotlib, torch, ipykernel and lstm_ref once, so that a kernel is ready in
about 0.13 s instead of 2 to 3 s of imports; each forked kernel enters its own
namespaces and is confined exactly like an executed one before it runs
anything, and what it changes in those modules stays in its own memory. The
launcher runs without ``site``, each kernel's matplotlib folder starts with
the font list a sandboxed process built once per grader process (what a
student's own machine keeps in its cache after the first plot, instead of a
rescan of every font file per kernel), and the client is ready once the
kernel answered, without jupyter_client's 0.2 s wait for a quiet IOPub
channel; its sockets, which connect before the kernel listens, retry after
5 ms instead of ZeroMQ's 100 ms.

Sandboxes do not pile up, not even those of a grader process killed with
SIGKILL: each sandbox (:func:`new_sandbox_dir`) has a lock file beside its
folder, hidden from kernels with the folders' root, that its process holds
while it lives (``flock``: the system releases it when the process dies,
however it dies). The first sandbox a grader process makes removes every
sandbox whose lock is free (:func:`sweep_sandboxes`): its pids cgroup (named
after it) once no process is left in it, its folder, then its lock. The
sandboxes of live grader processes are left alone.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import functools
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from queue import Empty

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Any, List, Unicode, default

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launch.py")
# The launcher needs the standard library only: no site-packages (-S), no environment (-I).
LAUNCHER_PYTHON = [sys.executable, "-I", "-S", LAUNCHER]
# The command of a Python kernel, which the zygote starts by forking itself.
IPYKERNEL = [sys.executable, "-P", "-m", "ipykernel_launcher"]
# What the course's kernels import, imported once by the zygote (matplotlib's inline backend
# is not: it hooks into the kernel's shell when first imported). torch._dynamo is what the
# first torch.optim optimizer imports: 1.1 to 1.3 s, in the training cell of every notebook
# that builds one; ipykernel.debugger (debugpy), sqlite3 and the IPython and tornado modules
# listed after it are what a kernel's start imports (about 10 ms of a 0.13 s start).
PRELOADS = ("numpy", "scipy.special", "matplotlib.pyplot", "torch", "torch._dynamo", "threadpoolctl",
            "ipykernel.kernelapp", "ipykernel.debugger", "IPython.core.completerlib", "IPython.core.debugger",
            "IPython.extensions.storemagic", "tornado.platform.asyncio", "sqlite3", "lstm_ref", "lstm_ref.checkers",
            "lstm_ref.data", "lstm_ref.keras", "lstm_ref.matlab")
# The zygote reads its program from standard input: its command line says nothing more.
ZYGOTE_BOOT = "import sys; exec(sys.stdin.read(int(sys.stdin.readline())), {'__name__': 'launch'})"
PIDS_CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")
CGROUP_EXIT_S = 10.0  # how long kill_all waits for a kernel's killed processes to leave its cgroup
NOBODY = 65534
# How long a starting kernel's IOPub may stay silent after its kernel_info reply before it is asked again.
IOPUB_PATIENCE_S = 0.05
# How soon a kernel client's sockets retry a refused connection (ZeroMQ's RECONNECT_IVL, 100 ms by default):
# they connect before the starting kernel listens, so the default made each start wait up to 0.1 s more.
RECONNECT_MS = 5
NAMESPACE_FLAGS = ["--fork", "--pid", "--mount-proc", "--mount", "--net", "--ipc", "--kill-child"]
# Names a kernel can see (its folder, its cgroup): a Jupyter kernel's, nothing about grading.
SANDBOXES, CGROUP_PREFIX = "jupyter-kernels", "kernel-"
# The lock of the sandbox <sandboxes_path()>/<name> is <name><LOCK_SUFFIX> beside it, out of its kernel's sight.
LOCK_SUFFIX = ".lock"
_SANDBOX_NAME = re.compile(r"[0-9a-f]{12}")  # uuid4().hex[:12], as new_sandbox_dir names them
# The grader's Unix socket in each sandbox, the longest of the socket names there (the zygote's
# "launch.sock", the kernel's "zmq-<n>"), and the longest path a Unix socket's address can hold.
KERNEL_SOCKET = ".kernel.sock"
SOCKET_PATH_MAX = 107 if sys.platform.startswith("linux") else 103
# Only these variables reach a student's kernel; nothing hints at grading.
KERNEL_ENV = {"LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "KERAS_BACKEND": "torch",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1", "PYTHONHASHSEED": "0"}
# The caps of a kernel's own tmpfs over each world-writable folder: what it writes there is host memory that
# none of its limits counts (RLIMIT_AS only what it maps), so they are small. /dev/shm, POSIX shared memory
# (multiprocessing, torch's DataLoader workers), gets Docker's default; the others hold lock files. Files
# (inodes, memory that no size counts) are capped too.
SHM, SHM_BYTES, SCRATCH_BYTES, SCRATCH_FILES = "/dev/shm", 64 * 2**20, 2**20, 4096


# Top-level folders of the system itself; every other one may hold someone's files.
_SYSTEM_ROOTS = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
                 "usr", "var"}


def _data_roots() -> list:
    """The folders a kernel has no business reading: every non-system top-level folder, and /var/tmp."""
    roots = [os.path.join("/", d) for d in sorted(os.listdir("/"))
             if d not in _SYSTEM_ROOTS and os.path.isdir(os.path.join("/", d)) and not os.path.islink(os.path.join("/", d))]
    return [*roots, "/var/tmp"]


# Not searched for world-writable folders: the kernel's own /proc and /sys, and /usr, the installed system
# (static by the FHS) and by far the largest: walking it would cost each grader process a second or so.
_UNSEARCHED = ("/proc", "/sys", "/usr")


@functools.lru_cache(maxsize=None)
def shared_folders() -> tuple:
    """The folders where a kernel could leave files for the host or later kernels, found once per process:
    the world-writable folders (/dev/shm, /run/lock, /dev/mqueue, ...) that anyone may reach, outside the
    data roots (masked already: :func:`_data_roots`) and :data:`_UNSEARCHED`; none inside another (the
    outer one is covered whole)."""
    skipped = {*_UNSEARCHED, *_data_roots()}
    found = []
    for folder, subdirs, _ in os.walk("/"):
        searched = []
        for name in subdirs:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:  # gone since the listing
                continue
            if path not in skipped and stat.S_ISDIR(mode) and mode & stat.S_IXOTH:  # a folder anyone may enter
                if mode & stat.S_IWOTH:
                    found.append(path)
                else:
                    searched.append(name)
        subdirs[:] = searched
    return tuple(found)


def _python_prefixes() -> list:
    """The Python installation the kernel runs from: the environment and its base."""
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits for one submission's kernel.

    cell_timeout: seconds for one cell (or one call of a student's function);
    notebook_timeout: seconds for all of a notebook's kernel time together;
    memory_mb: address-space cap; cpu_seconds: CPU time cap (the kernel is
    killed past it); max_processes: processes and threads; output_bytes: the
    outputs kept per notebook (the rest is dropped with a note); file_mb: the
    largest file the kernel may write.
    """

    cell_timeout: float = 30.0
    notebook_timeout: float = 600.0
    memory_mb: int = 4096
    cpu_seconds: int = 900
    max_processes: int = 256
    output_bytes: int = 2_000_000
    file_mb: int = 256

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{field.name} must be a positive number, got {value!r}")


@functools.lru_cache(maxsize=None)
def protections() -> dict:
    """Which protections this system grants, probed once per process.

    Keys: ``namespaces`` (network, mount, IPC and PID namespaces), ``drop_root``,
    ``pids_cgroup`` (the cgroup folder or ""), ``rlimits`` (always True).
    """
    unshare = shutil.which("unshare")
    namespaces = False
    if unshare and sys.platform.startswith("linux"):
        probe = subprocess.run([unshare, *NAMESPACE_FLAGS, "true"], capture_output=True, timeout=30)
        namespaces = probe.returncode == 0
    drop_root = namespaces and os.geteuid() == 0 and _runs_as_nobody(unshare)
    return {
        "namespaces": namespaces,
        "drop_root": drop_root,
        "setpriv": shutil.which("setpriv") or "",
        "pids_cgroup": _pids_cgroup_root(),
        "rlimits": True,
    }


# The probe of :func:`_runs_as_nobody`: RLIMIT_NPROC counts every process of ``nobody``, other kernels' too.
_PROBE_LIMITS = Limits(memory_mb=16384, cpu_seconds=60, file_mb=1, max_processes=4096)


def _runs_as_nobody(unshare: str) -> bool:
    """Whether a kernel's Python, in its namespaces and behind its mounts, can run as ``nobody``
    and import NumPy and lstm_ref (the mounts make a Python under a private home folder
    reachable: the home is masked by a world-readable empty folder with the Python bound back)."""
    sandbox = new_sandbox_dir()
    os.chown(sandbox, NOBODY, NOBODY)
    cfg = launcher_config(sandbox, _PROBE_LIMITS, namespaces=True, drop_root=True)
    cmd = [unshare, *NAMESPACE_FLAGS, "--", *LAUNCHER_PYTHON, json.dumps(cfg), "--", sys.executable, "-c",
           "import numpy, lstm_ref"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    finally:
        remove_sandbox_dir(sandbox)


def launcher_config(sandbox_dir: str, limits: Limits, hidden_paths: list | tuple = (), *, cgroup: str = "",
                    namespaces: bool, drop_root: bool, setpriv: str = "") -> dict:
    """What the launcher (``_launch.confine``) needs to confine a process to ``sandbox_dir``:
    its environment, ``limits``, the pids ``cgroup`` to join ("" for none), and, with
    ``namespaces``, the folders it masks (the data roots, every sandbox, ``hidden_paths``),
    keeps (its folder; the Python installation and lstm_ref, read-only) and covers with
    scratch folders of its own (:func:`shared_folders`, with their tmpfs options)."""
    kept = _kept_paths(sandbox_dir)
    return {
        "cwd": sandbox_dir,
        "env": kernel_env(sandbox_dir),
        "memory_bytes": int(limits.memory_mb) * 2**20,
        "cpu_seconds": int(limits.cpu_seconds),
        "file_bytes": int(limits.file_mb) * 2**20,
        # RLIMIT_NPROC counts all of a user's processes; a pids cgroup bounds each kernel.
        "max_processes": int(limits.max_processes) * (16 if cgroup else 1),
        "cgroup": cgroup,
        "namespaces": namespaces,
        "masked": [*_data_roots(), os.path.dirname(sandbox_dir), *hidden_paths],
        "kept": kept,
        "read_only": kept[1:],
        "scratch": {path: f"size={SHM_BYTES if path == SHM else SCRATCH_BYTES},nr_inodes={SCRATCH_FILES},mode=1777"
                    for path in shared_folders()},
        "drop_root": drop_root,
        "setpriv": setpriv,
    }


@functools.lru_cache(maxsize=None)
def font_list() -> tuple:
    """matplotlib's font list as a kernel sees the fonts: ``((file name, JSON bytes),)``,
    or ``()`` without matplotlib. Built once per process by ``import matplotlib.font_manager``
    in a sandbox of its own, so that it names only the fonts a kernel can read."""
    if importlib.util.find_spec("matplotlib") is None:
        return ()
    km = SandboxKernelManager()
    try:
        km.prepare_dir(fonts=False)
        cmd = km.sandboxed([sys.executable, "-P", "-c", "import matplotlib.font_manager"])
        env = kernel_env(km.sandbox_dir)
        subprocess.run(cmd, env=env, cwd=km.sandbox_dir, capture_output=True, timeout=120)
        found = []
        for path in glob.glob(os.path.join(env["MPLCONFIGDIR"], "fontlist-*.json")):
            with open(path, "rb") as fh:
                found.append((os.path.basename(path), fh.read()))
        return tuple(found)
    finally:
        km.kill_all()
        remove_sandbox_dir(km.sandbox_dir)


def kernel_env(home: str) -> dict:
    """A kernel's whole environment, with ``home`` as its home, temporary and matplotlib folder."""
    return {**KERNEL_ENV, "HOME": home, "TMPDIR": home, "MPLCONFIGDIR": os.path.join(home, ".mpl"),
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"])}


def _seed_fonts(mpl_dir: str, files: tuple) -> list:
    """Create the matplotlib folder ``mpl_dir`` holding ``files`` (:func:`font_list`); return the paths created."""
    os.makedirs(mpl_dir, exist_ok=True)
    written = [mpl_dir]
    for name, data in files:
        with open(os.path.join(mpl_dir, name), "wb") as fh:
            fh.write(data)
        written.append(os.path.join(mpl_dir, name))
    return written


def zygote() -> str:
    """The socket of this process's zygote, started on first use (again if it has died);
    "" where there is none.

    The zygote (``_launch.zygote``) is a process in a kernel's environment
    that has imported :data:`PRELOADS` once and forks each Python kernel
    from itself: a kernel is then ready in about 0.13 s instead of spending
    2 s or more on those imports. It never runs student code; each kernel
    is confined like an executed one before it runs anything. It exits with
    this process. Linux only, and not where root cannot drop to ``nobody``
    (those kernels run through ``setpriv``, which only an exec can apply).
    """
    if not sys.platform.startswith("linux") or (os.geteuid() == 0 and not protections()["drop_root"]):
        return ""
    proc, address = _start_zygote()
    if address and proc.poll() is not None:  # it started, then died: once more
        _start_zygote.cache_clear()
        proc, address = _start_zygote()
    return address


@functools.lru_cache(maxsize=None)
def _start_zygote() -> tuple:
    """(process, socket path) of a new zygote; the path is "" if it did not start."""
    folder = new_sandbox_dir()
    env = {**kernel_env(folder), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}  # as a kernel sets it
    _seed_fonts(env["MPLCONFIGDIR"], font_list())
    address = os.path.join(folder, "launch.sock")
    with open(LAUNCHER, encoding="utf-8") as fh:
        program = f"{fh.read()}\nzygote({address!r}, {list(PRELOADS)!r})\n"
    proc = subprocess.Popen([sys.executable, "-P", "-c", ZYGOTE_BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd="/", encoding="utf-8",
                            close_fds=True,  # nor the sandboxes' locks, for it or the kernels it forks
                            start_new_session=True)  # a Ctrl-C meant for the grader is not for it
    atexit.register(_stop_zygote, proc, folder, os.getpid())
    proc.stdin.write(f"{len(program)}\n{program}")
    proc.stdin.flush()
    return proc, address if proc.stdout.readline() == "ready\n" else ""


def _stop_zygote(proc: subprocess.Popen, folder: str, owner: int) -> None:
    if os.getpid() != owner:
        return
    with contextlib.suppress(OSError):
        proc.stdin.close()  # the zygote exits when its input closes
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    remove_sandbox_dir(folder)


def describe_protections() -> str:
    """One line naming the active and the missing protections."""
    p = protections()
    active = ["per-cell and per-notebook timeouts", "memory/CPU/file-size rlimits", "kill of the whole process tree"]
    missing = []
    (active if p["namespaces"] else missing).append("no network, course files hidden (namespaces)")
    (active if p["namespaces"] else missing).append(
        f"private, size-capped {', '.join(shared_folders()) or 'world-writable folders'} and IPC (namespaces)")
    if p["drop_root"]:
        active.append("runs as nobody")
    elif os.geteuid() == 0 and p["setpriv"]:
        active.append("root without capabilities, Python installation read-only")
    (active if p["pids_cgroup"] else missing).append("process count per kernel (pids cgroup)")
    return "sandbox: " + "; ".join(active) + (" | unavailable: " + "; ".join(missing) if missing else "")


def _pids_cgroup_root() -> str:
    for root in PIDS_CGROUP_ROOTS:
        if os.path.exists(os.path.join(root, "pids.max")) or os.path.exists(os.path.join(root, "cgroup.procs")):
            probe = os.path.join(root, f"{CGROUP_PREFIX}probe-{uuid.uuid4().hex[:8]}")
            try:
                os.mkdir(probe)
                ok = os.path.exists(os.path.join(probe, "pids.max"))
                os.rmdir(probe)
            except OSError:
                continue
            if ok:
                return root
    return ""


def _kept_paths(sandbox_dir: str) -> list:
    """The sandbox folder, then what the kernel runs on: the Python installation
    (a virtual environment may live inside the masked course root) and lstm_ref."""
    kept = [sandbox_dir, *_python_prefixes()]
    for package in ("lstm_ref",):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            kept.extend(spec.submodule_search_locations)
    return kept


def sandboxes_path() -> str:
    """The folder of this user's sandboxes and their locks, ``<tmp>/jupyter-kernels-<uid>``:
    one per user, so that instructors sharing a machine never need each other's folder."""
    return os.path.join(tempfile.gettempdir(), f"{SANDBOXES}-{os.getuid()}")


def sandboxes_root() -> str:
    """:func:`sandboxes_path`, made on first use (masked in every kernel); refused unless this
    user owns it and no one else may write to it (another user could have made it first), and
    where it is too deep for the Unix sockets of its sandboxes."""
    root = sandboxes_path()
    longest = len(os.path.join(root, "0" * 12, KERNEL_SOCKET).encode())  # <root>/<sandbox>/<socket>
    if longest > SOCKET_PATH_MAX:
        raise OSError(f"the kernels' sockets under {root} would take {longest} bytes, more than a Unix socket's "
                      f"address holds ({SOCKET_PATH_MAX}): the temporary folder is too deep; set TMPDIR to a "
                      "shorter one, such as /tmp")
    os.makedirs(root, mode=0o711, exist_ok=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(f"{root} holds the kernels' sandboxes, so it must be a folder of this user "
                              f"(uid {os.getuid()}) that no one else may write to; it is owned by uid "
                              f"{st.st_uid} with mode {stat.filemode(st.st_mode)}: remove it")
    return root


# This process's sandboxes: folder -> file descriptor of its lock, held while the sandbox lives.
_HELD: dict = {}


def new_sandbox_dir() -> str:
    """A fresh, empty folder under the sandboxes' root (hidden from every kernel), locked
    by this process until :func:`remove_sandbox_dir` or this process's end.

    The first call of a process sweeps away the sandboxes of dead processes
    (:func:`sweep_sandboxes`); each call ends the locks of this process's
    sandboxes whose folder someone else removed.
    """
    root = sandboxes_root()
    _sweep_once()
    for folder in [f for f in _HELD if not os.path.lexists(f)]:
        remove_sandbox_dir(folder)
    while True:
        folder = os.path.join(root, uuid.uuid4().hex[:12])
        try:  # the lock first: a folder never exists without one
            fd = os.open(folder + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for a sweeper that found it unlocked in between
        if _still_there(fd, folder + LOCK_SUFFIX):  # that sweeper did not remove it
            os.mkdir(folder, 0o700)
            _HELD[folder] = fd
            return folder
        os.close(fd)


def remove_sandbox_dir(folder: str) -> None:
    """Remove a sandbox of this process (:func:`new_sandbox_dir`; any other folder is left as it
    is): its pids cgroup if no process is left in it, its folder and its lock. What stays
    (a cgroup still holding a process, with the folder) is unlocked for a later sweep."""
    fd = _HELD.pop(folder, None)
    if fd is None:
        return
    try:
        _remove(folder)
    finally:
        os.close(fd)


def sweep_sandboxes() -> list:
    """Remove the sandboxes of processes that have died (their lock is free) as
    :func:`remove_sandbox_dir` would; return the folders removed.

    A sandbox locked by a live process, one whose lock this user may not open,
    and a folder without a lock (made by a grader before sandboxes had locks,
    maybe still in use) are left alone. Never raises: a failed sweep leaves
    only the leftovers it could not remove.
    """
    root = sandboxes_path()
    try:
        names = os.listdir(root)
    except OSError:
        return []
    removed = []
    for name in names:
        if not (name.endswith(LOCK_SUFFIX) and _SANDBOX_NAME.fullmatch(name[:-len(LOCK_SUFFIX)])):
            continue
        lock = os.path.join(root, name)
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # swept by another process meanwhile, or not this user's
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _still_there(fd, lock) and _remove(lock[:-len(LOCK_SUFFIX)]):
                removed.append(lock[:-len(LOCK_SUFFIX)])
        except OSError:  # locked: its process lives; or a removal this user may not make
            pass
        finally:
            os.close(fd)
    return removed


@functools.lru_cache(maxsize=None)
def _sweep_once() -> None:
    sweep_sandboxes()


def _still_there(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (no sweeper removed it)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _remove(folder: str) -> bool:
    """Remove the sandbox ``folder``'s cgroup, the folder, then its lock, stopping (False)
    at a cgroup that still holds a process or at anything else that cannot be removed."""
    for root in PIDS_CGROUP_ROOTS:
        cgroup = os.path.join(root, CGROUP_PREFIX + os.path.basename(folder))
        try:
            os.rmdir(cgroup)
        except FileNotFoundError:
            pass
        except OSError:
            return False
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder + LOCK_SUFFIX)
    return True


def _remove_held(owner: int) -> None:
    """At exit: remove this process's sandboxes (not in a child that inherited the list)."""
    if os.getpid() == owner:
        for folder in list(_HELD):
            remove_sandbox_dir(folder)


atexit.register(_remove_held, os.getpid())


class SandboxKernelClient(AsyncKernelClient):
    """A kernel client that is ready as soon as the kernel has answered on both channels."""

    def _context_default(self) -> zmq.asyncio.Context:
        context = super()._context_default()
        context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        return context

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Ask for ``kernel_info`` until the reply comes on the shell channel and
        IOPub is known to be connected: by the kernel's ``iopub_welcome`` (sent
        when a subscriber connects, Jupyter's JEP 65, ipykernel 7) or by the
        request's ``idle`` status.

        jupyter_client's own version waits for that status up to 0.2 s (a
        kernel that published it before the subscription reached it never
        sends it again), then reads IOPub until it has been quiet for 0.2 s:
        idle time in every kernel start. The messages it would drop belong to
        no cell, and a client only reads the messages of its own requests.
        Here a kernel without the welcome is asked again after
        ``IOPUB_PATIENCE_S``.
        """
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            reply = await self._first(self.get_shell_msg, deadline, 1.0,
                                      lambda msg: msg["parent_header"].get("msg_id") == request)
            if reply is not None and await self._first(self.get_iopub_msg, deadline, IOPUB_PATIENCE_S,
                                                       lambda msg: _proves_iopub(msg, request)):
                self._handle_kernel_info_reply(reply)
                return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    @staticmethod
    async def _first(get, deadline: float, patience: float, wanted) -> dict | None:
        """The first message ``get`` returns that is ``wanted`` within ``patience`` seconds, or None."""
        until = min(deadline, time.monotonic() + patience)
        while (left := until - time.monotonic()) > 0:
            try:
                msg = await get(timeout=left)
            except Empty:
                return None
            if wanted(msg):
                return msg
        return None


def _proves_iopub(msg: dict, request: str) -> bool:
    """Whether an IOPub message shows the subscription connected: the welcome, or ``request``'s idle status."""
    return msg["msg_type"] == "iopub_welcome" or (
        msg["parent_header"].get("msg_id") == request and msg["content"].get("execution_state") == "idle")


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside a sandbox folder.

    ``sandbox_dir`` is the kernel's working folder (created when empty);
    ``hidden_paths`` are covered inside the sandbox; ``limits`` a :class:`Limits`.
    """

    sandbox_dir = Unicode("")
    hidden_paths = List(Unicode())
    limits = Any(Limits())

    @default("client_factory")
    def _client_factory_default(self) -> type:
        return SandboxKernelClient

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if not self.sandbox_dir:
            self.sandbox_dir = new_sandbox_dir()
        # Jupyter's runtime folder is masked inside the sandbox: the kernel reads its own from here.
        self.connection_file = os.path.join(self.sandbox_dir, "kernel.json")
        self._cgroup = ""
        p = protections()
        if p["namespaces"]:
            self.transport = "ipc"
            self.ip = os.path.join(self.sandbox_dir, "zmq")
        self.cache_ports = False

    def format_kernel_cmd(self, extra_arguments=None) -> list:
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd[:2] == [sys.executable, "-m"]:
            cmd.insert(1, "-P")  # the working folder is not on sys.path
        return self.sandboxed(cmd)

    def sandboxed(self, cmd: list) -> list:
        """The command line that runs ``cmd`` in this sandbox, through the launcher."""
        p = protections()
        cfg = launcher_config(self.sandbox_dir, self.limits, self.hidden_paths, cgroup=self._make_cgroup(),
                              namespaces=p["namespaces"], drop_root=p["drop_root"], setpriv=p["setpriv"])
        launcher = [*LAUNCHER_PYTHON, json.dumps(cfg)]
        address = zygote() if cmd[:len(IPYKERNEL)] == IPYKERNEL else ""
        if address:
            return [*launcher, "--via", address, "--", *cmd]
        prefix = [shutil.which("unshare"), *NAMESPACE_FLAGS, "--", *launcher] if p["namespaces"] else launcher
        return [*launcher, "--outer", *prefix, "--", *cmd]

    def prepare_dir(self, fonts: bool = True) -> None:
        """Create the sandbox folder for the kernel's user, with matplotlib's font list
        (see :func:`font_list`) in its matplotlib folder unless ``fonts`` is false."""
        mpl = kernel_env(self.sandbox_dir)["MPLCONFIGDIR"]
        owned = [self.sandbox_dir, *_seed_fonts(mpl, font_list() if fonts else ())]
        if protections()["drop_root"]:
            for path in owned:
                os.chown(path, NOBODY, NOBODY)

    def _make_cgroup(self) -> str:
        """The kernel's pids cgroup, named after its sandbox (for :func:`sweep_sandboxes`); "" for none."""
        root = protections()["pids_cgroup"]
        if not root:
            return ""
        name = os.path.basename(self.sandbox_dir) if self.sandbox_dir in _HELD else uuid.uuid4().hex[:12]
        self._cgroup = os.path.join(root, f"{CGROUP_PREFIX}{name}")
        with contextlib.suppress(FileExistsError):  # a restarted kernel's
            os.mkdir(self._cgroup)
        with open(os.path.join(self._cgroup, "pids.max"), "w") as fh:
            fh.write(str(int(self.limits.max_processes)))
        return self._cgroup

    async def _async_launch_kernel(self, kernel_cmd: list, **kw) -> None:
        self.prepare_dir()
        if protections()["drop_root"]:
            os.chmod(self.connection_file, 0o644)
        kw["env"] = kernel_env(self.sandbox_dir)
        kw["cwd"] = self.sandbox_dir
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        await super()._async_kill_kernel(restart=restart)
        self.kill_all()

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        try:
            await super()._async_shutdown_kernel(now=True, restart=restart)
        finally:
            self.kill_all()

    def kill_all(self) -> None:
        """Kill every process the kernel started (its process group, its cgroup)."""
        provisioner = self.provisioner
        pgid = getattr(provisioner, "pgid", None)
        if pgid:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
            launcher = getattr(provisioner, "process", None)  # the group's leader
            if launcher is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    launcher.wait(timeout=CGROUP_EXIT_S)  # reaped now, not left to the garbage collector
        if self._cgroup and os.path.isdir(self._cgroup):
            # Hundreds of killed processes (a fork bomb's) take a while to exit on a busy
            # machine, and the cgroup can only be removed once the last one has gone.
            deadline = time.monotonic() + CGROUP_EXIT_S
            while True:
                with open(os.path.join(self._cgroup, "cgroup.procs")) as fh:
                    pids = [int(line) for line in fh if line.strip()]
                if not pids:
                    with contextlib.suppress(OSError):
                        os.rmdir(self._cgroup)
                        return
                if time.monotonic() > deadline:
                    return
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)

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
  the folder;
- PID namespace: killing the kernel's first process kills every process it
  started, daemons included;
- a pids cgroup per kernel (fork bombs), RLIMIT_AS (memory), RLIMIT_CPU,
  RLIMIT_FSIZE; root drops to ``nobody`` so it cannot undo the mounts.

:func:`protections` reports which of these the system granted.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from jupyter_client.manager import AsyncKernelManager
from traitlets import Any, List, Unicode

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launch.py")
PIDS_CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")
NAMESPACE_FLAGS = ["--fork", "--pid", "--mount-proc", "--mount", "--net", "--kill-child"]
# Only these variables reach a student's kernel; nothing hints at grading.
KERNEL_ENV = {"LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "KERAS_BACKEND": "torch",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1", "PYTHONHASHSEED": "0"}


# Top-level folders of the system itself; every other one may hold someone's files.
_SYSTEM_ROOTS = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
                 "usr", "var"}


def _data_roots() -> list:
    """The folders a kernel has no business reading: every non-system top-level folder, and /var/tmp."""
    roots = [os.path.join("/", d) for d in sorted(os.listdir("/"))
             if d not in _SYSTEM_ROOTS and os.path.isdir(os.path.join("/", d)) and not os.path.islink(os.path.join("/", d))]
    return [*roots, "/var/tmp"]


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

    Keys: ``namespaces`` (network, mount and PID namespaces), ``drop_root``,
    ``pids_cgroup`` (the cgroup folder or ""), ``rlimits`` (always True).
    """
    unshare = shutil.which("unshare")
    namespaces = False
    if unshare and sys.platform.startswith("linux"):
        probe = subprocess.run([unshare, *NAMESPACE_FLAGS, "true"], capture_output=True, timeout=30)
        namespaces = probe.returncode == 0
    drop_root = namespaces and os.geteuid() == 0 and _runs_as_nobody()
    return {
        "namespaces": namespaces,
        "drop_root": drop_root,
        "setpriv": shutil.which("setpriv") or "",
        "pids_cgroup": _pids_cgroup_root(),
        "rlimits": True,
    }


def _runs_as_nobody() -> bool:
    """Whether a Python started by the launcher as ``nobody`` can import NumPy here."""
    sandbox = new_sandbox_dir()
    os.chown(sandbox, 65534, 65534)
    cfg = {"cwd": sandbox, "env": {"PATH": "/usr/bin:/bin", "HOME": sandbox}, "memory_bytes": 2**34,
           "cpu_seconds": 60, "file_bytes": 2**20, "max_processes": 4096, "cgroup": "", "hide": False,
           "masked": [], "kept": [], "read_only": [], "drop_root": True, "setpriv": ""}
    cmd = [sys.executable, "-I", LAUNCHER, json.dumps(cfg), "--", sys.executable, "-c", "import numpy"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def describe_protections() -> str:
    """One line naming the active and the missing protections."""
    p = protections()
    active = ["per-cell and per-notebook timeouts", "memory/CPU/file-size rlimits", "kill of the whole process tree"]
    missing = []
    (active if p["namespaces"] else missing).append("no network, course files hidden (namespaces)")
    if p["drop_root"]:
        active.append("runs as nobody")
    elif os.geteuid() == 0 and p["setpriv"]:
        active.append("root without capabilities, Python installation read-only")
    (active if p["pids_cgroup"] else missing).append("process count per kernel (pids cgroup)")
    return "sandbox: " + "; ".join(active) + (" | unavailable: " + "; ".join(missing) if missing else "")


def _pids_cgroup_root() -> str:
    for root in PIDS_CGROUP_ROOTS:
        if os.path.exists(os.path.join(root, "pids.max")) or os.path.exists(os.path.join(root, "cgroup.procs")):
            probe = os.path.join(root, f"grader-probe-{uuid.uuid4().hex[:8]}")
            try:
                os.mkdir(probe)
                ok = os.path.exists(os.path.join(probe, "pids.max"))
                os.rmdir(probe)
            except OSError:
                continue
            if ok:
                return root
    return ""


def new_sandbox_dir() -> str:
    """A fresh, empty folder under the sandboxes' root (hidden from every kernel)."""
    root = os.path.join(tempfile.gettempdir(), "grader-sandboxes")
    os.makedirs(root, mode=0o711, exist_ok=True)
    return tempfile.mkdtemp(dir=root)


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside a sandbox folder.

    ``sandbox_dir`` is the kernel's working folder (created when empty);
    ``hidden_paths`` are covered inside the sandbox; ``limits`` a :class:`Limits`.
    """

    sandbox_dir = Unicode("")
    hidden_paths = List(Unicode())
    limits = Any(Limits())

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
        p = protections()
        cfg = {
            "cwd": self.sandbox_dir,
            "env": self._kernel_env(),
            "memory_bytes": int(self.limits.memory_mb) * 2**20,
            "cpu_seconds": int(self.limits.cpu_seconds),
            "file_bytes": int(self.limits.file_mb) * 2**20,
            # RLIMIT_NPROC counts all of a user's processes; a pids cgroup bounds each kernel.
            "max_processes": int(self.limits.max_processes) * (16 if p["pids_cgroup"] else 1),
            "cgroup": self._make_cgroup(),
            "hide": p["namespaces"],
            "masked": self._masked(),
            "kept": self._kept(),
            "read_only": self._read_only(),
            "drop_root": p["drop_root"],
            "setpriv": p["setpriv"],
        }
        launcher = [sys.executable, "-I", LAUNCHER, json.dumps(cfg)]
        prefix = [shutil.which("unshare"), *NAMESPACE_FLAGS, "--", *launcher] if p["namespaces"] else launcher
        return [*launcher, "--outer", *prefix, "--", *cmd]

    def _kernel_env(self) -> dict:
        home = self.sandbox_dir
        return {**KERNEL_ENV, "HOME": home, "TMPDIR": home, "MPLCONFIGDIR": os.path.join(home, ".mpl"),
                "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"])}

    def _masked(self) -> list:
        return [*_data_roots(), os.path.dirname(self.sandbox_dir), *self.hidden_paths]

    def _kept(self) -> list:
        """The sandbox folder, then what the kernel runs on: the Python installation
        (a virtual environment may live inside the masked course root) and lstm_ref."""
        kept = [self.sandbox_dir, *_python_prefixes()]
        for package in ("lstm_ref",):
            spec = importlib.util.find_spec(package)
            if spec is not None and spec.submodule_search_locations:
                kept.extend(spec.submodule_search_locations)
        return kept

    def _read_only(self) -> list:
        return self._kept()[1:]

    def _make_cgroup(self) -> str:
        root = protections()["pids_cgroup"]
        if not root:
            return ""
        self._cgroup = os.path.join(root, f"grader-{uuid.uuid4().hex[:12]}")
        os.mkdir(self._cgroup)
        with open(os.path.join(self._cgroup, "pids.max"), "w") as fh:
            fh.write(str(int(self.limits.max_processes)))
        return self._cgroup

    async def _async_launch_kernel(self, kernel_cmd: list, **kw) -> None:
        os.makedirs(self.sandbox_dir, exist_ok=True)
        if protections()["drop_root"]:
            os.chown(self.sandbox_dir, 65534, 65534)
            os.chmod(self.connection_file, 0o644)
        kw["env"] = self._kernel_env()
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
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        if self._cgroup and os.path.isdir(self._cgroup):
            for _ in range(50):
                with open(os.path.join(self._cgroup, "cgroup.procs")) as fh:
                    pids = [int(line) for line in fh if line.strip()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.02)
            try:
                os.rmdir(self._cgroup)
            except OSError:
                pass

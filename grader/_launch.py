"""Start a student's kernel inside its sandbox (standard library only).

``python _launch.py CONFIG_JSON --outer PREFIX... -- KERNEL_COMMAND...`` arranges
to be killed with its parent (the grader) and re-executes ``PREFIX``
(``unshare ... python _launch.py CONFIG_JSON``) in front of the kernel command;
that inner run, the first process of the sandbox's namespaces, confines itself
(:func:`confine`) and replaces itself with the kernel.

``python _launch.py CONFIG_JSON --via SOCKET -- KERNEL_COMMAND...`` asks the
grader's preloaded process (:func:`zygote`, listening on ``SOCKET``) for the
kernel instead: that process has imported what kernels import (NumPy, torch,
matplotlib, ipykernel) once, and forks each kernel from itself, so that a
kernel starts in a fraction of a second instead of re-importing them. The
forked kernel is confined exactly as above before it runs anything; this
process stands in for it towards the grader (its signals are relayed, its exit
status is the kernel's, and the kernel is killed when this process goes).

Confining, before any student code: join the sandbox's pids cgroup, hide the
course's files behind empty read-only mounts (keeping the sandbox folder and
the packages the kernel imports), cover the system's world-writable folders
(/dev/shm, /run/lock, ...) with empty, size-capped ones of the kernel's own, set
resource limits, drop root to ``nobody`` (or to a root without capabilities
where ``nobody`` cannot run this Python).
Each step the system refuses is skipped; the grader reports which protections
were active.
"""
import ctypes
import importlib
import json
import os
import resource
import select
import signal
import socket
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
NOBODY = 65534
# The signals a kernel manager sends a kernel (interrupt, terminate, ...), relayed by --via.
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _mount(libc, source: str, target: str, fstype, flags: int, data) -> None:
    if libc.mount(source.encode(), target.encode(), fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target} failed")


def hide(masked: list, kept: list, read_only: list, scratch: dict) -> None:
    """Cover each masked path with an empty tmpfs (a file with /dev/null) and each
    scratch folder with an empty writable tmpfs mounted with its options (size
    cap, file cap, mode), bind each kept path (opened beforehand) back at its
    place, then make the read-only paths (the Python installation, the kept
    packages) read-only. The mounts are this mount namespace's alone: they
    end with it, and what the kernel wrote in them."""
    libc = ctypes.CDLL(None, use_errno=True)
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE, None)
    kept_fds = [(path, os.open(path, os.O_PATH)) for path in kept if os.path.exists(path)]
    for path in masked:
        if os.path.isdir(path):
            _mount(libc, "tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=755")
        elif os.path.exists(path):
            _mount(libc, "/dev/null", path, None, MS_BIND, None)
    for path, options in scratch.items():
        if os.path.isdir(path):
            _mount(libc, "tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, options.encode())
    for path, fd in kept_fds:
        if not os.path.exists(path):
            os.makedirs(path, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        os.close(fd)
    for path in read_only:
        if os.path.exists(path):
            _mount(libc, path, path, None, MS_BIND | MS_REC, None)
            _mount(libc, "none", path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)


def confine(cfg: dict) -> None:
    """Join the cgroup, hide the course's files, give the kernel its own scratch folders,
    set the limits, drop root and enter the sandbox folder."""
    if cfg.get("cgroup"):
        with open(os.path.join(cfg["cgroup"], "cgroup.procs"), "w") as fh:
            fh.write("0")
    if cfg.get("namespaces"):
        hide(cfg["masked"], cfg["kept"], cfg["read_only"], cfg["scratch"])
    limits = {
        resource.RLIMIT_AS: cfg["memory_bytes"],
        resource.RLIMIT_CPU: cfg["cpu_seconds"],
        resource.RLIMIT_FSIZE: cfg["file_bytes"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: cfg["max_processes"],
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
    if cfg.get("drop_root") and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        # as an exec would: the process's /proc files become its own user's again (no core dumps: RLIMIT_CORE)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1)
        # a new user clears the parent-death signal (unshare --kill-child's): the kernel dies with its parent
        _die_with_parent()
    os.chdir(cfg["cwd"])


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def stand_in(cfg: dict, address: str, cmd: list) -> None:
    """Have the preloaded process at ``address`` start the kernel; relay signals to it; exit as it exits."""
    _die_with_parent()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    sock.sendall(json.dumps({"cfg": cfg, "cmd": cmd}).encode() + b"\n")
    for signum in RELAYED:
        signal.signal(signum, lambda number, frame: sock.send(bytes([number])))
    status = _exactly(sock, 4)
    code = os.waitstatus_to_exitcode(int.from_bytes(status, "little")) if len(status) == 4 else 1
    os._exit(128 - code if code < 0 else code)


def zygote(address: str, preloads: list) -> None:
    """Import ``preloads``, then start a kernel for each request on the Unix socket ``address``.

    Runs until its standard input closes (the grader exited). Each request
    (one JSON line from :func:`stand_in`) gets a child of its own, which holds
    the kernel's new namespaces (:func:`_hold`); the zygote itself stays
    single-threaded and never runs student code.
    """
    for name in preloads:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the holders are reaped by the system
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    print("ready", flush=True)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    while True:
        ready, _, _ = select.select([listener, 0], [], [])
        if 0 in ready:
            os._exit(0)
        conn, _ = listener.accept()
        try:  # a stand-in that died before asking, or a refused fork, costs that kernel only
            with conn.makefile("rb") as fh:
                request = json.loads(fh.readline())
            if os.fork() == 0:
                listener.close()
                _hold(conn, request["cfg"], request["cmd"])
        except (OSError, ValueError):
            pass
        conn.close()


def _hold(conn, cfg: dict, cmd: list) -> None:
    """In a zygote's child: enter new namespaces, fork the kernel as their first process,
    relay the stand-in's signals to it and report its exit status; kill it when the stand-in goes."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # not the grader's pipe
        os.close(null)
        libc = ctypes.CDLL(None, use_errno=True)
        if cfg["namespaces"] and libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare failed")
        kernel = os.fork()
        if kernel == 0:
            code = 1
            try:
                conn.close()
                os.setsid()
                if cfg["namespaces"]:  # this process's own /proc, as unshare --mount-proc gives
                    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE, None)
                    _mount(libc, "proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
                confine(cfg)
                _run_kernel(cmd, cfg["env"])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            finally:
                os._exit(code)
        try:
            watch = os.pidfd_open(kernel)
            while True:
                ready, _, _ = select.select([conn, watch], [], [])
                if watch in ready:
                    _, status = os.waitpid(kernel, 0)
                    kernel = 0
                    conn.sendall(status.to_bytes(4, "little"))
                    break
                data = conn.recv(64)
                if not data:  # the stand-in was killed
                    break
                for signum in data:
                    os.kill(kernel, signum)
        finally:  # however this process ends, the kernel ends too, and with it its namespace
            if kernel:
                os.kill(kernel, signal.SIGKILL)
                os.waitpid(kernel, 0)
    finally:
        os._exit(0)


def _run_kernel(cmd: list, env: dict) -> None:
    """Become the kernel ``cmd`` (``python -P -m ipykernel_launcher ARGS``), as if it had been executed."""
    os.environ.clear()
    os.environ.update(env)
    import tempfile

    import ipykernel_launcher
    from ipykernel import kernelapp

    # the zygote's imports cached its own folder, hidden from the kernel: the kernel's TMPDIR instead (where
    # multiprocessing passes shared memory between processes, e.g. to and from torch's DataLoader workers)
    tempfile.tempdir = None
    sys.argv = [ipykernel_launcher.__file__, *cmd[4:]]
    sys.orig_argv = list(cmd)
    kernelapp.launch_new_instance()


def main(argv: list) -> None:
    cfg = json.loads(argv[1])
    cmd = argv[argv.index("--") + 1:]
    if argv[2] == "--via":
        stand_in(cfg, argv[3], cmd)
    if argv[2] == "--outer":
        # killed with the grader; unshare --kill-child then takes every sandboxed process with it
        _die_with_parent()
        prefix = argv[3:argv.index("--")]
        os.execv(prefix[0], [*prefix, "--", *cmd])
    confine(cfg)
    if os.geteuid() == 0 and cfg.get("setpriv"):
        # nobody cannot run this Python: stay uid 0 but without any capability
        cmd = [cfg["setpriv"], "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *cmd]
    os.execve(cmd[0], cmd, cfg["env"])


if __name__ == "__main__":
    main(sys.argv)

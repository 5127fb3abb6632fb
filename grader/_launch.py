"""Start a student's kernel inside its sandbox (run by path, standard library only).

Usage: ``python _launch.py CONFIG_JSON [--outer PREFIX... ] -- KERNEL_COMMAND...``

With ``--outer``, the process first arranges to be killed with its parent (the
grader) and re-executes ``PREFIX`` (``unshare ... python _launch.py CONFIG_JSON``)
in front of the kernel command.

Runs as the first process of the sandbox's namespaces (``unshare``), before any
student code: joins the sandbox's pids cgroup, hides the course's files behind
empty read-only mounts (keeping the sandbox folder and the packages the kernel
imports), sets resource limits, drops root to ``nobody`` (or
to a root without capabilities where ``nobody`` cannot run this Python), then replaces itself
with the kernel. Each step the system refuses is skipped; the grader reports
which protections were active.
"""
import ctypes
import json
import os
import resource
import signal
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
NOBODY = 65534


def _mount(libc, source: str, target: str, fstype, flags: int, data) -> None:
    if libc.mount(source.encode(), target.encode(), fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target} failed")


def hide(masked: list, kept: list, read_only: list) -> None:
    """Cover each masked path with an empty tmpfs (a file with /dev/null), bind
    each kept path (opened beforehand) back at its place, then make the
    read-only paths (the Python installation, the kept packages) read-only."""
    libc = ctypes.CDLL(None, use_errno=True)
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE, None)
    kept_fds = [(path, os.open(path, os.O_PATH)) for path in kept if os.path.exists(path)]
    for path in masked:
        if os.path.isdir(path):
            _mount(libc, "tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=755")
        elif os.path.exists(path):
            _mount(libc, "/dev/null", path, None, MS_BIND, None)
    for path, fd in kept_fds:
        if not os.path.exists(path):
            os.makedirs(path, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        os.close(fd)
    for path in read_only:
        if os.path.exists(path):
            _mount(libc, path, path, None, MS_BIND | MS_REC, None)
            _mount(libc, "none", path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)


PR_SET_PDEATHSIG = 1


def main(argv: list) -> None:
    cfg = json.loads(argv[1])
    cmd = argv[argv.index("--") + 1:]
    if argv[2] == "--outer":
        # killed with the grader; unshare --kill-child then takes every sandboxed process with it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        prefix = argv[3:argv.index("--")]
        os.execv(prefix[0], [*prefix, "--", *cmd])
    if cfg.get("cgroup"):
        with open(os.path.join(cfg["cgroup"], "cgroup.procs"), "w") as fh:
            fh.write("0")
    if cfg.get("hide"):
        hide(cfg["masked"], cfg["kept"], cfg["read_only"])
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
    elif os.geteuid() == 0 and cfg.get("setpriv"):
        # nobody cannot run this Python: stay uid 0 but without any capability
        cmd = [cfg["setpriv"], "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *cmd]
    os.chdir(cfg["cwd"])
    os.execve(cmd[0], cmd, cfg["env"])


if __name__ == "__main__":
    main(sys.argv)

"""Execution time of every solutions notebook, top to bottom, in a fresh kernel on 2 CPU cores.

Goal: each notebook under 30 s and all of them together under 2 minutes, the time a
student waits for "Restart and run all" on a laptop. The benchmark process and its
kernels are pinned to two cores (where the OS allows) and BLAS/OpenMP/torch are told
to use two threads. Kernel start-up is reported apart from cell execution.

Usage::

    KERAS_BACKEND=torch python benchmarks/bench_notebooks.py [--repeat 1] [solutions/gru/gru.ipynb ...]

Prints a Markdown table for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CORES = 2
PER_NOTEBOOK_GOAL_S = 30.0
TOTAL_GOAL_S = 120.0


def pin_to_cores(n: int) -> str:
    """Restrict this process (and the kernels it starts) to ``n`` cores and ``n`` threads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cores)
        return f"cores {cores}"
    return "affinity not supported on this OS; threads limited only"


def run_notebook(path: Path) -> tuple[float, float, int, float]:
    """Execute ``path`` in a fresh kernel.

    Returns (kernel start-up s, all cells s, index of the slowest cell, its s).
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        started = time.perf_counter()
        per_cell = []
        for index, cell in enumerate(nb.cells):
            before = time.perf_counter()
            client.execute_cell(cell, index)
            per_cell.append(time.perf_counter() - before)
        done = time.perf_counter()
    slowest = max(range(len(per_cell)), key=per_cell.__getitem__)
    return started - start, done - started, slowest, per_cell[slowest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every solutions/*/*.ipynb")
    parser.add_argument("--repeat", type=int, default=1, help="runs per notebook; the fastest is reported")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "solutions").glob("*/*.ipynb"))
    where = pin_to_cores(CORES)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {where}, {CORES} threads, best of {args.repeat}, "
          f"load average {load:.1f} at start\n")
    print("| notebook | kernel start (s) | cells (s) | slowest cell (s) | goal < 30 s |")
    print("| --- | ---: | ---: | ---: | --- |")
    total = 0.0
    for path in notebooks:
        startup, cells, slowest, slowest_s = min((run_notebook(path) for _ in range(args.repeat)), key=lambda t: t[1])
        total += startup + cells
        ok = "yes" if startup + cells < PER_NOTEBOOK_GOAL_S else "**no**"
        print(f"| {path.resolve().relative_to(ROOT)} | {startup:.1f} | {cells:.1f} | #{slowest}: {slowest_s:.1f} | {ok} |")
    verdict = "yes" if total < TOTAL_GOAL_S else "**no**"
    print(f"| **all {len(notebooks)}** (start + cells) | | {total:.1f} | | {verdict} (< 120 s) |")
    if hasattr(os, "getloadavg"):
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

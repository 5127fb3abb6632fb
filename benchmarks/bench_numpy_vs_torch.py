"""Forward + backward of lstm_ref's NumPy LSTM against torch.nn.LSTM on the CPU.

For each thread count (1, and every core), the script re-runs itself in a
subprocess with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS set
before NumPy is imported and ``torch.set_num_threads`` to match, then times,
per shape and dtype, ``lstm_forward`` + ``lstm_backward`` against
``nn.LSTM`` forward + ``backward`` of ``(out * dout).sum()`` (input
gradient included on both sides), with the same weights. The two run in
turn, round by round, so that both see the same load from other processes;
in each round a function runs untimed for 0.15 s, so that neither is timed
while the other's idle threads still spin, then is timed over 0.02 s of
calls (one call at least). It prints the median time per call of each,
the median over rounds of their ratio (NumPy / torch: below 1 means NumPy
is faster; a ratio within one round compares runs a fraction of a second
apart, which a burst of load from other processes shifts less than it
shifts the medians of the two columns), the
same ratio by process CPU time, the GFLOP/s achieved (6 N T (D + H) 4H
flops for forward + backward: the matmuls only) and, for scale, this
machine's own NumPy matmul GFLOP/s measured in the same run.

Run: ``python benchmarks/bench_numpy_vs_torch.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np  # safe at the top: each worker process starts with its thread variables already set

SHAPES = [(32, 10, 1, 64), (64, 100, 32, 128), (128, 200, 64, 256)]  # (N, T, D, H)
DTYPES = ["float32", "float64"]
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SETTLE_S = 0.15  # seconds of untimed calls of a function before its timed calls in a round
TIMED_S = 0.02  # seconds of timed calls per function and round (one call at least)


def _interleaved_times(fns: dict, min_repeats: int, budget_s: float) -> dict[str, np.ndarray]:
    """(wall, CPU) seconds per call of each function, one row per round, (rounds, 2), run in turn so that all see the same load.

    At least ``min_repeats`` rounds, more while within ``budget_s`` (at most
    50). CPU time is this process's (all its threads), which other
    processes' load does not inflate the way it inflates wall time. In each
    round a function first runs untimed for ``SETTLE_S`` (once at least),
    so that its timed calls find the cores as it leaves them, not as the
    other function does: after a call with 2 threads, torch's OpenMP
    threads spin for about 8 ms (1.75 cores busy while the main thread
    sleeps) and OpenBLAS's for about 100 ms after a threaded product. NumPy's
    LSTM at N = 32, T = 10, H = 64 took 0.94 ms right after torch's and
    0.81 ms right after its own; torch's at N = 128, T = 200, H = 256 took
    536 ms right after NumPy's and 489 ms right after its own. Then calls
    are timed for ``TIMED_S`` (once at least) and averaged.
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_repeats or (time.perf_counter() - start < budget_s and rounds < 50):
        for name, fn in fns.items():
            _run_for(fn, SETTLE_S)  # also the warm-up: allocations, BLAS thread start-up
            times[name].append(_run_for(fn, TIMED_S))
        rounds += 1
    return {name: np.array(ts) for name, ts in times.items()}


def _run_for(fn, seconds: float) -> tuple[float, float]:
    """Call ``fn`` until ``seconds`` have passed (once at least): (wall, CPU) seconds per call."""
    w0, c0, calls = time.perf_counter(), time.process_time(), 0
    while not calls or time.perf_counter() - w0 < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - w0) / calls, (time.process_time() - c0) / calls


def worker(threads: int, min_repeats: int, budget_s: float) -> dict:
    """Time every shape and dtype in this process (threads already fixed by the environment)."""
    import torch

    import lstm_ref
    from lstm_ref.init import init_lstm_params
    from lstm_ref.interop import params_to_torch_module

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    results = {"threads": threads, "matmul_gflops": {}, "rows": []}
    for dtype in DTYPES:
        a = rng.standard_normal((1024, 1024)).astype(dtype)
        wall = np.median(_interleaved_times({"matmul": lambda: a @ a}, min_repeats, budget_s)["matmul"][:, 0])
        results["matmul_gflops"][dtype] = 2 * 1024**3 / wall / 1e9
    for N, T, D, H in SHAPES:
        for dtype in DTYPES:
            params = init_lstm_params(D, H, scheme="pytorch", seed=rng, dtype=dtype)
            x = rng.standard_normal((N, T, D)).astype(dtype)
            dout = rng.standard_normal((N, T, H)).astype(dtype)

            def numpy_step():
                out, _, cache = lstm_ref.lstm_forward(x, params)
                lstm_ref.lstm_backward(dout, cache)

            module = torch.nn.LSTM(D, H, batch_first=True).to(getattr(torch, dtype))
            params_to_torch_module(params, module)
            x_t = torch.from_numpy(x).requires_grad_(True)
            dout_t = torch.from_numpy(dout)

            def torch_step():
                module.zero_grad(set_to_none=True)
                x_t.grad = None
                out, _ = module(x_t)
                out.backward(dout_t)

            times = _interleaved_times({"numpy": numpy_step, "torch": torch_step}, min_repeats, budget_s)
            t_np, t_torch = np.median(times["numpy"][:, 0]), np.median(times["torch"][:, 0])
            ratio, cpu_ratio = np.median(times["numpy"] / times["torch"], axis=0)  # per round: (wall, CPU)
            flops = 6 * N * T * (D + H) * 4 * H
            results["rows"].append(
                {"shape": [N, T, D, H], "dtype": dtype, "numpy_s": t_np, "torch_s": t_torch,
                 "ratio": ratio, "cpu_ratio": cpu_ratio, "rounds": len(times["numpy"]),
                 "numpy_gflops": flops / t_np / 1e9, "torch_gflops": flops / t_torch / 1e9}
            )
    return results


def _run_worker(threads: int, args) -> dict:
    env = {**os.environ, **{var: str(threads) for var in THREAD_VARS}}
    cmd = [sys.executable, __file__, "--worker", str(threads), "--repeats", str(args.repeats), "--budget", str(args.budget)]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def _table(res: dict) -> str:
    mm = res["matmul_gflops"]
    lines = [
        f"### {res['threads']} thread(s): NumPy matmul 1024x1024 = "
        f"{mm['float32']:.1f} GFLOP/s float32, {mm['float64']:.1f} GFLOP/s float64",
        "",
        "| N, T, D, H | dtype | rounds | NumPy ms | torch ms | ratio NumPy/torch | ratio by CPU time "
        "| NumPy GFLOP/s | torch GFLOP/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {', '.join(map(str, r['shape']))} | {r['dtype']} | {r['rounds']} "
            f"| {1e3 * r['numpy_s']:.2f} | {1e3 * r['torch_s']:.2f} "
            f"| **{r['ratio']:.2f}** | {r['cpu_ratio']:.2f} "
            f"| {r['numpy_gflops']:.1f} | {r['torch_gflops']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="thread counts to run (default: 1 and every core)")
    parser.add_argument("--repeats", type=int, default=5, help="minimum rounds per measurement (default 5)")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement beyond the minimum rounds (default 2)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.repeats, args.budget), default=float))
        return 0
    import torch

    print(f"# lstm_ref NumPy LSTM vs torch.nn.LSTM, forward + backward, CPU ({os.cpu_count()} cores)")
    print(f"numpy {np.__version__}, torch {torch.__version__}, Python {sys.version.split()[0]}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for threads in dict.fromkeys(args.threads):
        print()
        print(_table(_run_worker(threads, args)))
    print()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""The local exact sum of a (P, n) array against numpy.sum(axis=0) on the same array, one process.

    python scripts/bench_exact_sum.py [--contributions 8,72] [--log2n 17,22] [--dtypes float32,float64]

Each round times numpy.sum, the exact sum (certified kernel plus exact path for what fails) and,
with --numpy-path, the NumPy-only reference path, alternating, and reports medians. Data: "normal"
(standard normal) and "adversarial" (exponents spread over the format's whole range, and one
row in four cancelling the others to a float rounding error). Target (issue 14): exact/numpy
<= 3 on normal data and <= 10 on adversarial data for float32 and float64.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tessera_mpi.reduction import cpu_kernel
from tessera_mpi.reduction.exact_sum import exact_sum, exact_sum_numpy
from tessera_mpi.reduction.formats import FloatFormat


def data(kind: str, contributions: int, n: int, dtype: Any) -> np.ndarray:
    """Return the benchmark's (contributions, n) array of `kind`."""
    rng = np.random.default_rng(14)
    if kind == "normal":
        return rng.standard_normal((contributions, n), dtype=np.float64).astype(dtype)
    fmt = FloatFormat.of(dtype)
    low, high = fmt.quantum + fmt.precision, fmt.max_exponent - 8
    values = np.ldexp(rng.uniform(-1, 1, (contributions, n)), rng.integers(low, high, (contributions, n)))
    values = values.astype(dtype)
    cancel = values[::4].astype(np.float64)
    # Rows 0, 4, 8, ... become minus the float64 sum of the rows after them: heavy cancellation.
    for row in range(0, contributions, 4):
        with np.errstate(over="ignore", invalid="ignore"):
            cancel[row // 4] = -values[row + 1:row + 4].astype(np.float64).sum(axis=0)
    with np.errstate(over="ignore"):
        values[::4] = cancel.astype(dtype)
    return values


def best_of(body: Callable[[], Any], repeats: int) -> float:
    """Return the fastest of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contributions", default="8,72")
    parser.add_argument("--log2n", default="17,22", help="smallest and largest log2 of n")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--kinds", default="normal,adversarial")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-bytes", type=float, default=2 ** 28, help="skip arrays larger than this")
    parser.add_argument("--numpy-path", action="store_true", help="also time the NumPy-only path")
    args = parser.parse_args()
    lo, hi = (int(v) for v in args.log2n.split(","))
    print(f"kernel: {'C (certified_sum.c)' if cpu_kernel.available() else 'none (NumPy path: ' + cpu_kernel.reason() + ')'}; median over "
          f"{args.rounds} interleaved rounds of the best of 3 calls")
    print(f"{'P x n':>14} {'dtype':>9} {'data':>12} {'numpy ms':>9} {'exact ms':>9} {'ratio':>6} "
          f"{'ns/elem':>8} {'exact path':>10}" + (f" {'numpy-path ms':>13}" if args.numpy_path else ""))
    for dtype in (np.dtype(d) for d in args.dtypes.split(",")):
        for kind in args.kinds.split(","):
            for p in (int(v) for v in args.contributions.split(",")):
                for log2n in range(lo, hi + 1):
                    n = 1 << log2n
                    if p * n * dtype.itemsize > args.max_bytes:
                        continue
                    values = data(kind, p, n, dtype)
                    with np.errstate(all="ignore"):
                        variants = {"numpy": lambda: values.sum(axis=0), "exact": lambda: exact_sum(np, values)}
                        if args.numpy_path:
                            variants["reference"] = lambda: exact_sum_numpy(np, values)
                        failures = cpu_kernel.certified_sum(values, FloatFormat.of(dtype))[2] if cpu_kernel.available() else n
                        times: dict[str, list[float]] = {k: [] for k in variants}
                        for _ in range(args.rounds):
                            for name, body in variants.items():
                                times[name].append(best_of(body, 3))
                    med = {k: statistics.median(v) for k, v in times.items()}
                    line = (f"{p:>5} x 2^{log2n:<4} {dtype.name:>9} {kind:>12} {med['numpy'] * 1e3:>9.2f} "
                            f"{med['exact'] * 1e3:>9.2f} {med['exact'] / med['numpy']:>6.2f} "
                            f"{med['exact'] / (p * n) * 1e9:>8.3f} {failures / n:>10.2%}")
                    if args.numpy_path:
                        line += f" {med['reference'] * 1e3:>13.2f}"
                    print(line, flush=True)


if __name__ == "__main__":
    main()

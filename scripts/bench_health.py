"""What GPU health telemetry costs the suite: one rank's snapshot, delta and table rows (emulated
NVML, in process), and a suite run with and without the health checks, alternating.

    python scripts/bench_health.py [--ranks 72] [--backend numpy] [--repeat 2]

Prints the per-snapshot cost, then per run: wall time of `--tests mesh` and of
`--tests health,mesh,health_end`, and the health checks' own durations from the results file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tessera_mpi.hardware.emulated import EmulatedGpu  # noqa: E402
from tessera_mpi.hardware.snapshot import changes, rows  # noqa: E402
from tessera_mpi.results import read_results  # noqa: E402


def local_cost(n: int = 2000) -> tuple[float, float]:
    """Seconds per emulated snapshot + delta, and per full table of one GPU."""
    gpu = EmulatedGpu("emul-n01", 0)
    start = time.perf_counter()
    for _ in range(n):
        a, b = gpu.snapshot(), gpu.snapshot()
        changes(a, b)
    pair = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n // 10):
        rows(0, "x", a, b, only_changed=False)
    return pair, (time.perf_counter() - start) / (n // 10)


def suite(ranks: int, backend: str, tests: str, out: Path) -> float:
    env = dict(os.environ, TESSERA_BACKEND=backend, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    mpirun = str(Path(sys.executable).parent / "mpirun")
    start = time.perf_counter()
    subprocess.run([mpirun, "--oversubscribe", "-n", str(ranks), sys.executable, "-m", "tessera_mpi.suite", "--quick",
                    "--tests", tests, "--out", str(out)], env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=72)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    pair, table = local_cost()
    print(f"emulated snapshot pair + delta: {pair * 1e6:.1f} us; full /health rows of one GPU: {table * 1e6:.1f} us")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            plain = suite(args.ranks, args.backend, "mesh", Path(tmp) / f"plain{i}.h5")
            out = Path(tmp) / f"health{i}.h5"
            with_health = suite(args.ranks, args.backend, "health,mesh,health_end", out)
            checks = read_results(out).checks
            own = ", ".join(f"{c} {checks[c].status} {checks[c].duration_s:.3f} s" for c in ("health", "health_end"))
            print(f"{args.ranks} ranks {args.backend}: --tests mesh {plain:.1f} s, with health {with_health:.1f} s "
                  f"(+{with_health - plain:.1f} s); {own}")


if __name__ == "__main__":
    main()

"""The GPU check's verdict on its results file: one line per finding, each PASS, FAIL or
UNJUDGED (a figure reported but not judged, and why).

    python scripts/gpu_verdict.py RESULTS.h5 [--no-timing]

Judged: every check's data (sanity), and CUDA-event timing against host timing for every
bandwidth row of at least 100 us (within 10%). Reported unjudged: bandwidth against the
expectation when the suite did not judge it (ranks sharing a GPU, no known product), and the
clock comparison under --no-timing (emulated device memory, where events are host-stamped).
Exit status: 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tessera_mpi.results import read_results

CLOCK_GAP = 0.10
"""The largest relative gap between event and host t_max allowed for calls of >= 100 us."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--no-timing", action="store_true", help="report timing comparisons unjudged")
    args = parser.parse_args(argv)
    run = read_results(args.results)
    failed = False

    def say(kind: str, text: str) -> None:
        nonlocal failed
        failed |= kind == "FAIL"
        print(f"{kind:9s}{text}")

    say("INFO", f"backend {run.attrs.get('backend')} ({run.attrs.get('backend_reason', '')}), buffers "
                f"{run.attrs.get('buffers', '?')}, CUDA-aware MPI {run.attrs.get('cuda_aware')} "
                f"({run.attrs.get('cuda_aware_source')})")
    for name, check in run.checks.items():
        sanity = str(check.attrs.get("sanity", check.status))
        say("PASS" if sanity == "passed" and check.status == "passed" else "FAIL",
            f"{name}: {check.status}, data {sanity}: {check.headline}")
        performance = str(check.attrs.get("performance", ""))
        why = str(check.attrs.get("not_judged", ""))
        if performance == "not judged":
            if why:  # checks without timing figures give no reason: nothing to report
                say("UNJUDGED", f"{name} performance: {why}")
        elif performance:
            say("PASS" if performance == "passed" else "FAIL", f"{name} performance {performance}")
    bandwidth = run.checks.get("bandwidth")
    if bandwidth is None:
        say("FAIL", "no bandwidth check in the results")
        return 1
    clock = bandwidth.attrs.get("clock")
    worst, rows = 0.0, 0
    for name, data in bandwidth.datasets.items():
        if "time_us_max" not in (data.dtype.names or ()):
            continue
        big = data[data["time_us_max"] >= 100]  # events and host clocks agree where calls are long
        for row in big:
            gap = abs(row["time_us_max"] - row["host_time_us_max"]) / row["host_time_us_max"]
            worst, rows = max(worst, float(gap)), rows + 1
        paths = sorted({str(b.decode() if isinstance(b, bytes) else b) for b in data["buffers"]}) \
            if "buffers" in data.dtype.names else ["?"]
        peak = float(np.max(data["busbw_GBps"])) if len(data) else 0.0
        print(f"{'INFO':9s}bandwidth {name}: peak busbw {peak:.2f} GB/s, buffers {','.join(paths)}")
    text = (f"clock {clock}: largest gap between event and host t_max over {rows} rows of >= 100 us: "
            f"{worst:.1%} (at most {CLOCK_GAP:.0%})")
    if clock != "events":
        say("FAIL", f"bandwidth timed with the {clock} clock, not device events")
    elif args.no_timing or rows == 0:
        say("UNJUDGED", text + ("; emulated device memory: events are host-stamped" if args.no_timing
                                else "; no call that long"))
    else:
        say("PASS" if worst <= CLOCK_GAP else "FAIL", text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

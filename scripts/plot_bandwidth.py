#!/usr/bin/env python3
"""Plots of a tessera_mpi run's fabric checks, optionally against a baseline run.

    python scripts/plot_bandwidth.py RESULTS.h5 [BASELINE.h5] -o DIR

Writes PNGs into DIR: bandwidth_<collective>.png (bus bandwidth and latency against message
size, log axes, with the expected bandwidth and the baseline), links_unidirectional.png and
links_bidirectional.png (the rank-pair matrices, slow links circled), soak_timeline.png (bus
bandwidth over time), for whichever of those checks the file holds. The figures are those of
the HTML report (tessera_mpi/results/figures.py). Headless.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tessera_mpi.fabric.collectives import SWEPT as COLLECTIVES
from tessera_mpi.results import read_results
from tessera_mpi.results.figures import LINK_KINDS, bandwidth_figure, links_figure, save_png, soak_figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results file (.h5)")
    parser.add_argument("baseline", nargs="?", help="an earlier results file to overlay")
    parser.add_argument("-o", "--out", required=True, help="folder for the PNGs")
    args = parser.parse_args(argv)
    run = read_results(args.results)
    base = read_results(args.baseline) if args.baseline else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = [(f"bandwidth_{name}", bandwidth_figure(run, name, baseline=base)) for name in COLLECTIVES]
    figures += [(f"links_{key}", links_figure(run, key)) for key in LINK_KINDS]
    figures.append(("soak_timeline", soak_figure(run)))
    paths = []
    for stem, fig in figures:
        if fig is not None:
            path = out / f"{stem}.png"
            save_png(fig, str(path))
            paths.append(path)
            print(path)
    if not paths:
        print(f"{args.results} holds no bandwidth, links or soak results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Plots of a tessera_mpi run's fabric checks, optionally against a baseline run.

    python scripts/plot_bandwidth.py RESULTS.h5 [BASELINE.h5] -o DIR

Writes PNGs into DIR: bandwidth_<collective>.png (bus bandwidth and latency against message
size, log axes, with the expected bandwidth and the baseline), links_unidirectional.png and
links_bidirectional.png (the rank-pair matrices, slow links circled), soak_timeline.png (bus
bandwidth over time), for whichever of those checks the file holds. Headless (Agg).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tessera_mpi.fabric.collectives import SWEPT as COLLECTIVES  # noqa: E402
from tessera_mpi.results import RunResults, read_results  # noqa: E402
from tessera_mpi.util.text import human_bytes  # noqa: E402


def _label(run: RunResults) -> str:
    a = run.attrs
    return f"{a.get('created', '?')} ({a.get('world_size')} ranks, {a.get('backend')})"


def _byte_ticks(ax: plt.Axes, sizes: np.ndarray) -> None:
    ticks = [s for s in sorted(set(sizes.tolist()))]
    step = max(1, len(ticks) // 8)
    ax.set_xticks(ticks[::step])
    ax.set_xticklabels([human_bytes(int(t)) for t in ticks[::step]], rotation=30, ha="right")
    ax.minorticks_off()


def plot_collective(name: str, run: RunResults, base: RunResults | None, out: Path) -> Path | None:
    check = run.checks.get("bandwidth")
    if check is None or name not in check.datasets:
        return None
    data = check.datasets[name]
    expected = float(check.attrs.get("expected_busbw_GBps", 0.0))
    loaded = bool(check.attrs.get("under_load", False))
    fig, (bw_ax, lat_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    # --transport both: one line per transport and variant (tables before schema 1.4 are MPI's).
    over = ([t.decode() if isinstance(t, bytes) else str(t) for t in data["transport"]]
            if "transport" in (data.dtype.names or ()) else ["mpi"] * len(data))
    labels = list(dict.fromkeys(over))
    styles = {(t, ip): ("-" if i == 0 else "--") + ("s" if ip else "o") for i, t in enumerate(labels)
              for ip in (False, True)}
    for (transport, in_place), style in styles.items():
        rows = data[(data["in_place"] == in_place) & (np.array(over) == transport)]
        if len(rows) == 0:
            continue
        label = (f"{transport + ', ' if len(labels) > 1 else ''}{'in place' if in_place else 'out of place'}"
                 f"{', under load' if loaded else ''}")
        bw_ax.plot(rows["size_bytes"], rows["busbw_GBps"], style, label=label, markersize=4)
        lat_ax.plot(rows["size_bytes"], rows["time_us_max"], style, label=f"{label}, t_max", markersize=4)
        lat_ax.fill_between(rows["size_bytes"], rows["time_us_min"], rows["time_us_max"], alpha=0.15)
        bad = rows[rows["wrong"] > 0]
        if len(bad):
            bw_ax.plot(bad["size_bytes"], bad["busbw_GBps"], "rx", markersize=12, label="wrong results")
    alone = check.datasets.get(name + "_unloaded")
    if alone is not None:  # --under-load: the same sweep with the background load paused
        alone = alone[alone["in_place"] == bool(alone["in_place"].min())]
        bw_ax.plot(alone["size_bytes"], alone["busbw_GBps"], "-^", color="black", alpha=0.6, markersize=4,
                   label="without load")
        lat_ax.plot(alone["size_bytes"], alone["time_us_max"], "-^", color="black", alpha=0.6, markersize=4,
                    label="without load, t_max")
    if base is not None and "bandwidth" in base.checks and name in base.checks["bandwidth"].datasets:
        old = base.checks["bandwidth"].datasets[name]
        old = old[old["in_place"] == bool(old["in_place"].min())]
        bw_ax.plot(old["size_bytes"], old["busbw_GBps"], "--", color="gray", label=f"baseline {_label(base)}")
        lat_ax.plot(old["size_bytes"], old["time_us_max"], "--", color="gray", label="baseline t_max")
    if expected > 0:
        bw_ax.axhline(expected, color="green", linestyle=":", label=f"expected {expected:g} GB/s")
        bw_ax.axhline(expected * float(check.attrs.get("min_efficiency", 0.8)), color="red", linestyle=":",
                      label=f"fail below {check.attrs.get('min_efficiency', 0.8):g} x expected")
    for ax, ylabel in ((bw_ax, "bus bandwidth (GB/s, 1e9 bytes)"), (lat_ax, "time per call (us), min..max over ranks")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message size (nccl-tests convention)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        _byte_ticks(ax, data["size_bytes"])
    bw_ax.set_title(f"{name}: bus bandwidth")
    lat_ax.set_title(f"{name}: latency")
    source = check.attrs.get("expectation_source", "")
    fig.suptitle(f"{_label(run)} - expectation: {source}", fontsize=9)
    fig.tight_layout()
    path = out / f"bandwidth_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_links(run: RunResults, out: Path) -> list[Path]:
    check = run.checks.get("links")
    if check is None:
        return []
    median = float(check.attrs.get("median_GBps", 0.0))
    fraction = float(check.attrs.get("slow_fraction", 0.5))
    slow = check.datasets["slow_links"]
    slow = slow[slow["src"] >= 0]
    paths = []
    for key, title in (("unidirectional", "one way: row sends to column"),
                       ("bidirectional", "both ways at once (sum)")):
        matrix = np.where(check.datasets[key] > 0, check.datasets[key], np.nan)
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        # A few lucky measurements must not wash out the scale: clip at the 98th percentile.
        top = float(np.nanpercentile(matrix, 98)) if np.isfinite(matrix).any() else 1.0
        image = ax.imshow(matrix, cmap="viridis", interpolation="nearest", vmin=0, vmax=top)
        fig.colorbar(image, ax=ax, label="GB/s (clipped at the 98th percentile)")
        hosts = [h.decode() if isinstance(h, bytes) else h for h in run.ranks["host"]]
        for edge in [i for i in range(1, len(hosts)) if hosts[i] != hosts[i - 1]]:
            ax.axhline(edge - 0.5, color="white", linewidth=0.6)
            ax.axvline(edge - 0.5, color="white", linewidth=0.6)
        if key == "unidirectional" and len(slow):
            ax.scatter(slow["dst"], slow["src"], s=60, facecolors="none", edgecolors="red",
                       label=f"slow: < {fraction:g} x median ({len(slow)})")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlabel("destination rank")
        ax.set_ylabel("source rank")
        judged = "" if check.attrs.get("judged", True) else "; not judged (oversubscribed)"
        ax.set_title(f"links, {title}\nmedian one way {median:.2f} GB/s{judged}\n"
                     "grey: not measured; white lines: host boundaries", fontsize=9)
        ax.set_facecolor("lightgray")
        fig.tight_layout()
        path = out / f"links_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_soak(run: RunResults, out: Path) -> Path | None:
    check = run.checks.get("soak")
    if check is None or "timeline" not in check.datasets:
        return None
    data = check.datasets["timeline"]
    median = float(check.attrs.get("median_GBps", np.median(data["busbw_GBps"])))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(data["t_s"], data["busbw_GBps"], "-o", markersize=3, label="bus bandwidth per window")
    ax.axhline(median, color="green", linestyle=":", label=f"median {median:.2f} GB/s")
    fraction = float(check.attrs.get("min_efficiency", 0.8))
    ax.axhline(fraction * median, color="red", linestyle=":", label=f"dip: below {fraction:g} x median")
    bad = data[data["wrong"] > 0]
    if len(bad):
        ax.plot(bad["t_s"], bad["busbw_GBps"], "rx", markersize=10, label="wrong results")
    ax.set_xlabel("time since the soak started (s)")
    ax.set_ylabel("all-reduce bus bandwidth (GB/s)")
    ax.set_ylim(bottom=0)
    size = int(check.attrs.get("size_bytes", 0))
    ax.set_title(f"soak: all-reduce of {human_bytes(size)}, trend last/first quarter "
                 f"{float(check.attrs.get('trend', 1.0)):.2f}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "soak_timeline.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    written = [plot_collective(name, run, base, out) for name in COLLECTIVES]
    written += plot_links(run, out)
    written.append(plot_soak(run, out))
    paths = [p for p in written if p is not None]
    for path in paths:
        print(path)
    if not paths:
        print(f"{args.results} holds no bandwidth, links or soak results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

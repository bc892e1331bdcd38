"""Figures of a results file, one function per kind, shared by scripts/plot_bandwidth.py (PNG)
and the HTML report (SVG). Each returns a matplotlib Figure, or None when the file lacks the data.

Figures are made with `matplotlib.figure.Figure`, not pyplot: no global figure registry to close
and no backend to choose, so the suite's writing rank can draw them between checks.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..runtime.topology import HostBlock, host_blocks
from ..util.text import human_bytes
from .measures import hosts_of, run_label, text
from .reader import RunResults


def _byte_ticks(ax: Axes, sizes: np.ndarray) -> None:
    ticks = sorted(set(sizes.tolist()))
    step = max(1, len(ticks) // 8)
    ax.set_xticks(ticks[::step])
    ax.set_xticklabels([human_bytes(int(t)) for t in ticks[::step]], rotation=30, ha="right")
    ax.minorticks_off()


def _plain_log(axis: Any) -> None:
    """Label a log axis with plain numbers: the default mathtext labels (10^-4) cost most of a
    figure's drawing time, and a report draws dozens."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def bandwidth_figure(run: RunResults, name: str, *, baseline: RunResults | None = None) -> Figure | None:
    """Bus bandwidth and latency of one collective against message size (log axes), with the
    expectation, the failure threshold, the sweep without load (under --under-load) and the baseline."""
    check = run.checks.get("bandwidth")
    if check is None or name not in check.datasets or len(check.datasets[name]) == 0:
        return None
    data = check.datasets[name]
    expected = float(check.attrs.get("expected_busbw_GBps", 0.0))
    loaded = bool(check.attrs.get("under_load", False))
    fig = Figure(figsize=(12, 4.8))
    bw_ax, lat_ax = fig.subplots(1, 2)
    # --transport both: one line per transport and variant (tables before schema 1.4 are MPI's).
    over = np.array([text(t) for t in data["transport"]] if "transport" in (data.dtype.names or ())
                    else ["mpi"] * len(data))
    transports = list(dict.fromkeys(over.tolist()))
    styles = {(t, ip): ("-" if i == 0 else "--") + ("s" if ip else "o") for i, t in enumerate(transports)
              for ip in (False, True)}
    for (transport, in_place), style in styles.items():
        rows = data[(data["in_place"] == in_place) & (over == transport)]
        if len(rows) == 0:
            continue
        label = (f"{transport + ', ' if len(transports) > 1 else ''}{'in place' if in_place else 'out of place'}"
                 f"{', under load' if loaded else ''}")
        bw_ax.plot(rows["size_bytes"], rows["busbw_GBps"], style, label=label, markersize=4)
        lat_ax.plot(rows["size_bytes"], rows["time_us_max"], style, label=f"{label}, t_max", markersize=4)
        lat_ax.fill_between(rows["size_bytes"], rows["time_us_min"], rows["time_us_max"], alpha=0.15)
        bad = rows[rows["wrong"] > 0] if "wrong" in (rows.dtype.names or ()) else rows[:0]
        if len(bad):
            bw_ax.plot(bad["size_bytes"], bad["busbw_GBps"], "rx", markersize=12, label="wrong results")
    alone = check.datasets.get(name + "_unloaded")
    if alone is not None and len(alone):  # --under-load: the same sweep with the background load paused
        alone = alone[alone["in_place"] == bool(alone["in_place"].min())]
        bw_ax.plot(alone["size_bytes"], alone["busbw_GBps"], "-^", color="black", alpha=0.6, markersize=4,
                   label="without load")
        lat_ax.plot(alone["size_bytes"], alone["time_us_max"], "-^", color="black", alpha=0.6, markersize=4,
                    label="without load, t_max")
    if baseline is not None and "bandwidth" in baseline.checks and name in baseline.checks["bandwidth"].datasets:
        old = baseline.checks["bandwidth"].datasets[name]
        if len(old):
            old = old[old["in_place"] == bool(old["in_place"].min())]
            bw_ax.plot(old["size_bytes"], old["busbw_GBps"], "--", color="gray",
                       label=f"baseline {run_label(baseline)}")
            lat_ax.plot(old["size_bytes"], old["time_us_max"], "--", color="gray", label="baseline t_max")
    if expected > 0:
        fraction = float(check.attrs.get("min_efficiency", 0.8))
        bw_ax.axhline(expected, color="green", linestyle=":", label=f"expected {expected:g} GB/s")
        bw_ax.axhline(expected * fraction, color="red", linestyle=":", label=f"fail below {fraction:g} x expected")
    for ax, ylabel in ((bw_ax, "bus bandwidth (GB/s, 1e9 bytes)"),
                       (lat_ax, "time per call (us), min..max over ranks")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.set_xlabel("message size (nccl-tests convention)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        _byte_ticks(ax, data["size_bytes"])
    bw_ax.set_title(f"{name}: bus bandwidth")
    lat_ax.set_title(f"{name}: latency")
    fig.suptitle(f"{run_label(run)} - expectation: {check.attrs.get('expectation_source', '')}", fontsize=9)
    # Fixed margins rather than tight_layout, which draws the whole figure once more to measure it.
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.17, top=0.87, wspace=0.22)
    return fig


LINK_KINDS = {"unidirectional": "one way: row sends to column", "bidirectional": "both ways at once (sum)"}
"""The links check's matrices and what each holds."""


MAX_HOST_LABELS = 36
"""Hosts are named on the links heatmaps up to this many blocks (two NVL72 racks)."""


def link_host_blocks(run: RunResults) -> list[HostBlock]:
    """The host blocks of the links heatmaps: consecutive ranks on one host, from /ranks."""
    return host_blocks(hosts_of(run))


def links_figure(run: RunResults, key: str) -> Figure | None:
    """The rank-pair matrix `key` of the links check (see LINK_KINDS), slow links circled and
    host boundaries drawn."""
    check = run.checks.get("links")
    if check is None or key not in check.datasets or check.datasets[key].ndim != 2:
        return None
    median = float(check.attrs.get("median_GBps", 0.0))
    fraction = float(check.attrs.get("slow_fraction", 0.5))
    slow = check.datasets.get("slow_links")
    slow = slow[slow["src"] >= 0] if slow is not None else np.zeros(0, dtype=[("src", int), ("dst", int)])
    matrix = np.where(check.datasets[key] > 0, check.datasets[key], np.nan)
    fig = Figure(figsize=(7.5, 6.5))
    ax = fig.subplots()
    # A few lucky measurements must not wash out the scale: clip at the 98th percentile.
    top = float(np.nanpercentile(matrix, 98)) if np.isfinite(matrix).any() else 1.0
    image = ax.imshow(matrix, cmap="viridis", interpolation="nearest", vmin=0, vmax=top)
    fig.colorbar(image, ax=ax, label="GB/s (clipped at the 98th percentile)")
    blocks = link_host_blocks(run)
    for block in blocks[1:]:
        if block.first < len(matrix):
            ax.axhline(block.first - 0.5, color="white", linewidth=0.6)
            ax.axvline(block.first - 0.5, color="white", linewidth=0.6)
    by_host = 1 < len(blocks) <= MAX_HOST_LABELS
    if by_host:
        # Each block is labelled with its host and first rank, at its middle.
        centres = [(b.first + b.last) / 2 for b in blocks]
        names = [f"{b.host} ({b.first})" for b in blocks]
        ax.set_xticks(centres, names, rotation=90, fontsize=6)
        ax.set_yticks(centres, names, fontsize=6)
    if key == "unidirectional" and len(slow):
        ax.scatter(slow["dst"], slow["src"], s=60, facecolors="none", edgecolors="red",
                   label=f"slow: < {fraction:g} x median ({len(slow)})")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("destination rank" + (", by host (first rank)" if by_host else ""))
    ax.set_ylabel("source rank" + (", by host (first rank)" if by_host else ""))
    # Not judged for the reason the check recorded (oversubscribed, or ranks sharing a GPU).
    reason = text(check.attrs.get("not_judged", "")) or "oversubscribed"
    judged = "" if check.attrs.get("judged", True) else f"; not judged ({reason})"
    topology = f" ({run.attrs['topology']})" if run.attrs.get("topology") else ""
    ax.set_title(f"links, {LINK_KINDS[key]}\nmedian one way {median:.2f} GB/s{judged}\n"
                 f"grey: not measured; white lines: boundaries of {len(blocks)} host blocks{topology}", fontsize=9)
    ax.set_facecolor("lightgray")
    fig.tight_layout()
    return fig


def soak_figure(run: RunResults) -> Figure | None:
    """Bus bandwidth of the soak's windows over time, with its median and the dip threshold."""
    check = run.checks.get("soak")
    if check is None or "timeline" not in check.datasets or len(check.datasets["timeline"]) == 0:
        return None
    data = check.datasets["timeline"]
    median = float(check.attrs.get("median_GBps", np.median(data["busbw_GBps"])))
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
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
    return fig


def bisection_figure(run: RunResults) -> Figure | None:
    """Aggregate bandwidth across each cut, with the expectation where there is one."""
    check = run.checks.get("bisection")
    if check is None or "splits" not in check.datasets or len(check.datasets["splits"]) == 0:
        return None
    data = check.datasets["splits"]
    names = [text(s) for s in data["split"]]
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    ax.barh(names, data["aggregate_GBps"], color="tab:blue", label="aggregate across the cut")
    for y, (value, slowest) in enumerate(zip(data["aggregate_GBps"], data["slowest_rank"])):
        ax.text(float(value), y, f" {float(value):.3g} GB/s, slowest rank {int(slowest)}", va="center", fontsize=8)
    expected = data["expected_GBps"] if "expected_GBps" in (data.dtype.names or ()) else np.zeros(len(data))
    for y, value in enumerate(expected):
        if value > 0:
            ax.plot([value, value], [y - 0.4, y + 0.4], color="green", linestyle=":",
                    label="expected" if y == 0 else None)
    ax.set_xlabel("GB/s, both directions, over t_max")
    ax.set_xlim(0, max(float(data["aggregate_GBps"].max()), float(np.max(expected))) * 1.6 or 1.0)
    ax.set_title("bisection: bandwidth across each cut", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def faults_figure(run: RunResults) -> Figure | None:
    """Each fault scenario as a timeline from its start: detection, then recovery to the rebuilt
    mesh; an undetected scenario is marked."""
    check = run.checks.get("faults")
    if check is None or "scenarios" not in check.datasets or len(check.datasets["scenarios"]) == 0:
        return None
    data = check.datasets["scenarios"]
    names = [text(s) for s in data["scenario"]]
    fig = Figure(figsize=(10, 0.45 * len(names) + 1.6))
    ax = fig.subplots()
    detect = np.asarray(data["detection_ms"], dtype=float)
    recover = np.asarray(data["recovery_ms"], dtype=float)
    ax.barh(names, detect, color="tab:orange", label="injection -> detection")
    ax.barh(names, recover, left=detect, color="tab:green", label="detection -> rebuilt mesh")
    for y, ok in enumerate(data["detected"]):
        end = detect[y] + recover[y]
        ax.text(end, y, f" {end:.0f} ms" if ok else " NOT DETECTED", va="center", fontsize=8,
                color="black" if ok else "red")
    ax.invert_yaxis()
    ax.set_xlabel("ms since the scenario's work started")
    ax.set_xlim(0, max(float((detect + recover).max()) * 1.25, 1.0))
    ax.set_title(f"faults ({check.attrs.get('mode', '?')} mode): detection and recovery per scenario", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def parallelism_figure(run: RunResults) -> Figure | None:
    """The training step's largest relative error per quantity and step, against its tolerance."""
    check = run.checks.get("parallelism")
    if check is None or "errors" not in check.datasets or len(check.datasets["errors"]) == 0:
        return None
    data = check.datasets["errors"]
    quantities = list(dict.fromkeys(text(q) for q in data["quantity"]))
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    for index, quantity in enumerate(quantities):
        rows = data[np.array([text(q) == quantity for q in data["quantity"]])]
        color = f"C{index}"
        errors = np.maximum(np.asarray(rows["max_rel_err"], dtype=float), 1e-17)
        ax.plot(rows["step"], errors, "-o", color=color, markersize=4, label=quantity)
        ax.axhline(float(rows["tolerance"][0]), color=color, linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    _plain_log(ax.yaxis)
    ax.set_xlabel("training step")
    ax.set_ylabel("max relative error vs float64 reference")
    ax.set_title("parallelism: errors per quantity (dotted: tolerance)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    return fig


def trend_figure(title: str, labels: Sequence[str], series: dict[str, Sequence[float]], *, unit: str,
                 regressed: Sequence[bool] = (), current: int | None = None) -> Figure:
    """Headline figures over runs: one line per series (NaN where a run lacks it), runs that
    regressed marked with a red cross, the run a report is about marked with a ring."""
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots()
    x = np.arange(len(labels))
    for name, values in series.items():
        values = np.asarray(values, dtype=float)
        ax.plot(x, values, "-o", markersize=4, label=name)
        for i in np.flatnonzero(np.asarray(regressed[:len(values)], dtype=bool)) if len(regressed) else ():
            if np.isfinite(values[i]):
                ax.plot(x[i], values[i], "rx", markersize=11)
        if current is not None and current < len(values) and np.isfinite(values[current]):
            ax.plot(x[current], values[current], "o", markersize=12, markerfacecolor="none", markeredgecolor="black")
    step = max(1, len(labels) // 10)
    ax.set_xticks(x[::step])
    ax.set_xticklabels(list(labels)[::step], rotation=25, ha="right", fontsize=7)
    ax.set_ylabel(unit)
    ax.set_title(title + ("  (x: regressed run)" if any(regressed) else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def svg_data_uri(fig: Figure) -> str:
    """Return `fig` as an SVG data URI: self-contained (text as text, no external fonts), and in
    an <img> its ids cannot clash with another figure's on the same page."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tessera_mpi"}):
        fig.savefig(buffer, format="svg")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def save_png(fig: Figure, path: str, *, dpi: int = 110) -> None:
    """Write `fig` as a PNG."""
    fig.savefig(path, dpi=dpi)

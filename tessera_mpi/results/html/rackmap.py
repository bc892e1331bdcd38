"""The rack map: one cell per rank, laid out by host and local device, in the state the run left it.

The /ranks table's required columns (rank, host, local_rank, device, coords) place each cell;
identity columns that some files have (tray, slot, GPU serial, ...) are shown where present and
never required.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...hardware.counters import BY_NAME
from ..measures import CALLS, counter_increases, mpi_seconds, text
from ..reader import RunResults
from .page import esc, json_script

STATES = ("lost", "failed", "health", "slow", "fine")
"""A rank's state on the map, most severe first; a rank shows the most severe that applies."""
STATE_MARK = {"lost": "⊘", "failed": "✗", "health": "⚠", "slow": "▼", "fine": "✓"}
STATE_TEXT = {"lost": "lost in a fault scenario", "failed": "failed", "health": "health warning",
              "slow": "slow (performance)", "fine": "fine"}
IDENTITY = ("tray", "slot", "serial", "gpu_serial", "module_id", "uuid", "gpu_uuid", "chassis_serial", "pci_bus_id")
"""Optional /ranks columns shown where a file has them (issue 16's GPU identity, issue 20's topology)."""
IDENTITY_WORDS = {"gpu_serial": "GPU serial", "gpu_uuid": "GPU UUID", "pci_bus_id": "bus id", "module_id": "module",
                  "uuid": "UUID"}
"""How the hover text and the first culprit name an identity column (the others: its name in words)."""
MPI_WORDS = "time in MPI calls"
"""How the selector names a rank's time inside calls through the call path, waiting for the
others included: in a collective the rank that waits least is the one the others wait for.
Short: the selector is as wide as its longest option, and must fit a narrow window."""
NO_MPI_TIME = ("this results file records no per-rank time in MPI calls (written before schema 1.5): "
               "the map cannot be coloured by it")
HEALTH_CHECKS = ("health", "health_end")
"""Checks whose failures are health warnings on the map rather than failures."""


@dataclass(frozen=True)
class Rank:
    """One row of /ranks, with whatever identity the file holds."""

    rank: int
    host: str
    local_rank: int
    device: str
    coords: str
    identity: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """Return "rank 2 (tp=0,pp=1,dp=0) host vm, local device 2 (cpu), tray 3 slot 1, serial X"."""
        ident = ", ".join(f"{IDENTITY_WORDS.get(k, k.replace('_', ' '))} {v}" for k, v in self.identity.items())
        return (f"rank {self.rank} ({self.coords}) host {self.host}, local device {self.local_rank} "
                f"({self.device})" + (f", {ident}" if ident else ""))


def ranks_of(run: RunResults) -> list[Rank]:
    """Return the ranks of `run` from its /ranks table, reading optional columns defensively."""
    names = run.ranks.dtype.names or ()
    axes = [str(a) for a in run.attrs.get("mesh_axes", [])]
    out = []
    for index, row in enumerate(run.ranks):
        coords = [int(c) for c in np.atleast_1d(row["coords"])] if "coords" in names else []
        where = ",".join(f"{a}={c}" for a, c in zip(axes, coords)) if len(axes) == len(coords) else \
            ",".join(map(str, coords))
        identity = {}
        for key in IDENTITY:
            if key in names:
                value = text(row[key]).strip()
                if value and value not in ("-1", "nan", "None"):
                    identity[key] = value
        out.append(Rank(
            rank=int(row["rank"]) if "rank" in names else index,
            host=text(row["host"]) if "host" in names else "?",
            local_rank=int(row["local_rank"]) if "local_rank" in names else index,
            device=text(row["device"]) if "device" in names else "?",
            coords=where, identity=identity))
    return out


_RANK = re.compile(r"^rank (\d+)$")
_LINK = re.compile(r"^(?:link (\d+) -> (\d+)|pair (\d+)-(\d+))$")
_LOST = re.compile(r"^rank (?P<rank>\d+) of (?P<size>\d+)")


def culprit_ranks(culprit: str) -> list[int]:
    """Return the world ranks a culprit names (`rank N`, `link A -> B`, `pair A-B`; none for `global`)."""
    culprit = culprit.strip()
    if (m := _RANK.match(culprit)) is not None:
        return [int(m.group(1))]
    if (m := _LINK.match(culprit)) is not None:
        return [int(g) for g in m.groups() if g is not None]
    return []


def lost_world_ranks(run: RunResults, ranks: list[Rank]) -> dict[int, str]:
    """Return {world rank: the lost_ranks entry} for every rank the run lost.

    Entries ("rank 1 of 71: host ...") number a rank as it was when lost, in the world shrunk by
    every earlier loss; ranks that were lost together share the world size. Survivors keep their
    order when a world shrinks, so replaying the losses in order gives each one's world rank.
    (Host and local rank do not identify it: both are renumbered after a shrink.)
    """
    alive = [r.rank for r in ranks]
    lost: dict[int, str] = {}
    batch: list[tuple[int, str]] = []
    size = len(alive)

    def settle() -> None:
        nonlocal alive
        gone = {alive[i]: entry for i, entry in batch if i < len(alive)}
        lost.update(gone)
        alive = [r for r in alive if r not in gone]
        batch.clear()

    for entry in run.attrs.get("lost_ranks", []) or []:
        m = _LOST.match(str(entry))
        if m is None:
            continue
        if int(m["size"]) != size:
            settle()
            size = int(m["size"])
        if size != len(alive):  # an unexpected numbering: show nothing rather than the wrong rank
            return lost
        batch.append((int(m["rank"]), str(entry)))
    settle()
    return lost


def states(run: RunResults, ranks: list[Rank], *,
           increases: dict[str, np.ndarray] | None = None) -> tuple[dict[int, str], dict[int, list[str]]]:
    """Return each rank's state (see STATES) and the reasons behind it, check by check.

    A check that failed its sanity, or raised, fails the ranks it names; one that failed on
    performance alone makes them slow; a health check's failures are health warnings, and so is
    a GPU whose error counts grew during the run (the /health tables).
    """
    known = {r.rank for r in ranks}
    reasons: dict[int, list[str]] = {r: [] for r in known}
    level: dict[int, int] = {r: STATES.index("fine") for r in known}

    def mark(rank: int, state: str, why: str) -> None:
        if rank in known:
            level[rank] = min(level[rank], STATES.index(state))
            reasons[rank].append(why)

    for check in run.checks.values():
        if check.status not in ("failed", "error"):
            continue
        named = set(int(r) for r in np.atleast_1d(check.attrs.get("failing_ranks", [])) if int(r) >= 0)
        for culprit in check.attrs.get("culprits", []) or []:
            named.update(culprit_ranks(str(culprit)))
        if check.name in HEALTH_CHECKS:
            state = "health"
        elif check.status == "failed" and check.attrs.get("sanity") == "passed" \
                and check.attrs.get("performance") == "failed":
            state = "slow"
        else:
            state = "failed"
        for rank in sorted(named):
            mark(rank, state, f"{check.name}: {check.status} ({check.headline[:120]})")
    # A GPU whose error counts grew is a health warning even where no rule failed it (correctable
    # ECC errors, a few CRC errors below the rate): the technician sees it before it fails.
    index_to_rank = [r.rank for r in ranks]
    for counter, values in (counter_increases(run) if increases is None else increases).items():
        if counter.endswith("_ns"):  # throttled time, not an error
            continue
        for index in np.flatnonzero(np.nan_to_num(values) > 0):
            mark(index_to_rank[index], "health", f"GPU counters: {BY_NAME[counter].what} +{values[index]:g} during the run")
    for rank, entry in lost_world_ranks(run, ranks).items():
        mark(rank, "lost", f"lost: {entry}")
    return {r: STATES[level[r]] for r in known}, reasons


def rank_metrics(run: RunResults, ranks: list[Rank], *,
                 increases: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, Any]]:
    """Return the per-rank figures the map can be coloured by, for whichever the file holds:
    the links check's median bandwidth out of and into each rank, the GPU health counters'
    increases over the run (/health tables: every error count together, and each counter that
    grew anywhere), each rank's time inside calls through the call path (the checks' `calls`
    tables, schema 1.5: all checks together and each check), and every numeric column of another
    check table that has a `rank` column (summed per rank)."""
    n = len(ranks)
    metrics: dict[str, dict[str, Any]] = {}

    def add(key: str, label: str, unit: str, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)]
        if len(values) != n or not len(finite):
            return
        metrics[key] = {"label": label, "unit": unit, "min": float(finite.min()), "max": float(finite.max()),
                        "values": [float(v) if math.isfinite(v) else None for v in values]}

    links = run.checks.get("links")
    if links is not None and "unidirectional" in links.datasets and links.datasets["unidirectional"].shape == (n, n):
        matrix = np.where(links.datasets["unidirectional"] > 0, links.datasets["unidirectional"], np.nan)
        with np.errstate(all="ignore"):
            out_bw = np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in matrix])
            in_bw = np.array([np.nanmedian(col) if np.isfinite(col).any() else np.nan for col in matrix.T])
        add("links-out", "links: median one-way busbw sent", "GB/s", out_bw)
        add("links-in", "links: median one-way busbw received", "GB/s", in_bw)
    increases = counter_increases(run) if increases is None else increases
    if increases:
        # Throttled nanoseconds are time, not events: they would swamp an error count.
        events = [v for c, v in increases.items() if not c.endswith("_ns")]
        if events:
            with np.errstate(all="ignore"):
                stacked = np.vstack(events)
                total = np.where(np.isfinite(stacked).any(axis=0), np.nansum(stacked, axis=0), np.nan)
            add("health-all", "GPU health: error counter increases, all counters", "", total)
        for counter, values in increases.items():
            if np.nanmax(values) > 0:
                add(f"health-{counter}", f"GPU health: {BY_NAME[counter].what} (increase)", "", values)
    inside = mpi_seconds(run)
    if inside:
        with np.errstate(all="ignore"):
            stacked = np.vstack(list(inside.values()))
            total = np.where(np.isfinite(stacked).any(axis=0), np.nansum(stacked, axis=0), np.nan)
        add("mpi-total", f"{MPI_WORDS}: all checks", "s", total)
        for name, values in inside.items():
            add(f"mpi-{name}", f"{MPI_WORDS}: {name}", "s", values)
    for check in run.checks.values():
        for key, data in check.datasets.items():
            names = data.dtype.names or ()
            if key == CALLS or "rank" not in names or data.ndim != 1:
                continue
            index = np.asarray(data["rank"], dtype=np.int64)
            if not len(index) or index.min() < 0 or index.max() >= n:
                continue
            for column in names:
                if column == "rank" or not np.issubdtype(data.dtype[column], np.number) or data.dtype[column].shape:
                    continue
                values = np.zeros(n)
                np.add.at(values, index, np.asarray(data[column], dtype=float))
                seen = np.zeros(n, dtype=bool)
                seen[index] = True
                add(f"{check.name}-{key}-{column}", f"{check.name} {key}: {column}", "", np.where(seen, values, np.nan))
    return metrics


def _host_order(ranks: list[Rank]) -> list[tuple[str, list[Rank]]]:
    """Group ranks by host, hosts in order of their tray (when known) then first rank, each
    host's ranks by local device."""
    hosts: dict[str, list[Rank]] = {}
    for r in ranks:
        hosts.setdefault(r.host, []).append(r)

    def tray(members: list[Rank]) -> tuple[float, int]:
        value = members[0].identity.get("tray", "")
        return (float(value) if value.lstrip("-").isdigit() else math.inf, min(m.rank for m in members))

    return [(h, sorted(m, key=lambda r: (r.local_rank, r.rank))) for h, m in sorted(hosts.items(), key=lambda kv: tray(kv[1]))]


def rack_map(run: RunResults) -> str:
    """Return the rack map section: a legend, the colour selector, and one cell per rank."""
    ranks = ranks_of(run)
    increases = counter_increases(run)  # read once: the states and the selector both use it
    state, reasons = states(run, ranks, increases=increases)
    metrics = rank_metrics(run, ranks, increases=increases)
    blocks = []
    for host, members in _host_order(ranks):
        trays = {m.identity.get("tray") for m in members} - {None}
        label = host + (f" (tray {', '.join(sorted(trays))})" if trays else "") + f": {len(members)} ranks"
        cells = []
        for r in members:
            s = state[r.rank]
            title = f"{r.describe()}\nstate: {STATE_TEXT[s]}" + "".join(f"\n- {w}" for w in reasons[r.rank])
            cells.append(f'<div class="cell state-{s}" data-rank="{r.rank}" data-state="{s}" title="{esc(title)}" '
                         f'role="img" aria-label="{esc(f"rank {r.rank}: {STATE_TEXT[s]}")}">'
                         f'{STATE_MARK[s]} {r.rank}<span class="v"></span></div>')
        blocks.append(f'<div class="host"><h4>{esc(label)}</h4><div class="cells">{"".join(cells)}</div></div>')
    counts = {s: sum(1 for v in state.values() if v == s) for s in STATES}
    legend = "".join(f'<span><span class="cell state-{s}">{STATE_MARK[s]}</span> {esc(STATE_TEXT[s])} '
                     f"({counts[s]})</span>" for s in STATES)
    options = '<option value="status">status</option>' + "".join(
        f'<option value="{esc(k)}">{esc(m["label"])}</option>' for k, m in metrics.items())
    # Said, not just left out: an older file cannot offer the time in MPI calls.
    missing = "" if "mpi-total" in metrics else f'<p class="note" id="no-mpi-time">{esc(NO_MPI_TIME)}</p>'
    hosts = len({r.host for r in ranks})
    devices = max((sum(1 for r in ranks if r.host == h) for h in {r.host for r in ranks}), default=0)
    # Emulated hosts are not a rack's: say so wherever hosts are named (issue 20).
    topology = f" ({text(run.attrs['topology'])})" if run.attrs.get("topology") else ""
    return (f'<section id="rack"><h2>Rack map</h2>'
            f'<p class="note">{len(ranks)} ranks on {hosts} host(s){esc(topology)}, up to {devices} devices each; '
            "one cell per "
            "rank, by host and local device. Hover a cell for its rank, mesh coordinate, host, device and "
            "identity, and why it is marked." + (
                " Time in MPI calls includes waiting for the other ranks: in a collective the rank the "
                "others wait for shows the least." if "mpi-total" in metrics else "") + "</p>"
            f'<p class="legend">{legend}</p>'
            f'<p><label for="rack-colour">Colour by: </label><select id="rack-colour">{options}</select> '
            f'<span id="rack-scale" class="note"></span></p>{missing}'
            f'<div class="rack" id="rack-map">{"".join(blocks)}</div>'
            f'{json_script("rack-metrics", metrics)}</section>')

"""Check `links`: a point-to-point matrix of rank pairs, one way and both ways, in concurrent
rounds; slow links named by rank, host and device."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from ...fabric.sweep import transport_label
from ...fabric.p2p import Buffers, exchange_window, partner, receive_window, rounds, send_window
from ...results import table
from ...runtime.topology import hosts_phrase
from .. import transports
from ..context import CheckContext
from ...util.text import human_bytes
from ..progress import Progress
from ..registry import SelfTest, register
from ..verdict import Culprit, Reference

PLANTED_DELAY_MS = 20.0
PLANTED_STRETCH = 20.0
"""The self-test's slow rank starts every call PLANTED_STRETCH x the clean run's typical call late
(at least PLANTED_DELAY_MS): far beyond the noise, wherever a window already takes 15 ms of CPU
scheduling (72 oversubscribed ranks) or 0.2 ms (a rack); its links and pairs then run at about
1/21 of the median, under the oversubscribed floor of 0.12 (context.NOISE_FLOORS) with room."""


def planted_delay_ms(clean: dict | None, key: str) -> float:
    """The delay to plant, from the clean run's typical call time in ms (`clean[key]`)."""
    typical = float(clean.get(key, 0.0)) if clean else 0.0
    return max(PLANTED_DELAY_MS, PLANTED_STRETCH * typical)


PLANTED_PEERS = 8
"""The planted run tests this many peers per rank: every window of the slow rank is late, and a
few rounds name it as surely as all of them."""
WINDOW = 4
"""Messages in flight per measurement (osu_bw uses 64 of small ones; we use few large ones)."""
REPEATS = 2
"""Each link is measured this often and keeps its best, so one scheduling hiccup is not a slow link."""
SAMPLED_ABOVE = 128
"""With more ranks than this, each rank is tested against 16 peers unless --link-peers says otherwise."""


def pair_buffers(ctx: CheckContext) -> Buffers:
    """The messages of the point-to-point checks (links, bisection): WINDOW in flight per peer,
    each 64 MiB on real hardware, 256 KiB when oversubscribed, 64 KiB with --quick."""
    count = ctx.sized(full=1 << 24, small=1 << 16, quick=1 << 14)
    return Buffers.make(ctx.runtime, ctx.mesh.comm.rank, count, WINDOW)


def _measure_round(ctx: CheckContext, buffers: Buffers, peer: int | None, *,
                   transport: str = "mpi") -> tuple[float, float, int]:
    """Return (GB/s of my sends to peer, GB/s both ways at once, wrong elements received) over
    `transport`.

    The peer measures its own sends to me; each rank fills its row of the matrix.
    """
    (_, group), rt = ctx.mesh.group(None, transport=transport), ctx.runtime
    comm, me = group.comm, group.rank
    if peer is None:
        comm.Barrier()
        return 0.0, 0.0, 0
    size = buffers.nbytes * WINDOW
    wrong, best_out, best_both = 0, np.inf, np.inf
    comm.Barrier()
    for _ in range(REPEATS):
        for sender in sorted((me, peer)):
            if sender == me:
                best_out = min(best_out, send_window(group, rt, buffers, peer))
            else:
                wrong += receive_window(group, rt, buffers, peer)
        seconds, bad = exchange_window(group, rt, buffers, peer)
        best_both = min(best_both, seconds)
        wrong += bad
    return size / best_out / 1e9, 2 * size / best_both / 1e9, wrong


def slow_links(matrix: np.ndarray, fraction: float) -> tuple[float, list[tuple[int, int, float]]]:
    """Return (median of measured links, links below fraction x median as (src, dst, GB/s))."""
    measured = matrix[matrix > 0]
    if measured.size == 0:
        return 0.0, []
    median = float(np.median(measured))
    src, dst = np.nonzero((matrix > 0) & (matrix < fraction * median))
    return median, [(int(a), int(b), float(matrix[a, b])) for a, b in zip(src, dst)]


def common_end(links: list[tuple[int, int, float]]) -> tuple[int, int] | None:
    """Return (rank, count) when one rank is an end of at least half the slow links."""
    if not links:
        return None
    ends = Counter(r for a, b, _ in links for r in (a, b))
    rank, count = ends.most_common(1)[0]
    return (rank, count) if count >= 2 and count * 2 >= len(links) else None


def host_summary(matrix: np.ndarray, hosts: list[str], slow: list[tuple[int, int, float]]
                 ) -> tuple[list[dict], np.ndarray]:
    """Return (one row per host, the [src host, dst host] median of measured links, 0 where none).

    Hosts are in order of their first rank; a row gives the host's ranks, the median of its
    links inside the host and of those leaving and entering it, its slowest link and how many
    slow links touch it: where a tray's NVLink or its uplink is weak, its row says so."""
    names = list(dict.fromkeys(hosts))
    on = [np.array([h == name for h in hosts]) for name in names]

    def links(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        block = matrix[np.ix_(src, dst)]
        return block[block > 0]

    blocks = np.array([[_median(links(a, b)) for b in on] for a in on])
    rows = []
    for host, mine in zip(names, on):
        ranks = np.flatnonzero(mine)
        touching = np.concatenate([links(mine, np.ones_like(mine)), links(~mine, mine)])
        rows.append({"host": host, "ranks": int(ranks.size), "first_rank": int(ranks[0]), "last_rank": int(ranks[-1]),
                     "within_GBps": _median(links(mine, mine)), "out_GBps": _median(links(mine, ~mine)),
                     "in_GBps": _median(links(~mine, mine)),
                     "slowest_GBps": float(touching.min()) if touching.size else 0.0,
                     "slow_links": sum(1 for a, b, _ in slow if mine[a] or mine[b])})
    return rows, blocks


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else 0.0


def judge_links(ctx: CheckContext, matrix: np.ndarray, median: float, slow: list[tuple[int, int, float]],
                culprit: tuple[int, int] | None, *, fraction: float, source: str) -> None:
    """Judge the slowest link against `fraction` x this run's median (on every rank, from the
    gathered matrix). The culprit is the rank at the end of most slow links when there is one,
    else each slow link."""
    mesh = ctx.mesh
    reference = Reference("slowest link", "GB/s", f"{source} x this run's median link {median:.4g} GB/s",
                          target=median, lower=fraction * median)
    world = mesh.world_rank
    blamed = ([Culprit.rank(world(culprit[0]))] if culprit
              else [Culprit.link(world(a), world(b)) for a, b, _ in slow])
    shown = "; ".join(f"{a} -> {b} {bw:.3g} GB/s" for a, b, bw in slow[:8]) + (" ..." if len(slow) > 8 else "")
    where = (f"; {mesh.describe(culprit[0])} is an end of {culprit[1]} of them" if culprit
             else "; no rank is an end of most of them")
    ctx.judge(reference, float(matrix[matrix > 0].min()), culprit=blamed,
              message=f"{len(slow)} links below {fraction:g} x the median {median:.4g} GB/s: {shown}{where}")


def planted_slow_rank(n: int) -> int:
    """The self-test's slow rank: inside the job and inside its host, neither the first nor the
    last rank of either (rank 37 of 72, local rank 1 of emul-n10 under an emulated 18x4), so
    that naming its host tests where host blocks begin and end."""
    return min(n - 1, n // 2 + 1)


@register("links", help="point-to-point GB/s of every rank pair, one way and both ways; slow links named",
          selftests=(SelfTest("one slow rank",
                              lambda rt, o, clean: {"delay_ms": planted_delay_ms(clean, "window_ms"),
                                                    "ranks": [planted_slow_rank(rt.size)]},
                              lambda n: Culprit.rank(planted_slow_rank(n)),
                              scope=lambda o, n: replace(o, link_peers=min(o.link_peers or n - 1, PLANTED_PEERS))),))
def check_links(ctx: CheckContext) -> None:
    """With --transport both each round runs over MPI and over NCCL (grouped sends and receives),
    one after the other: the MPI matrices keep their names, NCCL's carry `_nccl`, the `transports`
    table has a row per transport, and the judged transport is NCCL's (MPI's when alone)."""
    mesh = ctx.mesh
    comm = mesh.comm
    n, me = comm.size, comm.rank
    if n < 2:
        ctx.skip("one rank has no links to test")
    buffers = pair_buffers(ctx)
    schedule = rounds(n)
    peers = ctx.options.link_peers or (n - 1 if n <= SAMPLED_ABOVE else 16)
    schedule = schedule[:peers]
    chosen = transports.chosen(ctx.options)
    labels = {t: transport_label(mesh.group(None, transport=t)[1]) for t in chosen}
    uni = {t: np.zeros(n) for t in chosen}
    both = {t: np.zeros(n) for t in chosen}
    progress = Progress("links", len(schedule) * len(chosen), enabled=ctx.is_root)
    wrong: dict[tuple[int, str], int] = {}
    for number, pairs in enumerate(schedule):
        peer = partner(pairs, me)
        for t in chosen:
            out, bi, bad = _measure_round(ctx, buffers, peer, transport=t)
            if peer is not None:
                uni[t][peer], both[t][peer] = out, bi
                if bad:
                    wrong[(peer, labels[t])] = bad
            progress.step(f"round {number + 1}" + (f" over {labels[t]}" if len(chosen) > 1 else ""))
    progress.close()
    if wrong:
        over = sorted({label for _, label in wrong})
        ctx.fail(f"{sum(wrong.values())} wrong elements received over point-to-point links from ranks "
                 f"{sorted({p for p, _ in wrong})} (over {', '.join(over)})",
                 culprit=[Culprit.link(mesh.world_rank(p), mesh.world_rank(me)) for p in sorted({p for p, _ in wrong})])
    fraction, source = ctx.relative("--slow-link-fraction", ctx.options.slow_link_fraction)
    judged = ctx.judge_timing
    medians: dict[str, tuple[float, float]] = {}
    figures: dict[str, tuple[float, list[tuple[int, int, float]], tuple[int, int] | None]] = {}
    matrices: dict[str, np.ndarray] = {}
    for t in chosen:
        suffix = "" if t == "mpi" else f"_{t}"
        uni_matrix = np.empty((n, n))
        comm.Allgather(uni[t], uni_matrix)
        both_matrix = np.empty((n, n))
        comm.Allgather(both[t], both_matrix)
        median, slow = slow_links(uni_matrix, fraction)
        culprit = common_end(slow)
        figures[t] = (median, slow, culprit)
        matrices[t] = uni_matrix
        measured_both = both_matrix[both_matrix > 0]
        medians[t] = (median, float(np.median(measured_both)) if measured_both.size else 0.0)
        if t == chosen[-1]:
            if judged and median > 0:
                judge_links(ctx, uni_matrix, median, slow, culprit, fraction=fraction, source=source)
            elif not judged:
                ctx.skip_judging(ctx.timing_not_judged)
            tested = int((uni_matrix > 0).sum())
        over_text = "" if t == "mpi" else f" over {labels[t]}"
        ctx.save("unidirectional" + suffix, uni_matrix, unit="GB/s", transport=labels[t],
                 description=f"[src, dst]: src sending to dst alone{over_text}, 0 where not measured")
        ctx.save("bidirectional" + suffix, both_matrix, unit="GB/s", transport=labels[t],
                 description=f"[a, b]: both directions at once, summed{over_text}")
        ctx.save("slow_links" + suffix, table([{"src": a, "dst": b, "GBps": bw} for a, b, bw in slow]
                                              or [{"src": -1, "dst": -1, "GBps": 0.0}]),
                 transport=labels[t], description="links below the slow fraction of the median (a single -1 row "
                 f"when none){over_text}")
    median, slow, culprit = figures[chosen[-1]]
    uni_matrix = matrices[chosen[-1]]
    hosts = [p.host for p in mesh.placements]
    per_host, host_matrix = host_summary(uni_matrix, hosts, slow)
    over_judged = "" if chosen[-1] == "mpi" else f", over {labels[chosen[-1]]}"
    ctx.save("hosts", table(per_host), unit="GB/s", description="one row per host: its ranks, the median one-way "
             "link inside it, out of it and into it, its slowest link and the slow links touching it (0 where none)"
             + over_judged)
    ctx.save("host_matrix", host_matrix, unit="GB/s", description="[src host, dst host]: median one-way link, "
             "hosts in the order of the hosts table, 0 where not measured" + over_judged)
    if len(chosen) > 1:
        ctx.save("transports", table([{"transport": labels[t], "median_GBps": medians[t][0],
                                       "median_both_GBps": medians[t][1], "slow_links": len(figures[t][1])}
                                      for t in chosen]), description="each transport's median link, side by side")
    ctx.attrs.update(median_GBps=median, slow_fraction=fraction, message_bytes=buffers.nbytes,
                     window_ms=buffers.nbytes * WINDOW / (median * 1e9) * 1e3 if median > 0 else 0.0,
                     window=WINDOW, rounds=len(schedule), judged=judged, peers=peers, loop=buffers.loop,
                     buffers=ctx.runtime.staging.path, transports=",".join(labels[t] for t in chosen), judged_transport=labels[chosen[-1]],
                     transport_note=ctx.options.transport_note)
    blame = f"; {mesh.describe(culprit[0])} is an end of {culprit[1]} of them" if culprit else ""
    note = "" if judged else f" (not judged: {ctx.timing_not_judged})"
    across = ""
    if len(per_host) > 1:
        inside = [r["within_GBps"] for r in per_host if r["within_GBps"] > 0]
        cross = np.array(hosts)[:, None] != np.array(hosts)[None, :]
        across = (f"; {hosts_phrase(mesh.placements)}: median {_median(np.array(inside)):.2f} GB/s inside a host, "
                  f"{_median(uni_matrix[cross & (uni_matrix > 0)]):.2f} GB/s between hosts")
    if len(chosen) > 1:
        shown = ", ".join(f"{labels[t].upper().replace('(EMULATED)', '(emulated)')} {medians[t][0]:.2f} one way / "
                          f"{medians[t][1]:.2f} both ways" for t in reversed(chosen))
        figures_text = f"median GB/s side by side: {shown}"
    else:
        over_text = "" if chosen[0] == "mpi" else f" over {labels[chosen[0]]}"
        figures_text = (f"median {median:.2f} GB/s one way, {medians[chosen[0]][1]:.2f} GB/s both ways{over_text}")
    emulated = any("emulated" in label for label in labels.values())
    notes = "".join(f"; {x}" for x in (
        "emulated NCCL is MPI under NCCL's calling conventions, not a measurement of NCCL" if emulated else "",
        ctx.options.transport_note) if x)
    ctx.headline = (f"{tested} links at {human_bytes(buffers.nbytes)} x {WINDOW}: {figures_text}; "
                    f"{len(slow)} below {fraction:g} x median{across}{note}{blame}{notes}")

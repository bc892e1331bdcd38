"""Check `mesh`: Cartesian layout, axis groups, coordinate round-trip, per-group all-reduce, placement."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import numpy as np

from ...comm import hooks
from ...runtime.topology import hosts_phrase
from ...util.text import shape_str
from ...dist.mesh import Mesh
from ...results import table
from ..context import CheckContext
from ..registry import SelfTest, register
from ..verdict import Culprit


def axis_groups(mesh: Mesh) -> list[tuple[str, ...]]:
    """Return every non-empty group of mesh axes, single axes first, in mesh order."""
    return [g for n in range(1, mesh.ndim + 1) for g in combinations(mesh.axes, n)]


def _check_cartesian(ctx: CheckContext) -> None:
    mesh = ctx.mesh
    cart = mesh.comm
    dims, _, coords = cart.Get_topo()
    if hooks.planted("mesh.coordinate"):
        coords[0] = (coords[0] + 1) % dims[0]
    if tuple(dims) != mesh.shape:
        ctx.fail(f"MPI's Cartesian dims are {tuple(dims)}, the mesh shape is {mesh.shape}")
    if tuple(coords) != mesh.coords:
        ctx.fail(f"MPI places this rank at {tuple(coords)}, the mesh at {mesh.coords}")
    for r in range(mesh.size):
        c = mesh.coords_of(r)
        if mesh.rank_of(c) != r or cart.Get_cart_rank(list(c)) != r or tuple(cart.Get_coords(r)) != c:
            ctx.fail(f"coordinate round-trip broken for mesh rank {r} at {c}")
            break


def _check_groups(ctx: CheckContext) -> list[dict]:
    mesh, rt = ctx.mesh, ctx.runtime
    xp = rt.backend.xp
    rows = []
    for axes in axis_groups(mesh):
        _, group = mesh.group(axes)
        comm = group.comm
        name = ",".join(axes)
        expected = math.prod(mesh.axis_size(a) for a in axes)
        members = tuple(comm.allgather(mesh.rank))
        if comm.size != expected:
            ctx.fail(f"group ({name}) has {comm.size} ranks, expected {expected}")
        if members != mesh.group_ranks(axes, mesh.rank):
            ctx.fail(f"group ({name}) holds mesh ranks {members}, expected {mesh.group_ranks(axes, mesh.rank)}")
        ones = xp.ones(1, dtype=np.float64)
        total = xp.zeros(1, dtype=np.float64)
        with group.call(f"all-reduce of ones over ({name})") as call:
            call.all_reduce(ones, total)
        value = float(rt.backend.to_host(total)[0])
        if value != expected:
            ctx.fail(f"all-reduce of ones over ({name}) gave {value:g}, expected {expected}")
        rows.append({"axes": name, "size": comm.size, "expected_size": expected, "allreduce_sum": value})
    return rows


def _check_placement(ctx: CheckContext) -> tuple[list[dict], int]:
    """Check this rank's host table; return per-host rows and how many devices are shared."""
    mesh = ctx.mesh
    by_host: dict[str, list[int]] = {}
    for r, p in enumerate(mesh.placements):
        by_host.setdefault(p.host, []).append(r)
    mine = mesh.placements[mesh.rank]
    local = sorted(mesh.placements[r].local_rank for r in by_host[mine.host])
    if local != list(range(len(by_host[mine.host]))) or mine.local_size != len(local):
        ctx.fail(f"host {mine.host} has local ranks {local} and local size {mine.local_size}; "
                 f"expected 0-{len(local) - 1} once each")
    rows, shared = [], 0
    for host, ranks in by_host.items():
        devices = Counter(mesh.placements[r].device for r in ranks)
        shared += sum(n for d, n in devices.items() if n > 1 and d != "cpu")
        rows.append({"host": host, "ranks": len(ranks), "devices": len(devices),
                     "first_rank": ranks[0], "last_rank": ranks[-1]})
    return rows, shared


@register("mesh", help="mesh layout, axis groups, coordinate round-trip, all-reduce per group, placement",
          selftests=(SelfTest("a rank with a wrong coordinate",
                              lambda rt, o, clean: {"plant": "mesh.coordinate", "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1)),))
def check_mesh(ctx: CheckContext) -> None:
    _check_cartesian(ctx)
    groups = _check_groups(ctx)
    hosts, shared = _check_placement(ctx)
    ctx.save("groups", table(groups), description="one row per group of mesh axes, as rank 0 saw it")
    ctx.save("hosts", table(hosts), description="ranks and distinct devices per host")
    mesh = ctx.mesh
    note = f", {shared} ranks share a device" if shared else ""
    ctx.headline = (f"{shape_str(mesh.shape)} ({','.join(mesh.axes)}): {len(groups)} axis groups "
                    f"verified on {hosts_phrase(mesh.placements)}{note}")

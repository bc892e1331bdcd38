"""The collective audit behind `DistTensor.sharding_valid`: tiling, replicas, shapes, content."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..util.text import rank_ranges
from .layout import volume
from .fill import fill_pattern

if TYPE_CHECKING:
    from .dtensor import DistTensor

Box = tuple[tuple[int, int], ...]
MAX_LISTED = 5
"""How many offending pairs or ranks a problem's detail spells out."""


@dataclass(frozen=True)
class ShardProblem:
    """One broken rule, the mesh ranks that break it, and how."""

    rule: str
    """metadata, box, local-shape, tiling, replicas or content."""
    ranks: tuple[int, ...]
    detail: str
    decided: bool = True
    """False when the ranks are only suspects: replicas that disagree with no majority."""

    def __str__(self) -> str:
        return f"[{self.rule}] ranks {rank_ranges(self.ranks)}: {self.detail}"


@dataclass(frozen=True)
class ShardingReport:
    """The outcome of a sharding audit; identical on every rank of the mesh."""

    ok: bool
    problems: tuple[ShardProblem, ...]
    shards: int
    """Distinct blocks in one copy of the tensor."""
    copies: int
    """How many copies of the whole tensor the mesh holds (replica groups)."""
    ranks: int

    def __str__(self) -> str:
        head = (
            f"sharding {'valid' if self.ok else 'INVALID'}: {self.shards} shards x "
            f"{self.copies} copies over {self.ranks} ranks"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class _Record(NamedTuple):
    meta: tuple
    box: Box
    local_shape: tuple[int, ...]
    digest: bytes
    wrong: int
    """Elements that differ from the pattern, or -1 when the tensor holds user data."""


def _local_record(t: DistTensor) -> _Record:
    backend = t.mesh.runtime.backend
    host = np.ascontiguousarray(backend.to_host(t.local))
    digest = hashlib.sha256(host.tobytes()).digest()
    wrong = -1
    if t.patterned:
        expected = fill_pattern(backend.xp, t.box, t.global_shape, t.dtype)
        same_shape = tuple(t.local.shape) == tuple(expected.shape)
        wrong = int((t.local != expected).sum()) if same_shape else max(1, int(t.local.size))
    meta = (t.global_shape, t.dtype.str, str(t.layout))
    return _Record(meta, t.box, tuple(t.local_shape), digest, wrong)


def _fmt_box(box: Box) -> str:
    return "[" + ", ".join(f"{a}:{b}" for a, b in box) + "]"


def _overlaps(boxes: np.ndarray) -> list[tuple[int, int]]:
    """Return index pairs (i < j) of boxes that share an element; `boxes` is (n, ndim, 2)."""
    lo = np.maximum(boxes[:, None, :, 0], boxes[None, :, :, 0])
    hi = np.minimum(boxes[:, None, :, 1], boxes[None, :, :, 1])
    share = (lo < hi).all(axis=2)
    i, j = np.nonzero(np.triu(share, k=1))
    return list(zip(i.tolist(), j.tolist()))


def _check_boxes(t: DistTensor, records: Sequence[_Record]) -> list[ShardProblem]:
    mesh, placed = t.mesh, t.placed
    problems: list[ShardProblem] = []
    wrong_box, wrong_shape, outside = [], [], []
    for r, rec in enumerate(records):
        expected = placed.box(mesh.coords_of(r))
        if rec.box != expected:
            wrong_box.append((r, rec.box, expected))
        if rec.local_shape != tuple(b - a for a, b in expected):
            wrong_shape.append((r, rec.local_shape, expected))
        if any(not 0 <= a <= b <= n for (a, b), n in zip(rec.box, t.global_shape)) or len(
            rec.box
        ) != len(t.global_shape):
            outside.append(r)
    if wrong_box:
        shown = "; ".join(f"rank {r} holds {_fmt_box(b)}, the layout says {_fmt_box(e)}"
                          for r, b, e in wrong_box[:MAX_LISTED])
        problems.append(ShardProblem("box", tuple(r for r, _, _ in wrong_box), shown))
    if wrong_shape:
        shown = "; ".join(f"rank {r} has local shape {s}, the layout says {tuple(b - a for a, b in e)}"
                          for r, s, e in wrong_shape[:MAX_LISTED])
        problems.append(ShardProblem("local-shape", tuple(r for r, _, _ in wrong_shape), shown))
    if outside:
        problems.append(ShardProblem(
            "tiling", tuple(outside), f"blocks reach outside the global shape {t.global_shape}"))
        return problems
    groups: dict[tuple[int, ...], list[int]] = {}
    for r in range(len(records)):
        groups.setdefault(placed.replica_key(mesh.coords_of(r)), []).append(r)
    total = volume(tuple((0, n) for n in t.global_shape))
    for key, ranks in groups.items():
        where = ",".join(f"{mesh.axes[a]}={c}" for a, c in zip(placed.replica_axes, key)) or "the mesh"
        nonempty = [r for r in ranks if volume(records[r].box) > 0]
        boxes = np.array([records[r].box for r in nonempty], dtype=np.int64)
        pairs = _overlaps(boxes.reshape(len(nonempty), t.ndim, 2))
        if pairs:
            shown = "; ".join(f"ranks {nonempty[i]} and {nonempty[j]} both hold part of "
                              f"{_fmt_box(records[nonempty[i]].box)}" for i, j in pairs[:MAX_LISTED])
            involved = sorted({nonempty[k] for pair in pairs for k in pair})
            problems.append(ShardProblem("tiling", tuple(involved), f"overlap in copy {where}: {shown}"))
        covered = sum(volume(records[r].box) for r in ranks)
        if not pairs and covered != total:
            problems.append(ShardProblem(
                "tiling", tuple(ranks),
                f"copy {where} holds {covered} of the tensor's {total} elements; "
                f"{total - covered} are held by no rank"))
    return problems


def _check_replicas(records: Sequence[_Record]) -> list[ShardProblem]:
    by_box: dict[Box, list[int]] = {}
    for r, rec in enumerate(records):
        by_box.setdefault(rec.box, []).append(r)
    problems = []
    for box, ranks in by_box.items():
        digests: dict[bytes, list[int]] = {}
        for r in ranks:
            digests.setdefault(records[r].digest, []).append(r)
        if len(digests) < 2:
            continue
        majority = max(digests.values(), key=len)
        if 2 * len(majority) > len(ranks):
            odd = sorted(r for rs in digests.values() if rs is not majority for r in rs)
            detail = (f"block {_fmt_box(box)} differs from the copy held by the majority, "
                      f"ranks {rank_ranges(majority)}")
        else:
            odd = sorted(ranks)
            detail = (f"block {_fmt_box(box)} exists in {len(digests)} different versions "
                      f"among its replicas (no majority): "
                      + "; ".join(f"ranks {rank_ranges(rs)}" for rs in digests.values()))
        problems.append(ShardProblem("replicas", tuple(odd), detail, decided=2 * len(majority) > len(ranks)))
    return problems


def _check_content(records: Sequence[_Record]) -> list[ShardProblem]:
    bad = [(r, rec.wrong, volume(rec.box)) for r, rec in enumerate(records) if rec.wrong > 0]
    if not bad:
        return []
    shown = "; ".join(f"rank {r}: {w} of {n} elements" for r, w, n in bad[:MAX_LISTED])
    return [ShardProblem("content", tuple(r for r, _, _ in bad),
                         f"values differ from the global-index pattern ({shown})")]


def audit(t: DistTensor) -> ShardingReport:
    """Audit `t` over its mesh. Collective over the mesh: every member must call it.

    Every rank sends a small record (its block, local shape, SHA-256 of its bytes, pattern
    mismatches) to all; each then evaluates the same rules on the same records, so the report
    is the same everywhere.
    """
    records: list[_Record] = t.mesh.comm.allgather(_local_record(t))
    reference = records[0].meta
    strays = tuple(r for r, rec in enumerate(records) if rec.meta != reference)
    placed = t.placed
    if strays:
        problem = ShardProblem(
            "metadata", strays,
            f"global shape, dtype or layout differ from rank 0's {reference} "
            f"(rank {strays[0]} has {records[strays[0]].meta})")
        problems: list[ShardProblem] = [problem]
    else:
        problems = _check_boxes(t, records) + _check_replicas(records) + _check_content(records)
    copies = len({placed.replica_key(t.mesh.coords_of(r)) for r in range(len(records))})
    return ShardingReport(
        ok=not problems,
        problems=tuple(problems),
        shards=placed.shard_count,
        copies=copies,
        ranks=len(records),
    )

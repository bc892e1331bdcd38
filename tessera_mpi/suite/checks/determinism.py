"""Check `determinism`: the guide's 3.3 example, bitwise repeatability across repetitions, ranks,
rank permutations and algorithms, agreement with an exact reference on adversarial data, and how
non-deterministic the native MPI sum is on the same data."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np

from ... import dist, op
from ...reduction.deterministic import ALGORITHMS
from ...reduction.exact_reference import reference_sums
from ...reduction.formats import FloatFormat, supported
from ...dist.mesh import Mesh
from ...results import table
from ..context import CheckContext
from ..registry import SelfTest, register
from ..verdict import Culprit

SEED = 20261201
ALGORITHM_NAMES = tuple(a for a in ALGORITHMS if a != "auto")
NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The formats MPI itself can sum (it has no float16 or bfloat16), so the native drift is shown for these."""
REPEATS = 3
DIGITS_MAX_ELEMENTS = 1 << 16
"""Largest random workload also summed with the digits algorithm (it moves (digits + 1) float64
per element, so beyond this only the all-to-all algorithm runs; the adversarial set always
runs both)."""


def digest(a: np.ndarray) -> str:
    """Return the SHA-256 of an array's bytes (dtype and shape included)."""
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def contribution(rank: int, count: int, dtype: Any) -> np.ndarray:
    """Return contribution `rank` of the random workload: normals scaled over 12 decades, so
    sums cancel and span many binades (any rank can make any rank's contribution)."""
    rng = np.random.default_rng([SEED, rank])
    decades = 6 if np.dtype(dtype).itemsize >= 4 else 2
    values = rng.normal(size=count) * 10.0 ** rng.integers(-decades, decades + 1, size=count)
    return values.astype(dtype)


def adversarial(contributors: int, dtype: Any, *, random_columns: int = 200) -> np.ndarray:
    """Return a (contributors, columns) matrix whose column sums defeat naive summation:
    cancellation, overflow on the way, subnormals, signed zeros, infinities, NaN, rounding ties,
    and exponents spread over the whole range of `dtype`."""
    p = max(contributors, 3)
    fmt = FloatFormat.of(dtype)
    eps, tiny = 2.0 ** (1 - fmt.precision), 2.0 ** fmt.quantum
    big = (2.0 - eps) * 2.0 ** (fmt.max_exponent - 1)
    large = {53: 1e16, 24: 1e8}.get(fmt.precision, 2.0 ** (fmt.precision + 2))
    decades = 5 if fmt.precision >= 24 else 1
    pad = [0.0] * p
    fixed = [
        [large, 1.0, -large],
        [big, big, -big],
        [big, big],
        [tiny] * p,
        [tiny, -3 * tiny],
        [-0.0] * p,
        [-0.0] * (p - 1) + [0.0],
        [1.0, -1.0] + [-0.0] * (p - 2),
        [np.inf, 1.0],
        [np.inf, -np.inf],
        [np.nan, 1.0],
        [-np.inf, -1.0, 2.0],
        [1.0, eps / 2],
        [1.0 + eps, eps / 2],
        [1.0, eps / 2, tiny],
        [1.0, eps / 2, -tiny],
    ]
    columns = [(c + pad)[:p] for c in fixed]
    rng = np.random.default_rng([SEED, p])
    low, high = fmt.quantum, fmt.max_exponent - 8
    for _ in range(random_columns):
        values = np.ldexp(rng.uniform(-1, 1, size=p), rng.integers(low, high, size=p))
        columns.append(values.astype(dtype).astype(np.float64).tolist())
    for _ in range(random_columns):
        values = (rng.normal(size=p - 1) * 10.0 ** rng.integers(-decades, decades, size=p - 1)).astype(dtype)
        columns.append(values.astype(np.float64).tolist() + [-float(values.astype(np.float64).sum())])
    with np.errstate(over="ignore"):
        matrix = np.array(columns, dtype=np.float64).T.astype(dtype)
    return matrix[:contributors]


def _odd(world: Mesh, value: str) -> list[Culprit]:
    """Return the ranks whose `value` differs from the majority's (every rank when there is no
    majority), as culprits; none when all agree. Collective over the mesh."""
    values = world.comm.allgather(value)
    majority, count = Counter(values).most_common(1)[0]
    if count == len(values):
        return []
    clear = 2 * count > len(values)
    return [Culprit.rank(world.world_rank(r)) for r, v in enumerate(values) if not clear or v != majority]


def _guide_example(ctx: CheckContext, world: Mesh) -> None:
    x = dist.tensor([1.0], mesh=world, layout=dist.Replicate())
    for algorithm in ALGORITHMS:
        y = op.all_reduce(x, op="sum", deterministic=True, algorithm=algorithm)
        if y.numpy().tolist() != [float(world.size)]:
            ctx.fail(f"guide 3.3: all_reduce of [1.0] gave {y.numpy().tolist()} with {algorithm}, "
                     f"expected [{float(world.size)}]")


def _reference_check(ctx: CheckContext, world: Mesh, dtype: Any) -> tuple[int, list[dict]]:
    """Deterministic sums of adversarial columns against the exact reference, computed in parts."""
    matrix = adversarial(world.size, dtype)
    columns = matrix.shape[1]
    mine = dist.tensor(matrix[world.rank], mesh=world)
    lo, hi = (columns * world.rank) // world.size, (columns * (world.rank + 1)) // world.size
    part = reference_sums(matrix[:, lo:hi])
    reference = np.concatenate(world.comm.allgather(part))
    rows = []
    for algorithm in ALGORITHM_NAMES:
        got = op.all_reduce(mine, "sum", deterministic=True, algorithm=algorithm).numpy()
        unsigned = f"u{got.itemsize}"
        wrong = np.flatnonzero(got.view(unsigned) != reference.view(unsigned))
        if wrong.size:
            i = int(wrong[0])
            ctx.fail(f"{np.dtype(dtype).name} {algorithm}: {wrong.size} of {columns} adversarial sums "
                     f"differ from the exact reference (column {i}: got {got[i]!r}, exact {reference[i]!r})")
        rows.append({"case": f"adversarial-{np.dtype(dtype).name}", "algorithm": algorithm,
                     "variant": "reference", "sha256": digest(got)})
    return columns, rows


def _random_checks(ctx: CheckContext, world: Mesh, dtype: Any, count: int) -> tuple[list[dict], list[dict]]:
    """Repeatability, rank agreement and permutation invariance; the native sum beside it."""
    name = np.dtype(dtype).name
    rows, native_rows = [], []
    rng = np.random.default_rng(SEED)
    permutations = [np.arange(world.size), np.arange(world.size)[::-1]]
    permutations += [rng.permutation(world.size) for _ in range(2)]
    expected = None
    algorithms = ALGORITHM_NAMES if count <= DIGITS_MAX_ELEMENTS else ("alltoall",)
    for p_index, perm in enumerate(permutations):
        x = dist.tensor(contribution(int(perm[world.rank]), count, dtype), mesh=world)
        if np.dtype(dtype) in NATIVE_DTYPES:
            native = op.all_reduce(x, "sum").numpy()
            native_rows.append({"dtype": name, "permutation": p_index, "sha256": digest(native),
                                "ranks_agree": not _odd(world, digest(native))})
        for algorithm in algorithms:
            for repeat in range(REPEATS if p_index == 0 else 1):
                got = digest(op.all_reduce(x, "sum", deterministic=True, algorithm=algorithm).numpy())
                odd = _odd(world, got)
                if odd:
                    ctx.fail(f"{name} {algorithm}: ranks {', '.join(map(str, odd))} hold other bits than the "
                             f"rest (permutation {p_index})", culprit=odd)
                expected = expected or got
                if got != expected:
                    ctx.fail(f"{name} {algorithm}: permutation {p_index} repeat {repeat} gave other bits "
                             f"than the first deterministic sum")
                rows.append({"case": f"random-{name}", "algorithm": algorithm,
                             "variant": f"permutation-{p_index}-repeat-{repeat}", "sha256": got})
    return rows, native_rows


def _holds(world: Mesh, dtype: np.dtype) -> bool:
    """Whether the array backend can hold `dtype` (CuPy may have no bfloat16); the same answer
    on every rank, as they share one backend."""
    try:
        world.runtime.backend.xp.zeros(1, dtype=dtype)
    except (TypeError, ValueError, NotImplementedError):
        return False
    return True


@register("determinism", help="the guide's 3.3 example, bitwise reproducible sums, exact reference, native drift",
          selftests=(SelfTest("one ulp off on one rank", lambda rt, o, clean: {"corrupt_device": rt.size - 1, "ulps": 1},
                              lambda n: Culprit.rank(n - 1)),))
def check_determinism(ctx: CheckContext) -> None:
    world = dist.Mesh(axes=["dp"], devices=range(ctx.mesh.size))
    _guide_example(ctx, world)
    count = ctx.sized(full=1 << 22, small=1 << 16, quick=1 << 12)
    rows, native_rows, adversarial_sums = [], [], 0
    dtypes = supported()  # imports ml_dtypes: only when this check runs
    formats = [d for d in dtypes if _holds(world, d)]
    ctx.attrs["formats"] = ",".join(d.name for d in formats)
    ctx.attrs["formats_not_held"] = ",".join(d.name for d in dtypes if d not in formats)
    for dtype in formats:
        columns, reference_rows = _reference_check(ctx, world, dtype)
        adversarial_sums += columns
        random_rows, native = _random_checks(ctx, world, dtype, count)
        rows += reference_rows + random_rows
        native_rows += native
    native_distinct = {d: len({r["sha256"] for r in native_rows if r["dtype"] == d})
                       for d in {r["dtype"] for r in native_rows}}
    ctx.save("digests", table(rows), description="SHA-256 of deterministic sums; equal digests mean equal bits")
    ctx.save("native", table(native_rows), description="the native MPI sum of the same permuted contributions")
    ctx.attrs["elements_per_rank"] = count
    ctx.attrs["native_distinct_float32"] = native_distinct.get("float32", 0)
    ctx.attrs["native_distinct_float64"] = native_distinct.get("float64", 0)
    perms = len({r["variant"].split("-repeat")[0] for r in rows if r["case"].startswith("random")})
    algorithms = len({r["algorithm"] for r in rows})
    ctx.headline = (f"identical bits over {perms} rank orders x {algorithms} algorithms; "
                    f"{adversarial_sums} adversarial sums exact; native MPI sum: "
                    f"{native_distinct.get('float32', 0)}/{native_distinct.get('float64', 0)} distinct "
                    f"results (float32/float64) over {perms} rank orders")

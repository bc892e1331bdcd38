"""`FaultPlan`: which ranks suffer which fault, validated without communication."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FaultPlanError
from ..hardware.counters import THROTTLE_REASONS
from ..hardware.emulated import LINK_COUNTERS, LINKS

PLANTS: dict[str, str] = {
    "mesh.coordinate": "the rank's Cartesian coordinates, as MPI reports them to the mesh check, are one "
                       "off along the first axis (a wrongly wired rank)",
    "dist.bit_flip": "the lowest bit of the first element of every new pattern tensor's block on the rank is "
                     "flipped (an ECC-style error in memory)",
    "dist.misplaced_shard": "every new pattern tensor's block on the rank is recorded one row further down "
                            "than the data it holds (a misplaced shard)",
    "parallel.wrong_shard": "the rank's tensor-parallel shard of w1 is taken one column off",
    "parallel.drop_micro_batch": "the rank loses the weight gradients of micro-batch 0 in step 0",
    "fault.drops_never_strike": "planned device losses do not happen: the dropped ranks go on as if "
                                "nothing was planned",
}
"""Defects planted at named points of the framework (`comm.hooks.planted`), by name.

A plant alters what a rank observes or computes upstream of every verification, so a check
that passes with a plant in place could not have seen that defect on real hardware either:
`--self-test` uses them to prove each check can fail."""


def _ranks(value: int | Iterable[int] | None, what: str, size: int) -> tuple[int, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, int) else tuple(value)
    for r in items:
        if isinstance(r, bool) or not isinstance(r, int):
            raise TypeError(f"fault.inject({what}=...) takes ranks (ints), got {r!r}")
        if not 0 <= r < size:
            raise FaultPlanError(f"fault.inject({what}={value!r}): rank {r} is not in the job's {size} ranks")
    if len(set(items)) != len(items):
        raise FaultPlanError(f"fault.inject({what}={value!r}) names a rank twice")
    return tuple(sorted(items))


@dataclass(frozen=True)
class CounterFault:
    """A fault of the emulated GPU's counters (the emulated backend only): what NVML would report
    for an uncorrectable ECC error, link errors, a link going down or throttling."""

    kind: str
    """"ecc_error", "link_errors", "link_down" or "throttle_reason"."""
    rank: int
    link: int = -1
    count: int = 1
    detail: str = ""
    """link_errors: the counter ("crc", "replay", "recovery"); throttle_reason: the reason."""


_COUNTER_KEYS = {"link_errors": ("rank", "link", "count", "kind"), "link_down": ("rank", "link"),
                 "throttle_reason": ("rank", "reason")}


def _int(value: object, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise FaultPlanError(f"fault.inject({what}) must be an int {bound}, got {value!r}")
    return value


def counter_faults(size: int, *, ecc_error: int | Iterable[int] | None, link_errors: object,
                   link_down: object, throttle_reason: object) -> tuple[CounterFault, ...]:
    """Validate the emulated-counter faults: ecc_error=R (or ranks), link_errors={"rank": R,
    "link": L, "count": N[, "kind": "crc"]}, link_down={"rank": R, "link": L},
    throttle_reason={"rank": R, "reason": "thermal"} (each also a list of such dicts)."""
    faults = [CounterFault("ecc_error", r) for r in _ranks(ecc_error, "ecc_error", size)]
    for kind, given in (("link_errors", link_errors), ("link_down", link_down), ("throttle_reason", throttle_reason)):
        if given is None:
            continue
        items = [given] if isinstance(given, dict) else list(given) if isinstance(given, (list, tuple)) else None
        if not items or not all(isinstance(item, dict) for item in items):
            raise FaultPlanError(f"fault.inject({kind}=...) takes a dict such as {_example(kind)} or a list of them, "
                                 f"got {given!r}")
        for item in items:
            unknown = sorted(set(item) - set(_COUNTER_KEYS[kind]))
            needed = [k for k in _COUNTER_KEYS[kind] if k != "kind" and k not in item]
            if unknown or needed:
                raise FaultPlanError(f"fault.inject({kind}={item!r}) needs the keys {', '.join(_COUNTER_KEYS[kind][:3])}"
                                     f"{' (and optionally kind)' if kind == 'link_errors' else ''}, e.g. {_example(kind)}")
            rank = _int(item["rank"], f"{kind}: rank (of the job's {size} ranks)", 0, size - 1)
            link = _int(item["link"], f"{kind}: link", 0, LINKS - 1) if "link" in item else -1
            count = _int(item.get("count", 1), f"{kind}: count", 1)
            detail = ""
            if kind == "link_errors":
                detail = item.get("kind", "crc")
                if detail not in LINK_COUNTERS:
                    raise FaultPlanError(f"fault.inject(link_errors: kind={detail!r}) is not a link counter; choose "
                                         f"one of {', '.join(LINK_COUNTERS)}")
            if kind == "throttle_reason":
                detail = item["reason"]
                if detail not in THROTTLE_REASONS:
                    raise FaultPlanError(f"fault.inject(throttle_reason: reason={detail!r}) is not a reason; choose "
                                         f"one of {', '.join(THROTTLE_REASONS)}")
            faults.append(CounterFault(kind, rank, link, count, detail))
    return tuple(faults)


def _example(kind: str) -> str:
    return {"link_errors": '{"rank": 3, "link": 7, "count": 4112}', "link_down": '{"rank": 3, "link": 7}',
            "throttle_reason": '{"rank": 3, "reason": "thermal"}'}[kind]


@dataclass(frozen=True)
class FaultPlan:
    """What `fault.inject` does, on ranks numbered as in the job's world when the block starts."""

    drop: tuple[int, ...] = ()
    """Ranks whose process dies (really, with ULFM; cooperatively otherwise)."""
    hang: tuple[int, ...] = ()
    """Ranks that stop answering."""
    stall_s: float | None = None
    """How long hung ranks stop for; None means for ever (the process is stopped)."""
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    throttle: float | None = None
    """The speed the listed ranks' collectives fall to, gradually over `throttle_s` (0.5: half)."""
    throttle_s: float = 10.0
    plant: str | None = None
    """A defect planted at a named point (see PLANTS), on the listed ranks or on every rank."""
    targets: tuple[int, ...] = ()
    """The ranks that the delay, the throttle or the plant applies to (`ranks=` of inject)."""
    corrupt: tuple[int, ...] = ()
    """Ranks whose result buffer is corrupted after the struck collective."""
    bits: int = 1
    """Random bits flipped in the result buffer (ulps == 0)."""
    ulps: int = 0
    """Units in the last place added to one element of a floating result instead of flipping bits."""
    after: int = 0
    """The fault strikes at collective number after + 1 inside the block."""
    timeout_s: float = 60.0
    """How long survivors wait for a hung rank before the watchdog diagnoses it."""
    seed: int = 0
    counters: tuple[CounterFault, ...] = ()
    """Faults of the emulated GPUs' counters, struck at the struck collective (emulated backend)."""

    @property
    def delayed(self) -> tuple[int, ...]:
        """Ranks whose every collective starts `delay_ms` +- `jitter_ms` late."""
        return self.targets if self.delay_ms else ()

    @property
    def throttled(self) -> tuple[int, ...]:
        return self.targets if self.throttle is not None else ()

    @classmethod
    def make(
        cls, size: int, *, drop_device: int | Iterable[int] | None = None,
        hang_device: int | Iterable[int] | None = None, stall_s: float | None = None,
        delay_ms: float = 0.0, ranks: int | Iterable[int] | None = None, jitter_ms: float = 0.0,
        throttle: float | None = None, throttle_s: float = 10.0, plant: str | None = None,
        corrupt_device: int | Iterable[int] | None = None, bits: int = 1, ulps: int = 0, after: int = 0,
        timeout_s: float = 60.0, seed: int = 0, ecc_error: int | Iterable[int] | None = None,
        link_errors: object = None, link_down: object = None, throttle_reason: object = None,
    ) -> FaultPlan:
        """Validate `fault.inject`'s arguments for a world of `size` ranks."""
        plan = cls(
            drop=_ranks(drop_device, "drop_device", size),
            hang=_ranks(hang_device, "hang_device", size),
            stall_s=stall_s, delay_ms=float(delay_ms), jitter_ms=float(jitter_ms),
            throttle=None if throttle is None else float(throttle), throttle_s=float(throttle_s), plant=plant,
            targets=_ranks(ranks, "ranks", size),
            corrupt=_ranks(corrupt_device, "corrupt_device", size), bits=bits, ulps=ulps, after=after,
            timeout_s=float(timeout_s), seed=seed,
            counters=counter_faults(size, ecc_error=ecc_error, link_errors=link_errors, link_down=link_down,
                                    throttle_reason=throttle_reason),
        )
        plan._check(size, ranks)
        return plan

    def _check(self, size: int, ranks: object) -> None:
        if len(self.drop) >= size:
            raise FaultPlanError(f"fault.inject would drop all {size} ranks; leave at least one survivor")
        if set(self.drop) & set(self.hang):
            raise FaultPlanError("a rank cannot both drop and hang")
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.jitter_ms > self.delay_ms:
            raise FaultPlanError(f"fault.inject needs 0 <= jitter_ms <= delay_ms, got delay_ms={self.delay_ms:g}, "
                                 f"jitter_ms={self.jitter_ms:g}")
        uses = sum(1 for used in (self.delay_ms, self.throttle is not None, self.plant is not None) if used)
        if (self.delay_ms or self.throttle is not None) and not self.targets:
            what = "delay_ms" if self.delay_ms else "throttle"
            raise FaultPlanError(f"fault.inject({what}=...) needs ranks=[...] to apply to")
        if ranks is not None and uses == 0:
            raise FaultPlanError("fault.inject(ranks=...) names the ranks to delay, throttle or plant a defect "
                                 "on; give delay_ms, throttle or plant too")
        if ranks is not None and uses > 1:
            raise FaultPlanError("fault.inject(ranks=...) applies to one of delay_ms, throttle and plant; "
                                 "open one block for each")
        if self.throttle is not None and not 0 < self.throttle < 1:
            raise FaultPlanError(f"fault.inject(throttle={self.throttle!r}) is the speed the ranks fall to; "
                                 "give a fraction between 0 and 1, e.g. 0.5")
        if not (math.isfinite(self.throttle_s) and self.throttle_s > 0):
            raise FaultPlanError(f"fault.inject(throttle_s={self.throttle_s!r}) must be positive seconds")
        if self.plant is not None and self.plant not in PLANTS:
            raise FaultPlanError(f"fault.inject(plant={self.plant!r}) is not a planted defect; choose one of "
                                 f"{', '.join(PLANTS)}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise FaultPlanError(f"fault.inject(bits={self.bits!r}) must be an int from 1 to 64")
        if isinstance(self.ulps, bool) or not isinstance(self.ulps, int) or not 0 <= self.ulps <= 1 << 20:
            raise FaultPlanError(f"fault.inject(ulps={self.ulps!r}) must be an int from 0 to 2**20")
        if self.ulps and not self.corrupt:
            raise FaultPlanError("fault.inject(ulps=...) says how corrupt_device's result is corrupted; "
                                 "give corrupt_device too")
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise FaultPlanError(f"fault.inject(after={self.after!r}) must be a count of collectives, 0 or more")
        if self.stall_s is not None and not self.stall_s > 0:
            raise FaultPlanError(f"fault.inject(stall_s={self.stall_s!r}) must be positive (or None: for ever)")
        if not self.timeout_s > 0:
            raise FaultPlanError(f"fault.inject(timeout={self.timeout_s!r}) must be positive seconds")
        if not (self.drop or self.hang or self.delay_ms or self.corrupt or self.throttle is not None
                or self.plant is not None or self.counters):
            raise FaultPlanError("fault.inject needs a fault: drop_device, hang_device, delay_ms, throttle, "
                                 "corrupt_device, plant, ecc_error, link_errors, link_down or throttle_reason")

    def plants(self, name: str, rank: int) -> bool:
        """Whether defect `name` is planted on `rank` (every rank when no ranks were listed)."""
        return self.plant == name and (not self.targets or rank in self.targets)

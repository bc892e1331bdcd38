"""`FaultPlan`: which ranks suffer which fault, validated without communication."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FaultPlanError

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
    delayed: tuple[int, ...] = ()
    """Ranks whose every collective starts `delay_ms` +- `jitter_ms` late."""
    corrupt: tuple[int, ...] = ()
    """Ranks whose result buffer gets `bits` flipped bits after the struck collective."""
    bits: int = 1
    after: int = 0
    """The fault strikes at collective number after + 1 inside the block."""
    timeout_s: float = 60.0
    """How long survivors wait for a hung rank before the watchdog diagnoses it."""
    seed: int = 0

    @classmethod
    def make(
        cls, size: int, *, drop_device: int | Iterable[int] | None = None,
        hang_device: int | Iterable[int] | None = None, stall_s: float | None = None,
        delay_ms: float = 0.0, ranks: int | Iterable[int] | None = None, jitter_ms: float = 0.0,
        corrupt_device: int | Iterable[int] | None = None, bits: int = 1, after: int = 0,
        timeout_s: float = 60.0, seed: int = 0,
    ) -> FaultPlan:
        """Validate `fault.inject`'s arguments for a world of `size` ranks."""
        plan = cls(
            drop=_ranks(drop_device, "drop_device", size),
            hang=_ranks(hang_device, "hang_device", size),
            stall_s=stall_s, delay_ms=float(delay_ms), jitter_ms=float(jitter_ms),
            delayed=_ranks(ranks, "ranks", size) if delay_ms else (),
            corrupt=_ranks(corrupt_device, "corrupt_device", size), bits=bits, after=after,
            timeout_s=float(timeout_s), seed=seed,
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
        if self.delay_ms and not self.delayed:
            raise FaultPlanError("fault.inject(delay_ms=...) needs ranks=[...] to delay")
        if ranks is not None and not self.delay_ms:
            raise FaultPlanError("fault.inject(ranks=...) names the ranks to delay; give delay_ms too")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise FaultPlanError(f"fault.inject(bits={self.bits!r}) must be an int from 1 to 64")
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise FaultPlanError(f"fault.inject(after={self.after!r}) must be a count of collectives, 0 or more")
        if self.stall_s is not None and not self.stall_s > 0:
            raise FaultPlanError(f"fault.inject(stall_s={self.stall_s!r}) must be positive (or None: for ever)")
        if not self.timeout_s > 0:
            raise FaultPlanError(f"fault.inject(timeout={self.timeout_s!r}) must be positive seconds")
        if not (self.drop or self.hang or self.delay_ms or self.corrupt):
            raise FaultPlanError("fault.inject needs a fault: drop_device, hang_device, delay_ms or corrupt_device")

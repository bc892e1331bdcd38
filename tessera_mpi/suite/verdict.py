"""What a check's verdict is made of: sanity apart from performance, references, culprits.

As ReFrame separates them: **sanity** says whether the data were right and every rank took part
(wrong data always fails); **performance** says whether the figures met a `Reference` (target,
bounds, unit, and where the figures came from), or that nothing was judged and why. A failure
names its **culprit** where the measurement can attribute it (a rank, a link, a pair of ranks)
and says it is global where it cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

CulpritKind = Literal["rank", "link", "pair", "global"]


@dataclass(frozen=True, order=True)
class Culprit:
    """Where a failure is: a rank, a link (src -> dst), a pair of ranks, or the whole fabric.

    A check names ranks of the job's world as it runs; the runner renumbers them to the ranks
    the job started with (`renumbered`), as the /ranks table and the rack map number them, so a
    recorded culprit names the part to pull after a shrink. A check that loses ranks (`faults`)
    names its victims by their ranks at start itself (`CheckContext.fail(..., at_start=True)`).
    """

    kind: CulpritKind
    ranks: tuple[int, ...] = ()

    @classmethod
    def rank(cls, rank: int) -> Culprit:
        return cls("rank", (int(rank),))

    @classmethod
    def link(cls, src: int, dst: int) -> Culprit:
        return cls("link", (int(src), int(dst)))

    @classmethod
    def pair(cls, a: int, b: int) -> Culprit:
        return cls("pair", tuple(sorted((int(a), int(b)))))

    @classmethod
    def whole(cls) -> Culprit:
        return cls("global")

    def __str__(self) -> str:
        if self.kind == "rank":
            return f"rank {self.ranks[0]}"
        if self.kind == "link":
            return f"link {self.ranks[0]} -> {self.ranks[1]}"
        if self.kind == "pair":
            return f"pair {self.ranks[0]}-{self.ranks[1]}"
        return "global"

    def renumbered(self, at_start: Callable[[int], int]) -> Culprit:
        """Return this culprit with every rank `r` replaced by `at_start(r)` (a pair stays sorted)."""
        if self.kind == "pair":
            return Culprit.pair(*map(at_start, self.ranks))
        return Culprit(self.kind, tuple(int(at_start(r)) for r in self.ranks))

    def involves(self, other: Culprit) -> bool:
        """Whether naming self names `other`: a link or pair names its ranks; global names nothing."""
        if self == other:
            return True
        return other.kind == "rank" and self.kind in ("link", "pair") and other.ranks[0] in self.ranks

    @classmethod
    def parse(cls, text: str) -> Culprit:
        """Read back what `str` wrote (results files store culprits as text)."""
        words = text.replace("->", " ").replace("-", " ").split()
        if not words or words[0] not in ("rank", "link", "pair", "global") or not all(w.isdigit() for w in words[1:]):
            raise ValueError(f"{text!r} is not a culprit (rank N, link A -> B, pair A-B, global)")
        return cls(words[0], tuple(int(w) for w in words[1:]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Reference:
    """What one performance figure is judged against: fails below `lower` or above `upper`.

    `target` is the figure a healthy system reaches (reported beside the value); `source` says
    where the reference comes from (a flag, the built-in table, this run's own median).
    """

    what: str
    unit: str
    source: str
    target: float | None = None
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.lower is None and self.upper is None:
            raise ValueError(f"a reference for {self.what} needs a lower or an upper bound")

    def holds(self, value: float) -> bool:
        """Whether `value` is within the bounds (NaN never is)."""
        if value != value:
            return False
        return (self.lower is None or value >= self.lower) and (self.upper is None or value <= self.upper)

    def shortfall(self, value: float) -> str:
        """Say how `value` misses the reference, e.g. "612 GB/s is below 720 GB/s (0.8 x 900, ...)"."""
        if self.lower is not None and not value >= self.lower:
            return f"{self.what} {value:.4g} {self.unit} is below {self.lower:.4g} {self.unit} ({self.source})"
        if self.upper is not None and not value <= self.upper:
            return f"{self.what} {value:.4g} {self.unit} is above {self.upper:.4g} {self.unit} ({self.source})"
        return f"{self.what} {value:.4g} {self.unit} is within the reference ({self.source})"


Sanity = Literal["passed", "failed"]
Performance = Literal["passed", "failed", "not judged"]

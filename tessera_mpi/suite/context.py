"""What a check receives: the mesh, the options, and where it puts its findings on this rank."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import numpy as np

from .. import runtime
from ..dist.mesh import Mesh
from ..errors import TesseraError
from ..fabric.load import BackgroundLoad
from ..results import Dataset
from ..runtime import Runtime
from .options import SuiteOptions


T = TypeVar("T")


class CheckSkipped(TesseraError):
    """Raised by a check (through `ctx.skip`) that does not apply to this run."""


@dataclass
class CheckContext:
    """One rank's view of one check. Findings stay local until the runner agrees on them."""

    mesh: Mesh
    options: SuiteOptions
    failures: list[str] = field(default_factory=list)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    """The one-line figure the suite prints for this check (set it on rank 0 at least)."""
    load: BackgroundLoad | None = None
    """The background load running beside the check under --under-load (None otherwise); a check
    that reports figures with and without load measures the latter inside `load.paused()`."""

    results_path: str = ""
    """The run's results file, the same on every rank (a check that drops rank 0 checks that the
    file survives)."""

    @property
    def runtime(self) -> Runtime:
        """The job's runtime now (a check that injects failures rebuilds it)."""
        current = runtime.current()
        assert current is not None
        return current

    @property
    def is_root(self) -> bool:
        """True on the rank that prints and writes results."""
        return self.runtime.rank == 0

    def sized(self, *, full: T, small: T, quick: T) -> T:
        """Return the size for this run: `quick` with --quick, `small` when the machine is
        oversubscribed (more ranks than cores), `full` on real hardware. The same on every rank."""
        if self.options.quick:
            return quick
        return small if self.runtime.oversubscribed else full

    def fail(self, message: str) -> None:
        """Record that this rank found a problem; the check goes on and fails at the end."""
        self.failures.append(message)

    def skip(self, reason: str) -> NoReturn:
        """End the check as skipped (call on every rank)."""
        raise CheckSkipped(reason)

    def save(self, name: str, data: np.ndarray, **attrs: Any) -> None:
        """Store `data` as /checks/<check>/<name>; only the root rank's saves are written."""
        self.datasets[name] = Dataset(np.asarray(data), attrs)

"""The QA suite: registered collective checks, run by `python -m tessera_mpi.suite`."""

from .context import CheckContext
from .registry import Check, register, registered

__all__ = ["Check", "CheckContext", "register", "registered"]

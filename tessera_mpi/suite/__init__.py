"""The QA suite: registered collective checks, run by `python -m tessera_mpi.suite`."""

from .context import CheckContext
from .checks import registered
from .registry import Check, register

__all__ = ["Check", "CheckContext", "register", "registered"]

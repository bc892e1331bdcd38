"""The QA suite: registered collective checks, run by `python -m tessera_mpi.suite`."""

from .context import CheckContext
from .checks import registered
from .cli import run, selftest
from .registry import Check, SelfTest, register
from .selftest import SelfTestRow

__all__ = ["Check", "CheckContext", "SelfTest", "SelfTestRow", "register", "registered", "run", "selftest"]

"""The call path: every communication of the data path goes through a `Call` on a `Group`,
whose transport moves the buffers (see call.py and transport.py)."""

from .call import Call, Group
from .check import agree_call
from .transport import MpiTransport, Transport

__all__ = ["Call", "Group", "MpiTransport", "Transport", "agree_call"]

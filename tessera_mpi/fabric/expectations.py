"""What bandwidth to expect: a table of known GPUs and their per-direction link bandwidth."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    """The bus bandwidth a healthy fabric should reach, and where the figure comes from."""

    busbw_gbps: float
    source: str


KNOWN_LINKS = (
    ("GB300", 900.0, "NVLink 5, 900 GB/s per direction per GPU (GB300 NVL72)"),
    ("GB200", 900.0, "NVLink 5, 900 GB/s per direction per GPU (GB200 NVL72)"),
    ("B300", 900.0, "NVLink 5, 900 GB/s per direction per GPU"),
    ("B200", 900.0, "NVLink 5, 900 GB/s per direction per GPU"),
    ("H200", 450.0, "NVLink 4, 450 GB/s per direction per GPU"),
    ("H100", 450.0, "NVLink 4, 450 GB/s per direction per GPU"),
    ("A100", 300.0, "NVLink 3, 300 GB/s per direction per GPU"),
)
"""Device-name fragments, in matching order (GB200 before B200)."""


def expectation(devices: Iterable[str], *, given_gbps: float | None = None) -> Expectation | None:
    """Return the expectation for a job on `devices` (placement labels), or None when unknown.

    `given_gbps` (from --expect-busbw) wins. Otherwise every device must match the table; a mix
    of devices gets the slowest one's figure, and a device the table lacks (a CPU) gives None.
    """
    if given_gbps is not None:
        return Expectation(float(given_gbps), f"--expect-busbw {given_gbps:g}")
    found = []
    for device in set(devices):
        match = next(((bw, text) for key, bw, text in KNOWN_LINKS if key in device.upper()), None)
        if match is None:
            return None
        found.append(match)
    return Expectation(*min(found)) if found else None

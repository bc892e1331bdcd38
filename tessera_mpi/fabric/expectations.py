"""What bandwidth to expect: an exact table of GPU products and their per-direction NVLink
bandwidth per GPU. A device the table does not name exactly gets no expectation, never a guess:
a PCIe card, a bridged NVL pair or an unknown product would be judged against a fabric it does
not have."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..runtime.device import Placement


@dataclass(frozen=True)
class Expectation:
    """The bus bandwidth a healthy fabric should reach, and where the figure comes from."""

    busbw_gbps: float
    source: str


KNOWN_PRODUCTS: dict[str, tuple[float, str]] = {
    # NVIDIA GB200 NVL72 datasheet: fifth-generation NVLink, 1.8 TB/s per GPU (both directions),
    # 18 links x 50 GB/s per direction.
    "NVIDIA GB200": (900.0, "NVLink 5, 900 GB/s per direction per GPU (GB200 NVL72 datasheet)"),
    # NVIDIA HGX B200 datasheet: NVLink 5, 1.8 TB/s per GPU (SXM).
    "NVIDIA B200": (900.0, "NVLink 5, 900 GB/s per direction per GPU (HGX B200 datasheet)"),
    # NVIDIA H100 datasheet, SXM5 form factor (reported as "NVIDIA H100 80GB HBM3"): NVLink 4,
    # 900 GB/s per GPU (both directions). The PCIe and NVL cards report other names.
    "NVIDIA H100 80GB HBM3": (450.0, "NVLink 4, 450 GB/s per direction per GPU (H100 SXM5 datasheet)"),
    # NVIDIA H200 datasheet, SXM form factor (reported as "NVIDIA H200"): NVLink 4, 900 GB/s per GPU.
    "NVIDIA H200": (450.0, "NVLink 4, 450 GB/s per direction per GPU (H200 SXM datasheet)"),
    # NVIDIA A100 datasheet, SXM4 form factor: NVLink 3, 600 GB/s per GPU (both directions).
    "NVIDIA A100-SXM4-80GB": (300.0, "NVLink 3, 300 GB/s per direction per GPU (A100 SXM4 datasheet)"),
    "NVIDIA A100-SXM4-40GB": (300.0, "NVLink 3, 300 GB/s per direction per GPU (A100 SXM4 datasheet)"),
}
"""Exact product names as CUDA reports them (nvidia-smi --query-gpu=name), and the figure."""

_LABEL = re.compile(r"^cuda:\d+ (?P<name>.+?) (?P<pci>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)")


def product(device: str) -> str | None:
    """Return the product name in a placement's device label ("cuda:0 NVIDIA H200 0000:1b:00.0 ..."),
    or None for a device that is not a CUDA GPU."""
    match = _LABEL.match(device)
    return match.group("name") if match else None


def expectation(placements: Iterable[Placement], *, given_gbps: float | None = None
                ) -> tuple[Expectation | None, str]:
    """Return (the expectation for a job on these ranks, or None; why there is none).

    `given_gbps` (from --expect-busbw) wins. Otherwise every rank must have a GPU of its own
    (ranks sharing a GPU cannot reach its links) of a product the table names exactly; a mix
    of products gets the slowest one's figure.
    """
    if given_gbps is not None:
        return Expectation(float(given_gbps), f"--expect-busbw {given_gbps:g}"), ""
    placements = list(placements)
    # Sharing first: four ranks on one H200 must read "ranks share a GPU", whatever the product.
    shared = [d for d, n in Counter((p.host, p.device) for p in placements if p.device != "cpu").items() if n > 1]
    if shared:
        return None, f"ranks share a GPU ({shared[0][1]} on {shared[0][0]}), so none can reach its links"
    found = []
    for name in sorted({product(p.device) or p.device for p in placements}):
        if name not in KNOWN_PRODUCTS:
            return None, f"no expectation for {name!r} (not a product of the built-in table; pass --expect-busbw)"
        found.append(KNOWN_PRODUCTS[name])
    if not found:
        return None, "no devices"
    return Expectation(*min(found)), ""

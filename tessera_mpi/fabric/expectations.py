"""What bandwidth to expect, and where the figure comes from: NVML's view of each GPU's NVLinks
(the exact product NVML names, else the NVLink generation x the active links, where they all
lead to NVSwitches), else the device name CUDA reports, else nothing; --expect-busbw wins over
all. A device no source describes gets no expectation, never a guess: a PCIe card, a bridged NVL
pair or an unknown product would be judged against a fabric it does not have."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..hardware.nvlink import PER_LINK_GBPS, PRODUCTS, NvLinkInfo, describe_product
from ..runtime.device import Placement


@dataclass(frozen=True)
class Expectation:
    """The bus bandwidth a healthy fabric should reach, and where the figure comes from."""

    busbw_gbps: float
    source: str


KNOWN_PRODUCTS: dict[str, tuple[float, str]] = {name: (p.busbw_gbps, describe_product(name))
                                                for name, p in PRODUCTS.items()}
"""Exact product names as CUDA reports them (nvidia-smi --query-gpu=name), and the figure
(hardware/nvlink.py's table of datasheets)."""

_LABEL = re.compile(r"^cuda:\d+ (?P<name>.+?) (?P<pci>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)")


def product(device: str) -> str | None:
    """Return the product name in a placement's device label ("cuda:0 NVIDIA H200 0000:1b:00.0 ..."),
    or None for a device that is not a CUDA GPU."""
    match = _LABEL.match(device)
    return match.group("name") if match else None


def from_nvml(info: NvLinkInfo) -> tuple[tuple[float, str] | None, str]:
    """Return ((GB/s, source) for one GPU from what NVML reports of it, or None; why not).

    The exact product first (its datasheet figure: a link down at start-up is a fault for
    `health`, not a lower expectation), else generation x active links where every active link
    leads to an NVSwitch (a bridged pair or a direct mesh does not carry that rate to every GPU
    of the job)."""
    if info.product in PRODUCTS:
        return (PRODUCTS[info.product].busbw_gbps,
                f"from NVML: the product {info.product}, {describe_product(info.product)}"), ""
    if not info.active:
        return None, f"NVML reports no active NVLink on {info.product or 'the GPU'} ({info})"
    if info.generation not in PER_LINK_GBPS:
        return None, f"NVML reports no known NVLink generation on {info.product or 'the GPU'} ({info})"
    if info.to_switch != info.active:
        return None, (f"{info.product or 'the GPU'}: {info}; links that do not all lead to NVSwitches (a bridge, "
                      f"a mesh, or far ends NVML cannot name) do not carry that rate to every GPU; pass --expect-busbw")
    per = PER_LINK_GBPS[info.generation]
    return (info.busbw_gbps, f"from NVML: NVLink {info.generation} x {info.active} active links x {per:g} GB/s per "
                             f"direction ({info.product or 'unnamed product'}, links to NVSwitches)"), ""


def expectation(placements: Iterable[Placement], *, given_gbps: float | None = None
                ) -> tuple[Expectation | None, str]:
    """Return (the expectation for a job on these ranks, or None; why there is none).

    `given_gbps` (from --expect-busbw) wins. Otherwise every rank must have a GPU of its own
    (ranks sharing a GPU cannot reach its links). Where every rank's GPU was read through NVML,
    each GPU's figure comes from NVML (`from_nvml`); where some were not, from the exact product
    name in the device label. A mix gets the slowest GPU's figure (it bounds every collective).
    Emulated NVML gives its figure in words only: an emulated GPU is no fabric to judge.
    """
    if given_gbps is not None:
        return Expectation(float(given_gbps), f"--expect-busbw {given_gbps:g}"), ""
    placements = list(placements)
    # Sharing first: four ranks on one H200 must read "ranks share a GPU", whatever the product.
    shared = [d for d, n in Counter((p.host, p.device) for p in placements if p.device != "cpu").items() if n > 1]
    if shared:
        return None, f"ranks share a GPU ({shared[0][1]} on {shared[0][0]}), so none can reach its links"
    infos = [p.nvlink for p in placements]
    if placements and all(i is not None and i.source == "emulated" for i in infos):
        figure = min(i.busbw_gbps for i in infos if i is not None)
        return None, (f"emulated NVML: {min(infos, key=lambda i: i.busbw_gbps)} would expect {figure:g} GB/s per "
                      f"direction; an emulated GPU has no such fabric, so nothing is judged against it")
    if placements and all(i is not None and i.source == "nvml" for i in infos):
        found = []
        for info in sorted(set(infos), key=str):
            figure, why = from_nvml(info)
            if figure is None:
                return None, f"no expectation: {why}"
            found.append(figure)
        return Expectation(*min(found)), ""
    found = []
    for name in sorted({product(p.device) or p.device for p in placements}):
        if name not in KNOWN_PRODUCTS:
            return None, f"no expectation for {name!r} (not a product of the built-in table; pass --expect-busbw)"
        busbw, source = KNOWN_PRODUCTS[name]
        found.append((busbw, f"from the device name: {source}"))
    if not found:
        return None, "no devices"
    return Expectation(*min(found)), ""

"""What a GPU's NVLinks should carry: the per-link bandwidth of each NVLink generation, the exact
products whose datasheets give their NVLink count and bandwidth, and `NvLinkInfo`, what NVML (or
its emulation) reports of one GPU's links when the runtime starts.

The figures are NVIDIA's published per-GPU NVLink bandwidths divided by the GPU's link count, per
direction (docs/checks.md, "Expectations from the hardware"):

| generation | GPUs | links | per GPU, both directions | per link, per direction |
| --- | --- | --- | --- | --- |
| NVLink 1 | P100 | 4 | 160 GB/s | 20 GB/s |
| NVLink 2 | V100 | 6 | 300 GB/s | 25 GB/s |
| NVLink 3 | A100 | 12 | 600 GB/s | 25 GB/s |
| NVLink 4 | H100, H200 | 18 | 900 GB/s | 25 GB/s |
| NVLink 5 | B200, GB200 | 18 | 1.8 TB/s | 50 GB/s |
"""

from __future__ import annotations

from dataclasses import dataclass

PER_LINK_GBPS: dict[int, float] = {1: 20.0, 2: 25.0, 3: 25.0, 4: 25.0, 5: 50.0}
"""GB/s per direction of one NVLink, by generation (the table above)."""

NVML_VERSIONS: dict[int, int] = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 5}
"""nvmlDeviceGetNvLinkVersion's answer (nvmlNvlinkVersion_t: 1 = 1.0, 2 = 2.0, 3 = 2.2, 4 = 3.0,
5 = 3.1, 6 = 4.0, 7 = 5.0) -> the NVLink generation. An answer outside it is no generation."""


@dataclass(frozen=True)
class Product:
    """A GPU product NVIDIA's datasheet gives an NVLink count and generation for."""

    generation: int
    links: int
    datasheet: str

    @property
    def busbw_gbps(self) -> float:
        return self.links * PER_LINK_GBPS[self.generation]


PRODUCTS: dict[str, Product] = {
    # GB200 NVL72 datasheet: fifth-generation NVLink, 1.8 TB/s per GPU, 18 links.
    "NVIDIA GB200": Product(5, 18, "GB200 NVL72 datasheet"),
    # HGX B200 datasheet: NVLink 5, 1.8 TB/s per GPU (SXM).
    "NVIDIA B200": Product(5, 18, "HGX B200 datasheet"),
    # H100 datasheet, SXM5 (reported as "NVIDIA H100 80GB HBM3"): NVLink 4, 900 GB/s per GPU. The
    # PCIe and NVL cards report other names and have other links (bridges, or none).
    "NVIDIA H100 80GB HBM3": Product(4, 18, "H100 SXM5 datasheet"),
    # H200 datasheet, SXM (reported as "NVIDIA H200"): NVLink 4, 900 GB/s per GPU.
    "NVIDIA H200": Product(4, 18, "H200 SXM datasheet"),
    # A100 datasheet, SXM4: NVLink 3, 600 GB/s per GPU, 12 links.
    "NVIDIA A100-SXM4-80GB": Product(3, 12, "A100 SXM4 datasheet"),
    "NVIDIA A100-SXM4-40GB": Product(3, 12, "A100 SXM4 datasheet"),
}
"""Exact product names as NVML and CUDA report them (nvidia-smi --query-gpu=name)."""


def describe_product(name: str) -> str:
    """"NVLink 4, 18 links x 25 GB/s = 450 GB/s per direction per GPU (H200 SXM datasheet)"."""
    p = PRODUCTS[name]
    return (f"NVLink {p.generation}, {p.links} links x {PER_LINK_GBPS[p.generation]:g} GB/s = {p.busbw_gbps:g} GB/s "
            f"per direction per GPU ({p.datasheet})")


@dataclass(frozen=True)
class NvLinkInfo:
    """One GPU's NVLinks as NVML (or its emulation) reported them when the runtime started."""

    product: str
    """The product name NVML reports ("NVIDIA H200"; "" where it does not)."""
    generation: int
    """The NVLink generation of the active links (0: unknown, or they differ)."""
    links: int
    """Links NVML reports a state for."""
    active: int
    """Links up."""
    to_switch: int
    """Active links whose far end is an NVSwitch (-1: NVML cannot say)."""
    source: str
    """"nvml" or "emulated"."""

    @property
    def busbw_gbps(self) -> float:
        """Generation x active links: what these links carry per direction (0 when unknown)."""
        return PER_LINK_GBPS.get(self.generation, 0.0) * self.active

    def __str__(self) -> str:
        """"NVLink 5 x 18 active links (of 18; all to NVSwitches)"."""
        gen = f"NVLink {self.generation}" if self.generation else "NVLink of unknown generation"
        far = ("; far ends unknown" if self.to_switch < 0 else "; all to NVSwitches" if self.to_switch == self.active
               else f"; {self.to_switch} to NVSwitches")
        return f"{gen} x {self.active} active links (of {self.links}{far if self.active else ''})"

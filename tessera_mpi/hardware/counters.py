"""The health counters a snapshot holds: one frozen spec per counter, read by the NVML adapter,
the emulation, the delta, the `health` check's rules and the /health tables alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["count", "state", "gauge"]
"""count: only grows (an increase is an event); state: a level now (1 = the condition holds);
gauge: a reading (temperature, power, clocks), reported, never judged."""
Rule = Literal["uncorrectable", "rate", "replay_rate", "any", "set", "link_down", "throttle", "none"]
"""How the `health` check judges a counter: `uncorrectable`: growth beyond --max-uncorrectable
(default 0); `rate`: growth per second beyond --max-link-error-rate (CRC); `replay_rate`: growth
per minute beyond --max-link-replay-rate (replay, recovery); `any`: any growth; `set`: the state
holds now; `link_down`: a link that was up at the start, or that should be up (rules.ExpectedLinks),
is down; `throttle`: the state held at the end of a fabric check; `none`: reported only."""


@dataclass(frozen=True)
class CounterSpec:
    """One health counter: its name in the tables, what it is in words, and how it is judged."""

    name: str
    kind: Kind
    what: str
    """Words for messages: "uncorrectable ECC errors (volatile)"."""
    rule: Rule = "none"
    per_link: bool = False


COUNTERS: tuple[CounterSpec, ...] = (
    CounterSpec("ecc_uncorrectable_volatile", "count", "uncorrectable ECC errors (volatile)", "uncorrectable"),
    CounterSpec("ecc_uncorrectable_aggregate", "count", "uncorrectable ECC errors (aggregate)", "uncorrectable"),
    CounterSpec("ecc_correctable_volatile", "count", "correctable ECC errors (volatile)"),
    CounterSpec("ecc_correctable_aggregate", "count", "correctable ECC errors (aggregate)"),
    CounterSpec("remap_pending", "state", "a row remap pending (reset the GPU)", "set"),
    CounterSpec("remap_failed", "state", "a row remap failed (replace the GPU)", "set"),
    CounterSpec("remapped_rows_uncorrectable", "count", "rows remapped for uncorrectable errors"),
    CounterSpec("remapped_rows_correctable", "count", "rows remapped for correctable errors"),
    CounterSpec("retired_pages_dbe", "count", "pages retired for double-bit errors"),
    CounterSpec("retired_pages_sbe", "count", "pages retired for repeated single-bit errors"),
    CounterSpec("retired_pages_pending", "state", "a page retirement pending (reset the GPU)", "set"),
    CounterSpec("xid_events", "count", "XID critical error events", "any"),
    CounterSpec("throttle_thermal", "state", "clocks held down for temperature", "throttle"),
    CounterSpec("throttle_power", "state", "clocks held down for power", "throttle"),
    CounterSpec("throttle_hw_slowdown", "state", "hardware slowdown", "throttle"),
    CounterSpec("violation_thermal_ns", "count", "nanoseconds of thermal throttling"),
    CounterSpec("violation_power_ns", "count", "nanoseconds of power throttling"),
    CounterSpec("temperature_C", "gauge", "GPU temperature (C)"),
    CounterSpec("power_W", "gauge", "power draw (W)"),
    CounterSpec("clock_sm_MHz", "gauge", "SM clock (MHz)"),
    CounterSpec("clock_mem_MHz", "gauge", "memory clock (MHz)"),
    CounterSpec("nvlink_up", "state", "NVLink up", "link_down", per_link=True),
    CounterSpec("nvlink_crc", "count", "CRC errors", "rate", per_link=True),
    CounterSpec("nvlink_replay", "count", "replay errors", "replay_rate", per_link=True),
    CounterSpec("nvlink_recovery", "count", "recovery errors (link retrained)", "replay_rate", per_link=True),
)

BY_NAME: dict[str, CounterSpec] = {c.name: c for c in COUNTERS}

THROTTLE_REASONS: dict[str, str] = {"thermal": "throttle_thermal", "power": "throttle_power",
                                    "hw_slowdown": "throttle_hw_slowdown"}
"""fault.inject(throttle_reason=...)'s reasons and the state each sets."""

DEFAULT_LINK_ERROR_RATE = 100.0
"""CRC errors per second on one link that fail `health` (--max-link-error-rate), as DCGM's NVLink
health watch judges them (DCGM_LIMIT_MAX_NVLINK_CRC_ERROR, 100 per second: "CRC errors only
matter at rates of 100+ per second")."""
DEFAULT_LINK_REPLAY_RATE = 1.0
"""Replay (or recovery) errors per minute on one link that fail `health` (--max-link-replay-rate,
each counter on its own). DCGM's health watch fails a link with one replay or recovery error in
the minute it looks at (DCGM_LIMIT_MAX_NVLINK_ERROR, 1, over its one-minute window): one per
minute is the same limit as a rate, so that a long suite is not failed by one replay an hour
while a burst (a marginal cable under load) still is."""

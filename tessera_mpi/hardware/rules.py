"""What `health` fails on: one GPU's counters from the suite's start to now, judged by the rules
of counters.COUNTERS and two limits (--max-uncorrectable, --max-link-error-rate)."""

from __future__ import annotations

from dataclasses import dataclass

from .counters import BY_NAME, COUNTERS, DEFAULT_LINK_ERROR_RATE
from .snapshot import DEVICE, Change, Snapshot, changes

FABRIC_CHECKS = ("bandwidth", "links", "bisection", "soak")
"""Checks whose figures throttling falsifies: a GPU held down during one of them fails `health`."""


@dataclass(frozen=True)
class Limits:
    max_uncorrectable: int = 0
    """Uncorrectable ECC errors a GPU may gain during the suite (and hold, volatile, at its start)."""
    max_link_error_rate: float = DEFAULT_LINK_ERROR_RATE
    """CRC errors per second one NVLink may gain (DCGM's limit; see counters.py)."""


@dataclass(frozen=True)
class Problem:
    """One reason a GPU fails `health`: the counter, the link (-1: the whole GPU), in words."""

    counter: str
    link: int
    text: str


def judge(start: Snapshot, now: Snapshot, *, limits: Limits, throttled: tuple[str, ...] = ()) -> list[Problem]:
    """Return what is wrong with a GPU that read `start` at the suite's start and `now` now.

    Fails: uncorrectable ECC errors gained beyond the limit, or volatile ones beyond it already;
    a row remap or page retirement pending or failed; a link that was up and is down, or down
    while most of the GPU's links are up (the topology's expectation, until one is given);
    CRC errors per second beyond the rate, replay or recovery errors or XID events at all;
    throttling during a fabric check (`throttled`, as the runner saw it). Problems of reading
    (permissions, a lost GPU) are the caller's: they are not counters.
    """
    found: list[Problem] = []
    seconds = max(now.taken_at - start.taken_at, 1e-3)
    for change in changes(start, now):
        problem = _judge_change(change, seconds, limits)
        if problem is not None:
            found.append(problem)
    volatile = now.get("ecc_uncorrectable_volatile")
    gained = any(p.counter == "ecc_uncorrectable_volatile" for p in found)
    if volatile is not None and volatile > limits.max_uncorrectable and not gained:
        found.append(Problem("ecc_uncorrectable_volatile", DEVICE,
                             f"{volatile:,.0f} uncorrectable ECC errors (volatile) since the driver loaded"))
    for spec in COUNTERS:
        if spec.rule == "set" and (now.get(spec.name) or 0) >= 1 and not any(p.counter == spec.name for p in found):
            found.append(Problem(spec.name, DEVICE, spec.what))
    found.extend(_links_down(start, now, found))
    found.extend(Problem("throttle", DEVICE, text) for text in throttled)
    return found


def _judge_change(change: Change, seconds: float, limits: Limits) -> Problem | None:
    spec, text = change.spec, str(change)
    if spec.rule == "uncorrectable" and change.increase > limits.max_uncorrectable:
        return Problem(spec.name, change.link, f"{text} during the suite (--max-uncorrectable {limits.max_uncorrectable})")
    if spec.rule == "rate" and change.increase / seconds > limits.max_link_error_rate:
        return Problem(spec.name, change.link, f"{text} in {seconds:.1f} s, {change.increase / seconds:,.0f} per "
                                               f"second (--max-link-error-rate {limits.max_link_error_rate:g})")
    if spec.rule == "any":
        return Problem(spec.name, change.link, f"{text} during the suite")
    if spec.rule == "set" and change.after >= 1:
        return Problem(spec.name, change.link, f"{spec.what} (since the suite started)")
    if spec.rule == "link_down" and change.after < 0.5:
        return Problem(spec.name, change.link, f"NVLink {change.link} went down during the suite")
    return None


def _links_down(start: Snapshot, now: Snapshot, found: list[Problem]) -> list[Problem]:
    """Links down now that were down from the start, while most of the GPU's links are up."""
    links = now.links()
    up = [link for link in links if (now.get("nvlink_up", link) or 0) >= 1]
    if 2 * len(up) <= len(links):
        return []
    named = {p.link for p in found if p.counter == "nvlink_up"}
    return [Problem("nvlink_up", link, f"NVLink {link} is down while {len(up)} of the GPU's {len(links)} links are up")
            for link in links if link not in up and link not in named]


def throttle_seen(check: str, after: Snapshot | None) -> list[str]:
    """Throttling that falsifies `check`'s figures: a throttle state held when it ended."""
    if after is None or check not in FABRIC_CHECKS:
        return []
    return [f"{BY_NAME[name].what} during {check}" for name in ("throttle_thermal", "throttle_power")
            if (after.get(name) or 0) >= 1]

"""What `health` fails on: one GPU's counters from the suite's start to now, judged by the rules
of counters.COUNTERS, three limits (--max-uncorrectable, --max-link-error-rate,
--max-link-replay-rate) and the links the topology says should be up (`ExpectedLinks`)."""

from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Sequence

from .counters import BY_NAME, COUNTERS, DEFAULT_LINK_ERROR_RATE, DEFAULT_LINK_REPLAY_RATE
from .nvlink import PRODUCTS
from .snapshot import DEVICE, Change, Snapshot, changes

FABRIC_CHECKS = ("bandwidth", "links", "bisection", "soak")
"""Checks whose figures throttling falsifies: a GPU held down during one of them fails `health`."""


@dataclass(frozen=True)
class Limits:
    max_uncorrectable: int = 0
    """Uncorrectable ECC errors a GPU may gain during the suite (and hold, volatile, at its start)."""
    max_link_error_rate: float = DEFAULT_LINK_ERROR_RATE
    """CRC errors per second one NVLink may gain (DCGM's limit; see counters.py)."""
    max_link_replay_rate: float = DEFAULT_LINK_REPLAY_RATE
    """Replay errors, and recovery errors, per minute one NVLink may gain (see counters.py)."""


@dataclass(frozen=True)
class ExpectedLinks:
    """The NVLinks of one GPU the topology says should be up, and who says so (for messages)."""

    links: frozenset[int]
    source: str


def from_product(product: str) -> ExpectedLinks | None:
    """Every NVLink of a product whose datasheet gives its count (nvlink.PRODUCTS): links 0..n-1."""
    known = PRODUCTS.get(product)
    if known is None:
        return None
    return ExpectedLinks(frozenset(range(known.links)), f"the {product} has {known.links} NVLinks ({known.datasheet})")


def from_peers(me: int, products: Sequence[str], up: Sequence[frozenset[int] | None],
               gpus: Sequence[str] | None = None) -> ExpectedLinks | None:
    """The links up at the suite's start on at least half of the job's other GPUs of my product.

    `products[r]` and `up[r]` are rank r's GPU's product and the links it had up at its first
    snapshot (None: not read); `gpus[r]` names the GPU (its serial), so that ranks sharing a GPU
    count it once and never as its own twin (default: one GPU per rank). Identical GPUs of one
    system are wired alike, so a link its twins have up and it has down is a fault (an unseated
    cable, a failed port), not the design. None when there is no other GPU of my product to
    compare with (one GPU alone sets no expectation)."""
    names = list(gpus) if gpus is not None else [str(r) for r in range(len(up))]
    twins = list({names[r]: links for r, links in enumerate(up)
                  if names[r] != names[me] and links is not None and products[r] == products[me]}.values())
    if not twins:
        return None
    counts: dict[int, int] = {}
    for links in twins:
        for link in links:
            counts[link] = counts.get(link, 0) + 1
    links = frozenset(link for link, n in counts.items() if 2 * n >= len(twins))
    name = products[me] or "unnamed"
    twins_are = (f"the job's other {name} GPU" if len(twins) == 1
                 else f"at least half of the job's {len(twins)} other {name} GPUs")
    return ExpectedLinks(links, f"up at the suite's start on {twins_are}")


def expected_links(me: int, products: Sequence[str], up: Sequence[frozenset[int] | None],
                   gpus: Sequence[str] | None = None) -> ExpectedLinks | None:
    """The links rank `me`'s GPU should have up: its product's NVLink count where the table names
    it exactly, else what its twins in the job have up (`from_peers`).

    Except for the job's only GPU (all its ranks share it) with no NVLink up at the start: then
    none is expected. A machine or VM lent one GPU of a board leaves its NVLinks down by design
    (their far ends are not there), and the job could not use them had they been up; a GPU that
    loses a link during the suite still fails (`judge`), and a GPU with some links up is judged
    against its product."""
    names = list(gpus) if gpus is not None else [str(r) for r in range(len(up))]
    if len(set(names)) == 1 and up[me] is not None and not up[me]:
        return ExpectedLinks(frozenset(), "the job's only GPU had no NVLink up at the suite's start, so none is "
                                          "expected (one GPU of a board: its links lead to nothing this job has)")
    return from_product(products[me]) or from_peers(me, products, up, gpus)


def links_up(shot: Snapshot | None) -> frozenset[int] | None:
    """The links a snapshot saw up (None without one, or without link states)."""
    if shot is None or not shot.links():
        return None
    return frozenset(link for link in shot.links() if (shot.get("nvlink_up", link) or 0) >= 1)


@dataclass(frozen=True)
class Problem:
    """One reason a GPU fails `health`: the counter, the link (-1: the whole GPU), in words."""

    counter: str
    link: int
    text: str


def judge(start: Snapshot, now: Snapshot, *, limits: Limits, throttled: tuple[str, ...] = (),
          expected: ExpectedLinks | None = None) -> list[Problem]:
    """Return what is wrong with a GPU that read `start` at the suite's start and `now` now.

    Fails: uncorrectable ECC errors gained beyond the limit, or volatile ones beyond it already;
    a row remap or page retirement pending or failed; a link that was up and is down, or down
    while `expected` (the topology: the product's link count, or the GPU's twins) says it should
    be up; CRC errors per second, or replay or recovery errors per minute, beyond their rates
    (a rate exactly at the limit passes); XID events at all; throttling during a fabric check
    (`throttled`, as the runner saw it). Links `now` has no state for are not judged. Problems
    of reading (permissions, a lost GPU) are the caller's: they are not counters.
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
    found.extend(_links_down(now, found, expected))
    found.extend(Problem("throttle", DEVICE, text) for text in throttled)
    return found


def _judge_change(change: Change, seconds: float, limits: Limits) -> Problem | None:
    spec, text = change.spec, str(change)
    if spec.rule == "uncorrectable" and change.increase > limits.max_uncorrectable:
        return Problem(spec.name, change.link, f"{text} during the suite (--max-uncorrectable {limits.max_uncorrectable})")
    if spec.rule == "rate" and change.increase / seconds > limits.max_link_error_rate:
        return Problem(spec.name, change.link, f"{text} in {seconds:.1f} s, {change.increase / seconds:,.0f} per "
                                               f"second (--max-link-error-rate {limits.max_link_error_rate:g})")
    per_minute = 60.0 * change.increase / seconds
    if spec.rule == "replay_rate" and per_minute > limits.max_link_replay_rate:
        return Problem(spec.name, change.link, f"{text} in {seconds:.1f} s, {_rate(per_minute)} per minute "
                                               f"(--max-link-replay-rate {limits.max_link_replay_rate:g})")
    if spec.rule == "any":
        return Problem(spec.name, change.link, f"{text} during the suite")
    if spec.rule == "set" and change.after >= 1:
        return Problem(spec.name, change.link, f"{spec.what} (since the suite started)")
    if spec.rule == "link_down" and change.after < 0.5:
        return Problem(spec.name, change.link, f"NVLink {change.link} went down during the suite")
    return None


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _links_down(now: Snapshot, found: list[Problem], expected: ExpectedLinks | None) -> list[Problem]:
    """Links down now that should be up, not already named (as gone down during the suite)."""
    if expected is None:
        return []
    named = {p.link for p in found if p.counter == "nvlink_up"}
    return [Problem("nvlink_up", link, f"NVLink {link} is down and should be up ({expected.source})")
            for link in now.links() if link in expected.links and link not in named
            and (now.get("nvlink_up", link) or 0) < 1]


def throttle_seen(check: str, after: Snapshot | None) -> list[str]:
    """Throttling that falsifies `check`'s figures: a throttle state held when it ended."""
    if after is None or check not in FABRIC_CHECKS:
        return []
    return [f"{BY_NAME[name].what} during {check}" for name in ("throttle_thermal", "throttle_power")
            if (after.get(name) or 0) >= 1]

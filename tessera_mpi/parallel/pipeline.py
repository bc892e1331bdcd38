"""Pipeline schedules over the pp axis: 1F1B programs, their deadlock check, and running one.

A program is one stage's ordered list of actions for one training step. Sends and receives are
blocking and matched by tag, and an MPI send may wait until its receive is posted (large
messages always do), so a schedule is safe only if it finishes when every send waits for its
receive. `check_schedule` proves that by running all stages' programs under exactly that rule
before a single message is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import ScheduleError

ActionKind = Literal["recv_activation", "forward", "send_activation", "recv_gradient", "backward", "send_gradient"]
ACTION_KINDS: tuple[str, ...] = ("recv_activation", "forward", "send_activation",
                                 "recv_gradient", "backward", "send_gradient")
_PEER = {"send_activation": (1, "recv_activation"), "recv_activation": (-1, "send_activation"),
         "send_gradient": (-1, "recv_gradient"), "recv_gradient": (1, "send_gradient")}
"""For each communication: the stage offset of its partner and the partner's matching action."""


@dataclass(frozen=True)
class Action:
    """One step of a stage's program, on micro-batch `micro_batch`."""

    kind: ActionKind
    micro_batch: int

    def __str__(self) -> str:
        return f"{self.kind}({self.micro_batch})"


def one_f_one_b(stages: int, micro_batches: int, *, stage: int) -> tuple[Action, ...]:
    """Return stage `stage`'s 1F1B program: `stages - stage - 1` warm-up forwards, then one
    forward and one backward in turn, then the remaining backwards.

    At most `stages - stage` micro-batches are in flight on a stage (GPipe keeps all of them).
    In the steady phase a stage receives the gradient of its oldest micro-batch before it sends
    its newest activation, because the next stage sends that gradient before it receives this
    activation; the plain order (send, then receive) deadlocks once sends wait for receives.
    """
    if stages < 1 or micro_batches < 1 or not 0 <= stage < stages:
        raise ScheduleError(f"no 1F1B program for stage {stage} of {stages} with {micro_batches} micro-batches")
    first, last = stage == 0, stage == stages - 1
    program: list[Action] = []

    def add(kind: ActionKind, m: int, *, when: bool = True) -> None:
        if when:
            program.append(Action(kind, m))

    def forward(m: int) -> None:
        add("recv_activation", m, when=not first)
        add("forward", m)

    def backward(m: int) -> None:
        add("backward", m)
        add("send_gradient", m, when=not first)

    warmup = min(stages - stage - 1, micro_batches)
    for m in range(warmup):
        forward(m)
        add("send_activation", m, when=not last)
    for oldest in range(micro_batches - warmup):
        newest = warmup + oldest
        forward(newest)
        add("recv_gradient", oldest, when=not last)
        add("send_activation", newest, when=not last)
        backward(oldest)
    for m in range(micro_batches - warmup, micro_batches):
        add("recv_gradient", m, when=not last)
        backward(m)
    return tuple(program)


def _check_order(programs: Sequence[Sequence[Action]], micro_batches: int) -> None:
    stages = len(programs)
    for s, program in enumerate(programs):
        want = {"forward", "backward"}
        want |= {"recv_activation", "send_gradient"} if s > 0 else set()
        want |= {"send_activation", "recv_gradient"} if s < stages - 1 else set()
        position = {}
        for i, a in enumerate(program):
            if a.kind not in want or not 0 <= a.micro_batch < micro_batches or (a.kind, a.micro_batch) in position:
                raise ScheduleError(f"stage {s}: unexpected or repeated action {a} at position {i}")
            position[(a.kind, a.micro_batch)] = i
        for m in range(micro_batches):
            missing = [k for k in sorted(want) if (k, m) not in position]
            if missing:
                raise ScheduleError(f"stage {s}: micro-batch {m} lacks {', '.join(missing)}")
            order = [k for k in ACTION_KINDS if k in want]
            at = [position[(k, m)] for k in order]
            if at != sorted(at):
                raise ScheduleError(f"stage {s}: micro-batch {m} runs {', '.join(order)} out of order")


def check_schedule(programs: Sequence[Sequence[Action]], micro_batches: int) -> None:
    """Raise ScheduleError unless the stages' programs are complete and cannot deadlock.

    Complete: every stage runs each micro-batch's receive, forward, send, receive, backward and
    send once, in that order (without the receives and sends a first or last stage does not
    have). Deadlock-free: run together with every send and receive blocking until its partner
    reaches the matching action, all programs finish.
    """
    _check_order(programs, micro_batches)
    at = [0] * len(programs)

    def current(s: int) -> Action | None:
        return programs[s][at[s]] if at[s] < len(programs[s]) else None

    while any(a is not None for a in map(current, range(len(programs)))):
        moved = False
        for s in range(len(programs)):
            a = current(s)
            if a is None:
                continue
            if a.kind in ("forward", "backward"):
                at[s] += 1
                moved = True
                continue
            offset, match = _PEER[a.kind]
            partner = current(s + offset)
            if partner == Action(match, a.micro_batch):  # type: ignore[arg-type]
                at[s] += 1
                at[s + offset] += 1
                moved = True
        if not moved:
            waits = "; ".join(f"stage {s} at {current(s)}" for s in range(len(programs)) if current(s))
            raise ScheduleError(f"the pipeline schedule deadlocks: {waits}")


def in_flight(program: Sequence[Action]) -> int:
    """Return the most micro-batches a program holds activations for at once."""
    held = peak = 0
    for a in program:
        held += (a.kind == "forward") - (a.kind == "backward")
        peak = max(peak, held)
    return peak


def run_program(program: Sequence[Action], handlers: Mapping[str, Callable[[int], None]]) -> None:
    """Run a stage's program, calling `handlers[action.kind](micro_batch)` for each action."""
    for a in program:
        handlers[a.kind](a.micro_batch)

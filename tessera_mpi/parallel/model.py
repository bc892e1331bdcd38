"""The model under test: a stack of transformer-style MLP blocks, its data, loss and block math.

A block is `y = x + gelu(x @ w1 + b1) @ w2 + b2` (GELU in its tanh form); the loss is
`0.5 * mean((y_last - target) ** 2)` over the global batch. The second layer starts scaled
by 1/sqrt(d_ff * blocks), so the residual stream stays of order one however deep the stack. The math is written once,
on shards: with the whole block it is the single-process reference, with a column block of
`w1`/`b1` and the matching row block of `w2` it is one tensor-parallel rank's part. Every
function takes the array namespace `xp` (NumPy or CuPy) and works in the arrays' dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelSpecError

GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715
INIT_BIAS_SCALE = 0.1


@dataclass(frozen=True)
class ModelSpec:
    """Sizes, seed and learning rate of the model; everything else follows from them."""

    d_model: int
    d_ff: int
    blocks: int
    seed: int
    lr: float

    def __post_init__(self) -> None:
        for name in ("d_model", "d_ff", "blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelSpecError(f"ModelSpec.{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ModelSpecError(f"ModelSpec.lr must be positive, got {self.lr!r}")


@dataclass
class BlockParams:
    """The parameters of one block (or one rank's shard of them): w1 (d_model, d_ff),
    b1 (d_ff), w2 (d_ff, d_model), b2 (d_model)."""

    w1: Any
    b1: Any
    w2: Any
    b2: Any

    def arrays(self) -> tuple[Any, Any, Any, Any]:
        return self.w1, self.b1, self.w2, self.b2


def init_block(spec: ModelSpec, block: int) -> BlockParams:
    """Return block `block`'s initial parameters as float32 values held in float64 NumPy arrays.

    Each block has its own generator, so a pipeline stage builds its blocks without the others.
    The values are float32 numbers, so a float32 copy starts from exactly the reference's weights.
    """
    rng = np.random.default_rng([spec.seed, block])

    def draw(shape: tuple[int, ...], scale: float) -> np.ndarray:
        return (rng.normal(size=shape) * scale).astype(np.float32).astype(np.float64)

    return BlockParams(
        w1=draw((spec.d_model, spec.d_ff), 1.0 / math.sqrt(spec.d_model)),
        b1=draw((spec.d_ff,), INIT_BIAS_SCALE),
        w2=draw((spec.d_ff, spec.d_model), 1.0 / math.sqrt(spec.d_ff * spec.blocks)),
        b2=draw((spec.d_model,), INIT_BIAS_SCALE),
    )


def make_batch(spec: ModelSpec, step: int, *, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (inputs, targets) of training step `step`: `samples` rows of d_model float32
    values held in float64, the same on every rank that asks."""
    rng = np.random.default_rng([spec.seed, 1 << 20, step])
    inputs = rng.normal(size=(samples, spec.d_model)).astype(np.float32).astype(np.float64)
    targets = rng.normal(size=(samples, spec.d_model)).astype(np.float32).astype(np.float64)
    return inputs, targets


def gelu(h: Any, *, xp: Any) -> Any:
    """GELU, tanh form."""
    return 0.5 * h * (1.0 + xp.tanh(GELU_C * (h + GELU_A * h * h * h)))


def gelu_grad(h: Any, *, xp: Any) -> Any:
    """d gelu(h) / dh."""
    t = xp.tanh(GELU_C * (h + GELU_A * h * h * h))
    return 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * h * h)


@dataclass
class BlockCache:
    """What the backward pass of one block needs from its forward pass."""

    x: Any
    h: Any
    a: Any


def block_partial(p: BlockParams, x: Any, *, xp: Any) -> tuple[Any, BlockCache]:
    """Return this shard's contribution `gelu(x @ w1 + b1) @ w2` to the block's output
    (the sum over the shards of the d_ff columns is the whole block's), and the cache."""
    h = x @ p.w1 + p.b1
    a = gelu(h, xp=xp)
    return a @ p.w2, BlockCache(x=x, h=h, a=a)


def block_output(x: Any, summed_partial: Any, *, b2: Any) -> Any:
    """Return the block output from its input and the partials summed over the shards."""
    return x + summed_partial + b2


def block_backward(p: BlockParams, cache: BlockCache, *, dy: Any, xp: Any) -> tuple[Any, BlockParams]:
    """Return (this shard's part of d loss / d x through the MLP, this shard's gradients).

    The whole d loss / d x is dy (the residual path) plus the sum of the parts over the
    shards. The b2 gradient is the same on every shard.
    """
    dh = (dy @ p.w2.T) * gelu_grad(cache.h, xp=xp)
    grads = BlockParams(w1=cache.x.T @ dh, b1=dh.sum(axis=0), w2=cache.a.T @ dy, b2=dy.sum(axis=0))
    return dh @ p.w1.T, grads


def loss_and_grad(y: Any, targets: Any, *, samples: int) -> tuple[Any, Any]:
    """Return (this micro-batch's share of the loss, d loss / d y) for a global batch of
    `samples` samples, so the shares of all micro-batches add up to the loss."""
    diff = y - targets
    count = samples * y.shape[1]
    return 0.5 * (diff * diff).sum() / count, diff / count


def sgd(params: BlockParams, grads: BlockParams, *, lr: float) -> BlockParams:
    """Return params - lr * grads."""
    return BlockParams(*(w - lr * g for w, g in zip(params.arrays(), grads.arrays())))

"""Slowly-changing regression (the bit-flipping problem) of Dohare et al. (2024).

Input: m bits. The first f are *flipping* bits, constant for T steps; the other m − f are
i.i.d. uniform every step. Every T steps (at steps T, 2T, …) the flipping bits change:
``flip_one=True`` flips one of them chosen uniformly (the paper's text);
``flip_one=False`` redraws all f uniformly (the official code's default).

Target: a fixed network m → H → 1 of linear threshold units (LTUs), every weight and bias
uniformly ±1. Hidden unit i outputs φ_i = 1 when its pre-activation Σ_j w_ji x_j + b_i
exceeds θ_i = β·(m + 1) − S_i, else 0. Two readings of S_i and of the output exist
(``target``):

- ``"official"`` (default; what produced the published curves): the official code's
  ``FixLTUNet`` (``lop/nets/fix_ltu_net.py``, ``__init__``: ``S = (num_inputs −
  sum(weights) + bias) / 2``; ``nn.Linear(num_features, 1, bias=True)`` with its bias drawn
  from {−1, +1}). So S_i = (m − Σ_j w_ji + b_i) / 2 = #negative input weights + b_i / 2,
  and y = Σ_i v_i φ_i + c with an output bias c = ±1.
- ``"paper_text"``: the paper's Methods wording read literally: S_i = the number of
  negative weights among the m input weights and the bias, and y = Σ_i v_i φ_i with no
  output bias. Against the official thresholds, its are ½ higher for units with b_i = +1
  and 1½ lower for units with b_i = −1; the learner's errors are about half higher
  (docs/benchmarks.md, the ``scr_targets`` figure).

References:
  Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton. Loss of plasticity in deep
  continual learning. Nature 632, 768–774 (2024), Methods "Slowly-changing regression";
  official code, ``lop/nets/fix_ltu_net.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.streams._base import Block, Stream

TARGETS = ("official", "paper_text")


@dataclasses.dataclass(frozen=True)
class SCRStreamConfig:
    """Slowly-changing regression; defaults are the paper's (Dohare et al. 2024)."""

    num_bits: int = field(20, "m: input bits", positive=True)
    flipping_bits: int = field(15, "f: slowly-changing bits (the first f inputs)", positive=True)
    flip_period: int = field(10_000, "T: steps between changes of the flipping bits", positive=True)
    flip_one: bool = field(False, "flip one bit per change (paper text) instead of redrawing all")
    target_hidden: int = field(100, "LTUs in the target network", positive=True)
    beta: float = field(0.7, "β of the LTU thresholds θ_i = β(m+1) − S_i", unit_interval=True)
    target: str = field(
        "official",
        "LTU target: official (S_i = (m − Σw + b)/2, output bias ±1: the official code) or "
        "paper_text (S_i = #negative weights and bias, no output bias)",
        choices=TARGETS,
    )
    batch_size: int = field(1, "examples per step", positive=True)

    def check(self) -> None:
        if self.flipping_bits > self.num_bits:
            raise ConfigError(
                f"flipping_bits ({self.flipping_bits}) cannot exceed num_bits ({self.num_bits})"
            )


def _signs(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(jnp.float32)


def ltu_thresholds(w: jax.Array, b: jax.Array, beta: float, target: str = "official") -> jax.Array:
    """θ_i = β·(m+1) − S_i for ±1 weights ``w: [m, H]`` and biases ``b: [H]``.

    ``target="official"``: S_i = (m − Σ_j w_ji + b_i) / 2 (``lop/nets/fix_ltu_net.py``);
    ``"paper_text"``: S_i = #negative entries among w[:, i] and b_i.
    """
    m = w.shape[0]
    if target == "official":
        s = (m - jnp.sum(w, axis=0) + b) / 2
    elif target == "paper_text":
        s = (jnp.sum(w < 0, axis=0) + (b < 0)).astype(jnp.float32)
    else:
        raise ConfigError(f"unknown LTU target {target!r}; allowed: {', '.join(TARGETS)}")
    return beta * (m + 1) - s.astype(jnp.float32)


def ltu_target(target: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """The target network's output Σ_i v_i φ_i + c. x: ``[..., m]`` bits → ``[..., 1]``.

    ``target`` holds ``w [m, H]``, ``b [H]``, ``theta [H]``, ``v [H]`` and the output bias
    ``c`` (a scalar; 0 for the ``paper_text`` target).
    """
    phi = (x @ target["w"] + target["b"] > target["theta"]).astype(jnp.float32)
    return phi @ target["v"][:, None] + target["c"]


class SlowlyChangingRegression(Stream):
    """The stream of :class:`SCRStreamConfig` (see the module docstring)."""

    def __init__(self, config: SCRStreamConfig):
        self.config = config
        self.batch_size = config.batch_size

    def __hash__(self) -> int:
        return hash(self.config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SlowlyChangingRegression) and other.config == self.config

    def init(self, key: jax.Array) -> dict[str, Any]:
        c = self.config
        kw, kb, kv, kbits = jax.random.split(key, 4)
        w = _signs(kw, (c.num_bits, c.target_hidden))
        b = _signs(kb, (c.target_hidden,))
        # The output bias has its own key (folded in), so the paper_text target's draws are
        # the same as before the official target existed.
        output_bias = _signs(jax.random.fold_in(key, 4), ())
        target = {
            "w": w,
            "b": b,
            "v": _signs(kv, (c.target_hidden,)),
            "theta": ltu_thresholds(w, b, c.beta, c.target),
            "c": output_bias if c.target == "official" else jnp.zeros((), jnp.float32),
        }
        bits = jax.random.bernoulli(kbits, 0.5, (c.flipping_bits,)).astype(jnp.float32)
        return {"target": target, "bits": bits}

    def flip_states(
        self, bits: jax.Array, key: jax.Array, start: jax.Array, n: int
    ) -> tuple[jax.Array, jax.Array]:
        """The flipping bits of steps start … start+n−1, given ``bits`` before ``start``, as
        ``(states [C+1, f], index [n])``: step t has ``states[index[t]]``; ``states[0]`` is
        ``bits`` and ``states[c]`` the bits after the c-th change in the block.

        A change happens at every step t > 0 with t mod T = 0, so a block holds at most
        C = ⌊n / T⌋ + 1 of them; one draw is made per possible change (a bit index, or f
        fresh bits), not one per step.
        """
        c = self.config
        steps = start + jnp.arange(n)
        change = (steps % c.flip_period == 0) & (steps > 0)
        index = jnp.cumsum(change.astype(jnp.int32))  # changes so far in this block, at t
        most = n // c.flip_period + 1
        if c.flip_one:
            which = jax.random.randint(key, (most,), 0, c.flipping_bits)
            flips = jax.nn.one_hot(which, c.flipping_bits, dtype=jnp.int32)
            parity = (jnp.cumsum(flips, axis=0) % 2).astype(jnp.float32)
            after = jnp.abs(bits[None, :] - parity)
        else:
            after = jax.random.bernoulli(key, 0.5, (most, c.flipping_bits)).astype(jnp.float32)
        return jnp.concatenate([bits[None, :], after]), index

    def _free(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """``shape + [m − f]`` fresh i.i.d. bits (uint32 0/1): the bits of uniform 32-bit
        words, one word per 32 free bits (the same distribution as one draw per bit)."""
        free_bits = self.config.num_bits - self.config.flipping_bits
        words = jax.random.bits(key, (*shape, -(-free_bits // 32)), jnp.uint32)
        j = jnp.arange(free_bits, dtype=jnp.uint32)
        return (words[..., j // 32] >> (j % 32)) & jnp.uint32(1)

    def _inputs(self, flipping: jax.Array, free: jax.Array) -> jax.Array:
        """[n, f] flipping bits and [n, batch, m − f] free bits → [n, batch, m] inputs."""
        n, batch = free.shape[:2]
        fixed = jnp.broadcast_to(flipping[:, None, :], (n, batch, self.config.flipping_bits))
        return jnp.concatenate([fixed, free.astype(jnp.float32)], axis=-1)

    def block(
        self, state: dict[str, Any], key: jax.Array, start: jax.Array, n: int
    ) -> tuple[dict[str, Any], Block]:
        c = self.config
        k_flip, k_free = jax.random.split(key)
        states, index = self.flip_states(state["bits"], k_flip, start, n)
        free = self._free(k_free, (n, self.batch_size))
        x = self._inputs(states[index], free)
        y = self._targets(state["target"], states, index, free, x)
        task = (start + jnp.arange(n)) // c.flip_period
        return {**state, "bits": states[index[-1]]}, Block(x, y, task)

    def _targets(self, target, states, index, free, x) -> jax.Array:
        """``ltu_target(target, x)``, exactly, from tables when the free bits are few.

        Every pre-activation is a sum of ±1 weights over 0/1 inputs plus a ±1 bias: an
        integer, exact in float32 however it is summed. So with F = m − f ≤ 8 free bits the
        output is read from a table ``[C+1 flip states, 2^F free-bit codes]`` built once per
        block, instead of an m × H product per step (the product dominated the run time).
        """
        c = self.config
        free_bits = c.num_bits - c.flipping_bits
        if free_bits > 8:
            return ltu_target(target, x)
        codes = jnp.arange(2**free_bits, dtype=jnp.uint32)
        code_bits = ((codes[:, None] >> jnp.arange(free_bits, dtype=jnp.uint32)) & 1).astype(
            jnp.float32
        )
        w = target["w"]
        pre = (states @ w[: c.flipping_bits])[:, None, :] + (code_bits @ w[c.flipping_bits :])
        phi = (pre + target["b"] > target["theta"]).astype(jnp.float32)  # [C+1, 2^F, H]
        table = phi @ target["v"] + target["c"]  # [C+1, 2^F]
        code = jnp.sum(free << jnp.arange(free_bits, dtype=jnp.uint32), axis=-1)  # [n, batch]
        return table[index[:, None], code][..., None]

    def probe(
        self, state: dict[str, Any], key: jax.Array, size: int
    ) -> tuple[jax.Array, jax.Array]:
        """``([size, m], [size, 1])``: inputs of the current task (current flipping bits,
        fresh free bits) and their targets."""
        x = self._inputs(state["bits"][None, :], self._free(key, (1, size)))[0]
        return x, ltu_target(state["target"], x)

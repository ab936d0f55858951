"""Plasticity injection: at injection time the head becomes h(z) + g_φ(z) − g_φ₀(z).

The network's last ``head_layers`` layers are its head h, reading the features z of the
layer before them (the input itself when the head is the whole network). At an injection
a fresh head g of the same shape is drawn; φ (trained) and φ₀ (frozen) start equal, so
the output is unchanged at the injection, and from then on the old head h is frozen (its
parameters no longer change) while g_φ learns; the layers below the head keep learning
through both heads. Up to ``injections`` injections happen, after updates N, 2N, … (N =
``inject_every``); the i-th adds the i-th pair (φ_i, φ₀_i).

Static shapes: the pairs are pre-allocated in the params (``inject/i``, ``inject0/i``);
before its injection a pair has φ_i = φ₀_i bit for bit and never moves, so its two heads
cancel exactly (their difference and its gradient are 0). The freezing is an ``update``
part that zeroes the final update of h (after the first injection), of every φ₀_i and of
every φ_i not yet injected; list ``plasticity_injection`` after remedies whose update
parts must not move those parameters (``l2_decoupled``, ``shrink_perturb``). At an
injection the pair's optimizer moments are zeroed (its φ_i starts fresh, as a new
optimizer parameter group would).

Scope: MLP networks (``scr``, ``permuted``, ``warmstart``); other networks are refused.

Where lopkit chooses: Nikishin et al. write the new output with a stop-gradient on the
frozen copy's output; here g_φ₀'s parameters are frozen but the gradient with respect to
z flows through both copies (before an injection the two paths cancel exactly; after it
the encoder learns from g_φ(z) − g_φ₀(z)).

References:
  Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney & Barreto. Deep reinforcement learning
  with plasticity injection. NeurIPS 2023, §3 (h'(x) = h_θ(x) + h_θ'(x) − h_θ'₀(x), θ
  frozen, θ' and θ'₀ initialized identically, θ'₀ frozen).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Parts, Remedy, UnitRule
from lopkit.methods._resets import replace_layer_everywhere
from lopkit.nets._base import Network
from lopkit.nets._mlp import MLP


@dataclasses.dataclass(frozen=True)
class PlasticityInjectionConfig:
    """Plasticity injection (Nikishin et al. 2023): one injection of a two-layer head."""

    inject_every: int = field(100_000, "N: an injection after updates N, 2N, …", positive=True)
    injections: int = field(1, "how many injections (pre-allocated heads)", positive=True)
    head_layers: int = field(2, "layers of the head (the last ones of the network)",
                             positive=True)  # fmt: skip


class InjectedMLP(Network):
    """An MLP with ``n`` pre-allocated injected heads of its last ``k`` layers."""

    def __init__(self, base: MLP, k: int, n: int):
        self.base, self.k, self.n = base, k, n
        self.config = base.config
        self.names = base.names
        self.bounds = base.bounds
        self.unit_layers = base.unit_layers
        self.output_layer = base.output_layer
        c = base.config
        sizes = tuple(c.sizes)
        below = len(sizes) - 1 - k  # index of the layer whose features the head reads
        features = sizes[below] * (2 if c.crelu and below > 0 else 1)
        self.head = MLP(dataclasses.replace(c, sizes=(features, *sizes[below + 1 :]),
                                            dropout=0.0, zero_inputs=0))  # fmt: skip

    def __hash__(self) -> int:
        return hash((self.base.config, self.k, self.n))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InjectedMLP) and (other.base.config, other.k, other.n) == (
            self.base.config, self.k, self.n)  # fmt: skip

    def init_layer(self, key: jax.Array, index: int):
        return self.base.init_layer(key, index)

    def init(self, key: jax.Array) -> dict[str, Any]:
        params = self.base.init(key)
        for i in range(self.n):
            g = self.head.init(jax.random.fold_in(key, 0x1A0 + i))
            params[f"inject/{i}"] = g
            params[f"inject0/{i}"] = jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), g)
        return params

    def _run(self, forward, params, x, key):
        base = {name: params[name] for name in self.base_keys(params)}
        out, trace = forward(base, x, key)
        z = x if self.k == len(self.names) else trace.hidden[-self.k]
        for i in range(self.n):
            out = out + (
                self.head.apply(params[f"inject/{i}"], z)[0]
                - self.head.apply(params[f"inject0/{i}"], z)[0]
            )
        return out, trace

    @staticmethod
    def base_keys(params) -> list[str]:
        return [k for k in params if not k.startswith("inject")]

    def apply(self, params, x, key=None):
        return self._run(self.base.apply, params, x, key)

    def train_apply(self, params, x, key=None):
        return self._run(self.base.train_apply, params, x, key)


def _build(config: PlasticityInjectionConfig, ctx: Context) -> Parts:
    net = ctx.net
    base = net.base if isinstance(net, InjectedMLP) else net
    if not isinstance(base, MLP):
        raise ConfigError(
            "plasticity_injection adds heads to an MLP (scr, permuted, warmstart); this "
            f"benchmark's network is a {type(base).__name__} (conv nets and the agents' "
            "networks are not supported)"
        )
    layers = len(base.names)
    if config.head_layers > layers:
        raise ConfigError(
            f"plasticity_injection.head_layers is {config.head_layers}, but the network has "
            f"only {layers} layers (its hidden layers and the output layer)"
        )
    n, every, k = config.injections, config.inject_every, config.head_layers
    head_names = tuple(base.names[-k:])
    wrapped = InjectedMLP(base, k, n)

    def wrap(network):
        return network if isinstance(network, InjectedMLP) else InjectedMLP(network, k, n)

    def frozen(step):
        """{param key: whether its update is zeroed} at global step ``step``."""
        done = jnp.minimum(step // every, n)
        out = {name: done >= 1 for name in head_names}
        for i in range(n):
            out[f"inject/{i}"] = done <= i
            out[f"inject0/{i}"] = jnp.asarray(True)
        return out

    def mask_update(updates, state, params=None, *, step=None, **extra):
        if step is None:
            raise ValueError("plasticity_injection needs the global step (extra argument)")
        masks = frozen(step)
        out = {
            key: jax.tree_util.tree_map(lambda u, m=masks[key]: jnp.where(m, 0.0, u), value)
            if key in masks else value
            for key, value in updates.items()
        }  # fmt: skip
        return out, state

    def inject(state, params, opt_state, trace, key, step):
        def injection(j):
            def event(carry):  # pair j: a fresh head, φ_j = φ₀_j, its moments 0
                p, o = carry
                fresh = wrapped.head.init(jax.random.fold_in(key, j))
                for name in (f"inject/{j}", f"inject0/{j}"):
                    p, o = replace_layer_everywhere(p, o, name, fresh)
                return p, o

            return event

        def event(carry):
            i = jnp.clip((step + 1) // every - 1, 0, n - 1)  # the pair injected now
            return jax.lax.switch(i, [injection(j) for j in range(n)], carry)

        due = ((step + 1) % every == 0) & ((step + 1) // every <= n)
        # ``step`` is the same for every seed: a real branch even under vmap
        params, opt_state = jax.lax.cond(due, event, lambda c: c, (params, opt_state))
        return state, params, opt_state

    return Parts(
        network=wrap,
        update=optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), mask_update),
        unit_rule=UnitRule(lambda p: (), inject),
    )


PLASTICITY_INJECTION = Remedy(
    name="plasticity_injection",
    summary="at injection: head h(z) + g_φ(z) − g_φ₀(z), h and φ₀ frozen, output unchanged",
    source="Nikishin et al. 2023 (NeurIPS), plasticity injection",
    config=PlasticityInjectionConfig,
    build=_build,
    parts=("network", "update", "unit_rule"),
)

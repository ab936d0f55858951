"""An agent's networks: separate policy and value MLPs as one network with explicit units.

Parameters are one flat dict whose layer names carry the network's name::

    {"policy/hidden_0": {"w", "b"}, …, "policy/output": {"w": [h, A], "b": [A]},
     "value/hidden_0": {"w", "b"}, …, "value/output": {"w": [h, 1], "b": [1]},
     "log_std": [A]}            # Gaussian policies only: state-independent, learned
    (with ``input_scale``: also "policy/hidden_0" and "value/hidden_0" hold "input_scale": [])

Every hidden layer of both networks is a :class:`lopkit.nets.UnitLayer` (``policy/hidden_0``,
``value/hidden_1``, …), so unit rules (CBP, ReDo, SNR) and probes reach the units of both
networks by name, without knowing that there are two. Each network is a
:class:`lopkit.nets.MLP` (so LayerNorm, CReLU, deep Fourier features and dropout apply to
both); the official PPO initialization is LeCun-uniform weights, zero biases, log-std 0
(docs/design.md §13).
``zero_inputs`` gives both networks' first layers rows for inputs that are always 0 after
the observation (:class:`lopkit.nets.MLPConfig`; the official Ant's 84 contact forces).

``torso="conv"``: each network is MinAtar's instead (Young & Tian 2019: conv 16 × 3×3
stride 1 unpadded, ReLU, then the fc hidden layers; :class:`lopkit.rl.QNetwork` without its
``q/`` prefix), reading the flat observation as an ``input_shape`` image; its conv channels
are the units ``policy/hidden_0`` and ``value/hidden_0``, its fc layers ``…/hidden_1``, ….

``apply(params, obs)`` → ``({"policy": [B, A] mean or logits, "log_std": [A], "value": [B]},
Trace)``; the trace lists the policy's hidden layers, then the value network's.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.nets._activations import ACTIVATIONS
from lopkit.nets._base import Network
from lopkit.nets._mlp import MLP, MLPConfig, Trace
from lopkit.nets._units import UnitLayer

NETS = ("policy", "value")


@dataclasses.dataclass(frozen=True)
class ActorCriticConfig:
    """Separate policy and value MLPs of the same hidden widths (Dohare et al. 2024, PPO)."""

    observations: int = field(4, "observation size", positive=True)
    zero_inputs: int = field(
        0, "always-zero inputs after the observation (first-layer rows, never multiplied)",
        nonnegative=True,
    )  # fmt: skip
    actions: int = field(
        2, "action dims (continuous) or number of actions (discrete)", positive=True
    )
    discrete: bool = field(True, "categorical policy over actions (else Gaussian)")
    hidden: tuple[int, ...] = field((256, 256), "hidden widths of each network", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    init: str = field("lecun", "weight init (see MLPConfig.init)", choices=("kaiming", "lecun"))
    log_std_init: float = field(0.0, "initial log-std of the Gaussian policy")
    layernorm: bool = field(False, "LayerNorm before each hidden activation")
    crelu: bool = field(False, "concatenated ReLU")
    fourier: bool = field(False, "deep Fourier features [sin(z), cos(z)]")
    diagonal: bool = field(False, "a learned per-unit scale and offset before each activation")
    input_scale: bool = field(False, "a learned scalar on each network's input (init 1)")
    dropout: float = field(0.0, "dropout rate on hidden features in training", open_unit=True)
    torso: str = field(
        "mlp", "mlp, or conv (MinAtar's conv layer before each network's MLP)",
        choices=("mlp", "conv"),
    )  # fmt: skip
    input_shape: tuple[int, ...] = field(
        (), "the observation as an image (H, W, C) for torso=conv", positive=True,
        may_be_empty=True,
    )  # fmt: skip
    channels: int = field(16, "conv channels (torso=conv)", positive=True)


def _conv_net(config: ActorCriticConfig, outputs: int) -> Network:
    from lopkit.rl._dqn import QNetwork, QNetworkConfig

    c = config
    for name in ("layernorm", "crelu", "fourier", "diagonal"):
        if getattr(c, name):
            raise ConfigError(
                f"{name} acts on MLP agents only here; use torso=mlp (the conv torso has no "
                f"{name} variant)"
            )
    if c.zero_inputs or len(c.input_shape) != 3 or math.prod(c.input_shape) != c.observations:
        raise ConfigError(
            f"torso=conv reads the {c.observations} observations as an image; input_shape "
            f"{c.input_shape} must be (H, W, C) with H·W·C = {c.observations}"
        )
    q = QNetworkConfig(
        input_shape=c.input_shape, actions=outputs, torso="conv", channels=c.channels,
        hidden=c.hidden, activation=c.activation, init=c.init, dropout=c.dropout,
    )  # fmt: skip
    q.check()
    return QNetwork(q, prefix="")


class ActorCritic(Network):
    """Policy and value MLPs as one network. Hashable by its config (static in jit)."""

    def __init__(self, config: ActorCriticConfig):
        self.config = config
        common = {
            "activation": config.activation,
            "layernorm": config.layernorm,
            "crelu": config.crelu,
            "fourier": config.fourier,
            "diagonal": config.diagonal,
            "input_scale": config.input_scale,
            "dropout": config.dropout,
            "init": config.init,
            "zero_inputs": config.zero_inputs,
        }
        sizes = {"policy": config.actions, "value": 1}
        if config.torso == "conv":
            self.nets = {name: _conv_net(config, sizes[name]) for name in NETS}
        else:
            self.nets = {
                name: MLP(
                    MLPConfig(sizes=(config.observations, *config.hidden, sizes[name]), **common)
                )
                for name in NETS
            }
        self.names = [f"{n}/{layer}" for n in NETS for layer in self.nets[n].names]
        self.bounds = [b for n in NETS for b in self.nets[n].bounds]
        self.unit_layers = tuple(
            UnitLayer(
                name=f"{n}/{u.name}",
                units=u.units,
                incoming=(f"{n}/{u.incoming[0]}", *u.incoming[1:]),
                bias=(f"{n}/{u.bias[0]}", *u.bias[1:]),
                outgoing=(f"{n}/{u.outgoing[0]}", *u.outgoing[1:]),
                init_bound=u.init_bound,
                extra=tuple((f"{n}/{p[0]}", *p[1:]) for p in u.extra),
                extra_reset=u.extra_reset,
                out_group=u.out_group,
                out_axis=u.out_axis,
            )
            for n in NETS
            for u in self.nets[n].unit_layers
        )

    def __hash__(self) -> int:
        return hash(self.config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorCritic) and other.config == self.config

    # An agent has two output layers; remedies that act on "the" output layer refuse it.
    output_layer = None

    def _split(self, params: dict[str, Any], net: str) -> dict[str, Any]:
        prefix = f"{net}/"
        return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}

    def init_layer(self, key: jax.Array, index: int) -> dict[str, jax.Array]:
        """Fresh parameters of layer ``self.names[index]``."""
        net, _, layer = self.names[index].partition("/")
        return self.nets[net].init_layer(key, self.nets[net].names.index(layer))

    def init(self, key: jax.Array) -> dict[str, Any]:
        keys = dict(zip(NETS, jax.random.split(key, len(NETS)), strict=True))
        params = {f"{n}/{k}": v for n in NETS for k, v in self.nets[n].init(keys[n]).items()}
        if not self.config.discrete:
            params["log_std"] = jnp.full((self.config.actions,), self.config.log_std_init)
        return params

    def apply(
        self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None
    ) -> tuple[dict[str, jax.Array], Trace]:
        """obs ``[B, observations]`` → (outputs, Trace of both networks' hidden layers)."""
        outs, pre, hidden = {}, [], []
        if self.config.torso == "conv":
            x = x.reshape((x.shape[0], *self.config.input_shape))
        for i, n in enumerate(NETS):
            k = None if key is None else jax.random.fold_in(key, i)
            out, trace = self.nets[n].apply(self._split(params, n), x, k)
            outs[n] = out
            pre += trace.pre
            hidden += trace.hidden
        log_std = params.get("log_std", jnp.zeros((self.config.actions,), jnp.float32))
        result = {"policy": outs["policy"], "log_std": log_std, "value": outs["value"][:, 0]}
        return result, Trace(pre, hidden)

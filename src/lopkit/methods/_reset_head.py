"""Reset the output layer at every task boundary.

At the first step of every new task, the output layer gets fresh parameters (a new draw
from its init distribution, biases 0; or all zeros, as the continual-ImageNet experiments
of Dohare et al. do) and its optimizer moments are zeroed (step counters are shared by all
parameters in optax and are kept).

References:
  Dohare et al. 2024 (Nature): continual ImageNet resets the output layer to zero at each
  task; class-incremental CIFAR-100 "head reset" baseline.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import BoundaryEvent, Context, Parts, Remedy
from lopkit.methods._resets import replace_layer_everywhere


@dataclasses.dataclass(frozen=True)
class ResetHeadConfig:
    """Output-layer reset at task boundaries (Dohare et al. 2024)."""

    init: str = field(
        "fresh",
        "fresh: a new draw from the layer's init distribution; zero: all zeros",
        choices=("fresh", "zero"),
    )


def _build(config: ResetHeadConfig, ctx: Context) -> Parts:
    net = ctx.net
    name = net.output_layer
    if name is None or name not in net.names:
        raise ConfigError(
            "reset_head needs a network with one named output layer (an RL agent has two, "
            "its policy and value heads: reset_head is not defined for agents)"
        )
    index = list(net.names).index(name)

    def apply(params, opt_state, key):
        new = net.init_layer(key, index)
        if config.init == "zero":
            new = jax.tree_util.tree_map(jnp.zeros_like, new)
        return replace_layer_everywhere(params, opt_state, name, new)

    return Parts(boundary=BoundaryEvent(apply))


RESET_HEAD = Remedy(
    name="reset_head",
    summary="at each task start: reinitialize the output layer and its optimizer moments",
    source="Dohare et al. 2024 (Nature), continual ImageNet / CIFAR-100 head reset",
    config=ResetHeadConfig,
    build=_build,
    parts=("boundary",),
)

"""Reset everything at every task boundary: the "retrain from scratch" line.

At the first step of every new task the parameters are a fresh draw of the network's
initialization and the optimizer state is that of a fresh start (moments and step counts
zero; L2-Init's θ₀ the new parameters). Unit-rule state (CBP ages and utilities) is not
part of a boundary event and is kept.

References:
  Dohare et al. 2024 (Nature): the "retrained network" baseline of class-incremental
  CIFAR-100; Ash & Adams 2020's fresh-initialization baseline.
"""

from __future__ import annotations

from lopkit.methods._base import BoundaryEvent, Context, EmptyConfig, Parts, Remedy
from lopkit.methods._resets import fresh_optimizer_state


def _build(config: EmptyConfig, ctx: Context) -> Parts:
    net = ctx.net

    def apply(params, opt_state, key):
        params = net.init(key)
        return params, fresh_optimizer_state(opt_state, params)

    return Parts(boundary=BoundaryEvent(apply))


RESET_ALL = Remedy(
    name="reset_all",
    summary="at each task start: reinitialize all parameters and the optimizer state",
    source="Dohare et al. 2024 (Nature), 'retrained network' baseline",
    config=EmptyConfig,
    build=_build,
    parts=("boundary",),
)

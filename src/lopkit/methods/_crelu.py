"""Concatenated ReLU: each hidden unit outputs [relu(z), relu(−z)].

A unit's two features never die together (one of them is active unless z = 0), so it keeps
passing gradient. The next layer reads 2 × width features, which adds parameters;
``match_params`` shrinks every hidden width by a common factor so that the parameter
count is as close as possible to the ReLU network's.

References:
  Shang et al. Understanding and improving convolutional neural networks via
  concatenated rectified linear units. ICML 2016.
  Abbas et al. Loss of plasticity in continual deep reinforcement learning. CoLLAs 2023.
"""

from __future__ import annotations

import dataclasses

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Parts, Remedy


@dataclasses.dataclass(frozen=True)
class CReLUConfig:
    """CReLU (Abbas et al. 2023). ``match_params`` is off by default, as in that paper,
    where the CReLU network keeps its widths."""

    match_params: bool = field(
        False, "shrink hidden widths so the parameter count matches the ReLU net"
    )


def mlp_param_count(sizes: tuple[int, ...], crelu: bool = False, layernorm: bool = False) -> int:
    """Parameters of an MLP ``sizes[0] → … → sizes[-1]`` (weights, biases, LN scale/offset)."""
    mult = 2 if crelu else 1
    total = 0
    for i, (fan_in, width) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        fan_in = fan_in if i == 0 else mult * fan_in
        hidden = i < len(sizes) - 2
        total += (fan_in + 1) * width + (2 * width if layernorm and hidden else 0)
    return total


def matched_sizes(sizes: tuple[int, ...], layernorm: bool = False) -> tuple[int, ...]:
    """Hidden widths scaled by one common factor c ∈ (0, 1] (rounded, at least 1) so that the
    CReLU MLP's parameter count is closest to the ReLU MLP's ``sizes``."""
    target = mlp_param_count(sizes, False, layernorm)
    hidden = sizes[1:-1]
    best, best_gap = sizes, None
    for step in range(1, 1001):
        c = step / 1000
        candidate = (sizes[0], *(max(1, round(c * n)) for n in hidden), sizes[-1])
        gap = abs(mlp_param_count(candidate, True, layernorm) - target)
        if best_gap is None or gap < best_gap:
            best, best_gap = candidate, gap
    return best


def _build(config: CReLUConfig, ctx: Context) -> Parts:
    change = {"crelu": True}
    if config.match_params:
        net_config = getattr(ctx.net, "config", None)
        sizes = getattr(net_config, "sizes", None)
        if sizes is None:
            raise ConfigError("crelu.match_params needs an MLP (a network config with 'sizes')")
        if not getattr(net_config, "crelu", False):  # the draft (ReLU) network: match it
            layernorm = bool(getattr(net_config, "layernorm", False))
            change["sizes"] = matched_sizes(tuple(sizes), layernorm)
        else:
            change["sizes"] = tuple(sizes)
    return Parts(architecture=change)


CRELU = Remedy(
    name="crelu",
    summary="concatenated ReLU [relu(z), relu(−z)]; option to match the parameter count",
    source="Abbas et al. 2023 (CoLLAs); Shang et al. 2016",
    config=CReLUConfig,
    build=_build,
    parts=("architecture",),
)

"""Inverted dropout on the hidden features during training.

In training each hidden feature is kept with probability 1 − p and scaled by 1/(1 − p),
zeroed otherwise (a fresh mask every step, from the step's key); without a key (probes,
evaluation) the network is deterministic. Unit rules see the features before dropout.

References:
  Srivastava et al. Dropout: a simple way to prevent neural networks from overfitting.
  JMLR 15 (2014). Dohare et al. 2024 (Nature) evaluate dropout as a remedy.
"""

from __future__ import annotations

import dataclasses

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.methods._base import Context, Parts, Remedy


@dataclasses.dataclass(frozen=True)
class DropoutConfig:
    """Dropout rate p (Srivastava et al. 2014). The rate is swept per benchmark in the
    loss-of-plasticity literature; 0.1 is the default here."""

    rate: float = field(
        0.1, "p: probability that a hidden feature is zeroed in training", open_unit=True
    )

    def check(self) -> None:
        if self.rate <= 0:
            raise ConfigError(
                f"dropout.rate must be > 0 (leave the remedy out for none), got {self.rate}"
            )


def _build(config: DropoutConfig, ctx: Context) -> Parts:
    return Parts(architecture={"dropout": config.rate})


DROPOUT = Remedy(
    name="dropout",
    summary="inverted dropout on hidden features in training",
    source="Srivastava et al. 2014 (JMLR)",
    config=DropoutConfig,
    build=_build,
    parts=("architecture",),
)

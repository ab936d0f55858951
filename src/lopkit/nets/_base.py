"""What the engine and the remedies read of a network, declared once with its defaults.

A network is a pure function of a params pytree (``init(key) -> params``,
``apply(params, x, key=None) -> (out, trace)``); every network derives from
:class:`Network`, which declares the rest:

* ``names``: its parameter groups (layers) in order, ``bounds``: each one's init bound
  (None where a network does not have one per layer, e.g. an agent's two nets);
* ``unit_layers``: its hidden layers' units (:class:`lopkit.nets.UnitLayer`), what unit
  rules (CBP, ReDo, SNR) act on — none for a linear model;
* ``output_layer``: the one layer a head reset re-initializes (None: no single head);
* ``train_apply``: the forward pass used for the update (default: ``apply``);
  ``has_stats`` / ``with_stats``: running statistics (BatchNorm) that the training pass
  computes and the update must not learn.
"""

from __future__ import annotations

from typing import Any

import jax

from lopkit.nets._units import UnitLayer


class Network:
    config: Any
    names: list[str] = []
    bounds: list[float] | None = None
    unit_layers: tuple[UnitLayer, ...] = ()
    output_layer: str | None = None
    has_stats: bool = False

    def init(self, key: jax.Array) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None):
        raise NotImplementedError

    def train_apply(self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None):
        """The forward pass of an update: ``apply`` unless the network has a training mode."""
        return self.apply(params, x, key)

    def with_stats(self, params: dict[str, Any], trace: Any) -> dict[str, Any]:
        """``params`` with the running statistics the training pass computed (``has_stats``)."""
        return params

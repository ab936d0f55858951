"""Networks as pure functions of parameter pytrees, with explicit units."""

from lopkit.nets._activations import ACTIVATIONS, GAINS, kaiming_uniform_bound
from lopkit.nets._base import Network
from lopkit.nets._mlp import MLP, MLPConfig, Trace
from lopkit.nets._units import (
    Anchor,
    UnitLayer,
    get,
    map_param_trees,
    outgoing_rows,
    replace,
    reset_units,
    zero_units,
)

__all__ = [
    "ACTIVATIONS",
    "Anchor",
    "GAINS",
    "MLP",
    "MLPConfig",
    "Network",
    "Trace",
    "UnitLayer",
    "get",
    "kaiming_uniform_bound",
    "map_param_trees",
    "outgoing_rows",
    "replace",
    "reset_units",
    "zero_units",
]

"""The weight matrices of a network, found by name: what the matrix remedies act on.

``parseval``, ``spectral``, ``nap``, ``fire`` and ``dash`` act on a network's weight
matrices, whatever the architecture: every params leaf named ``w`` (a dense weight
``[fan_in, units]`` or a conv kernel ``[kh, kw, c_in, c_out]``), found by its pytree path
(``("hidden_0", "w")``, ``("policy/output", "w")``, ``("block_1", "conv2", "w")``). Biases
are the leaves named ``b``; LayerNorm parameters ``ln_scale`` / ``ln_offset``.
"""

from __future__ import annotations

from typing import Any

import jax

from lopkit.nets._units import get, replace

Path = tuple[str, ...]


def _paths(params: Any, name: str) -> list[Path]:
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = tuple(getattr(k, "key", None) for k in path)
        if keys and keys[-1] == name and all(isinstance(k, str) for k in keys):
            out.append(keys)
    return out


def weight_paths(params: Any) -> list[Path]:
    """Paths of every weight (leaf named ``w``, 2-D or 4-D), in the params' key order."""
    return [p for p in _paths(params, "w") if get(params, p).ndim in (2, 4)]


def leaf_paths(params: Any, name: str) -> list[Path]:
    """Paths of every leaf named ``name`` (``b``, ``ln_scale``, …)."""
    return _paths(params, name)


def is_output(path: Path) -> bool:
    """Whether a path is in an output layer (``output``, ``policy/output``, …)."""
    return path[0] == "output" or path[0].endswith("/output")


def as_matrix(w: jax.Array) -> jax.Array:
    """A weight as a matrix ``[inputs, units]``: a conv kernel ``[kh, kw, c_in, c_out]`` is
    ``[kh·kw·c_in, c_out]`` (its unfolded form)."""
    return w.reshape(-1, w.shape[-1])


def update_leaves(params: Any, paths: list[Path], fn) -> Any:
    """``params`` with the leaf at each path replaced by ``fn(path, leaf)``."""
    for path in paths:
        params = replace(params, path, fn(path, get(params, path)))
    return params

"""Checkpoints: the whole batched state pytree in one file, written atomically.

``checkpoint/state.npz`` holds every leaf under its pytree path (``jax.tree_util.keystr``)
and ``__next_bin__``, the first bin still to run. Leaves are matched back by path against
a freshly initialized state, so a checkpoint from another program is refused instead of
being silently misread.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lopkit._errors import LopkitError
from lopkit.results._io import atomic_write_bytes

NEXT_BIN = "__next_bin__"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoint" / "state.npz"


def save(run_dir: str | Path, state: Any, next_bin: int) -> Path:
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    arrays = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}
    arrays[NEXT_BIN] = np.asarray(next_bin, np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(checkpoint_path(run_dir), buffer.getvalue())


def load(run_dir: str | Path, template: Any) -> tuple[Any, int]:
    """(state, next_bin) from a run's checkpoint; ``template`` gives structure and shapes."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        raise LopkitError(f"no checkpoint to resume from: {path} does not exist")
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise LopkitError(
            f"checkpoint {path} is unreadable ({err}); rerun with --overwrite"
        ) from None
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for key_path, leaf in leaves:
        name = jax.tree_util.keystr(key_path)
        if name not in arrays or arrays[name].shape != leaf.shape:
            raise LopkitError(
                f"checkpoint {path} does not match this run's state at {name}; "
                "was it written by a different configuration? Use --overwrite to start again."
            )
        out.append(arrays[name].astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out), int(arrays[NEXT_BIN])

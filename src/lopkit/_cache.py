"""JAX's persistent compilation cache, in a lopkit directory.

Most of a short run's start-up is XLA compiling the run's program. With the cache on, a
program compiled once (in any process: an earlier ``lopkit run``, a test, a study cell)
is loaded from disk instead of compiled again — a repeated ``lopkit run scr --method cbp``
starts its first chunk several times sooner (docs/benchmarks.md has the measurement).

The directory is ``$LOPKIT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/lopkit/jax`` (by
default ``~/.cache/lopkit/jax``). ``LOPKIT_CACHE_DIR=off`` turns the cache off. Entries
are keyed by JAX on the program, its compile options, the JAX/XLA versions and the
device, so a stale entry is never used; deleting the directory is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

OFF = ("off", "none", "0", "false")
_enabled: Path | None = None


def cache_dir() -> Path | None:
    """The cache directory that :func:`enable_compilation_cache` would use (None: off)."""
    value = os.environ.get("LOPKIT_CACHE_DIR")
    if value is not None:
        return None if value.strip().lower() in OFF or not value.strip() else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lopkit" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`cache_dir`).

    Returns the directory, or None when the cache is off. Idempotent; call it before the
    first compilation (JAX reads the setting when it first uses the cache).
    """
    global _enabled
    target = Path(path) if path is not None else cache_dir()
    if target is None:
        return None
    if _enabled == target:
        return target
    target.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(target))
    # Cache every program that took a noticeable time to compile (JAX's default is 1 s);
    # lopkit's small chunks compile in 0.3–2 s on two cores and are worth keeping.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
    _enabled = target
    return target

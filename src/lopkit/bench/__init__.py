"""`make bench` / `lopkit bench`: throughput of the engine, measured (never asserted).

One module per benchmark family — ``permuted`` (the permuted-inputs MLP against the
machine's bandwidth and matmul rate), ``conv`` (the binary-task ConvNet, vmap vs map),
``remedies`` (each remedy's cost relative to backprop), ``rl`` (PPO's env-steps/s), ``axes``
(a hyper-parameter axis in one program vs one program per value) — each runnable as
``python -m lopkit.bench.<name>``; ``_timing`` holds what they share and imports none of
them, and ``_main`` (``python -m lopkit.bench``) runs them all. This package imports only
``_timing``, so the pieces never import each other in a loop. Importing it configures JAX
as lopkit runs (:func:`lopkit._devices.configure`): it exists to measure lopkit's runs.
"""

from lopkit import _devices

_devices.configure()  # before _timing imports JAX: the devices and ISA lopkit runs with

from lopkit.bench._timing import BIN, chunk_throughput, throughput  # noqa: E402


def main(quick: bool = False, write: str | None = None) -> int:
    """Run every benchmark and print the figures (``lopkit bench``); ``write``: a Markdown
    file whose ``bench`` block gets them too (``make bench`` writes docs/performance.md)."""
    from lopkit.bench._main import main as run_all

    return run_all(quick=quick, write=write)


__all__ = ["BIN", "chunk_throughput", "main", "throughput"]

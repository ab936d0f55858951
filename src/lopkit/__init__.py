"""lopkit: a lab for loss of plasticity in deep continual learning.

The public API (docs/api.md has examples)::

    import lopkit

    run = lopkit.run("scr", method="cbp", seeds=5, steps=20_000)  # a lopkit.Run
    run.metrics            # the tidy metrics table (pandas)
    run.config             # every setting, as written to run.dir / "config.yaml"
    lopkit.Run.load("runs/scr-cbp")
    lopkit.resume("runs/scr-cbp")     # continue an interrupted run exactly
    lopkit.rerun("runs/scr-cbp/config.yaml", out="runs/again", seeds=10)

and :mod:`lopkit.results` for analysis (loading, aggregating, plotting, statistics).

Importing lopkit does not import JAX or change its configuration: lopkit sets JAX's CPU
device count and caps XLA's CPU instruction set (for bit-exact batching) when it first runs
something (:func:`configure_devices`; docs/design.md §7).
"""

from lopkit._api import Run, configure_devices, rerun, resume, run

__all__ = ["Run", "configure_devices", "rerun", "resume", "run"]

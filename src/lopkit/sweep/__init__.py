"""Studies: grids over benchmark settings × methods × method settings × seeds (docs/design.md §9).

``lopkit sweep study.yaml --out studies/x`` expands the study file into cells
(:mod:`lopkit.sweep._spec`), keeps them in a study directory
(:mod:`lopkit.results._study`) and runs those not done yet with the local executor
(:mod:`lopkit.sweep._local`) or on Ray (:mod:`lopkit.sweep._ray`).
"""

from lopkit.sweep._spec import Cell, StudySpec, cell_id, expand, load_spec, parse_spec
from lopkit.sweep._sweep import EXECUTORS, SweepResult, dry_run, sweep

__all__ = [
    "EXECUTORS",
    "Cell",
    "StudySpec",
    "SweepResult",
    "cell_id",
    "dry_run",
    "expand",
    "load_spec",
    "parse_spec",
    "sweep",
]

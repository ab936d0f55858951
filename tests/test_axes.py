"""Hyper-parameter axes (DESIGN §9): values × seeds as one program == separate programs.

Every remedy with a continuous setting is covered by one of the two grouped cases below:
the vectorized program runs three settings points (every swept setting changes from
point to point) × two seeds, and each point also runs as its own plain program with the
values as Python numbers. Grouping keeps the number of compilations small (each is
seconds); the comparison is of each run's full final state, so a remedy that ignored its
traced value (or read another run's) would show.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit import _axes, cli
from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment, run_experiment
from lopkit.results import early_late, load, summarize
from lopkit.results._plot import _lines

pytestmark = pytest.mark.usefixtures("fast_compiles")

RUN = dict(seeds=2, steps=200, bin_size=100, block_size=20, metrics=(), metrics_every=0)

# Gradient and update parts, and the benchmark's optimizer settings (SGD with momentum 0 is
# a different optimizer state than with momentum > 0: the traced form must match both).
GRADIENT_PARTS = (
    "l2+l2_init+shrink_perturb+upgd+l2_decoupled",
    {},
    {
        "lr": (0.01, 0.005, 0.02),
        "momentum": (0.0, 0.5, 0.3),
        "l2.weight_decay": (1e-3, 1e-2, 1e-1),
        "l2_init.weight_decay": (1e-1, 1e-2, 1e-3),
        "shrink_perturb.weight_decay": (1e-3, 3e-2, 1e-2),
        "shrink_perturb.noise_std": (0.0, 1e-3, 1e-2),
        "upgd.beta_utility": (0.9, 0.99, 0.999),
        "upgd.noise_std": (1e-3, 1e-4, 0.0),
        "upgd.weight_decay": (1e-3, 0.0, 1e-2),
        "upgd.step_scale": (1.0, 1.5, 2.0),
        "l2_decoupled.weight_decay": (1e-2, 1e-1, 1e-3),
    },
)
# Unit rules, the optimizer part and a boundary event. Twenty hidden units: CBP's largest
# rate may replace 4 units in one step, the others 1 (the slots must not depend on that).
UNIT_RULES = (
    "cbp+snr+redo+weight_clip+adam_equal_betas+shrink_perturb_boundary",
    {"hidden": "20", "flip_period": 40, "redo.reset_every": 10, "lr": 0.003},
    {
        "cbp.replacement_rate": (0.01, 0.05, 0.2),
        "cbp.maturity_threshold": (5, 10, 20),
        "cbp.decay_rate": (0.9, 0.95, 0.99),
        "snr.percentile": (0.9, 0.95, 0.99),
        "snr.min_threshold": (5, 10, 20),
        "redo.threshold": (0.5, 0.3, 0.1),
        "redo.decay_rate": (0.5, 0.9, 0.99),
        "weight_clip.kappa": (0.5, 1.0, 2.0),
        "adam_equal_betas.beta": (0.9, 0.95, 0.99),
        "eps": (1e-8, 1e-6, 1e-4),
        "shrink_perturb_boundary.shrink": (0.5, 0.8, 0.9),
        "shrink_perturb_boundary.noise_std": (0.0, 0.01, 0.1),
    },
)


def _final(program, seeds, settings, n_bins):
    state = program.init(jnp.asarray(seeds), settings)
    state, errors, _ = program.chunk(state, jnp.asarray(0, jnp.int32), n_bins)
    return jax.device_get((state["learner"], errors))


@pytest.mark.parametrize("case", [GRADIENT_PARTS, UNIT_RULES], ids=["gradient", "unit_rules"])
def test_vectorized_points_equal_separate_programs(case):
    method, fixed, swept = case
    base = make_experiment("scr", method, fixed, **RUN)
    axes = tuple((name, values) for name, values in swept.items())
    experiment = dataclasses.replace(base, axes=axes)
    points = [{n: v[i] for n, v in swept.items()} for i in range(3)]
    k = len(base.seed_ids)
    seeds = np.tile(base.seed_ids, 3)
    dtypes = experiment._dtypes()
    settings = {
        n: jnp.asarray(np.repeat([p[n] for p in points], k).astype(dtypes[n])) for n in swept
    }
    program, _ = experiment.build()
    learner, errors = _final(program, seeds, settings, 2)

    alone = []
    for h, point in enumerate(points):
        cell_program, _ = experiment.cell(point).build()
        assert cell_program.configure is None  # the plain program, values as numbers
        cell_learner, cell_errors = _final(cell_program, base.seed_ids, None, 2)
        rows = slice(h * k, (h + 1) * k)
        # float tolerance: a program reads its settings as float32 scalars, a plain one
        # as Python floats (e.g. 1 − α·λ is rounded once there, twice here)
        np.testing.assert_allclose(errors[rows], cell_errors, rtol=1e-4, atol=1e-7)
        mine = jax.tree_util.tree_map(lambda a, rows=rows: a[rows], learner)
        if jax.tree_util.tree_structure(mine) != jax.tree_util.tree_structure(cell_learner):
            # SGD without momentum keeps no trace; the swept form keeps a trace of decay 0
            mine, cell_learner = (
                {"params": t["params"], "rules": t["rules"]} for t in (mine, cell_learner)
            )
        for path, a in jax.tree_util.tree_leaves_with_path(mine):
            b = _at(cell_learner, path)
            if np.issubdtype(np.asarray(a).dtype, np.integer):  # counts, ages: exact
                np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
            else:
                np.testing.assert_allclose(
                    a, b, rtol=1e-3, atol=1e-5, err_msg=jax.tree_util.keystr(path)
                )
        alone.append(cell_errors)
    assert not np.allclose(alone[0], alone[2])  # the settings change what is learned
    if "cbp" in method:  # CBP (the first rule, its one layer) replaced at three rates
        per_run = learner["rules"][0][0]["replaced"]
        assert per_run.min() > 0 and len(set(per_run[::k].tolist())) == 3


def _at(tree, path):
    for entry in path:
        key = getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", None)))
        tree = getattr(tree, key) if isinstance(entry, jax.tree_util.GetAttrKey) else tree[key]
    return tree


def test_vectorize_none_writes_the_same_table_and_resumes(tmp_path):
    settings = {"cbp.replacement_rate": "0.02,0.2", "cbp.maturity_threshold": 5, "hidden": "10"}
    run = {**RUN, "chunk_bins": 1}
    vectorized = make_experiment("scr", "cbp", settings, **run)
    assert vectorized.axes == (("cbp.replacement_rate", (0.02, 0.2)),)
    first = run_experiment(vectorized, tmp_path / "v", progress=False, stop_after_chunks=1)
    assert not first["finished"]
    done = run_experiment(vectorized, tmp_path / "v", resume=True, progress=False)
    assert done["finished"]
    counts = np.asarray(done["state"]["learner"]["rules"][0][0]["replaced"])
    separate = make_experiment("scr", "cbp", settings, vectorize="none", **run)
    result = run_experiment(separate, tmp_path / "n", progress=False)
    assert result["finished"]
    cells = [
        np.asarray(
            run_experiment(separate.cell(p), tmp_path / f"c{i}", progress=False)["state"][
                "learner"
            ]["rules"][0][0]["replaced"]
        )
        for i, p in enumerate(_axes.grid(separate.axes))
    ]
    np.testing.assert_array_equal(counts, np.concatenate(cells))  # exact, per run
    assert counts[2:].sum() > counts[:2].sum() > 0

    a, b = load(tmp_path / "v"), load(tmp_path / "n")
    assert list(a.columns) == [
        "run",
        "seed",
        "cbp.replacement_rate",
        "step",
        "metric",
        "layer",
        "value",
    ]
    assert sorted(a["cbp.replacement_rate"].unique()) == [0.02, 0.2]
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-5)
    assert (a.drop(columns=["run", "value"]) == b.drop(columns=["run", "value"])).all().all()
    summary = summarize(a, "mse")
    assert list(summary.columns) == ["run", "cbp.replacement_rate", "step", "mean", "se", "n"]
    assert len(summary) == 4 and (summary["n"] == 2).all()
    late = early_late(a, "mse")
    assert list(late["cbp.replacement_rate"]) == [0.02, 0.2] and (late["n_seeds"] == 2).all()
    assert (
        cli.main(
            [
                "plot",
                str(tmp_path / "v"),
                "--metric",
                "mse",
                "--label-key",
                "cbp.replacement_rate",
                "--out",
                str(tmp_path / "p.png"),
            ]
        )
        == 0
    )
    labels = [
        label for label, _ in _lines(summary, ["v"], {"v": "v"}, "step", "cbp.replacement_rate")
    ]
    assert labels == ["0.02", "0.2"]


def test_structural_settings_are_refused_as_lists():
    with pytest.raises(ConfigError, match="lopkit sweep"):
        make_experiment("scr", "backprop", {"flip_period": "100,200"}, **RUN)
    with pytest.raises(ConfigError, match="lopkit sweep"):
        make_experiment("scr", "redo", {"redo.reset_every": "10,20"}, **RUN)
    with pytest.raises(ConfigError, match="twice"):
        make_experiment("scr", "l2", {"l2.weight_decay": "1e-3,1e-3"}, **RUN)
    with pytest.raises(ConfigError, match="must be >= 0"):
        make_experiment("scr", "l2", {"l2.weight_decay": "1e-3,-1"}, **RUN)
    # a tuple setting is one value, not a list
    assert make_experiment("scr", "backprop", {"hidden": "4,3"}, **RUN).axes == ()


def test_equal_programs_built_twice_share_one_compile():
    compiled = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(kwargs.get("fun_name", ""))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        counts = []
        for _ in range(2):  # two experiments, two Program objects, equal configurations
            program, _ = make_experiment("scr", "l2", {"lr": 0.02}, **RUN).build()
            state = program.init(jnp.asarray([0, 1], jnp.int32))
            jax.block_until_ready(program.chunk(state, jnp.asarray(0, jnp.int32), 1))
            counts.append(sum("_chunk" in name for name in compiled))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert counts == [1, 1]

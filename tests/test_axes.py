"""Hyper-parameter axes (docs/design.md §6): values × seeds as one program == separate programs.

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

RUN = dict(seeds=2, steps=200, bin_size=100, block_size=20, metrics=(), metrics_every=0)

# Every remedy with a continuous setting, composed: gradient and update parts, unit rules,
# the optimizer part and a boundary event (a task every 40 steps). Twenty hidden units:
# CBP's largest rate may replace 4 units in one step, the others 1 (what a replaced unit
# gets must not depend on that). The benchmark's own optimizer settings: lr and eps here,
# momentum (whose zero is a different optimizer state) in the end-to-end test below.
METHOD = (
    "l2+l2_init+shrink_perturb+upgd+l2_decoupled"
    "+cbp+snr+redo+weight_clip+adam_equal_betas+shrink_perturb_boundary"
    "+parseval+spectral+dash+c_chain+sam+hare_tortoise+regrama+trac"
)
FIXED = {
    "hidden": "20",
    "flip_period": 40,
    "redo.reset_every": 10,
    "dash.average": "ema",
    "c_chain.warmup": 20,
    "hare_tortoise.reset_every": 50,
    "regrama.reset_every": 10,
}
SWEPT = {
    "lr": (0.003, 0.001, 0.006),
    "eps": (1e-8, 1e-6, 1e-4),
    "l2.weight_decay": (1e-3, 1e-2, 1e-1),
    "l2_init.weight_decay": (1e-1, 1e-2, 1e-3),
    "shrink_perturb.weight_decay": (1e-3, 3e-2, 1e-2),
    "shrink_perturb.noise_std": (0.0, 1e-3, 1e-2),
    "upgd.beta_utility": (0.9, 0.99, 0.999),
    "upgd.noise_std": (1e-3, 1e-4, 0.0),
    "upgd.weight_decay": (1e-3, 0.0, 1e-2),
    "upgd.step_scale": (1.0, 1.5, 2.0),
    "l2_decoupled.weight_decay": (1e-2, 1e-1, 1e-3),
    "cbp.replacement_rate": (0.01, 0.05, 0.2),
    "cbp.maturity_threshold": (5, 10, 20),
    "cbp.decay_rate": (0.9, 0.95, 0.99),
    "snr.percentile": (0.9, 0.95, 0.99),
    "snr.min_threshold": (5, 10, 20),
    "redo.threshold": (0.5, 0.3, 0.1),
    "redo.decay_rate": (0.5, 0.9, 0.99),
    "weight_clip.kappa": (0.5, 1.0, 2.0),
    "adam_equal_betas.beta": (0.9, 0.95, 0.99),
    "shrink_perturb_boundary.shrink": (0.5, 0.8, 0.9),
    "shrink_perturb_boundary.noise_std": (0.0, 0.01, 0.1),
    "parseval.coefficient": (1e-3, 1e-2, 1e-4),
    "parseval.scale": (0.0, 1.0, 2.0),  # 0: each layer's init gain²
    "spectral.coefficient": (1e-4, 1e-3, 1e-2),
    "spectral.exponent": (1.0, 2.0, 3.0),
    "dash.floor": (0.1, 0.3, 0.6),
    "dash.alpha": (0.1, 0.3, 0.9),
    "c_chain.relative_scale": (0.05, 0.01, 0.1),
    "c_chain.decay_rate": (0.99, 0.9, 0.5),
    "c_chain.initial_coef": (1.0, 0.5, 2.0),
    "c_chain.min_coef": (0.0, 0.1, 0.01),
    "sam.rho": (0.05, 0.01, 0.1),
    "hare_tortoise.momentum": (0.999, 0.9, 0.99),
    "regrama.threshold": (0.1, 0.3, 0.5),
    "regrama.decay_rate": (0.99, 0.9, 0.5),
    "trac.s_init": (1e-8, 1e-6, 1e-4),
}


def test_every_continuous_setting_is_swept_here():
    from lopkit import _config
    from lopkit.methods import REMEDIES

    names = METHOD.split("+")
    axes = {
        f"{n}.{f.name}"
        for n in names
        for f in dataclasses.fields(REMEDIES[n].config)
        if _config.is_axis(REMEDIES[n].config, f.name)
    }
    assert axes <= set(SWEPT), axes - set(SWEPT)
    every = {
        n
        for n, r in REMEDIES.items()
        if any(_config.is_axis(r.config, f.name) for f in dataclasses.fields(r.config))
    }
    assert every <= set(names), every - set(names)


def _final(program, seeds, settings, n_bins):
    # the initial state op by op (the ops' compilations are shared by the four programs;
    # compiling each program's init would cost seconds), then one compiled chunk
    state = jax.vmap(program.init_seed)(jnp.asarray(seeds), settings)
    state, errors, _ = program.chunk(state, jnp.asarray(0, jnp.int32), n_bins)
    return jax.device_get((state["learner"], errors))


def test_vectorized_points_equal_separate_programs():
    base = make_experiment("scr", METHOD, FIXED, **RUN)
    experiment = dataclasses.replace(base, axes=tuple(SWEPT.items()))
    points = [{n: v[i] for n, v in SWEPT.items()} for i in range(3)]
    k = len(base.seed_ids)
    seeds = np.tile(base.seed_ids, 3)
    dtypes = experiment._dtypes()
    settings = {
        n: jnp.asarray(np.repeat([p[n] for p in points], k).astype(dtypes[n])) for n in SWEPT
    }
    program, _ = experiment.build()
    learner, errors = _final(program, seeds, settings, 2)

    alone = []
    for h, point in enumerate(points):
        cell_program, _ = experiment.cell(point).build()
        # the plain program reads its continuous settings as traced values too (a 0 stays
        # a constant: "off")
        assert set(cell_program.settings) >= {n for n in SWEPT if point[n] != 0}
        cell_learner, cell_errors = _final(cell_program, base.seed_ids, None, 2)
        rows = slice(h * k, (h + 1) * k)
        # bit for bit: a grid point computes what the same values compute alone
        np.testing.assert_array_equal(errors[rows], cell_errors)
        mine = jax.tree_util.tree_map(lambda a, rows=rows: a[rows], learner)
        for path, a in jax.tree_util.tree_leaves_with_path(mine):
            b = _at(cell_learner, path)
            np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
        alone.append(cell_errors)
    assert not np.allclose(alone[0], alone[2])  # the settings change what is learned
    # CBP (the first rule, its one layer) replaced units, at three different rates
    per_run = learner["rules"][0][0]["replaced"]
    assert per_run.min() > 0 and len(set(per_run[::k].tolist())) == 3


def _at(tree, path):
    for entry in path:
        key = getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", None)))
        tree = getattr(tree, key) if isinstance(entry, jax.tree_util.GetAttrKey) else tree[key]
    return tree


def test_vectorize_none_writes_the_same_table_and_resumes(tmp_path):
    # momentum 0 is plain SGD (no trace in the optimizer state), swept it is a trace of decay 0
    settings = {"momentum": "0,0.5", "cbp.replacement_rate": 0.1, "cbp.maturity_threshold": 5}
    run = {**RUN, "chunk_bins": 1}
    vectorized = make_experiment("scr", "cbp", {**settings, "hidden": "10"}, **run)
    assert vectorized.axes == (("momentum", (0.0, 0.5)),)
    first = run_experiment(vectorized, tmp_path / "v", progress=False, stop_after_chunks=1)
    assert not first["finished"]
    done = run_experiment(vectorized, tmp_path / "v", resume=True, progress=False)
    assert done["finished"]
    separate = make_experiment("scr", "cbp", {**settings, "hidden": "10"}, vectorize="none", **run)
    apart = run_experiment(separate, tmp_path / "n", progress=False)
    assert apart["finished"] and sorted(p.name for p in (tmp_path / "n/cells").iterdir()) == [
        "0000",
        "0001",
    ]
    counts = [np.asarray(r["state"]["learner"]["rules"][0][0]["replaced"]) for r in (done, apart)]
    np.testing.assert_array_equal(counts[0], counts[1])  # CBP's replacements: exact, per run
    assert counts[0].min() > 0

    a, b = load(tmp_path / "v"), load(tmp_path / "n")
    assert list(a.columns) == [
        "run",
        "seed",
        "momentum",
        "step",
        "metric",
        "layer",
        "value",
    ]
    assert sorted(a["momentum"].unique()) == [0.0, 0.5]
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-5)
    assert (a.drop(columns=["run", "value"]) == b.drop(columns=["run", "value"])).all().all()
    summary = summarize(a, "mse")
    assert list(summary.columns) == ["run", "momentum", "step", "mean", "se", "n"]
    assert len(summary) == 4 and (summary["n"] == 2).all()
    late = early_late(a, "mse")
    assert list(late["momentum"]) == [0.0, 0.5] and (late["n_seeds"] == 2).all()
    out = tmp_path / "p.png"
    argv = ["plot", str(tmp_path / "v"), "--metric", "mse", "--label-key", "momentum"]
    assert cli.main([*argv, "--out", str(out)]) == 0 and out.stat().st_size > 0
    lines = _lines(summary, ["v"], {"v": "v"}, "step", "momentum")
    assert [label for label, _ in lines] == ["0", "0.5"]


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
            program, _ = make_experiment("scr", "backprop", {"lr": 0.02}, **RUN).build()
            state = jax.vmap(program.init_seed)(jnp.asarray([0, 1], jnp.int32))  # op by op
            jax.block_until_ready(program.chunk(state, jnp.asarray(0, jnp.int32), 1))
            counts.append(sum("_chunk" in name for name in compiled))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert counts == [1, 1]


def test_runs_are_grid_points_times_seeds_the_first_setting_slowest():
    axes = (("l2.weight_decay", (1e-3, 1e-2)), ("lr", (0.1, 0.2, 0.3)))
    assert _axes.grid(axes)[:2] == [
        {"l2.weight_decay": 1e-3, "lr": 0.1},
        {"l2.weight_decay": 1e-3, "lr": 0.2},
    ]
    types = {"l2.weight_decay": np.float64, "lr": np.float64}
    seeds, values = _axes.run_settings(axes, types, np.array([7, 8]))
    assert seeds.tolist() == [7, 8] * 6
    assert values["lr"].tolist() == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3] * 2
    assert values["l2.weight_decay"].tolist() == [1e-3] * 6 + [1e-2] * 6

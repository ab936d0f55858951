"""Every registered remedy (and a few compositions) through the engine: init, a few hundred
steps, finite results, determinism, and seeds batched == each seed alone.

Parametrized over the registry, so a new remedy is picked up automatically (optax's
``contrib/_common_test.py`` does the same for optimizers). Programs are compiled with few
optimizations, as in the whole suite (``tests/conftest.py``): ~20 remedies × 2
compilations; that changes how the code is compiled, not what it computes.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from lopkit.methods import REMEDIES, Parts, Remedy
from lopkit.methods._base import EmptyConfig

RUN = {"steps": 300, "bin_size": 100, "metrics": ()}
# Task boundaries every 50 steps, and remedy settings under which every rule acts within
# the run (the defaults of CBP, ReDo and SNR would not replace a unit in 300 steps).
SETTINGS = {"flip_period": 50}
ACTIVE = {
    "cbp": {"cbp.replacement_rate": 0.05, "cbp.maturity_threshold": 20},
    "redo": {"redo.reset_every": 50, "redo.threshold": 0.5},
    "snr": {"snr.min_threshold": 3, "snr.percentile": 0.9},
    "regrama": {"regrama.reset_every": 50, "regrama.threshold": 0.5},
}
COMPOSITIONS = ["cbp+l2", "redo+layernorm", "upgd+weight_clip", "l2_init+cbp+reset_head"]
SEEDS = 3


def _settings(method):
    out = dict(SETTINGS)
    for name in method.split("+"):
        out.update(ACTIVE.get(name, {}))
    return out


def _run(program, seeds):
    state = jax.vmap(program.init_seed)(jnp.asarray(seeds, jnp.int32))
    n_bins = RUN["steps"] // RUN["bin_size"]
    state, errors, _ = program.chunk(state, jnp.int32(0), n_bins)
    return np.asarray(errors), jax.tree_util.tree_map(np.asarray, state["learner"])


@pytest.mark.parametrize("method", [*REMEDIES, *COMPOSITIONS])
def test_remedy_runs_deterministically_and_seeds_are_independent(method):
    batched = make_experiment("scr", method, _settings(method), seeds=SEEDS, **RUN)
    program, _ = batched.build()
    errors, learner = _run(program, batched.seed_ids)
    assert np.isfinite(errors).all()
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(learner["params"]))
    for i, name in enumerate(n for n in batched.method_names if n in ACTIVE):
        # the settings above make every unit rule really replace units (else the test is void)
        assert learner["rules"][i][0]["replaced"].sum() > 0, name

    again, learner_again = _run(program, batched.seed_ids)
    np.testing.assert_array_equal(errors, again)
    for a, b in zip(
        jax.tree_util.tree_leaves(learner), jax.tree_util.tree_leaves(learner_again), strict=True
    ):
        np.testing.assert_array_equal(a, b)

    # Each seed alone (seeds=1, first_seed=k). The program does not depend on first_seed,
    # so one single-seed program (one compilation) serves every k.
    alone_program = None
    for k in range(SEEDS):
        alone = make_experiment("scr", method, _settings(method), seeds=1, first_seed=k, **RUN)
        assert list(alone.seed_ids) == [k]
        alone_program = alone_program or alone.build()[0]
        errors_k, learner_k = _run(alone_program, alone.seed_ids)
        np.testing.assert_allclose(errors[k], errors_k[0], rtol=2e-5, atol=1e-7)
        for a, b in zip(
            jax.tree_util.tree_leaves(learner["params"]),
            jax.tree_util.tree_leaves(learner_k["params"]),
            strict=True,
        ):
            np.testing.assert_allclose(a[k], b[0], rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(REMEDIES))
def test_every_setting_is_settable_by_name(name):
    """``--set <remedy>.<key>=<value>`` reaches every field (values given as strings)."""
    config = REMEDIES[name].config
    settings = {f"{name}.{f.name}": str(f.default) for f in dataclasses.fields(config)}
    e = make_experiment("scr", name, settings, seeds=1, **RUN)
    assert e.remedy_configs[0] == config()
    assert REMEDIES[name].source and REMEDIES[name].summary and config.__doc__


@pytest.mark.parametrize("name", list(REMEDIES))
def test_a_network_without_hidden_units(name):
    """A remedy either works without hidden layers or refuses with a clear ConfigError."""
    try:
        make_experiment("scr", name, {"hidden": "()"}, seeds=1, **RUN)
    except ConfigError as err:
        assert "hidden" in str(err)
    else:
        assert name not in ("cbp", "redo", "snr", "regrama")


def test_duplicate_remedy_is_refused():
    with pytest.raises(ConfigError, match="twice"):
        make_experiment("scr", "crelu+crelu")


def test_two_remedies_changing_the_same_field_are_refused(monkeypatch):
    def layernorm_too(config, ctx):
        return Parts(architecture={"layernorm": True})

    def momentum_adam(config, ctx):
        return Parts(optimizer={"optimizer": "adam", "beta1": 0.5})

    for name, build, kind in (
        ("layernorm_too", layernorm_too, "architecture"),
        ("momentum_adam", momentum_adam, "optimizer"),
    ):
        remedy = Remedy(name, "test", "test", EmptyConfig, build, (kind,))
        monkeypatch.setitem(REMEDIES, name, remedy)
    with pytest.raises(ConfigError, match="both change the architecture setting 'layernorm'"):
        make_experiment("scr", "layernorm+layernorm_too")
    with pytest.raises(ConfigError, match="both change the optimizer setting 'optimizer'"):
        make_experiment("scr", "adam_equal_betas+momentum_adam")
    make_experiment("scr", "layernorm+crelu+dropout")  # different fields compose


def test_a_remedy_of_ones_own_is_registered_by_one_call():
    """``register`` adds a remedy (its own file, one call) that composes like lopkit's."""
    import optax

    from lopkit.methods import register

    halve = Remedy(
        "halve_updates", "halve every update", "a test", EmptyConfig,
        lambda config, ctx: Parts(update=optax.scale(0.5)), ("update",),
    )  # fmt: skip
    liar = dataclasses.replace(halve, name="liar", parts=("gradient",))
    try:
        register(halve)
        e = make_experiment("scr", "halve_updates+l2", seeds=1, **RUN)
        assert e.method_names == ("halve_updates", "l2")
        with pytest.raises(ConfigError, match="already registered"):
            register(halve)
        register(liar)
        with pytest.raises(AssertionError, match="declares"):
            make_experiment("scr", "liar", seeds=1, **RUN)  # builds an update, says gradient
    finally:
        REMEDIES.pop("halve_updates", None)
        REMEDIES.pop("liar", None)

"""Methods the class-incremental benchmark's best-validation selection cannot serve are
refused before the run: one whose predicting params are not the trained params."""

import pytest

from lopkit._errors import ConfigError
from lopkit._experiment import make_experiment
from test_class_incremental import TINY  # the tiny ResNet on digits


@pytest.mark.parametrize("method", ["hare_tortoise", "l2+hare_tortoise"])
def test_hare_tortoise_is_refused_with_the_reason(method):
    with pytest.raises(ConfigError) as error:
        make_experiment("class_incremental", method, TINY, seeds=1).build()
    message = str(error.value)
    assert "hare_tortoise cannot run on class_incremental" in message
    assert "best validation accuracy" in message and "slow network" in message


def test_a_method_without_evaluation_params_still_builds():
    make_experiment("class_incremental", "l2", TINY, seeds=1).build()

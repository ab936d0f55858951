"""The relabeled stream's draw positions at step indices whose draw count ``step × batch``
passes 2^31 (long runs: step 30M at batch 100): the epoch and the place in it are those of
exact integer arithmetic, and a block there matches the same block cut differently."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopkit._errors import ConfigError
from lopkit.streams._labeled import LabeledArrays
from lopkit.streams._relabeled import RelabeledData, RelabeledStreamConfig

N, CLASSES = 24, 4
ROWS = np.stack([np.arange(N), np.arange(N)[::-1]], 1).astype(np.uint8)  # row i: (i, N−1−i)
ARRAYS = LabeledArrays(
    name="synthetic",
    x_train=ROWS,
    y_train=(np.arange(N) % CLASSES).astype(np.int32),
    x_test=ROWS[:8],
    y_test=(np.arange(8) % CLASSES).astype(np.int32),
    image_shape=(2, 1, 1),
    num_classes=CLASSES,
)


def ids_of(x):
    """The training-set index of each example of ``x`` ``[..., 2]``."""
    return np.rint(np.asarray(x)[..., 0] * 255).astype(np.int64)


def _stream(subset, batch_size):
    config = RelabeledStreamConfig(
        relabel="permute", change_every=7, subset=subset, batch_size=batch_size
    )
    return RelabeledData(config, arrays=ARRAYS)


def _expected(s, state, start, n):
    """Positions ``[n, B]`` by Python integers: draw d = start·B + j is place d mod m of
    epoch d div m's shuffle."""
    b, m = s.batch_size, s.size
    out = np.zeros((n, b), np.int64)
    for i in range(n):
        for j in range(b):
            d = (start + i) * b + j
            out[i, j] = np.asarray(s.shuffle(state, jnp.int32(d // m)))[d % m]
    return out


@pytest.mark.parametrize(
    ("subset", "batch_size", "start", "n"),
    [
        (20, 100, 30_000_001, 3),  # start·B = 3.0e9 > 2^31; a block longer than an epoch
        (24, 7, 400_000_003, 2),  # start·B = 2.8e9; a block within two epochs
        (20, 3, 2**31 - 10, 1),  # the last steps an int32 step counter reaches
    ],
)
def test_positions_past_two_to_the_31_draws_are_exact(subset, batch_size, start, n):
    s = _stream(subset, batch_size)
    assert start * batch_size >= 2**31
    state = s.init(jax.random.PRNGKey(3))
    first = start * batch_size // subset
    state = {**state, "epoch": s.shuffle(state, jnp.int32(first))}
    q, nxt = s.positions(state, jnp.int32(start), n)
    np.testing.assert_array_equal(np.asarray(q), _expected(s, state, start, n))
    after = (start + n) * batch_size // subset
    np.testing.assert_array_equal(np.asarray(nxt), np.asarray(s.shuffle(state, jnp.int32(after))))
    # the block's data and task there: one block or the same steps one at a time
    _, whole = s.block(state, jax.random.PRNGKey(0), jnp.int32(start), n)
    assert np.asarray(whole.task).tolist() == [(start + i) // 7 for i in range(n)]
    one, rows = state, []
    for i in range(n):
        one, block = s.block(one, jax.random.PRNGKey(0), jnp.int32(start + i), 1)
        rows.append((ids_of(block.x), np.asarray(block.y)))
    np.testing.assert_array_equal(ids_of(whole.x), np.concatenate([r[0] for r in rows]))
    np.testing.assert_array_equal(np.asarray(whole.y), np.concatenate([r[1] for r in rows]))


def test_a_subset_times_batch_past_int32_is_refused():
    with pytest.raises(ConfigError, match="subset × batch_size"):
        _stream(20, 2**27)

"""Tests for jaxlearn.fewshot: the episode sampler's disjointness and sizes, prototypes against
numpy class means, prototypical networks and baselines far above chance on a synthetic problem,
learning curves vmapped vs looped."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import fewshot, linear, nn

KEY = jax.random.key(0)
N_CLASSES, PER_CLASS, DIM = 10, 20, 12


def _data():
    """Class information in 2 of 12 dims; the other 10 are loud noise that a learned embedding
    must suppress (raw prototypes on all dims are much weaker)."""
    k_mean, k_noise = jax.random.split(jax.random.key(1))
    means = jnp.zeros((N_CLASSES, DIM)).at[:, :2].set(
        3.0 * jax.random.normal(k_mean, (N_CLASSES, 2)))
    y = jnp.repeat(jnp.arange(N_CLASSES, dtype=jnp.int32), PER_CLASS)
    scale = jnp.concatenate([jnp.full(2, 0.3), jnp.full(DIM - 2, 3.0)])
    return means[y] + scale[None, :] * jax.random.normal(k_noise, (y.size, DIM)), y


X, Y = _data()


def _identity(params, x):
    return x


def test_episode_is_disjoint_with_requested_n_and_k():
    ep = fewshot.sample_episode(KEY, X, Y, n_way=5, k_shot=3, n_query=4, classes=range(2, 9))
    assert ep.support_x.shape == (15, DIM) and ep.query_x.shape == (20, DIM)
    assert not set(np.asarray(ep.support_index)) & set(np.asarray(ep.query_index))
    assert len(set(np.asarray(ep.support_index))) == 15
    assert len(set(np.asarray(ep.query_index))) == 20
    classes = np.asarray(ep.classes)
    assert len(set(classes)) == 5 and set(classes) <= set(range(2, 9))
    np.testing.assert_array_equal(np.bincount(ep.support_y, minlength=5), [3] * 5)
    np.testing.assert_array_equal(np.bincount(ep.query_y, minlength=5), [4] * 5)
    # Relabelling: the original label of each example is the drawn class of its new label.
    np.testing.assert_array_equal(np.asarray(Y)[ep.support_index], classes[ep.support_y])
    np.testing.assert_array_equal(np.asarray(Y)[ep.query_index], classes[ep.query_y])
    np.testing.assert_array_equal(ep.support_x, X[ep.support_index])


def test_stacked_episodes_equal_single_draws():
    eps = fewshot.sample_episodes(KEY, X, Y, n_episodes=4, n_way=3, k_shot=2, n_query=2)
    assert eps.support_x.shape == (4, 6, DIM)
    second = fewshot.sample_episode(jax.random.split(KEY, 4)[1], X, Y, n_way=3, k_shot=2,
                                    n_query=2)
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[1], eps), second)
    for e in range(4):
        assert not set(np.asarray(eps.support_index[e])) & set(np.asarray(eps.query_index[e]))


def test_sample_per_class_is_stratified_and_distinct():
    idx = np.asarray(fewshot.sample_per_class(KEY, Y, n_per_class=3))
    assert len(set(idx)) == 3 * N_CLASSES
    np.testing.assert_array_equal(np.asarray(Y)[idx], np.repeat(np.arange(N_CLASSES), 3))


def test_prototypes_and_logits_match_numpy():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(9, 5)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 2, 0, 0], np.int32)
    queries = rng.normal(size=(4, 5)).astype(np.float32)
    means = np.stack([emb[labels == k].astype(np.float64).mean(0) for k in range(3)])
    # float32 means of <= 4 terms vs float64: 1e-6.
    np.testing.assert_allclose(fewshot.prototypes(emb, labels, 3), means, atol=1e-6)
    d2 = ((queries[:, None, :].astype(np.float64) - means[None]) ** 2).sum(-1)
    np.testing.assert_allclose(fewshot.proto_logits(emb, labels, queries, 3), -d2, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.slow
def test_protonet_and_baselines_beat_chance_by_far():
    test_classes = range(6, 10)
    episodes = fewshot.sample_episodes(jax.random.key(2), X, Y, n_episodes=40, n_way=4,
                                       k_shot=3, n_query=5, classes=test_classes)
    embed = nn.dense(8)
    _, params = embed.init(KEY, (DIM,))
    raw = float(fewshot.evaluate_episodes(_identity, {}, episodes).mean())
    result = fewshot.train_protonet(embed.apply, params, X, Y, optimizer=optax.adam(3e-2),
                                    key=KEY, n_way=4, k_shot=3, n_query=5, steps=150,
                                    classes=range(6))
    assert result.loss.shape == (150,)
    assert float(result.loss[-20:].mean()) < float(result.loss[:20].mean())
    trained = float(fewshot.evaluate_episodes(embed.apply, result.params, episodes).mean())
    # Chance is 1/4 on held-out classes; the learned embedding drops the noisy dims.
    assert trained > 0.8 and trained > raw + 0.1
    ridge = float(fewshot.ridge_probe_episodes(embed.apply, result.params, episodes).mean())
    tuned = float(fewshot.finetune_episodes(embed.apply, result.params, episodes,
                                            steps=50).mean())
    assert ridge > 0.6 and tuned > 0.6


def test_learning_curve_vmapped_equals_looped_and_reports_mean_sd():
    def nearest_mean(key, xs, ys):
        del key
        head = linear.ridge(xs, jax.nn.one_hot(ys, N_CLASSES, dtype=xs.dtype), 1.0)
        return lambda x: x @ head["w"] + head["b"][None, :]

    args = (nearest_mean, X, Y, X, Y)
    curve = fewshot.learning_curve(*args, key=KEY, n_per_class=(1, 4), n_seeds=3)
    looped = fewshot.learning_curve(*args, key=KEY, n_per_class=(1, 4), n_seeds=3, vmap=False)
    assert curve.accuracy.shape == (2, 3)
    # Same subsets; batched vs single solves differ by float32 rounding, which can flip at
    # most a near-tie prediction or two out of 200 (1e-2).
    np.testing.assert_allclose(curve.accuracy, looped.accuracy, atol=1e-2)
    np.testing.assert_allclose(curve.mean, curve.accuracy.mean(1))
    np.testing.assert_allclose(curve.std, curve.accuracy.std(1, ddof=1))
    assert np.all(curve.accuracy > 1.5 / N_CLASSES)


BAD = [
    (lambda: fewshot.sample_episode(KEY, X, Y, n_way=11, k_shot=1, n_query=1), ValueError,
     "only 10 classes"),
    (lambda: fewshot.sample_episode(KEY, X, Y, n_way=5, k_shot=15, n_query=6), ValueError,
     "needs 21 per class"),
    (lambda: fewshot.sample_episode(KEY, X, Y, n_way=1, k_shot=1, n_query=1), ValueError,
     "n_way"),
    (lambda: fewshot.sample_episode(KEY, X, Y, n_way=2, k_shot=0, n_query=1), ValueError,
     "k_shot"),
    (lambda: fewshot.sample_episode(KEY, X, Y.astype(jnp.float32), n_way=2, k_shot=1,
                                    n_query=1), TypeError, "integer"),
    (lambda: fewshot.sample_episode(KEY, X, Y, n_way=2, k_shot=1, n_query=1, classes=[1, 1]),
     ValueError, "repeated"),
    (lambda: fewshot.sample_episode(KEY, X, Y, n_way=2, k_shot=1, n_query=1, classes=[1, 42]),
     ValueError, "class 42 has 0"),
    (lambda: fewshot.sample_per_class(KEY, Y, n_per_class=21), ValueError, "has 20"),
    (lambda: fewshot.prototypes(np.ones((3, 2), np.float32), np.array([0, 0, 2]), 3),
     ValueError, "class 1"),
    (lambda: fewshot.evaluate_episodes(_identity, {}, (1, 2)), TypeError, "Episode"),
    (lambda: fewshot.finetune_episodes(
        _identity, {}, fewshot.sample_episodes(KEY, X, Y, n_episodes=1, n_way=2, k_shot=1,
                                               n_query=1), steps=0), ValueError, "steps"),
    (lambda: fewshot.learning_curve(lambda k, x, y: None, X, Y, X, Y, key=KEY, n_per_class=()),
     ValueError, "empty"),
    (lambda: fewshot.learning_curve(None, X, Y, X, Y, key=KEY), TypeError, "method"),
]


@pytest.mark.parametrize("call,error,match", BAD)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

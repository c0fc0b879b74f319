"""Tests for jaxlearn.transfer: paths and labels, frozen params bitwise unchanged by training,
per-group learning rates against a hand-written SGD step, the ridge probe against the normal
equations in float64, head-first fine-tuning."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlearn import nn, train, transfer

KEY = jax.random.key(0)
N_CLASSES = 3
BACKBONE = nn.serial(nn.dense(8), nn.relu)
MODEL = nn.serial(BACKBONE, nn.dense(N_CLASSES))
_, PARAMS = MODEL.init(KEY, (4,))
X = jax.random.normal(jax.random.key(1), (60, 4))
Y = (jnp.argmax(X[:, :N_CLASSES], axis=1)).astype(jnp.int32)
LOSS = "softmax_cross_entropy_with_integer_labels"


def test_paths_labels_and_select():
    paths = transfer.param_paths(PARAMS)
    assert paths == (({"b": "0/0/b", "w": "0/0/w"}, ()), {"b": "1/b", "w": "1/w"})
    by_index = transfer.param_labels(PARAMS, ("body", "head"))
    by_path = transfer.param_labels(PARAMS, lambda p: "head" if p.startswith("1/") else "body")
    assert by_index == by_path
    assert jax.tree.leaves(by_index) == ["body", "body", "head", "head"]
    assert transfer.select(PARAMS, "1/w") is PARAMS[1]["w"]
    assert transfer.select(PARAMS, "0") is PARAMS[0]


def test_frozen_params_are_bitwise_unchanged_by_fit():
    # AdamW with weight decay would move every leaf it sees, even with zero gradients.
    opt = transfer.freeze(optax.adamw(1e-2, weight_decay=0.5), trainable=(False, True))
    result = train.fit(MODEL.apply, PARAMS, X, Y, loss=LOSS, optimizer=opt, key=KEY,
                       batch_size=20, steps=15)
    chex.assert_trees_all_equal(result.params[0], PARAMS[0])
    assert not np.allclose(result.params[1]["w"], PARAMS[1]["w"])


def test_multi_lr_applies_each_group_its_learning_rate():
    opt = transfer.multi_lr(optax.sgd, {"body": 0.0, "head": 0.1}, ("body", "head"))

    def objective(p):
        return jnp.mean(MODEL.apply(p, X) ** 2)

    grads = jax.grad(objective)(PARAMS)
    updates, _ = opt.update(grads, opt.init(PARAMS), PARAMS)
    new = optax.apply_updates(PARAMS, updates)
    chex.assert_trees_all_equal(new[0], PARAMS[0])
    # One SGD step p - 0.1 g: the same float32 operations, so equal to rounding (1e-7).
    for name in ("w", "b"):
        np.testing.assert_allclose(new[1][name], PARAMS[1][name] - 0.1 * grads[1][name],
                                   rtol=1e-6, atol=1e-7)


def test_ridge_probe_matches_the_normal_equations():
    feats = transfer.features(BACKBONE.apply, PARAMS[0], X)
    # Batched vs whole-array matmul: float32 rounding only.
    np.testing.assert_allclose(feats, jax.nn.relu(X @ PARAMS[0][0]["w"] + PARAMS[0][0]["b"][None]),
                               rtol=1e-5, atol=1e-6)
    probe = transfer.linear_probe(feats, Y, key=KEY, n_classes=N_CLASSES, lam=2.0)
    f = np.asarray(feats, np.float64)
    fc = f - f.mean(0)
    t = np.eye(N_CLASSES)[np.asarray(Y)]
    w = np.linalg.solve(fc.T @ fc + 2.0 * np.eye(8), fc.T @ (t - t.mean(0)))
    # float32 solve of a well-conditioned 8x8 system vs float64: 1e-4 relative.
    np.testing.assert_allclose(probe["w"], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probe["b"], t.mean(0) - f.mean(0) @ w, rtol=1e-4, atol=1e-5)


def test_logistic_probe_gives_one_logit_per_class():
    y2 = (X[:, 0] > 0).astype(jnp.int32)
    probe = transfer.linear_probe(X, y2, key=KEY, n_classes=2, method="logistic", l2=1e-3)
    assert probe["w"].shape == (4, 2) and probe["b"].shape == (2,)
    np.testing.assert_array_equal(probe["w"][:, 0], 0.0)
    accuracy = float(jnp.mean(jnp.argmax(X @ probe["w"] + probe["b"][None], axis=1) == y2))
    assert accuracy > 0.95      # linearly separable by construction


def test_head_first_fine_tune_keeps_backbone_in_stage_one():
    result = transfer.fine_tune(MODEL.apply, PARAMS, X, Y, loss=LOSS, optimizer=optax.adam(1e-2),
                                key=KEY, batch_size=20, steps=12, head_steps=6)
    head_stage, full_stage = result.stages
    assert head_stage.steps == 6 and full_stage.steps == 12
    chex.assert_trees_all_equal(head_stage.params[0], PARAMS[0])
    assert not np.allclose(result.params[0][0]["w"], PARAMS[0][0]["w"])
    assert full_stage.history["loss"][-1] < head_stage.history["loss"][0]


BAD = [
    (lambda: transfer.param_labels(PARAMS, ("a", "b", "c")), ValueError, "3 labels"),
    (lambda: transfer.param_labels(PARAMS, "body"), TypeError, "rule"),
    (lambda: transfer.param_labels((), ("a",)), ValueError, "no arrays"),
    (lambda: transfer.select(PARAMS, "2"), ValueError, "no entry '2'"),
    (lambda: transfer.freeze(optax.sgd(0.1), trainable=(1, 0)).init(PARAMS), TypeError,
     "True/False"),
    (lambda: transfer.freeze("adam", trainable=(False, True)), TypeError, "optax"),
    (lambda: transfer.multi_lr(optax.sgd, {"body": -1.0}, ("body",)), ValueError, ">= 0"),
    (lambda: transfer.multi_lr(optax.sgd, {"body": 0.1}, ("body", "head")).init(PARAMS),
     ValueError, "head"),
    (lambda: transfer.linear_probe(X, Y, key=KEY, n_classes=2), ValueError, "label 2"),
    (lambda: transfer.linear_probe(X, Y, key=KEY, n_classes=3, method="svm"), ValueError, "method"),
    (lambda: transfer.fine_tune(MODEL.apply, PARAMS, X, Y, loss=LOSS, optimizer=optax.sgd(0.1),
                                key=KEY, batch_size=20, steps=1, head_steps=-1),
     ValueError, "head_steps"),
]


@pytest.mark.parametrize("call,error,match", BAD)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

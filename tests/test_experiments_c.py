"""Tests for the experiments mnist1d, data_needs and compute_cost: their private helpers (fast) and
a quick run of each (slow), whose verdict must be "holds" with the key numbers in range."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from experiment_checks import check_outcome, quick_run

import jaxlearn as jl
from experiments import compute_cost, data_needs, mnist1d


def test_balanced_order_prefixes_hold_equal_class_counts():
    y = np.repeat(np.arange(10, dtype=np.int32), 30)
    order = data_needs._balanced_order(jax.random.key(0), y)
    assert sorted(order.tolist()) == list(range(300))          # a permutation
    for k in (1, 3, 10, 30):
        counts = np.bincount(y[order[: 10 * k]], minlength=10)
        np.testing.assert_array_equal(counts, k)
    other = data_needs._balanced_order(jax.random.key(1), y)
    assert not np.array_equal(order, other)


def test_stacked_members_get_their_own_gradients():
    # The summed loss of stacked members must give each member the gradient of its own mean
    # cross-entropy; float32 sums in another order: tolerance 1e-5.
    model = jl.nn.mlp((8,), 3)
    inits = [model.init(k, (4,))[1] for k in jax.random.split(jax.random.key(0), 2)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *inits)
    x = jax.random.normal(jax.random.key(1), (5, 2, 4))
    y = jnp.array([[0, 1], [2, 2], [1, 0], [0, 0], [2, 1]], jnp.int32)
    apply = data_needs._stacked(model)
    assert apply(stacked, x).shape == (5, 2, 3)
    grads = jax.jit(jax.grad(
        lambda p: jnp.mean(data_needs._summed_cross_entropy(apply(p, x), y))))(stacked)
    ce = jl.losses.softmax_cross_entropy_with_integer_labels
    own_grad = jax.jit(jax.grad(lambda p, xb, yb: jnp.mean(ce(model.apply(p, xb), yb))))
    for j in range(2):
        own = own_grad(inits[j], x[:, j], y[:, j])
        member = jax.tree.map(lambda a, j=j: a[j], grads)
        chex.assert_trees_all_close(member, own, rtol=1e-5, atol=1e-6)


def test_flops_of_a_matmul_is_2mnk():
    a, b = jnp.ones((7, 5)), jnp.ones((5, 3))
    assert compute_cost._flops(jnp.matmul, a, b) == 2 * 7 * 5 * 3


def test_hand_count_of_the_reference_models():
    models = mnist1d.reference_models()
    counts = {}
    for name, model in models.items():
        params = jax.eval_shape(lambda k, model=model: model.init(k, (40,))[1],
                                jax.random.key(0))
        counts[name] = compute_cost._hand_count(params)
    assert counts["logistic regression"] == 2 * 40 * 10
    assert counts["MLP"] == 2 * (40 * 100 + 100 * 100 + 100 * 10)
    assert counts["CNN"] == 2 * (19 * 5 * 1 * 25 + 10 * 3 * 25 * 25 + 5 * 3 * 25 * 25 + 125 * 10)


@pytest.mark.slow
def test_mnist1d_quick_holds():
    out, _ = quick_run("mnist1d")
    check_outcome(out, "mnist1d")
    acc = out.numbers["test_accuracy"]
    for s in range(2):  # measured 0.31-0.33 / 0.63-0.66 / 0.91-0.93 at 1600 steps
        assert 0.25 <= acc["logistic regression"][s] <= 0.35
        assert acc["logistic regression"][s] < acc["MLP"][s] < acc["CNN"][s]
        assert acc["CNN"][s] >= 0.85
    # the ordering checks are paired over the 2 seeds, with a 95% interval
    assert [c.estimate.n for c in out.checks] == [2, 2]
    assert [row["source"] for row in out.literature] == ["Greydanus 2020, table 1"] * 3
    assert out.numbers["n_params"] == {"logistic regression": 410, "MLP": 15210, "CNN": 5210}
    assert len(out.numbers["val_accuracy_curves"]["CNN"][0]) == mnist1d.QUICK_STEPS // 40
    assert set(out.figures) | set(out.pngs) == {"accuracy", "curves"}


@pytest.mark.slow
def test_data_needs_quick_holds():
    out, _ = quick_run("data_needs")
    check_outcome(out, "data_needs")
    n_seeds = data_needs.QUICK_SEEDS
    m1 = out.numbers["MNIST-1D"]
    assert m1["sizes"][0] == 10
    for name in ("logistic regression", "MLP", "CNN"):
        acc = np.asarray(m1["accuracy"][name])                   # [sizes, seeds]
        assert acc.shape == (len(m1["sizes"]), n_seeds)
        assert np.all(acc[0] < 0.25)                             # 10 signals: near chance
    assert np.all(np.asarray(m1["accuracy"]["CNN"])[-1] >= 0.85)
    digits = out.numbers["digits 8x8"]["accuracy"]
    assert min(np.min(np.asarray(a)[-1]) for a in digits.values()) >= 0.9
    # Five checks over the quick seeds, each with the CLAIM's threshold and its source.
    assert [c.kind for c in out.checks] == ["interval"] * 5
    assert all(c.estimate.n == n_seeds and c.source.startswith("claim") for c in out.checks)
    assert [c.threshold for c in out.checks] == [0.2, data_needs.NEAR_CHANCE, 0.08, 0.1, 0.4]


@pytest.mark.slow
def test_compute_cost_quick_holds():
    out, _ = quick_run("compute_cost")
    check_outcome(out, "compute_cost")
    n_seeds = compute_cost.QUICK_SEEDS
    models = out.numbers["models"]
    # XLA's count = hand count + bias adds and activations (exact for these layers).
    assert models["logistic regression"]["forward_flops_per_example"] == 810
    assert models["CNN"]["forward_flops_per_example"] > models["MLP"]["forward_flops_per_example"]
    assert models["CNN"]["params"] < models["MLP"]["params"]
    for stats in models.values():
        assert stats["train_flops"] == mnist1d.QUICK_STEPS * stats["train_step_flops"]
        assert len(stats["train_seconds"]) == n_seeds
        assert all(t > 0 for t in stats["train_seconds"])
    # Quick runs: CNN 0.88-0.93, MLP 0.60-0.66 after 1600 steps, on every seed.
    assert all(c - m >= 0.15 for c, m in zip(models["CNN"]["accuracy"],
                                             models["MLP"]["accuracy"]))
    # Seven sanity checks (architecture arithmetic) and two checks over seeds that carry the
    # claim's empirical half.
    kinds = [c.kind for c in out.checks]
    assert kinds == ["sanity"] * 7 + ["interval"] * 2
    assert all(c.source for c in out.checks)
    assert all(c.estimate.n == n_seeds for c in out.checks if c.kind == "interval")

"""Tests for jaxlearn.taxonomy: the partition algorithm on a hand-made tree and as a property over
random trees (hypothesis), aggregation against a direct sum over descendants, AUC against
scikit-learn."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from jaxlearn import taxonomy

TREE = {"skin": {"benign": {"nevus": 900, "keratosis": 300},
                 "malignant": {"melanoma": 400, "carcinoma": {"bcc": 250, "scc": 150}},
                 "rash": 1200}}


def test_hand_made_tree_gives_the_expected_partition():
    part = taxonomy.partition(TREE, 500)
    # benign (1200) and malignant (800) exceed 500 and split; carcinoma (400) fits; nevus (900)
    # and rash (1200) are single leaves over the limit: documented overflow classes.
    assert part.classes == ("nevus", "keratosis", "melanoma", "carcinoma", "rash")
    assert part.sizes == (900, 300, 400, 400, 1200)
    assert taxonomy.leaves(TREE) == ("nevus", "keratosis", "melanoma", "bcc", "scc", "rash")
    np.testing.assert_array_equal(part.leaf_to_class, [0, 1, 2, 3, 3, 4])
    assert taxonomy.partition(TREE, 1200).classes == ("benign", "malignant", "rash")
    assert taxonomy.partition(TREE, 10_000).classes == ("skin",)
    assert taxonomy.counts(TREE)["skin"] == 3200


def test_aggregation_sums_descendant_probabilities():
    part = taxonomy.partition(TREE, 500)
    inference = ["benign", "malignant", "rash"]
    matrix = taxonomy.aggregation_matrix(TREE, part, inference)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=7).astype(np.float32)
    out = np.asarray(taxonomy.aggregate(probs, matrix))
    expected = np.stack([probs[:, 0] + probs[:, 1], probs[:, 2] + probs[:, 3], probs[:, 4]], 1)
    # Sums of two float32 numbers in either order: equal to float32 rounding.
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(taxonomy.inference_labels(TREE, inference), [0, 0, 1, 1, 1, 2])


def test_binary_task_auc_matches_sklearn():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=40).astype(np.float32)
    y = rng.integers(0, 3, size=40).astype(np.int32)
    task = taxonomy.binary_task(probs, y, positive=[1])
    # The same scores in float32 on both sides; roc_auc is exact up to float32 rounding.
    assert task.auc == pytest.approx(roc_auc_score(y == 1, probs[:, 1]), abs=1e-6)
    assert task.fpr[0] == 0 and task.tpr[-1] == 1
    two = taxonomy.binary_task(probs, y, positive=[1, 2])
    assert two.auc == pytest.approx(roc_auc_score(y >= 1, probs[:, 1] + probs[:, 2]), abs=1e-6)


# ------------------------------------------------------------------------------ property

def _name_tree(shape, counter):
    """Turns an anonymous nested list/int structure into a named taxonomy subtree."""
    if isinstance(shape, int):
        return shape
    children = {}
    for sub in shape:
        counter[0] += 1
        name = f"n{counter[0]}"
        children[name] = _name_tree(sub, counter)
    return children


SHAPES = st.recursive(st.integers(0, 60), lambda kids: st.lists(kids, min_size=1, max_size=4),
                      max_leaves=25)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(SHAPES, min_size=2, max_size=4), max_class_size=st.integers(1, 150))
def test_partition_covers_every_leaf_once_within_the_size_limit(shape, max_class_size):
    tree = {"root": _name_tree(shape, [0])}
    part = taxonomy.partition(tree, max_class_size)
    sizes = taxonomy.counts(tree)
    nodes = {}

    def walk(name, node, parent):
        nodes[name] = (node, parent)
        if isinstance(node, dict):
            for child, sub in node.items():
                walk(child, sub, name)

    walk("root", tree["root"], None)
    leaf_names = taxonomy.leaves(tree)
    covered = []
    for name, size in zip(part.classes, part.sizes):
        node, parent = nodes[name]
        assert size == sizes[name]
        # The limit holds except for the documented single-leaf overflow.
        assert size <= max_class_size or not isinstance(node, dict)
        # Maximal: the parent was too big to be a class.
        assert parent is None or sizes[parent] > max_class_size
        covered += [leaf for leaf in leaf_names if _under(nodes, leaf, name)]
    assert sorted(covered) == sorted(leaf_names)
    for i, leaf in enumerate(leaf_names):
        assert _under(nodes, leaf, part.classes[part.leaf_to_class[i]])

    inference = list(tree["root"])
    if part.classes == ("root",):
        with pytest.raises(ValueError, match="spans several inference nodes"):
            taxonomy.aggregation_matrix(tree, part, inference)
        return
    matrix = taxonomy.aggregation_matrix(tree, part, inference)
    probs = np.random.default_rng(0).dirichlet(np.ones(len(part.classes)), size=5)
    out = np.asarray(taxonomy.aggregate(probs.astype(np.float32), matrix))
    # float32 sums of at most ~25 terms: rows sum to 1 within 1e-5.
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def _under(nodes, leaf, ancestor):
    name = leaf
    while name is not None:
        if name == ancestor:
            return True
        name = nodes[name][1]
    return False


# ------------------------------------------------------------------------------ bad inputs

PART = taxonomy.partition(TREE, 500)
BAD = [
    (lambda: taxonomy.partition({"a": 1, "b": 2}, 5), TypeError, "exactly one key"),
    (lambda: taxonomy.partition({"r": {"a": -1}}, 5), ValueError, "count -1"),
    (lambda: taxonomy.partition({"r": {"a": 1, "b": {"a": 2}}}, 5), ValueError, "two nodes"),
    (lambda: taxonomy.partition({"r": {"a": 1.5}}, 5), TypeError, "int count"),
    (lambda: taxonomy.partition({"r": {}}, 5), ValueError, "no children"),
    (lambda: taxonomy.partition(TREE, 0), ValueError, "max_class_size"),
    (lambda: taxonomy.aggregation_matrix(TREE, PART, ["benign", "nevus", "malignant", "rash"]),
     ValueError, "overlap"),
    (lambda: taxonomy.aggregation_matrix(TREE, PART, ["benign", "malignant"]), ValueError,
     "uncovered"),
    (lambda: taxonomy.aggregation_matrix(TREE, PART, ["benign", "cancer"]), ValueError,
     "not a node"),
    (lambda: taxonomy.aggregation_matrix(TREE, taxonomy.partition(TREE, 1200),
                                         ["nevus", "keratosis", "malignant", "rash"]),
     ValueError, "spans several"),
    (lambda: taxonomy.aggregation_matrix(TREE, ("x",), ["benign", "rash"]), TypeError, "Partition"),
    (lambda: taxonomy.aggregate(np.ones((2, 4), np.float32), np.ones((5, 2))), ValueError,
     "5 rows"),
    (lambda: taxonomy.binary_task(np.ones((2, 3), np.float32) / 3, np.array([0, 1]), []),
     ValueError, "some but not all"),
    (lambda: taxonomy.binary_task(np.ones((2, 3), np.float32) / 3, np.array([0, 1]), [3]),
     ValueError, "class 3"),
    (lambda: taxonomy.binary_task(np.ones((2, 3), np.float32) / 3, np.array([0, 5]), [1]),
     ValueError, "label 5"),
]


@pytest.mark.parametrize("call,error,match", BAD)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

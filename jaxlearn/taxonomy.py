"""Class taxonomies after Esteva et al. 2017 ("Dermatologist-level classification of skin cancer").

The paper's 2,032 skin diseases form a tree. Training on the leaves would give many tiny classes;
training on the top-level nodes would throw away what the fine labels say. Its *partition
algorithm* picks training classes in between: descending from the root, a node becomes one
training class when its subtree holds at most ``max_class_size`` images, else its children are
partitioned in turn (``max_class_size = 1000`` gave 757 training classes). At inference the
network's training-class probabilities are *summed* over the descendants of each inference node
(e.g. "benign" vs "malignant"), and each binary task is scored by ROC and AUC.

A taxonomy here is a plain nested dict with exactly one root: inner nodes map child names to
subtrees, leaves are sample counts (``int >= 0``). Node names are unique across the tree::

    >>> tree = {"skin": {"benign": {"nevus": 900, "keratosis": 300},
    ...                  "malignant": {"melanoma": 400, "carcinoma": {"bcc": 250, "scc": 150}}}}
    >>> part = partition(tree, max_class_size=500)
    >>> part.classes
    ('nevus', 'keratosis', 'melanoma', 'carcinoma')
    >>> matrix = aggregation_matrix(tree, part, ["benign", "malignant"])   # [4, 2]
    >>> matrix
    array([[1., 0.],
           [1., 0.],
           [0., 1.],
           [0., 1.]], dtype=float32)
    >>> probs = jnp.array([[0.1, 0.2, 0.3, 0.4]])                          # [n, 4]
    >>> aggregate(probs, matrix).round(4).tolist()                        # [n, 2]
    [[0.3, 0.7]]

Leaves are always listed depth-first in the dict's order (:func:`leaves`); label arrays index into
that list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxlearn import _checks
from jaxlearn import metrics as metrics_lib
from jaxlearn._types import Array

Tree = Mapping[str, Any]


# ------------------------------------------------------------------------------- the tree

def _check_tree(tree: Any) -> tuple[str, Any]:
    """Validates the whole tree; returns ``(root_name, root_subtree)``."""
    if not isinstance(tree, Mapping) or len(tree) != 1:
        got = f"{len(tree)} top-level keys" if isinstance(tree, Mapping) else type(tree).__name__
        raise TypeError("`tree` must be a dict with exactly one key, the root: "
                        f"{{'root': {{'child': ..., 'leaf': count}}}}; got {got}")
    seen: set[str] = set()

    def visit(name: Any, node: Any, path: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"`tree` node names must be str, got {name!r} under {path!r}")
        if name in seen:
            raise ValueError(f"`tree` has two nodes named {name!r}; names must be unique")
        seen.add(name)
        here = f"{path}/{name}" if path else name
        if isinstance(node, Mapping):
            if not node:
                raise ValueError(f"`tree` node {here!r} has no children; make it a leaf (a count)")
            for child, sub in node.items():
                visit(child, sub, here)
        elif isinstance(node, (int, np.integer)) and not isinstance(node, bool):
            if node < 0:
                raise ValueError(f"`tree` leaf {here!r} has count {node}; counts must be >= 0")
        else:
            raise TypeError(f"`tree` node {here!r} must be a dict of children or an int count, "
                            f"got {type(node).__name__}")

    (root, sub), = tree.items()
    visit(root, sub, "")
    return root, sub


def _count(node: Any) -> int:
    if isinstance(node, Mapping):
        return sum(_count(child) for child in node.values())
    return int(node)


def _walk(name: str, node: Any):
    """Yields ``(name, node)`` for every node of the subtree, depth-first, parents first."""
    yield name, node
    if isinstance(node, Mapping):
        for child, sub in node.items():
            yield from _walk(child, sub)


def _leaves_of(name: str, node: Any) -> list[str]:
    return [n for n, sub in _walk(name, node) if not isinstance(sub, Mapping)]


def leaves(tree: Tree) -> tuple[str, ...]:
    """Leaf names, depth-first in the dict's order: the order label arrays index into."""
    return tuple(_leaves_of(*_check_tree(tree)))


def counts(tree: Tree) -> dict[str, int]:
    """Samples under every node: ``{name: sum of its leaves' counts}`` (leaves: their count)."""
    root, sub = _check_tree(tree)
    return {name: _count(node) for name, node in _walk(root, sub)}


# -------------------------------------------------------------------------------- partition

class Partition(NamedTuple):
    """Training classes chosen by :func:`partition`.

    Attributes:
      classes: names of the training-class nodes, depth-first (class ``j`` is ``classes[j]``).
      sizes: samples in each training class.
      leaf_class: ``{leaf name: training-class index}``, every leaf exactly once.
      leaf_to_class: ``int32 [n_leaves]``: entry ``i`` is the training class of ``leaves(tree)[i]``
        (maps leaf labels to training labels: ``y_train = part.leaf_to_class[y_leaf]``).
    """

    classes: tuple[str, ...]
    sizes: tuple[int, ...]
    leaf_class: dict[str, int]
    leaf_to_class: np.ndarray


def partition(tree: Tree, max_class_size: int) -> Partition:
    """The partition algorithm of Esteva et al. 2017: training classes of at most
    ``max_class_size`` samples that together cover every leaf exactly once.

    ``partition(node)`` returns ``[node]`` when ``count(node) <= max_class_size`` or ``node`` is a
    leaf, and the union of ``partition(child)`` over its children otherwise; the result is
    ``partition(root)``. Every class is therefore a maximal subtree: its parent holds more than
    ``max_class_size`` samples. **Overflow:** a single leaf with more than ``max_class_size``
    samples cannot be split and becomes its own (oversized) class; it is the only way a class
    exceeds the limit.

    Args:
      tree: a taxonomy (module docstring).
      max_class_size: ``>= 1``.

    Returns:
      A :class:`Partition`.
    """
    root, sub = _check_tree(tree)
    _checks.check_positive("max_class_size", max_class_size, integer=True)
    classes: list[tuple[str, Any]] = []

    def descend(name: str, node: Any) -> None:
        if not isinstance(node, Mapping) or _count(node) <= max_class_size:
            classes.append((name, node))
            return
        for child, child_node in node.items():
            descend(child, child_node)

    descend(root, sub)
    leaf_class = {leaf: j for j, (name, node) in enumerate(classes)
                  for leaf in _leaves_of(name, node)}
    order = _leaves_of(root, sub)
    return Partition(tuple(name for name, _ in classes), tuple(_count(n) for _, n in classes),
                     leaf_class, np.array([leaf_class[leaf] for leaf in order], np.int32))


# ------------------------------------------------------------------------------ inference

def _descendant_leaves(tree: Tree, names: Sequence[str], what: str) -> list[set[str]]:
    root, sub = _check_tree(tree)
    nodes = dict(_walk(root, sub))
    out = []
    for name in names:
        if name not in nodes:
            raise ValueError(f"`{what}` names {name!r}, which is not a node of `tree`")
        out.append(set(_leaves_of(name, nodes[name])))
    return out


def _check_inference_nodes(tree: Tree, inference_nodes: Any) -> list[set[str]]:
    if isinstance(inference_nodes, str) or not isinstance(inference_nodes, Sequence):
        raise TypeError("`inference_nodes` must be a list of node names, got "
                        f"{type(inference_nodes).__name__}")
    if len(inference_nodes) < 2:
        raise ValueError(f"`inference_nodes` must name at least 2 nodes, got {inference_nodes!r}")
    covered = _descendant_leaves(tree, inference_nodes, "inference_nodes")
    owner: dict[str, str] = {}
    for name, leaf_set in zip(inference_nodes, covered):
        for leaf in leaf_set:
            if leaf in owner:
                raise ValueError(f"`inference_nodes` {owner[leaf]!r} and {name!r} both contain "
                                 f"leaf {leaf!r}; inference classes must not overlap")
            owner[leaf] = name
    missing = [leaf for leaf in leaves(tree) if leaf not in owner]
    if missing:
        raise ValueError(f"`inference_nodes` leave {len(missing)} leaves uncovered (e.g. "
                         f"{missing[0]!r}); they must cover every leaf so probabilities sum to 1")
    return covered


def inference_labels(tree: Tree, inference_nodes: Sequence[str]) -> np.ndarray:
    """``int32 [n_leaves]``: entry ``i`` is the inference class of ``leaves(tree)[i]`` (the index
    in ``inference_nodes`` of the node above it), so ``y_inf = table[y_leaf]``.

    ``inference_nodes`` must cover every leaf exactly once.
    """
    covered = _check_inference_nodes(tree, inference_nodes)
    return np.array([next(i for i, s in enumerate(covered) if leaf in s) for leaf in leaves(tree)],
                    np.int32)


def aggregation_matrix(tree: Tree, part: Partition, inference_nodes: Sequence[str]) -> np.ndarray:
    """The 0/1 matrix ``A [n_train_classes, n_inference]`` with ``A[j, i] = 1`` iff training class
    ``j`` lies under inference node ``i`` (or is it).

    Inference probabilities are then ``p_inf = p_train @ A``: each inference node gets the sum of
    the probabilities of its descendant training classes (Esteva et al. 2017, Fig. 1).

    Raises if ``inference_nodes`` overlap or miss a leaf, or if a training class straddles two
    inference nodes (it sits above one of them: choose a smaller ``max_class_size``).
    """
    if not isinstance(part, Partition):
        raise TypeError(f"`part` must be the Partition returned by partition(), got "
                        f"{type(part).__name__}")
    covered = _check_inference_nodes(tree, inference_nodes)
    class_leaves = _descendant_leaves(tree, part.classes, "part.classes")
    matrix = np.zeros((len(part.classes), len(inference_nodes)), np.float32)
    for j, leaf_set in enumerate(class_leaves):
        inside = [i for i, s in enumerate(covered) if leaf_set <= s]
        if not inside:
            raise ValueError(f"training class {part.classes[j]!r} spans several inference nodes "
                             "(it is above one of them), so its probability cannot be split; "
                             "partition with a smaller `max_class_size`")
        matrix[j, inside[0]] = 1.0
    return matrix


def aggregate(probs: Array, matrix: Array) -> Array:
    """Sums training-class probabilities into inference-class probabilities: ``probs @ matrix``.

    Args:
      probs: ``[n, n_train_classes]`` probabilities (rows sum to 1, e.g. ``softmax(logits)``).
      matrix: ``[n_train_classes, n_inference]`` from :func:`aggregation_matrix`.

    Returns:
      ``[n, n_inference]``; rows still sum to 1 because every training class lies under exactly
      one inference node.
    """
    probs = _checks.check_features("probs", probs)
    matrix = _checks.as_array("matrix", matrix)
    _checks.check_ndim("matrix", matrix, 2)
    if matrix.shape[0] != probs.shape[1]:
        raise ValueError(f"`probs` has {probs.shape[1]} training classes but `matrix` has "
                         f"{matrix.shape[0]} rows; build it from the same partition")
    return jnp.asarray(probs) @ jnp.asarray(matrix, probs.dtype)


class BinaryTask(NamedTuple):
    """A binary task's ROC: ``auc`` (float), and ``fpr``, ``tpr``, ``thresholds`` (numpy)."""

    auc: float
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def binary_task(probs: Array, y: Array, positive: Sequence[int]) -> BinaryTask:
    """ROC and AUC of one binary task over inference classes (e.g. malignant vs benign).

    The score of sample ``s`` is ``sum_{i in positive} probs[s, i]`` (the aggregated probability
    of the positive side) and its binary label is ``[y_s in positive]``.

    Args:
      probs: ``[n, n_inference]`` probabilities (from :func:`aggregate`).
      y: ``int [n]`` inference labels in ``[0, n_inference)``; both sides must occur.
      positive: the inference classes counted as positive (non-empty, not all).

    Returns:
      A :class:`BinaryTask`, via :func:`jaxlearn.metrics.roc_curve` and
      :func:`jaxlearn.metrics.roc_auc`.
    """
    probs = _checks.check_features("probs", probs)
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_same_length("probs", probs, "y", y)
    n_inf = probs.shape[1]
    _checks.check_labels("y", y, n_inf)
    positive = tuple(positive)
    for c in positive:
        _checks.check_number("positive", c, integer=True)
        if not 0 <= c < n_inf:
            raise ValueError(f"`positive` has class {c} but `probs` has {n_inf} inference classes")
    if not positive or len(set(positive)) == n_inf:
        raise ValueError(f"`positive` must name some but not all of the {n_inf} inference "
                         f"classes, got {positive}")
    mask = np.zeros(n_inf, bool)
    mask[list(positive)] = True
    scores = jnp.asarray(probs) @ jnp.asarray(mask, probs.dtype)
    y_bin = jnp.asarray(mask)[jnp.asarray(y)].astype(jnp.int32)
    fpr, tpr, thresholds = metrics_lib.roc_curve(y_bin, scores)
    return BinaryTask(float(metrics_lib.roc_auc(y_bin, scores)), fpr, tpr, thresholds)

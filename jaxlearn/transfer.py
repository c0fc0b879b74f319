"""Transfer learning: reuse a backbone trained on a source task for a target task with few labels.

Convention: a transferable model is ``nn.serial(backbone, head)``, so its params are the pair
``(backbone_params, head_params)``. Pretrain it on the source task, keep ``params[0]``, and on the
target task either

* **linear probe** (:func:`features` + :func:`linear_probe`): freeze the backbone, compute its
  features once and fit a linear head in closed form (ridge onto one-hot targets) or by logistic
  regression (L-BFGS);
* **fine-tune** (:func:`fine_tune`): train everything, optionally training the new head alone
  first (head-first-then-all, Kumar et al. 2022 "LP-FT"), with separate learning rates per
  parameter group (:func:`multi_lr`).

Parameter groups are named by *paths*: the key path of a leaf written ``"0/1/w"`` (tuple index
``0``, then index ``1``, then dict key ``"w"``), see :func:`param_paths`. A *rule* maps a leaf
to a label; it is either a callable ``rule(path) -> label`` or a sequence with one label per
top-level entry of the params (``("frozen", "head")`` for ``(backbone, head)``). :func:`freeze`
zeroes the updates of frozen leaves with ``optax.set_to_zero`` inside ``optax.multi_transform``,
so they stay bitwise equal even under Adam with weight decay.

Example::

    >>> backbone = jl.nn.serial(jl.nn.dense(8), jl.nn.activation("relu"))
    >>> model = jl.nn.serial(backbone, jl.nn.dense(5))
    >>> _, params = model.init(jax.random.key(0), (4,))    # (backbone, head)
    >>> param_paths(params)[1]
    {'b': '1/b', 'w': '1/w'}
    >>> opt = freeze(optax.adamw(1e-3, weight_decay=1e-2), trainable=(False, True))  # head only
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> updates, _ = opt.update(grads, opt.init(params), params)
    >>> new = optax.apply_updates(params, updates)          # what jl.fit does each step
    >>> jax.tree.all(jax.tree.map(jnp.array_equal, new[0], params[0]))
    True
    >>> bool(jnp.array_equal(new[1]["w"], params[1]["w"]))
    False
    >>> opt = multi_lr(optax.adam, {"body": 1e-4, "head": 1e-3}, ("body", "head"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlearn import _checks, _keys, linear
from jaxlearn import train as train_lib
from jaxlearn._types import Array, Params

Rule = Callable[[str], Any] | Sequence[Any]


# ------------------------------------------------------------------------------------ paths

def _key_name(entry: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def path_str(path: Sequence[Any]) -> str:
    """A ``jax.tree_util`` key path as ``"0/1/w"``."""
    return "/".join(_key_name(entry) for entry in path)


def param_paths(params: Params) -> Params:
    """The params pytree with every leaf replaced by its path string (``"0/1/w"``)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path_str(path), params)


def _check_params(params: Any) -> None:
    if not jax.tree.leaves(params):
        raise ValueError("`params` has no arrays")


def param_labels(params: Params, rule: Rule) -> Params:
    """Labels every leaf of ``params`` by ``rule``; returns a pytree of labels shaped like it.

    Args:
      params: any params pytree.
      rule: ``rule(path) -> label`` called with each leaf's path string, or a sequence of labels
        with one entry per top-level entry of ``params`` (a tuple/list), given to its whole
        subtree. Example: ``("body", "head")`` for the params of ``serial(backbone, head)``.

    Returns:
      A pytree with ``params``' structure and a label at every leaf (the form
      ``optax.multi_transform`` takes).
    """
    _check_params(params)
    if callable(rule):
        return jax.tree_util.tree_map_with_path(lambda path, _: rule(path_str(path)), params)
    if isinstance(rule, str) or not isinstance(rule, Sequence):
        raise TypeError("`rule` must be callable(path) -> label or a sequence of labels, one per "
                        f"top-level entry of `params`; got {type(rule).__name__}")
    if not isinstance(params, (tuple, list)) or len(params) != len(rule):
        n = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
        raise ValueError(f"`rule` has {len(rule)} labels but `params` has {n} top-level "
                         "entries; give one label per entry (or a callable rule)")
    return type(params)(jax.tree.map(lambda _, lab=label: lab, sub)
                        for sub, label in zip(params, rule))


def select(params: Params, path: str) -> Params:
    """The subtree of ``params`` at ``path`` (``"0"`` is the backbone of ``(backbone, head)``,
    ``"0/2/w"`` one weight of it)."""
    if not isinstance(path, str):
        raise TypeError(f"`path` must be a str like '0/1', got {type(path).__name__}")
    node = params
    for part in [p for p in path.split("/") if p]:
        if isinstance(node, (tuple, list)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise ValueError(f"`path` {path!r}: no entry {part!r} under "
                             f"{type(node).__name__} (available: {_entries(node)})")
    return node


def _entries(node: Any) -> list[str]:
    if isinstance(node, (tuple, list)):
        return [str(i) for i in range(len(node))]
    if isinstance(node, Mapping):
        return [str(k) for k in node]
    return []


# ------------------------------------------------------------------------------- optimizers

def freeze(optimizer: optax.GradientTransformation, *, trainable: Rule) -> (
        optax.GradientTransformation):
    """``optimizer`` on the trainable leaves; the others get zero updates and stay bitwise put.

    Built as ``optax.multi_transform({"trainable": optimizer, "frozen": optax.set_to_zero()},
    labels)``: frozen leaves never reach ``optimizer``, so neither momentum nor weight decay can
    move them, and no optimizer state is kept for them.

    Args:
      optimizer: any ``optax.GradientTransformation``.
      trainable: a rule (see :func:`param_labels`) giving ``True`` for trainable leaves and
        ``False`` for frozen ones, e.g. ``(False, True)`` to train the head of
        ``(backbone, head)`` only, or ``lambda path: path.startswith("1/")``.

    Returns:
      An ``optax.GradientTransformation``; the labels are computed from the params' structure at
      ``init`` (a rule that does not fit the params raises there, before any training).
    """
    _check_optimizer("optimizer", optimizer)
    _check_rule(trainable, "trainable")

    def labels(params):
        flags = param_labels(params, trainable)
        for flag in jax.tree.leaves(flags):
            if not isinstance(flag, bool):
                raise TypeError(f"`trainable` must give True/False per leaf, got {flag!r}")
        return jax.tree.map(lambda f: "trainable" if f else "frozen", flags)

    return optax.multi_transform({"trainable": optimizer, "frozen": optax.set_to_zero()}, labels)


def multi_lr(make_optimizer: Callable[[float], optax.GradientTransformation],
             learning_rates: Mapping[str, float], rule: Rule) -> optax.GradientTransformation:
    """One optimizer per parameter group, each with its own learning rate.

    Group ``g`` (the leaves labelled ``g`` by ``rule``) is updated by
    ``make_optimizer(learning_rates[g])``; a group with learning rate ``0`` gets
    ``optax.set_to_zero()`` instead, so it stays bitwise unchanged (:func:`freeze`).

    Args:
      make_optimizer: ``learning_rate -> optax.GradientTransformation`` (``optax.adam``,
        ``optax.sgd``, ``lambda lr: optax.adamw(lr, weight_decay=1e-4)``...).
      learning_rates: ``{label: learning_rate >= 0}``; every label ``rule`` produces must appear.
      rule: a rule (see :func:`param_labels`), e.g. ``("body", "head")``.

    Returns:
      ``optax.multi_transform`` over the groups.
    """
    if not callable(make_optimizer):
        raise TypeError(f"`make_optimizer` must be callable(learning_rate) -> optax optimizer, "
                        f"got {type(make_optimizer).__name__}")
    if not isinstance(learning_rates, Mapping) or not learning_rates:
        raise TypeError("`learning_rates` must be a non-empty dict {label: learning_rate}")
    transforms = {}
    for label, lr in learning_rates.items():
        _checks.check_nonnegative(f"learning_rates[{label!r}]", lr)
        transforms[label] = optax.set_to_zero() if lr == 0 else make_optimizer(lr)
        _check_optimizer(f"make_optimizer({lr})", transforms[label])
    _check_rule(rule, "rule")

    def labels(params):
        tree = param_labels(params, rule)
        unknown = set(jax.tree.leaves(tree)) - set(learning_rates)
        if unknown:
            raise ValueError(f"`rule` gives labels {sorted(unknown)} that have no entry in "
                             f"`learning_rates` {sorted(learning_rates)}")
        return tree

    return optax.multi_transform(transforms, labels)


def _check_optimizer(name: str, optimizer: Any) -> None:
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"`{name}` must be an optax.GradientTransformation, got "
                        f"{type(optimizer).__name__}")


def _check_rule(rule: Any, name: str) -> None:
    if not callable(rule) and (isinstance(rule, str) or not isinstance(rule, Sequence)):
        raise TypeError(f"`{name}` must be callable(path) -> label or a sequence with one label "
                        f"per top-level params entry, got {type(rule).__name__}")


# ------------------------------------------------------------------------------ linear probe

def features(apply_backbone: Callable, params: Params, x: Array, *,
             batch_size: int = 1024) -> Array:
    """Frozen features ``phi(x) = backbone(params, x)`` in test mode, in compiled batches.

    Shapes: ``x`` ``[n, ...]``; returns ``[n, ...features]`` (flatten them for a probe).
    Wraps :func:`jaxlearn.train.predict`.
    """
    return train_lib.predict(apply_backbone, params, x, batch_size=batch_size)


@_keys.key_keyword(0, "linear_probe(x, y, key=key, n_classes=...)")
def linear_probe(x: Array, y: Array, *, key: Array, n_classes: int, method: str = "ridge",
                 lam: float = 1.0, l2: float = 1e-4, steps: int = 500) -> dict[str, Array]:
    """Fits a linear head on frozen features; returns params of ``nn.dense(n_classes)``.

    * ``method="ridge"``: closed-form ridge regression onto one-hot targets, all classes at once
      (one-vs-rest least squares): ``min_W ||X W + b - Y||^2 + lam ||W||^2`` with ``Y`` the
      ``[n, K]`` one-hot matrix (:func:`jaxlearn.linear.ridge`); predict ``argmax_k (x W + b)_k``.
    * ``method="logistic"``: multinomial logistic regression, mean cross-entropy
      ``+ l2 ||W||^2``, by L-BFGS (:func:`jaxlearn.linear.fit_logistic_regression`); two classes
      are returned as two logits ``[0, z]`` so every probe has ``K`` outputs.

    The result can initialise the head of ``serial(backbone, nn.dense(K))`` before fine-tuning.

    Args:
      key: ``jax.random`` key (initial point of L-BFGS; unused by ridge, whose answer is unique).
      x: float features ``[n, d]`` (from :func:`features`; standardise them for ``"logistic"``).
      y: int labels ``[n]`` in ``[0, n_classes)``.
      n_classes: ``K >= 2``.
      method: ``"ridge"`` or ``"logistic"``.
      lam: ridge penalty ``> 0``. l2, steps: passed to ``fit_logistic_regression``.

    Returns:
      ``{"w": [d, K], "b": [K]}``: logits ``x @ w + b``.
    """
    _checks.check_key("key", key)
    _checks.check_choice("method", method, ("ridge", "logistic"))
    x = _checks.check_features("x", x)
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_same_length("x", x, "y", y)
    _checks.check_positive("n_classes", n_classes, integer=True)
    if n_classes < 2:
        raise ValueError(f"`n_classes` must be >= 2, got {n_classes}")
    _checks.check_labels("y", y, n_classes)
    if method == "ridge":
        targets = jax.nn.one_hot(jnp.asarray(y), n_classes, dtype=x.dtype)
        return linear.ridge(x, targets, lam)
    params = linear.fit_logistic_regression(x, y, key=key, n_classes=n_classes, l2=l2, steps=steps)
    if n_classes == 2:
        zero = jnp.zeros_like(params["w"])
        return {"w": jnp.concatenate([zero, params["w"]], axis=1),
                "b": jnp.concatenate([jnp.zeros_like(params["b"]), params["b"]])}
    return params


# ------------------------------------------------------------------------------- fine-tuning

class FineTuneResult(NamedTuple):
    """What :func:`fine_tune` returns: the final ``params`` and the
    :class:`~jaxlearn.train.FitResult` of each stage (``(head_stage, full_stage)`` or
    ``(full_stage,)``)."""

    params: Params
    stages: tuple[train_lib.FitResult, ...]


def fine_tune(apply_fn: Callable, params: Params, x: Array, y: Array, *, loss: str | Callable,
              optimizer: optax.GradientTransformation, key: Array, batch_size: int, steps: int,
              head_steps: int = 0, head_optimizer: optax.GradientTransformation | None = None,
              head: Rule = (False, True), **fit_kwargs: Any) -> FineTuneResult:
    """Fine-tunes a pretrained model: optionally the head alone first, then all parameters.

    Stage 1 (when ``head_steps > 0``): ``head_steps`` steps of :func:`jaxlearn.train.fit` with
    ``freeze(head_optimizer or optimizer, trainable=head)``: the backbone stays bitwise put while
    the new head learns, so the first large gradients of a random head do not wreck the
    pretrained features. Stage 2: ``steps`` steps of ``fit`` with ``optimizer`` on everything
    (pass ``multi_lr(...)`` for a smaller backbone learning rate, or ``freeze`` for a partial
    fine-tune). ``head_steps=0`` is plain full fine-tuning.

    Args:
      apply_fn, params, x, y, loss, batch_size: as for :func:`jaxlearn.train.fit`; ``params`` is
        ``(backbone_params, head_params)`` by convention (see ``head``).
      optimizer: the stage-2 optimizer.
      key: ``jax.random`` key; stage ``s`` uses ``fold_in(key, s)``.
      steps: stage-2 steps ``>= 1``.
      head_steps: stage-1 steps ``>= 0``.
      head_optimizer: stage-1 optimizer (default ``optimizer``).
      head: rule marking the head's leaves ``True`` (default ``(False, True)``).
      **fit_kwargs: passed to both ``fit`` calls (``validation_data``, ``penalty``...).

    Returns:
      A :class:`FineTuneResult`.
    """
    _checks.check_key("key", key)
    _checks.check_nonnegative("head_steps", head_steps, integer=True)
    _check_optimizer("optimizer", optimizer)
    if head_optimizer is not None:
        _check_optimizer("head_optimizer", head_optimizer)
    stages = []
    common = dict(loss=loss, batch_size=batch_size, **fit_kwargs)
    if head_steps:
        opt = freeze(head_optimizer if head_optimizer is not None else optimizer,
                     trainable=head)
        result = train_lib.fit(apply_fn, params, x, y, optimizer=opt, steps=head_steps,
                               key=jax.random.fold_in(key, 0), **common)
        stages.append(result)
        params = result.params
    result = train_lib.fit(apply_fn, params, x, y, optimizer=optimizer, steps=steps,
                           key=jax.random.fold_in(key, 1), **common)
    stages.append(result)
    return FineTuneResult(result.params, tuple(stages))

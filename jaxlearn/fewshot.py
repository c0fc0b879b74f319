"""Few-shot learning: episodic sampling, prototypical networks, baselines, learning curves.

An *N-way K-shot episode* draws ``N`` classes, ``K`` labelled *support* examples and ``Q``
*query* examples of each, relabels the classes ``0..N-1`` and asks a method to classify the
queries from the support alone. Samplers here are pure functions of a key with static sizes, so
many episodes are drawn and solved inside one ``jit`` (:func:`sample_episodes` is a ``vmap``).

Methods, all evaluated on stacked episodes in one compiled program:

* **Prototypical networks** (Snell et al. 2017): embed with ``f_theta``, take each class's mean
  support embedding as its prototype ``c_k``, and classify a query by
  ``p(y = k | x) = softmax_k(-||f_theta(x) - c_k||^2)``; trained episodically on the query
  cross-entropy (:func:`proto_loss`, :func:`train_protonet`), evaluated by
  :func:`evaluate_episodes`.
* **Ridge probe** (:func:`ridge_probe_episodes`): closed-form ridge from the support embeddings to
  one-hot targets.
* **Fine-tuning baseline** (:func:`finetune_episodes`; Chen et al. 2019, "A closer look at
  few-shot classification"): a new linear head on the frozen embeddings, trained on the support
  set by a few steps of gradient descent inside the ``jit``.

:func:`learning_curve` measures any method at ``n = 1, 2, 5, 10, ...`` labels per class over
several seeds, with stratified subsets drawn by :func:`sample_per_class`.

Example::

    >>> k_data, k_init, k_train, k_test = jax.random.split(jax.random.key(0), 4)
    >>> y = jnp.arange(600) % 20                                   # 20 classes, 30 examples each
    >>> x = 2.0 * jax.nn.one_hot(y, 20) + 0.3 * jax.random.normal(k_data, (600, 20))
    >>> x_train, y_train, x_test, y_test = x[y < 15], y[y < 15], x[y >= 15], y[y >= 15]
    >>> embed = jl.nn.dense(16)
    >>> _, params = embed.init(k_init, (20,))
    >>> result = train_protonet(embed.apply, params, x_train, y_train, optimizer=optax.adam(1e-2),
    ...                         key=k_train, n_way=5, k_shot=1, n_query=5, steps=50)
    >>> episodes = sample_episodes(k_test, x_test, y_test, n_episodes=100, n_way=5, k_shot=1,
    ...                            n_query=5)                      # 5 classes never trained on
    >>> accuracy = evaluate_episodes(embed.apply, result.params, episodes)   # [100]
    >>> bool(accuracy.mean() > 0.8)                                # chance: 0.2
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlearn import _checks, linear, losses
from jaxlearn import metrics as metrics_lib
from jaxlearn._types import Array, Params
from jaxlearn.apply import as_apply

# --------------------------------------------------------------------------------- sampling

def _check_xy(x: Any, y: Any) -> tuple[Any, Any]:
    x = _checks.as_array("x", x)
    _checks.check_nonempty("x", x)
    _checks.check_float("x", x)
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_same_length("x", x, "y", y)
    _checks.check_labels("y", y)
    if _checks.is_concrete(y) and int(np.min(np.asarray(y))) < 0:
        raise ValueError(f"`y` has label {int(np.min(np.asarray(y)))}; labels must be >= 0")
    return x, y


def _check_pool(y: Any, classes: Any, need: int, what: str) -> np.ndarray:
    """The class pool as an int32 array; every class must have ``need`` examples in ``y``."""
    labels, label_counts = np.unique(np.asarray(y), return_counts=True)
    available = dict(zip(labels.tolist(), label_counts.tolist()))
    if classes is None:
        pool = labels
    else:
        if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
            raise TypeError(f"`classes` must be a sequence of int labels, got "
                            f"{type(classes).__name__}")
        pool = np.asarray(classes)
        if pool.ndim != 1 or pool.size == 0 or not np.issubdtype(pool.dtype, np.integer):
            raise TypeError(f"`classes` must be a non-empty 1-D sequence of int labels, got "
                            f"{classes!r}")
        if np.unique(pool).size != pool.size:
            raise ValueError(f"`classes` has repeated labels: {pool.tolist()}")
    for c in pool.tolist():
        if available.get(c, 0) < need:
            raise ValueError(f"class {c} has {available.get(c, 0)} examples in `y` but {what} "
                             f"needs {need} per class")
    return pool.astype(np.int32)


def _first_of_class(key: Array, y: Array, c: Array, count: int) -> Array:
    """Indices of ``count`` distinct random examples of class ``c``: a random permutation of the
    class, taken as the order of i.i.d. uniform scores (the other classes score +inf)."""
    scores = jnp.where(y == c, jax.random.uniform(key, y.shape), jnp.inf)
    return jnp.argsort(scores)[:count]


def sample_per_class(key: Array, y: Array, *, n_per_class: int,
                     classes: Sequence[int] | None = None) -> Array:
    """A stratified random subset: ``n_per_class`` distinct examples of each class.

    Args:
      key: ``jax.random`` key.
      y: int labels ``[n]``.
      n_per_class: examples per class ``>= 1``; every class must have that many.
      classes: the classes to draw from (default: every label present in ``y``), in order.

    Returns:
      ``int32 [n_classes * n_per_class]`` indices into ``y``, class-major (the first
      ``n_per_class`` are of ``classes[0]``...). Traceable: vmap it over keys.
    """
    _checks.check_key("key", key)
    y = _checks.as_array("y", y)
    _checks.check_ndim("y", y, 1)
    _checks.check_labels("y", y)
    _checks.check_positive("n_per_class", n_per_class, integer=True)
    pool = _check_pool(y, classes, n_per_class, f"n_per_class={n_per_class}")
    return _sample_per_class(key, jnp.asarray(y), jnp.asarray(pool), n_per_class)


@partial(jax.jit, static_argnums=3)
def _sample_per_class(key, y, pool, n_per_class):
    keys = jax.random.split(key, pool.shape[0])
    idx = jax.vmap(lambda k, c: _first_of_class(k, y, c, n_per_class))(keys, pool)
    return idx.reshape(-1).astype(jnp.int32)


class Episode(NamedTuple):
    """One N-way K-shot episode (or a stack of them, with a leading ``[n_episodes]`` axis).

    Attributes:
      support_x: ``[N * K, ...]``, class-major (``K`` examples of class 0, then of class 1...).
      support_y: ``int32 [N * K]`` relabelled classes in ``0..N-1``.
      query_x: ``[N * Q, ...]``, class-major.
      query_y: ``int32 [N * Q]`` in ``0..N-1``.
      classes: ``int32 [N]``: the original label of episode class ``k``.
      support_index, query_index: indices into the ``x`` the episode was drawn from (disjoint).
    """

    support_x: Array
    support_y: Array
    query_x: Array
    query_y: Array
    classes: Array
    support_index: Array
    query_index: Array


def _sample_episode(key, x, y, pool, n_way, k_shot, n_query):
    k_classes, k_examples = jax.random.split(key)
    classes = jax.random.choice(k_classes, pool, (n_way,), replace=False)
    keys = jax.random.split(k_examples, n_way)
    idx = jax.vmap(lambda k, c: _first_of_class(k, y, c, k_shot + n_query))(keys, classes)
    support, query = idx[:, :k_shot].reshape(-1), idx[:, k_shot:].reshape(-1)
    relabel = jnp.arange(n_way, dtype=jnp.int32)
    return Episode(x[support], jnp.repeat(relabel, k_shot), x[query], jnp.repeat(relabel, n_query),
                   classes.astype(jnp.int32), support.astype(jnp.int32), query.astype(jnp.int32))


_sample_episode_jit = jax.jit(_sample_episode, static_argnums=(4, 5, 6))


def _check_episode_args(key, x, y, n_way, k_shot, n_query, classes):
    _checks.check_key("key", key)
    x, y = _check_xy(x, y)
    for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
        _checks.check_positive(name, value, integer=True)
    if n_way < 2:
        raise ValueError(f"`n_way` must be >= 2, got {n_way}")
    pool = _check_pool(y, classes, k_shot + n_query,
                       f"an episode with k_shot={k_shot} and n_query={n_query}")
    if n_way > pool.size:
        raise ValueError(f"`n_way` is {n_way} but only {pool.size} classes are available "
                         f"({pool.tolist()})")
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(pool)


def sample_episode(key: Array, x: Array, y: Array, *, n_way: int, k_shot: int, n_query: int,
                   classes: Sequence[int] | None = None) -> Episode:
    """Draws one N-way K-shot episode.

    ``N = n_way`` distinct classes are drawn uniformly from ``classes``; for each, ``K + Q``
    distinct examples are drawn uniformly without replacement, the first ``K`` going to the
    support set and the other ``Q`` to the query set (so the two never share an example). Class
    ``classes_drawn[k]`` is relabelled ``k``.

    Args:
      key: ``jax.random`` key.
      x: float inputs ``[n, ...]``.
      y: int labels ``[n]`` (``>= 0``).
      n_way: classes per episode, ``>= 2``.
      k_shot: support examples per class, ``>= 1``.
      n_query: query examples per class, ``>= 1``.
      classes: the class pool (e.g. held-out classes); default every label in ``y``. Each needs
        ``k_shot + n_query`` examples.

    Returns:
      An :class:`Episode`.
    """
    x, y, pool = _check_episode_args(key, x, y, n_way, k_shot, n_query, classes)
    return _sample_episode_jit(key, x, y, pool, n_way, k_shot, n_query)


def sample_episodes(key: Array, x: Array, y: Array, *, n_episodes: int, n_way: int, k_shot: int,
                    n_query: int, classes: Sequence[int] | None = None) -> Episode:
    """``n_episodes`` independent episodes, stacked: :func:`sample_episode` vmapped over
    ``jax.random.split(key, n_episodes)``, in one compiled call.

    Returns:
      An :class:`Episode` whose fields have a leading ``[n_episodes]`` axis; episode ``e`` equals
      ``sample_episode(jax.random.split(key, n_episodes)[e], ...)``.
    """
    x, y, pool = _check_episode_args(key, x, y, n_way, k_shot, n_query, classes)
    _checks.check_positive("n_episodes", n_episodes, integer=True)
    return _sample_episodes(key, x, y, pool, n_way, k_shot, n_query, n_episodes)


@partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _sample_episodes(key, x, y, pool, n_way, k_shot, n_query, n_episodes):
    keys = jax.random.split(key, n_episodes)
    return jax.vmap(lambda k: _sample_episode(k, x, y, pool, n_way, k_shot, n_query))(keys)


# -------------------------------------------------------------------------- prototypical nets

def prototypes(embeddings: Array, labels: Array, n_way: int) -> Array:
    """Class means of the support embeddings: ``c_k = mean_{i: y_i = k} f(x_i)``.

    Args:
      embeddings: float ``[n_support, d]``.
      labels: int ``[n_support]`` in ``0..n_way-1``, every class present.
      n_way: number of classes ``N``.

    Returns:
      ``[N, d]``.
    """
    embeddings = _checks.check_features("embeddings", embeddings)
    labels = _checks.as_array("labels", labels)
    _checks.check_ndim("labels", labels, 1)
    _checks.check_same_length("embeddings", embeddings, "labels", labels)
    _checks.check_positive("n_way", n_way, integer=True)
    _checks.check_labels("labels", labels, n_way)
    if _checks.is_concrete(labels):
        missing = sorted(set(range(n_way)) - set(np.asarray(labels).tolist()))
        if missing:
            raise ValueError(f"`labels` has no example of class {missing[0]}; every class "
                             f"0..{n_way - 1} needs a prototype")
    return _prototypes(jnp.asarray(embeddings), jnp.asarray(labels), n_way)


def _prototypes(embeddings, labels, n_way):
    one_hot = jax.nn.one_hot(labels, n_way, dtype=embeddings.dtype)
    return (one_hot.T @ embeddings) / jnp.sum(one_hot, axis=0)[:, None]


def _sq_distances(queries, centres):
    """``[Q, N]`` squared euclidean distances, from the differences (no cancellation)."""
    return jnp.sum((queries[:, None, :] - centres[None, :, :]) ** 2, axis=-1)


def proto_logits(support_embeddings: Array, support_y: Array, query_embeddings: Array,
                 n_way: int) -> Array:
    """Prototypical-network logits ``-||f(x_q) - c_k||^2``: ``[Q, d]`` queries -> ``[Q, N]``."""
    centres = prototypes(support_embeddings, support_y, n_way)
    query_embeddings = _checks.check_features("query_embeddings", query_embeddings)
    if query_embeddings.shape[1] != centres.shape[1]:
        raise ValueError(f"`query_embeddings` has {query_embeddings.shape[1]} features but the "
                         f"support embeddings have {centres.shape[1]}")
    return -_sq_distances(jnp.asarray(query_embeddings), centres)


def _embed(apply, params, x, key=None, train=False):
    out = apply(params, x, key=key, train=train)
    return out.reshape(out.shape[0], -1)


def _episode_logits(apply, params, episode, n_way, key=None, train=False):
    k_s, k_q = jax.random.split(key) if key is not None else (None, None)
    support = _embed(apply, params, episode.support_x, k_s, train)
    query = _embed(apply, params, episode.query_x, k_q, train)
    return -_sq_distances(query, _prototypes(support, episode.support_y, n_way))


def _n_way(episode: Episode) -> int:
    return episode.classes.shape[-1]


def _check_episode(episode: Any, *, stacked: bool) -> None:
    if not isinstance(episode, Episode):
        raise TypeError(f"`episodes` must be an Episode (from sample_episode(s)), got "
                        f"{type(episode).__name__}")
    if stacked and episode.classes.ndim != 2:
        raise ValueError("`episodes` must be stacked (from sample_episodes, leading "
                         f"[n_episodes] axis); got classes of shape {episode.classes.shape}")


def proto_loss(embed_apply: Callable, params: Params, episodes: Episode, *,
               key: Array | None = None, train: bool = False) -> Array:
    """Episodic prototypical-network loss: mean query cross-entropy of
    ``softmax(-||f(x_q) - c_k||^2)``, averaged over the stacked ``episodes``.

    Args:
      embed_apply: embedding ``apply(params, x, ...)`` ``[b, ...] -> [b, ...]`` (flattened to
        ``[b, d]``).
      params: its params.
      episodes: stacked :class:`Episode` (leading ``[E]`` axis).
      key, train: passed to ``embed_apply`` (dropout), one key per episode.

    Returns:
      A scalar. Differentiable in ``params``; use it in your own step or :func:`train_protonet`.
    """
    _check_episode(episodes, stacked=True)
    return _proto_loss(as_apply(embed_apply), params, episodes, key, train)


def _proto_loss(apply, params, episodes, key, train):
    n_way = _n_way(episodes)
    n_episodes = episodes.classes.shape[0]
    keys = jax.random.split(key, n_episodes) if key is not None else None

    def one(episode, k):
        logits = _episode_logits(apply, params, episode, n_way, k, train)
        return jnp.mean(losses.softmax_cross_entropy_with_integer_labels(logits, episode.query_y))

    if keys is None:
        return jnp.mean(jax.vmap(lambda e: one(e, None))(episodes))
    return jnp.mean(jax.vmap(one)(episodes, keys))


class ProtoNetResult(NamedTuple):
    """:func:`train_protonet`'s output: trained ``params`` and the ``loss`` per step ``[steps]``."""

    params: Params
    loss: Array


def train_protonet(embed_apply: Callable, params: Params, x: Array, y: Array, *,
                   optimizer: optax.GradientTransformation, key: Array, n_way: int, k_shot: int,
                   n_query: int, steps: int, episodes_per_step: int = 1,
                   classes: Sequence[int] | None = None) -> ProtoNetResult:
    """Episodic training of a prototypical network, as one ``lax.scan`` inside one ``jit``.

    Step ``t`` draws ``episodes_per_step`` fresh episodes from ``(x, y)`` with
    ``fold_in(key, t)`` (sampling happens inside the compiled loop) and takes one ``optimizer``
    step on :func:`proto_loss` (``train=True``, so dropout is active).

    Args:
      embed_apply: embedding ``apply``; params: its initial params.
      x, y: training data ``[n, ...]``, int labels ``[n]``.
      optimizer: an ``optax.GradientTransformation``.
      key: ``jax.random`` key.
      n_way, k_shot, n_query, classes: the episodes (:func:`sample_episode`); training with a
        larger ``n_way`` than at test time often helps (Snell et al. 2017).
      steps: optimizer steps ``>= 1``.
      episodes_per_step: episodes averaged per step ``>= 1``.

    Returns:
      A :class:`ProtoNetResult`.
    """
    x, y, pool = _check_episode_args(key, x, y, n_way, k_shot, n_query, classes)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"`optimizer` must be an optax.GradientTransformation, got "
                        f"{type(optimizer).__name__}")
    _checks.check_positive("steps", steps, integer=True)
    _checks.check_positive("episodes_per_step", episodes_per_step, integer=True)
    apply = as_apply(embed_apply)
    params = jax.tree.map(jnp.asarray, params)

    @jax.jit
    def run(params, key):
        def step(carry, t):
            params, opt_state = carry
            k_ep, k_drop = jax.random.split(jax.random.fold_in(key, t))
            episodes = _sample_episodes(k_ep, x, y, pool, n_way, k_shot, n_query,
                                        episodes_per_step)
            value, grads = jax.value_and_grad(
                lambda p: _proto_loss(apply, p, episodes, k_drop, True))(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, _), values = jax.lax.scan(step, (params, optimizer.init(params)),
                                           jnp.arange(steps))
        return params, values

    return ProtoNetResult(*run(params, key))


# ------------------------------------------------------------------------------- evaluation

def evaluate_episodes(embed_apply: Callable, params: Params, episodes: Episode) -> Array:
    """Prototypical-network query accuracy of every episode, vmapped in one ``jit``.

    Args:
      embed_apply: embedding ``apply``; params: its params (test mode).
      episodes: stacked :class:`Episode` ``[E, ...]``.

    Returns:
      ``[E]`` accuracies (mean +- 1.96 sd / sqrt(E) is the usual 95% interval).
    """
    _check_episode(episodes, stacked=True)
    return _evaluate_protonet(as_apply(embed_apply), params, episodes)


@partial(jax.jit, static_argnums=0)
def _evaluate_protonet(apply, params, episodes):
    n_way = _n_way(episodes)

    def one(episode):
        logits = _episode_logits(apply, params, episode, n_way)
        return metrics_lib.accuracy(logits, episode.query_y)

    return jax.vmap(one)(episodes)


def ridge_probe_episodes(embed_apply: Callable, params: Params, episodes: Episode, *,
                         lam: float = 1.0) -> Array:
    """Closed-form ridge probe per episode: on the support embeddings ``S`` and one-hot targets
    ``Y``, ``min_{W, b} ||S W + b - Y||^2 + lam ||W||^2`` (:func:`jaxlearn.linear.ridge`);
    queries go to ``argmax_k (f(x_q) W + b)_k``. All episodes vmapped in one ``jit``.

    Returns:
      ``[E]`` query accuracies.
    """
    _check_episode(episodes, stacked=True)
    _checks.check_positive("lam", lam)
    return _evaluate_ridge(as_apply(embed_apply), params, episodes, lam)


@partial(jax.jit, static_argnums=(0, 3))
def _evaluate_ridge(apply, params, episodes, lam):
    n_way = _n_way(episodes)

    def one(episode):
        support = _embed(apply, params, episode.support_x)
        query = _embed(apply, params, episode.query_x)
        targets = jax.nn.one_hot(episode.support_y, n_way, dtype=support.dtype)
        head = linear.ridge(support, targets, lam)
        return metrics_lib.accuracy(query @ head["w"] + head["b"][None, :], episode.query_y)

    return jax.vmap(one)(episodes)


def finetune_episodes(embed_apply: Callable, params: Params, episodes: Episode, *,
                      steps: int = 100, learning_rate: float = 0.5, l2: float = 1e-3) -> Array:
    """Fine-tuning baseline: per episode, a new linear head ``softmax(f(x) W + b)`` on the frozen
    embeddings, trained on the support set by ``steps`` steps of full-batch gradient descent on
    ``mean CE + l2 ||W||^2`` from ``W = 0, b = 0`` (a convex problem, so no key is needed);
    all episodes and steps in one ``jit``.

    Args:
      embed_apply, params: the embedding (frozen).
      episodes: stacked :class:`Episode`.
      steps: gradient steps ``>= 1``. learning_rate: ``> 0``. l2: ``>= 0``.

    Returns:
      ``[E]`` query accuracies.
    """
    _check_episode(episodes, stacked=True)
    _checks.check_positive("steps", steps, integer=True)
    _checks.check_positive("learning_rate", learning_rate)
    _checks.check_nonnegative("l2", l2)
    return _evaluate_finetune(as_apply(embed_apply), params, episodes, steps, learning_rate, l2)


@partial(jax.jit, static_argnums=(0, 3))
def _evaluate_finetune(apply, params, episodes, steps, learning_rate, l2):
    n_way = _n_way(episodes)

    def one(episode):
        support = _embed(apply, params, episode.support_x)
        query = _embed(apply, params, episode.query_x)

        def objective(head):
            logits = support @ head["w"] + head["b"][None, :]
            ce = losses.softmax_cross_entropy_with_integer_labels(logits, episode.support_y)
            return jnp.mean(ce) + l2 * jnp.sum(head["w"] ** 2)

        def step(head, _):
            grads = jax.grad(objective)(head)
            return jax.tree.map(lambda p, g: p - learning_rate * g, head, grads), None

        head0 = {"w": jnp.zeros((support.shape[1], n_way), support.dtype),
                 "b": jnp.zeros((n_way,), support.dtype)}
        head, _ = jax.lax.scan(step, head0, None, length=steps)
        return metrics_lib.accuracy(query @ head["w"] + head["b"][None, :], episode.query_y)

    return jax.vmap(one)(episodes)


# --------------------------------------------------------------------------- learning curves

class LearningCurve(NamedTuple):
    """:func:`learning_curve`'s output.

    Attributes:
      n_per_class: ``int [S]`` labels per class.
      accuracy: ``[S, n_seeds]`` test accuracy of every run.
      mean: ``[S]`` mean over seeds.
      std: ``[S]`` sample standard deviation over seeds (``ddof=1``; 0 for one seed).
    """

    n_per_class: np.ndarray
    accuracy: np.ndarray
    mean: np.ndarray
    std: np.ndarray


Method = Callable[[Array, Array, Array], Callable[[Array], Array]]


def learning_curve(method: Method, x_train: Array, y_train: Array, x_test: Array, y_test: Array,
                   *, key: Array, n_per_class: Sequence[int] = (1, 2, 5, 10, 20, 50),
                   n_seeds: int = 5, classes: Sequence[int] | None = None,
                   vmap: bool = True) -> LearningCurve:
    """Test accuracy of ``method`` trained on ``n`` labels per class, for each ``n``, over seeds.

    For each ``n`` and seed ``s``, a stratified subset of ``n`` examples per class is drawn from
    the training set: the seed key ``fold_in(fold_in(key, n), s)`` is split into a sampling key
    (:func:`sample_per_class`; the class order follows ``classes``) and a method key ``k``, and
    ``predict = method(k, x_small, y_small)`` is trained, and its accuracy on
    ``(x_test, y_test)`` is recorded (:func:`jaxlearn.metrics.accuracy`
    on ``predict(x_test)``: logits ``[n_test, K]``, or labels ``[n_test]`` compared directly).

    With ``vmap=True`` the seeds of each ``n`` run as one ``jax.vmap`` inside one ``jit``: the
    method must then be traceable (closed-form probes, :func:`train_protonet`-style scans,
    ``optax`` loops in ``lax.scan``). Methods that call :func:`jaxlearn.train.fit` (Python loops,
    concrete checks) need ``vmap=False``, which loops over seeds in Python.

    Args:
      method: ``method(key, x_small [m, ...], y_small int [m]) -> predict``, with
        ``predict(x [n, ...]) -> logits [n, K] or labels [n]``.
      x_train, y_train: pool to draw from, ``[n, ...]`` and int ``[n]``.
      x_test, y_test: evaluation set.
      key: ``jax.random`` key.
      n_per_class: increasing sizes, each ``>= 1``.
      n_seeds: runs per size ``>= 1``.
      classes: classes to draw (default every label of ``y_train``).
      vmap: run the seeds of a size together (see above).

    Returns:
      A :class:`LearningCurve`.
    """
    if not callable(method):
        raise TypeError(f"`method` must be callable(key, x, y) -> predict, got "
                        f"{type(method).__name__}")
    _checks.check_key("key", key)
    x_train, y_train = _check_xy(x_train, y_train)
    x_test = _checks.as_array("x_test", x_test)
    _checks.check_nonempty("x_test", x_test)
    y_test = _checks.as_array("y_test", y_test)
    _checks.check_ndim("y_test", y_test, 1)
    _checks.check_same_length("x_test", x_test, "y_test", y_test)
    _checks.check_labels("y_test", y_test)
    sizes = tuple(n_per_class)
    if not sizes:
        raise ValueError("`n_per_class` is empty; give sizes such as (1, 2, 5, 10)")
    for n in sizes:
        _checks.check_positive("n_per_class", n, integer=True)
    _checks.check_positive("n_seeds", n_seeds, integer=True)
    _checks.check_bool("vmap", vmap)
    pool = _check_pool(y_train, classes, max(sizes), f"n_per_class={max(sizes)}")
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    x_test, y_test, pool = jnp.asarray(x_test), jnp.asarray(y_test), jnp.asarray(pool)

    def run(n, seed_key):
        k_sample, k_method = jax.random.split(seed_key)
        idx = _sample_per_class(k_sample, y_train, pool, n)
        predict = method(k_method, x_train[idx], y_train[idx])
        out = predict(x_test)
        if out.ndim == 1 and jnp.issubdtype(out.dtype, jnp.integer):
            return jnp.mean((out == y_test).astype(jnp.float32))
        return metrics_lib.accuracy(out, y_test)

    rows = []
    for n in sizes:
        seed_keys = jax.vmap(lambda s, n=n: jax.random.fold_in(jax.random.fold_in(key, n), s))(
            jnp.arange(n_seeds))
        if vmap:
            accs = jax.jit(jax.vmap(partial(run, n)))(seed_keys)
        else:
            accs = jnp.stack([run(n, k) for k in seed_keys])
        rows.append(np.asarray(accs, np.float64))
    accuracy = np.stack(rows)
    std = accuracy.std(axis=1, ddof=1) if n_seeds > 1 else np.zeros(len(sizes))
    return LearningCurve(np.asarray(sizes), accuracy, accuracy.mean(axis=1), std)

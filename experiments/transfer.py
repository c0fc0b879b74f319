"""Transfer learning with few labels: a backbone pretrained on MNIST-1D digits 0-4, reused for
digits 5-9 with 1 to 200 labels per class (from scratch vs linear probe vs fine-tuning).

Every check is a paired difference over seeds (the same labelled subset, validation split and test
set for the three methods of a seed), judged by its 95% Student-t interval (the per-seed gaps are
roughly symmetric, so no bootstrap). The transfer method that is compared with training from
scratch is chosen per run on a **validation split** (50 signals per digit held out of the target
pool, never used for training), as is the ridge penalty of the probe; the test set is used for
nothing but the reported accuracies. Thresholds and their sources:

- gap >= 0.08 at 1 label per class and >= 0.05 at 50: the lecture's claim (issue 5, "pretraining
  pays off when labels are scarce"), as stated in ``CLAIM``;
- gap at 1 label - gap at 200 labels > 0: the claim's "the advantage shrinks as labels grow",
  paired per seed (the direction, no margin);
- gap at 200 labels <= 0.02: "the advantage is gone", with a stated practical margin of 0.02, the
  binomial standard error of one test accuracy near 0.8 on the 493 test signals
  (sqrt(0.8 * 0.2 / 493) = 0.018): a gap below it is invisible in a single run. This clause was
  first written around an observed crossing; its threshold is now this margin and its verdict
  falls where the interval puts it.

Learning rates are not tuned on this data: from scratch Adam 1e-2 is the MNIST-1D reference
recipe (Greydanus 2020); fine-tuning uses 1e-2 for the new head and a tenth of it for the
pretrained body (the usual discriminative fine-tuning convention). Seeds: quick 2 (inconclusive
intervals are expected), full 10 (t_{0.975, 9} = 2.26); the full run (7 sizes x 10 seeds x 3
methods, one compiled fit per method) took 88 s with a warm XLA compilation cache and 311 s
cold, on 2 CPU cores shared with other jobs (load average ~20). The backbone is pretrained once
(key 0): its variance is not in the intervals."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn import stats
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

DATA = ("synthetic stand-in: MNIST-1D (generated offline by mnist1d), digits 0-4 as the "
        "source task, for an ImageNet-pretrained network")
CLAIM = ("A backbone pretrained on a related source task (MNIST-1D digits 0-4) pays off when "
         "labels for the target task (digits 5-9) are scarce: with 1 and with 50 labels per class "
         "the transfer method chosen on a validation split (linear probe or fine-tuning) beats "
         "training from scratch (by >= 0.08 test accuracy at 1 label, >= 0.05 at 50), the "
         "advantage shrinks as labels grow, and it is gone by 200 labels per class (gap <= "
         "0.02).")

CE = jl.losses.SOFTMAX_CE_INT
N_CLASSES = 5                     # source digits 0-4; target digits 5-9 relabelled 0-4
FEATURES = 64                     # width of the backbone's output
BATCH_SIZE = 50
VAL_PER_CLASS = 50                # validation signals per target digit, held out of the pool
RIDGE_LAMS = (1.0, 10.0, 100.0, 1000.0)   # chosen per run on the validation split
SCRATCH_LR = 1e-2                 # the MNIST-1D reference recipe (not tuned here)
FINE_TUNE_LR = {"body": 1e-3, "head": 1e-2}
HEAD_LR = 1e-2                    # stage 1 of fine-tuning: the new head alone
GONE_MARGIN = 0.02                # ~ binomial s.e. of one test accuracy on 493 signals
CHECK_SOURCES = {
    "claim": "lecture claim (issue 5): pretraining pays off when labels are scarce",
    "shrinks": "lecture claim: the advantage shrinks as labels grow (direction, paired)",
    "gone": "lecture claim 'gone by 200 labels'; margin 0.02 = binomial s.e. of one test "
            "accuracy on 493 signals (sqrt(0.8*0.2/493))"}
METHODS = ("from scratch", "linear probe (ridge)", "fine-tune (head, then all)")
COLORS = dict(zip(METHODS, ("#e6550d", "#31a354", "#3182bd")))


# ----------------------------------------------------------------------------- data, model

def backbone() -> jl.nn.Layer:
    """The MNIST-1D reference CNN without its classifier: three 1-D convs (25 channels, stride
    2), then a 64-unit ReLU layer: ``[batch, 40] -> [batch, 64]`` features."""
    return jl.nn.serial(
        jl.nn.reshape((40, 1)),
        jl.nn.conv1d(25, 5, stride=2, padding=1), jl.nn.relu,
        jl.nn.conv1d(25, 3, stride=2, padding=1), jl.nn.relu,
        jl.nn.conv1d(25, 3, stride=2, padding=1), jl.nn.relu,
        jl.nn.flatten(), jl.nn.dense(FEATURES), jl.nn.relu)


def classifier() -> jl.nn.Layer:
    """``serial(backbone, head)``, the convention of :mod:`jaxlearn.transfer`: params are
    ``(backbone_params, head_params)``."""
    return jl.nn.serial(backbone(), jl.nn.dense(N_CLASSES))


def split_digits(data, classes):
    """``(x_train, y_train, x_test, y_test)`` of MNIST-1D restricted to ``classes``, relabelled
    ``0..len(classes)-1`` in the order given."""
    lookup = np.full(10, -1, np.int32)
    lookup[list(classes)] = np.arange(len(classes), dtype=np.int32)
    out = []
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        keep = np.isin(y, list(classes))
        out += [x[keep], lookup[y[keep]]]
    return tuple(out)


@functools.lru_cache(maxsize=2)
def pretrained_classifier(steps: int):
    """:func:`classifier` trained on the source task, MNIST-1D digits 0-4 (training split; Adam
    1e-2, batch 100, ``steps`` steps, key 0). Returns ``(params, source test accuracy, seconds)``.

    Deterministic, so it is computed once per process and shared with the few-shot experiment
    (its "fine-tuning baseline" embedding).
    """
    t0 = time.perf_counter()
    x, y, x_test, y_test = split_digits(jl.data.load_mnist1d(), range(N_CLASSES))
    model = classifier()
    k_init, k_fit = jax.random.split(jax.random.key(0))
    _, params = model.init(k_init, (40,))
    params = jl.fit(model.apply, params, x, y, loss=CE, optimizer=optax.adam(1e-2), key=k_fit,
                    batch_size=100, steps=steps).params
    accuracy = jl.evaluate(model.apply, params, x_test, y_test)["accuracy"]
    return params, accuracy, time.perf_counter() - t0


# ------------------------------------------------------- many small runs in one compiled fit

def stacked(apply_fn):
    """``apply`` of ``m`` independent copies of a model, so that one :func:`jaxlearn.fit` trains
    every (labels per class, seed) run at once.

    Params have a leading member axis ``[m, ...]``; ``x`` is ``[batch, m, ...]`` (member ``j``
    reads ``x[:, j]``, its own training subset); returns ``[batch, m, n_classes]``. ``key`` (at
    train time) is split into one key per member.
    """
    apply = jl.train.as_apply(apply_fn)

    def apply_m(params, x, *, key=None, train=False):
        if key is None:
            return jax.vmap(lambda p, xm: apply(p, xm, train=train), in_axes=(0, 1),
                            out_axes=1)(params, x)
        keys = jax.random.split(key, x.shape[1])
        return jax.vmap(lambda p, xm, k: apply(p, xm, key=k, train=train), in_axes=(0, 1, 0),
                        out_axes=1)(params, x, keys)

    return apply_m


def summed_cross_entropy(logits, y):
    """Loss of the stacked members: ``logits [batch, m, K]``, ``y [batch, m]`` -> ``[batch]``,
    the sum over members, so each member's gradient is that of its own mean cross-entropy and
    Adam (elementwise) updates each member as if it were trained alone."""
    return jnp.sum(jl.losses.softmax_cross_entropy_with_integer_labels(logits, y), axis=1)


def member_subsets(key, y_pool, sizes, seeds, length):
    """Row indices ``[length, m]`` into the target pool: member ``(n, s)`` (n-major, ``s`` over
    ``seeds``, an int count or the seed values) holds the stratified subset
    ``jl.fewshot.sample_per_class(fold_in(fold_in(key, n), s), n_per_class=n)`` tiled to
    ``length`` rows (a multiple of ``5 n``), so every member reads as many rows; its first
    ``5 n`` rows are the distinct subset."""
    seeds = range(seeds) if isinstance(seeds, int) else seeds
    cols = []
    for n in sizes:
        for s in seeds:
            k = jax.random.fold_in(jax.random.fold_in(key, n), s)
            idx = np.asarray(jl.fewshot.sample_per_class(k, y_pool, n_per_class=n))
            cols.append(np.tile(idx, length // idx.size))
    return np.stack(cols, axis=1)


def validation_split(key, y, n_per_class: int):
    """``(train_rows, val_rows)``: ``n_per_class`` random rows of each class held out for
    validation, the rest left to draw the labelled subsets from."""
    val = np.sort(np.asarray(jl.fewshot.sample_per_class(key, y, n_per_class=n_per_class)))
    return np.setdiff1d(np.arange(y.shape[0]), val), val


def stacked_accuracy(apply_m, params, x_test, y_test, sizes, n_seeds) -> np.ndarray:
    """Accuracy of every member on ``(x_test, y_test)``, ``[len(sizes), n_seeds]``."""
    m = len(sizes) * n_seeds
    x_rep = jnp.broadcast_to(jnp.asarray(x_test)[:, None], (x_test.shape[0], m,
                                                            *x_test.shape[1:]))
    pred = np.asarray(jnp.argmax(jl.predict(apply_m, params, x_rep), axis=-1))   # [n_test, m]
    return (pred == np.asarray(y_test)[:, None]).mean(0).reshape(len(sizes), n_seeds)


def tiled_length(sizes, n_classes: int = N_CLASSES) -> int:
    """The smallest common multiple of the subset sizes ``n_classes * n`` that is >= the batch."""
    length = int(np.lcm.reduce([n_classes * n for n in sizes]))
    return length * -(-BATCH_SIZE // length)


def stack_params(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def init_members(layer: jl.nn.Layer, key, m: int, input_shape):
    init = jax.jit(lambda k: layer.init(k, input_shape)[1])
    return stack_params([init(k) for k in jax.random.split(key, m)])


# ------------------------------------------------------------------------------ experiment

def _ridge_probe(f_pool, y_pool, rows, sizes, n_seeds, evals):
    """Closed-form ridge heads on the frozen features of each member's subset (the same subsets
    as the trained members), for every lam of ``RIDGE_LAMS``.

    ``evals`` is ``{split: (features, labels)}``; returns ``{split: accuracy [len(RIDGE_LAMS),
    len(sizes), n_seeds]}``.
    """
    out = {split: np.zeros((len(RIDGE_LAMS), len(sizes), n_seeds)) for split in evals}
    for i, n in enumerate(sizes):
        idx = rows[:N_CLASSES * n, i * n_seeds:(i + 1) * n_seeds].T             # [seeds, 5n]
        f, y = jnp.asarray(f_pool[idx]), jnp.asarray(y_pool[idx])
        targets = jax.nn.one_hot(y, N_CLASSES, dtype=f.dtype)
        for j, lam in enumerate(RIDGE_LAMS):
            heads = jax.vmap(lambda a, b, lam=lam: jl.linear.ridge(a, b, lam))(f, targets)
            for split, (g, labels) in evals.items():
                logits = jnp.einsum("nd,sdk->snk", g, heads["w"]) + heads["b"][:, None]
                out[split][j, i] = np.asarray(jnp.argmax(logits, -1) == labels[None]).mean(1)
    return out


def _curves(key, pretrained, target, sizes, seeds, steps, head_steps, progress_step):
    """``({method: test accuracy [len(sizes), n_seeds]}, {method: validation accuracy}, chosen
    ridge lam [len(sizes), n_seeds])`` for the three methods; every member of a seed trains on
    the same labelled subset."""
    x_pool, y_pool, x_val, y_val, x_test, y_test = target
    n_seeds = len(seeds)
    m = len(sizes) * n_seeds
    k_subsets, k_scratch, k_head, k_fit = jax.random.split(key, 4)
    rows = member_subsets(k_subsets, y_pool, sizes, seeds, tiled_length(sizes))
    x_m, y_m = jnp.asarray(x_pool[rows]), jnp.asarray(y_pool[rows])
    apply_m = stacked(classifier().apply)
    test, val = {}, {}

    def evaluate(name, params):
        test[name] = stacked_accuracy(apply_m, params, x_test, y_test, sizes, n_seeds)
        val[name] = stacked_accuracy(apply_m, params, x_val, y_val, sizes, n_seeds)
        progress_step()

    scratch0 = init_members(classifier(), k_scratch, m, (40,))
    result = jl.fit(apply_m, scratch0, x_m, y_m, loss=summed_cross_entropy,
                    optimizer=optax.adam(SCRATCH_LR), key=k_fit, batch_size=BATCH_SIZE,
                    steps=steps)
    evaluate(METHODS[0], result.params)

    # Linear probe: features computed once; lam chosen per run on the validation split.
    backbone_apply = backbone().apply
    feats = {name: np.asarray(jl.transfer.features(backbone_apply, pretrained, x))
             for name, x in (("pool", x_pool), ("val", x_val), ("test", x_test))}
    probe = _ridge_probe(feats["pool"], y_pool, rows, sizes, n_seeds,
                         {"val": (jnp.asarray(feats["val"]), jnp.asarray(y_val)),
                          "test": (jnp.asarray(feats["test"]), jnp.asarray(y_test))})
    best_lam = np.argmax(probe["val"], axis=0)                      # first of ties: smallest
    test[METHODS[1]] = np.take_along_axis(probe["test"], best_lam[None], 0)[0]
    val[METHODS[1]] = np.take_along_axis(probe["val"], best_lam[None], 0)[0]
    progress_step()

    body = jax.tree.map(lambda a: jnp.broadcast_to(a, (m, *a.shape)), pretrained)
    heads = init_members(jl.nn.dense(N_CLASSES), k_head, m, (FEATURES,))
    optimizer = jl.transfer.multi_lr(optax.adam, FINE_TUNE_LR, ("body", "head"))
    tuned = jl.transfer.fine_tune(apply_m, (body, heads), x_m, y_m, loss=summed_cross_entropy,
                                  optimizer=optimizer, key=k_fit, batch_size=BATCH_SIZE,
                                  steps=steps - head_steps, head_steps=head_steps,
                                  head_optimizer=optax.adam(HEAD_LR))
    evaluate(METHODS[2], tuned.params)
    return test, val, np.asarray(RIDGE_LAMS)[best_lam]


def _plot(sizes, acc, gap, n_test, n_seeds):
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, ax_gap = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    for name, a in acc.items():
        mean = a.mean(1)
        sd = a.std(1, ddof=1) if a.shape[1] > 1 else np.zeros_like(mean)
        ax.plot(sizes, mean, "o-", ms=4, color=COLORS[name], label=name)
        ax.fill_between(sizes, mean - sd, mean + sd, color=COLORS[name], alpha=0.2, lw=0)
    ax.axhline(1 / N_CLASSES, color="k", ls=":", lw=1, label="chance (5 classes)")
    ax.set(xscale="log", xlabel="labelled target examples per class (log scale)",
           ylabel=f"test accuracy on digits 5-9 ({n_test} signals)", ylim=(0, 1),
           title="target task: MNIST-1D digits 5-9 (mean +- sd)")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.legend(loc="upper left", fontsize=8)
    ests = [stats.estimate(g) for g in gap]
    mean = np.array([e.mean for e in ests])
    ax_gap.plot(sizes, mean, "o-", ms=4, color="#756bb1")
    if n_seeds > 1:
        ax_gap.fill_between(sizes, [e.low for e in ests], [e.high for e in ests],
                            color="#756bb1", alpha=0.2, lw=0)
    ax_gap.axhline(0, color="k", lw=1)
    ax_gap.axhline(GONE_MARGIN, color="k", ls=":", lw=1)
    ax_gap.set(xscale="log", xlabel="labelled target examples per class (log scale)",
               ylabel="validation-chosen transfer - from scratch",
               title="what pretraining buys (mean, 95% CI)",
               ylim=(max(-0.5, min(-0.1, np.min([e.low for e in ests]) - 0.02)),
                     min(0.8, max(0.3, np.max([e.high for e in ests]) + 0.02))))
    ax_gap.set_xticks(sizes, [str(n) for n in sizes])
    fig.suptitle(f"Transfer from digits 0-4 to digits 5-9 ({n_seeds} seeds, paired)")
    return fig


def _crossing(sizes, gap) -> str:
    """Where the advantage ends, in words, from the paired intervals of the gap."""
    ests = [stats.estimate(g) for g in gap]
    above = [n for n, e in zip(sizes, ests) if e.low > 0]
    below = [n for n, e in zip(sizes, ests) if e.high < 0]
    straddle = [n for n in sizes if n not in above + below]
    parts = []
    if above:
        parts.append(f"transfer beats training from scratch at {above} labels per class")
    if straddle:
        parts.append(f"the interval contains 0 at {straddle}")
    if below:
        parts.append(f"training from scratch is better at {below} (with these untuned rates "
                     "the pretrained start ends below a network trained from scratch)")
    return "; ".join(parts) + " (paired 95% intervals)."


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(2, 10))
    seeds = len(seed_values)
    sizes = (1, 10, 50, 200) if quick else (1, 2, 5, 10, 20, 50, 200)
    pretrain_steps = 600 if quick else 1000
    steps, head_steps = 300, 100
    total = 4
    state = {"done": 0}

    def progress_step():
        state["done"] += 1
        if progress:
            progress(state["done"], total)

    x_pool, y_pool, x_test, y_test = split_digits(jl.data.load_mnist1d(),
                                                  range(N_CLASSES, 2 * N_CLASSES))
    # The validation split is part of the data (fixed key), like the test split.
    train_rows, val_rows = validation_split(jax.random.key(2), y_pool, VAL_PER_CLASS)
    target = (x_pool[train_rows], y_pool[train_rows], x_pool[val_rows], y_pool[val_rows],
              x_test, y_test)
    pretrained, source_acc, pretrain_time = pretrained_classifier(pretrain_steps)
    progress_step()
    key = jax.random.key(1)
    key = jax.random.fold_in(key, seed_offset) if seed_offset else key   # fresh inits/shuffles
    acc, val, lam = _curves(key, pretrained[0], target, sizes, seed_values, steps, head_steps,
                            progress_step)
    # Per run (size, seed): the transfer method with the higher validation accuracy (probe on
    # ties); its test accuracy against from scratch on the same subset.
    probe, tuned = METHODS[1], METHODS[2]
    pick_probe = val[probe] >= val[tuned]
    chosen = np.where(pick_probe, acc[probe], acc[tuned])
    gap = chosen - acc[METHODS[0]]                                   # [sizes, seeds]
    i1, i50, i200 = sizes.index(1), sizes.index(50), sizes.index(200)
    ests = [stats.estimate(g) for g in gap]

    fig = _plot(sizes, acc, gap, y_test.shape[0], seeds)
    rows = [(n, *(fmt_mean_sd(a[i]) for a in acc.values()), str(ests[i]),
             f"{int(pick_probe[i].sum())}/{seeds}") for i, n in enumerate(sizes)]
    table = markdown_table(("labels per class", *acc, "chosen transfer - scratch (95% CI)",
                            "probe chosen"), rows)
    return Outcome(
        name="transfer", claim=CLAIM,
        checks=[Check.sample("1 label/class: chosen transfer - scratch (paired)", gap[i1],
                             ">=", 0.08, source=CHECK_SOURCES["claim"] + ", >= 0.08 at 1 label"),
                Check.sample("50 labels/class: chosen transfer - scratch (paired)", gap[i50],
                             ">=", 0.05, source=CHECK_SOURCES["claim"] + ", >= 0.05 at 50"),
                Check.sample("gap at 1 label/class - gap at 200 (paired)", gap[i1] - gap[i200],
                             ">", 0.0, source=CHECK_SOURCES["shrinks"]),
                Check.sample("200 labels/class: chosen transfer - scratch (paired)", gap[i200],
                             "<=", GONE_MARGIN, source=CHECK_SOURCES["gone"])],
        numbers={"labels_per_class": list(sizes), "seed_values": list(seed_values),
                 "accuracy": {k: v.tolist() for k, v in acc.items()},
                 "validation_accuracy": {k: v.tolist() for k, v in val.items()},
                 "mean_accuracy": {k: v.mean(1).tolist() for k, v in acc.items()},
                 "gap_chosen_transfer_minus_scratch": gap.tolist(),
                 "probe_chosen": pick_probe.tolist(), "ridge_lam_chosen": lam.tolist(),
                 "source_test_accuracy": source_acc, "pretrain_steps": pretrain_steps,
                 "pretrain_seconds": pretrain_time, "steps": steps, "head_steps": head_steps,
                 "ridge_lams": list(RIDGE_LAMS), "val_per_class": VAL_PER_CLASS,
                 "scratch_lr": SCRATCH_LR, "fine_tune_lr": FINE_TUNE_LR, "head_lr": HEAD_LR,
                 "seeds": seeds},
        figures={"learning_curves": fig},
        tables={f"Test accuracy on digits 5-9, mean +- sd over {seeds} seeds": table},
        notes=(f"Backbone: 3 conv layers + a 64-unit ReLU layer, pretrained once (key 0, "
               f"{pretrain_steps} Adam steps, batch 100) on the ~2000 training signals of "
               f"digits 0-4 (source test accuracy {source_acc:.3f}); the intervals are over the "
               "labelled subsets and the target-side initialisations, not over pretraining. "
               f"Target: {VAL_PER_CLASS} training signals per digit 5-9 held out as a "
               f"validation split ({y_pool[val_rows].size} signals), the remaining "
               f"{train_rows.size} as the pool the labelled subsets are drawn from; test: the "
               f"{y_test.size} test signals of digits 5-9, used only for the reported "
               "accuracies. Each (n, seed) draws one stratified subset "
               "(jl.fewshot.sample_per_class) that all three methods train on. From scratch: "
               f"the whole network, Adam {SCRATCH_LR:g}, {steps} steps of batch {BATCH_SIZE}. "
               "Linear probe: frozen features, closed-form ridge onto one-hot targets, lam "
               f"chosen per run from {list(RIDGE_LAMS)} by validation accuracy. Fine-tune "
               f"(LP-FT): {head_steps} steps on a new head alone (backbone frozen, "
               f"jl.transfer.freeze), then {steps - head_steps} steps on everything with "
               f"per-group Adam rates {FINE_TUNE_LR} (jl.transfer.multi_lr). Learning rates "
               "are fixed a priori (reference recipe, body at a tenth of the head), not tuned "
               "here; an earlier version picked them from small grids on test runs. The "
               "compared transfer method is chosen per run by validation accuracy (probe "
               f"chosen in {int(pick_probe.sum())} of {pick_probe.size} runs). Note the "
               f"validation split ({VAL_PER_CLASS} per class) is larger than the smallest "
               "labelled sets: a realistic few-label setting would not have it, so the "
               "choice is optimistic for the transfer side. All (n, seed) runs of a method "
               "are trained by one jl.fit of the model vmapped over members. Paired gap "
               "(chosen transfer - scratch) by size: "
               + "; ".join(f"{n}: {e}" for n, e in zip(sizes, ests)) + ". Finding: "
               + _crossing(sizes, gap)
               + (f" Quick mode: 4 sizes, {pretrain_steps} pretraining steps and {seeds} "
                  "seeds, too few for decisive intervals." if quick else "")))

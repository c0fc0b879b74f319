"""Compute cost ("green AI"): FLOPs, parameters, wall time and accuracy of the MNIST-1D models.

The claim has a deterministic half and an empirical half. FLOPs and parameter counts are
architecture arithmetic (XLA's cost analysis of the compiled programs against a hand count): they
have no seed noise and stay as labelled sanity checks (``exact``), with the CLAIM's numbers as
thresholds ("a third" of the parameters: <= 0.5; "twice" the FLOPs: >= 1.5; the hand count within
a practical 10%, since bias adds and activations, ~2%, are left out of it; a training step costs
2-3.5 forward passes, theory: the backward pass is about twice the forward, less for a first
layer whose input gradient is not needed). What the extra FLOPs buy is measured over seeds
(seed ``s`` draws every model's init and shuffling, so the models are paired by seed), with Student
t 95% intervals:

- the CNN's test accuracy minus the MLP's > 0 (CLAIM: the CNN "buys its accuracy"; Greydanus
  2020: 94% against 68%);
- accuracy per training GFLOP, CNN / MLP < 1 (CLAIM: it buys it "with more training FLOPs": a
  point of the CNN's accuracy costs more compute than one of the MLP's, at the same recipe).

The wall time per step is reported, not checked: the CLAIM is about FLOPs, and the CPU is shared
with other jobs. The training FLOPs at which the CNN first matches the MLP's final accuracy are
reported too (a finding: with a smaller budget the CNN can already be the better model).

Seeds: quick mode 2 (1600 steps), full mode 3 (6000 steps, the reference recipe; the accuracy
checks decide by a wide margin at n = 3), 45 s on a 2-core CPU."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import mnist1d, seed_list
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table, mean_sd

CLAIM = ("Parameters are not compute: on MNIST-1D the CNN has a third of the MLP's parameters but "
         "costs twice its FLOPs per example, and buys its accuracy with more training FLOPs; XLA's "
         "FLOP count matches the hand count 2 * in * out per dense (or im2col conv) layer.")

COLORS = {"logistic regression": "#e6550d", "MLP": "#31a354", "CNN": "#3182bd"}


QUICK_SEEDS, FULL_SEEDS = 2, 3


def _sanity(what, value, op, threshold, source):
    """A sanity check without seed noise (deterministic): judged on its value."""
    return Check(what, value, op, threshold, exact=True,
                 source=f"deterministic (sanity): {source}")


def _flops(fn, *args) -> float:
    """FLOPs of one call of ``fn(*args)`` from XLA's cost analysis of the compiled program."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if "flops" not in cost:
        raise ValueError(f"XLA's cost analysis has no 'flops' entry (keys: {sorted(cost)})")
    return float(cost["flops"])


def _train_step_flops(model, params, x, y) -> float:
    """FLOPs of one step of the training recipe on a batch ``x [batch, 40]``: forward, backward
    and Adam update. Counted on one step rather than on fit's compiled epoch because XLA counts a
    loop body once, whatever its trip count."""
    optimizer = optax.adam(mnist1d.LEARNING_RATE)
    loss = jl.losses.softmax_cross_entropy_with_integer_labels

    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: jnp.mean(loss(model.apply(p, x), y)))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return _flops(step, params, optimizer.init(params), x, y)


def _hand_count(params) -> float:
    """Multiply-add FLOPs of one forward example, counted by hand: ``2 * in * out`` for each dense
    layer and ``2 * L_out * k * c_in * c_out`` for each 1-D convolution (``w`` is ``[k, c_in,
    c_out]``; ``L_out`` = 19, 10, 5 for the reference CNN's three strided convs on length 40).
    Bias adds and activations are left out (they are ~2% of the total)."""
    conv_lengths = iter((19, 10, 5))
    total = 0
    for leaf in jax.tree.leaves(params):
        if leaf.ndim == 2:           # dense w: [in, out]
            total += 2 * leaf.shape[0] * leaf.shape[1]
        elif leaf.ndim == 3:         # conv1d w: [k, c_in, c_out]
            total += 2 * next(conv_lengths) * int(np.prod(leaf.shape))
    return float(total)


def _timed_test_accuracy(model, data):
    """An epoch callback recording the test accuracy and the seconds it spends, so that they can
    be taken out of fit's ``train_time``."""
    apply = jax.jit(model.apply)
    record = {"accuracy": [], "seconds": 0.0}

    def callback(epoch, logs, params):
        start = time.perf_counter()
        logits = apply(params, data.x_test)
        record["accuracy"].append(float(jl.metrics.accuracy(logits, data.y_test)))
        record["seconds"] += time.perf_counter() - start
        return False

    return callback, record


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(QUICK_SEEDS, FULL_SEEDS))
    steps = mnist1d.QUICK_STEPS if quick else mnist1d.STEPS
    n_seeds = len(seed_values)
    data = jl.data.load_mnist1d()
    models = mnist1d.reference_models()
    names = list(models)
    batch = mnist1d.BATCH_SIZE
    xb, yb = jnp.asarray(data.x_train[:batch]), jnp.asarray(data.y_train[:batch])
    steps_per_epoch = data.x_train.shape[0] // batch
    stats = {n: {} for n in names}
    curves = {n: [] for n in names}
    total, done = len(names) * n_seeds, 0
    for name, model in models.items():
        _, params = model.init(jax.random.key(0), (40,))
        s = stats[name]
        s["params"] = jl.nn.count_params(params)
        s["forward_flops_per_example"] = _flops(model.apply, params, xb) / batch
        s["hand_count_per_example"] = _hand_count(params)
        s["train_step_flops"] = _train_step_flops(model, params, xb, yb)
        s["train_flops"] = steps * s["train_step_flops"]
        s["accuracy"], s["train_seconds"], s["compile_seconds"] = [], [], []
        for seed in seed_values:
            callback, record = _timed_test_accuracy(model, data)
            _, result = mnist1d.train_reference(model, jax.random.key(seed), data, steps,
                                                callbacks=[callback])
            curves[name].append(record["accuracy"])
            s["accuracy"].append(record["accuracy"][-1])
            s["train_seconds"].append(result.train_time - record["seconds"])
            s["compile_seconds"].append(result.compile_time)
            done += 1
            if progress:
                progress(done, total)
        s["gflop_per_second"] = [s["train_flops"] / t / 1e9 for t in s["train_seconds"]]
        s["accuracy_per_gflop"] = [a / (s["train_flops"] / 1e9) for a in s["accuracy"]]
        s["step_over_forward_batch"] = s["train_step_flops"] / (s["forward_flops_per_example"]
                                                                * batch)
        s["xla_over_hand_count"] = s["forward_flops_per_example"] / s["hand_count_per_example"]

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_acc, ax_cost = fig.subplots(1, 2)
    for n in names:
        arr = np.asarray(curves[n])                        # [seeds, epochs]
        flops = np.arange(1, arr.shape[1] + 1) * steps_per_epoch * stats[n]["train_step_flops"]
        sd = arr.std(0, ddof=1) if arr.shape[0] > 1 else np.zeros(arr.shape[1])
        ax_acc.plot(flops, arr.mean(0), color=COLORS[n], label=n)
        ax_acc.fill_between(flops, arr.mean(0) - sd, arr.mean(0) + sd, color=COLORS[n],
                            alpha=0.25, lw=0)
    ax_acc.set(xscale="log", xlabel="training FLOPs (cumulative, XLA count)",
               ylabel="test accuracy", ylim=(0, 1),
               title="accuracy vs training compute (one point per epoch)")
    ax_acc.legend(loc="lower right", fontsize=8)
    pos = np.arange(len(names))
    ax_cost.bar(pos - 0.2, [stats[n]["params"] for n in names], 0.4, color="#9e9ac8",
                label="parameters")
    ax_cost.bar(pos + 0.2, [stats[n]["forward_flops_per_example"] for n in names], 0.4,
                color="#fd8d3c", label="forward FLOPs per example")
    for p, n in zip(pos, names):
        ax_cost.text(p - 0.2, stats[n]["params"] * 1.1, f"{stats[n]['params']:,}",
                     ha="center", fontsize=7)
        ax_cost.text(p + 0.2, stats[n]["forward_flops_per_example"] * 1.1,
                     f"{stats[n]['forward_flops_per_example']:,.0f}", ha="center", fontsize=7)
    ax_cost.set(xticks=pos, xticklabels=names, yscale="log", ylim=(100, 3e5),
                ylabel="count (log scale)", title="size is not cost: parameters vs FLOPs")
    ax_cost.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"MNIST-1D compute cost, {steps} Adam steps of batch {batch}, "
                 f"{n_seeds} seed(s)")

    ratio_fwd = (stats["CNN"]["forward_flops_per_example"]
                 / stats["MLP"]["forward_flops_per_example"])
    step_ratios = [stats[n]["step_over_forward_batch"] for n in names]
    cnn, mlp = stats["CNN"], stats["MLP"]
    accuracy_gain = np.subtract(cnn["accuracy"], mlp["accuracy"])          # [seeds], paired
    per_gflop_ratio = np.divide(cnn["accuracy_per_gflop"], mlp["accuracy_per_gflop"])
    # The CNN's training FLOPs when its test accuracy first reaches the MLP's final accuracy (same
    # seed), over the MLP's whole training budget; inf where it never does.
    epoch_flops = steps_per_epoch * cnn["train_step_flops"]
    match_fraction = []
    for cnn_curve, mlp_final in zip(curves["CNN"], mlp["accuracy"]):
        reached = np.flatnonzero(np.asarray(cnn_curve) >= mlp_final)
        match_fraction.append(float((reached[0] + 1) * epoch_flops / mlp["train_flops"])
                              if reached.size else float("inf"))
    checks = [
        _sanity("CNN / MLP forward FLOPs per example", ratio_fwd, ">=", 1.5,
                "claim 'twice its FLOPs' (1.5: a practical margin below 2)"),
        _sanity("CNN / MLP parameters", cnn["params"] / mlp["params"], "<=", 0.5,
                "claim 'a third of the parameters' (0.5: a practical margin above 1/3)"),
        *[_sanity(f"{n}: |XLA forward FLOPs / hand count - 1|",
                  abs(stats[n]["xla_over_hand_count"] - 1.0), "<=", 0.1,
                  "claim 'XLA's count matches the hand count' (practical 10%: the hand count "
                  "leaves out bias adds and activations, ~2%)") for n in names],
        _sanity("training step / forward pass FLOPs (min over models)", min(step_ratios), ">=",
                2.0, "theory: backward ~ 2x forward, less for the first layer"),
        _sanity("training step / forward pass FLOPs (max over models)", max(step_ratios), "<=",
                3.5, "theory: forward + backward (~2x) + the Adam update"),
        Check.sample("CNN - MLP test accuracy (paired over seeds)", accuracy_gain, ">", 0.0,
                     source="claim: the CNN 'buys its accuracy' (Greydanus 2020: 94% vs 68%)"),
        Check.sample("accuracy per training GFLOP, CNN / MLP (per seed)", per_gflop_ratio, "<",
                     1.0, source="claim: the CNN buys its accuracy 'with more training FLOPs'"),
    ]
    rows = []
    for n in names:
        s = stats[n]
        rows.append((n, f"{s['params']:,}", f"{s['forward_flops_per_example']:,.0f}",
                     f"{s['hand_count_per_example']:,.0f}", f"{s['train_step_flops'] / 1e6:.2f}",
                     f"{s['train_flops'] / 1e9:.1f}", fmt_mean_sd(s["train_seconds"], 2),
                     fmt_mean_sd(s["gflop_per_second"], 2), fmt_mean_sd(s["accuracy"]),
                     f"{mean_sd(s['accuracy_per_gflop'])[0]:.4f}"))
    header = ("model", "params", "fwd FLOPs / example (XLA)", "hand count", "MFLOP / step",
              "training GFLOP", "train time (s)", "GFLOP/s", "test accuracy", "accuracy / GFLOP")
    return Outcome(
        name="compute_cost", claim=CLAIM, checks=checks,
        numbers={"models": stats, "accuracy_curves": curves, "steps": steps, "batch_size": batch,
                 "seeds_used": n_seeds, "seed_values": list(seed_values),
                 "cnn_minus_mlp_accuracy": accuracy_gain.tolist(),
                 "accuracy_per_gflop_cnn_over_mlp": per_gflop_ratio.tolist(),
                 "cnn_flops_to_match_mlp_over_mlp_flops": match_fraction,
                 "device": jax.devices()[0].platform},
        figures={"accuracy_vs_flops": fig},
        tables={f"Compute per model, mean +- sd over {n_seeds} seeds":
                markdown_table(header, rows)},
        notes=("FLOPs are XLA's cost analysis of the compiled programs (jit(f).lower(...)"
               ".compile().cost_analysis()['flops']): one forward pass of a batch of 100 divided "
               "by 100, and one training step (forward, backward, Adam update) on a batch of 100, "
               "measured apart because XLA counts the body of fit's scan once whatever its trip "
               "count. Training FLOPs = steps x FLOPs per step (the per-epoch shuffle and the NaN "
               "guard are left out). The train time is jl.fit's train_time (compile excluded) "
               "minus the time of the per-epoch test evaluation, on a CPU shared with other jobs: "
               "GFLOP/s are indicative. The backward pass costs about twice the forward, less for "
               "the first layer, whose input gradient is not needed (logistic regression: ~2x). "
               "The CNN first reaches the MLP's final test accuracy after "
               f"{fmt_mean_sd(match_fraction, 2)} of the MLP's training FLOPs (per seed: "
               f"{', '.join(f'{m:.2f}' for m in match_fraction)}): at the same recipe the CNN "
               "spends more FLOPs in all, but the accuracy the MLP ends with costs the CNN "
               "less than the MLP's whole budget when this is below 1."
               + (f" Quick mode: 1600 steps and {n_seeds} seeds; full mode: the recipe's "
                  f"{mnist1d.STEPS} steps and {FULL_SEEDS} seeds." if quick else "")))

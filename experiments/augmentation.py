"""Data augmentation in the low-data regime: the from-scratch learning curve of the transfer
experiment (MNIST-1D digits 5-9), with and without shift / scale / noise / cutout."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import transfer
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("Augmentations that encode the invariances of the data (shift, amplitude scaling, "
         "noise, cutout) are worth many labels when labels are scarce: trained from scratch on "
         "MNIST-1D digits 5-9, augmentation adds >= 0.05 test accuracy at 5 labels per class "
         "and >= 0.15 at 50 (mean over seeds), but least with 1 label per class, where there "
         "is no within-class variation to extend.")

STEPS = 300
LEARNING_RATE = 1e-2
# Strengths chosen on one preliminary run among two settings (shift 3 / scale 0.8-1.2 / noise
# 0.1 / cutout 4, and this stronger one, which did better at >= 5 labels per class).
AUGMENTATIONS = {"shift": dict(max_shift=5), "scale": dict(low=0.7, high=1.3),
                 "noise": dict(std=0.2), "cutout": dict(size=6)}
COLORS = {"no augmentation": "#e6550d", "shift only": "#9e9ac8",
          "shift + scale + noise + cutout": "#3182bd"}


def signal_augmentation(*, shift_only: bool = False):
    """The MNIST-1D augmentation ``f(key, x [batch, 40]) -> [batch, 40]`` (jl.augment)."""
    a = AUGMENTATIONS
    if shift_only:
        return jl.augment.augment(partial(jl.augment.random_shift, **a["shift"]))
    return jl.augment.augment(partial(jl.augment.random_shift, **a["shift"]),
                              partial(jl.augment.random_scale, **a["scale"]),
                              partial(jl.augment.add_noise, **a["noise"]),
                              partial(jl.augment.cutout, **a["cutout"]))


def per_member(transform):
    """``transform`` applied to each member's column of a stacked batch ``[batch, m, 40]``, with
    its own key (so members draw independent augmentations)."""
    def apply(key, x):
        keys = jax.random.split(key, x.shape[1])
        return jax.vmap(transform, in_axes=(0, 1), out_axes=1)(keys, x)

    return apply


def _example_figure(ax, x, transform):
    """One signal and three augmented views, stacked with vertical offsets."""
    t = np.arange(x.shape[0])
    views = np.asarray(transform(jax.random.key(3), jnp.broadcast_to(x, (3, x.shape[0]))))
    offset = 4.0
    ax.plot(t, x, color="k", lw=1.5)
    for i, v in enumerate(views, start=1):
        ax.plot(t, x - i * offset, color="#bdbdbd", lw=1)
        ax.plot(t, v - i * offset, color="#3182bd", lw=1.2)
    ax.set_yticks([-i * offset for i in range(4)],
                  ["original", "view 1", "view 2", "view 3"])
    ax.set(xlabel="time step", title="a training signal and 3 augmented views\n"
           "(blue; grey: the original under each)")


def run(*, quick: bool = False, seeds: int = 3, progress=None) -> Outcome:
    sizes = (1, 5, 20, 50) if quick else (1, 2, 5, 10, 20, 50)
    variants = {"no augmentation": None,
                "shift + scale + noise + cutout": signal_augmentation()}
    if not quick:
        variants["shift only"] = signal_augmentation(shift_only=True)
    x_pool, y_pool, x_test, y_test = transfer.split_digits(
        jl.data.load_mnist1d(), range(transfer.N_CLASSES, 2 * transfer.N_CLASSES))
    m = len(sizes) * seeds
    k_subsets, k_init, k_fit = jax.random.split(jax.random.key(11), 3)
    rows = transfer.member_subsets(k_subsets, y_pool, sizes, seeds, transfer.tiled_length(sizes))
    x_m, y_m = jnp.asarray(x_pool[rows]), jnp.asarray(y_pool[rows])
    apply_m = transfer.stacked(transfer.classifier().apply)
    params0 = transfer.init_members(transfer.classifier(), k_init, m, (40,))
    acc = {}
    for i, (name, transform) in enumerate(variants.items()):
        apply = apply_m if transform is None else jl.augment.with_augmentation(
            apply_m, per_member(transform))
        # Same subsets, inits and shuffling for every variant: the comparison is paired.
        result = jl.fit(apply, params0, x_m, y_m, loss=transfer.summed_cross_entropy,
                        optimizer=optax.adam(LEARNING_RATE), key=k_fit,
                        batch_size=transfer.BATCH_SIZE, steps=STEPS)
        acc[name] = transfer.stacked_accuracy(apply_m, result.params, x_test, y_test, sizes,
                                              seeds)
        if progress:
            progress(i + 1, len(variants))
    effect = acc["shift + scale + noise + cutout"] - acc["no augmentation"]
    mean_effect = effect.mean(1)

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, ax_ex = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    for name, a in acc.items():
        mean = a.mean(1)
        sd = a.std(1, ddof=1) if seeds > 1 else np.zeros_like(mean)
        ax.plot(sizes, mean, "o-", ms=4, color=COLORS[name], label=name)
        ax.fill_between(sizes, mean - sd, mean + sd, color=COLORS[name], alpha=0.2, lw=0)
    ax.axhline(1 / transfer.N_CLASSES, color="k", ls=":", lw=1, label="chance (5 classes)")
    ax.set(xscale="log", xlabel="labelled training examples per class (log scale)",
           ylabel=f"test accuracy on digits 5-9 ({x_test.shape[0]} signals)", ylim=(0, 1),
           title=f"from scratch, {STEPS} Adam steps (mean +- sd over {seeds} seeds)")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.legend(loc="upper left", fontsize=8)
    _example_figure(ax_ex, x_pool[rows[0, 0]], signal_augmentation())
    fig.suptitle("Data augmentation on MNIST-1D with few labels")

    i1, i5, i50 = sizes.index(1), sizes.index(5), sizes.index(50)
    rows_table = [(n, *(fmt_mean_sd(a[i]) for a in acc.values()), fmt_mean_sd(effect[i]))
                  for i, n in enumerate(sizes)]
    table = markdown_table(("labels per class", *acc, "effect of augmentation (all four)"),
                           rows_table)
    return Outcome(
        name="augmentation", claim=CLAIM,
        checks=[Check("5 labels/class: augmented - plain accuracy", mean_effect[i5], ">=", 0.05),
                Check("50 labels/class: augmented - plain accuracy", mean_effect[i50], ">=",
                      0.15),
                Check("effect at 1 label/class - effect at 5 labels/class",
                      mean_effect[i1] - mean_effect[i5], "<", 0.0)],
        numbers={"labels_per_class": list(sizes),
                 "accuracy": {k: v.tolist() for k, v in acc.items()},
                 "mean_accuracy": {k: v.mean(1).tolist() for k, v in acc.items()},
                 "effect": effect.tolist(), "mean_effect": mean_effect.tolist(),
                 "augmentations": AUGMENTATIONS, "steps": STEPS,
                 "learning_rate": LEARNING_RATE, "seeds": seeds},
        figures={"learning_curves": fig},
        tables={f"Test accuracy on digits 5-9, mean +- sd over {seeds} seeds": table},
        notes=("Same task, model (the transfer experiment's CNN) and recipe as the transfer "
               f"experiment's from-scratch curve (Adam {LEARNING_RATE:g}, {STEPS} steps, batch "
               f"{transfer.BATCH_SIZE}); every variant trains on the same stratified subsets "
               "from the same inits, so the effect is paired per seed. The augmentation runs "
               "inside jl.fit's compiled step (jl.augment.with_augmentation); each step draws "
               "new views: random_shift (roll, up to 5 steps), random_scale (gain 0.7-1.3), "
               "add_noise (std 0.2; the signals have std 1) and cutout (6 of 40 steps zeroed). "
               "MNIST-1D is itself generated by shifting, scaling and adding noise to 10 "
               "templates, so these augmentations match the data's nuisance factors. With 1 "
               "example per class augmentation helps little: the views stay close to one "
               "example per class. At 50 labels per class augmented training from scratch "
               "beats the transfer experiment's fine-tuned backbone (~0.72)."
               + (" Quick mode: 4 sizes, no shift-only ablation." if quick else
                  " Ablation: shift alone reaches "
                  f"{acc['shift only'][i50].mean():.3f} at 50 labels per class (all four: "
                  f"{acc['shift + scale + noise + cutout'][i50].mean():.3f}); the random shift "
                  "carries the effect, the other three add nothing measurable on top.")))

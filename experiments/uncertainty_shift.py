"""Uncertainty under distribution shift: a plain net, MC dropout, a deep ensemble and temperature
scaling on digits with growing Gaussian input noise (Ovadia et al. 2019 in miniature).

Every check is a mean over seeds with its Student t 95% interval; comparisons of two methods are
paired (the plain net is ensemble member 0 and MC dropout runs that same net, on the same noisy
inputs). Seed ``s`` draws the inits, batches, dropout masks and the noise; the split is fixed.
Thresholds come from the CLAIM's words:

- "every classifier loses accuracy": per seed, the smallest drop over the 4 methods from clean to
  std 1, > 0;
- "averaging makes the predictive entropy rise with it": the ensemble's (and MC dropout's)
  entropy rise from clean to std 1 minus the plain net's, > 0 (the plain net's entropy rises a
  little too, so the contrast, not a fixed bar, carries the claim);
- "better calibrated under shift (lower ECE and NLL)": plain net - ensemble ECE and NLL, mean
  over std > 0, > 0;
- "temperature scaling lowers the single net's in-distribution NLL": clean NLL, plain - scaled,
  > 0;
- "AUROC well above 0.5": ensemble entropy AUROC, clean vs std 1, >= 0.75 (a stated practical
  reading of "well above": halfway from chance to perfect).

The single net's overconfidence is engineered (long training at Adam 3e-3, no weight decay) for a
clear demonstration. Guo et al. 2017's ECE before/after temperature scaling sits beside ours in
``Outcome.literature`` (their setting: CIFAR-10 and LeNet-5, not digits and an MLP).

Seeds: quick mode 2 (60 epochs, 20 MC samples); full mode 4 (120 epochs, 50 MC samples), about
35 s on a 2-core CPU; all seeds' ensemble members train at once (``jl.fit_many``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn import report
from jaxlearn import uncertainty as unc
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

DATA = ("stand-in: scikit-learn's bundled 8x8 digits (flattened) under Gaussian noise, for "
        "images under a distribution shift")
CLAIM = ("As Gaussian noise on the inputs grows, every digits classifier loses accuracy, but "
         "averaging models (a 5-member deep ensemble, MC dropout) makes the predictive entropy "
         "rise with it: the ensemble is better calibrated than a single net under shift (lower "
         "ECE and NLL), temperature scaling fitted on held-out data lowers the single net's "
         "in-distribution NLL, and the ensemble's entropy tells clean from heavily noised "
         "inputs (AUROC well above 0.5).")

CE = jl.losses.SOFTMAX_CE_INT
N_MEMBERS = 5
LEARNING_RATE = 3e-3      # long training at this rate leaves the single net overconfident
NOISE_STDS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)   # std of N(0, std^2) added to pixels in [0, 1]
RELIABILITY_STD = 0.5                                # the shifted reliability diagrams
METHODS = ("plain net", "temperature scaling", "MC dropout", f"ensemble of {N_MEMBERS}")
COLORS = dict(zip(METHODS, ("#636363", "#9e9ac8", "#e6550d", "#3182bd")))
METRICS = ("accuracy", "ece", "nll", "entropy", "auroc")
QUICK_SEEDS, FULL_SEEDS = 2, 4
AUROC_WELL_ABOVE = 0.75   # "well above 0.5": halfway from chance to perfect (practical margin)
# Guo et al. 2017, table 1: ECE (15 bins) of CIFAR-10 LeNet-5, the row nearest our setting (10
# classes, a small network): uncalibrated, and after temperature scaling. Checked against the
# table's text (arXiv 1706.04599, row "CIFAR-10 | LeNet 5": Uncalibrated 3.02%, Temp. Scaling
# 0.93%; histogram binning 1.56%, isotonic 1.85%, BBQ 1.59%, vector 1.15%, matrix 1.16%).
GUO = {"source": "Guo et al. 2017, table 1 (CIFAR-10, LeNet-5)", "ece_before": 0.0302,
       "ece_after": 0.0093}


def _member(stacked, index):
    return jax.tree.map(lambda leaf: leaf[index], stacked)


def _members(stacked, start, stop):
    return jax.tree.map(lambda leaf: leaf[start:stop], stacked)


@jax.jit
def _predictive_nll(log_probs, y):
    """``-1/n sum_i log(1/S sum_s p_s(y_i | x_i))`` from log-probabilities ``[S, n, K]``.

    In log space (``logsumexp`` over the ``S`` samples): under heavy noise a float32 softmax
    rounds the true class's probability to exactly 0 for every sample, and
    ``jl.uncertainty.uncertainty_metrics`` (which takes probabilities) then reports ``inf``.
    """
    picked = jnp.take_along_axis(log_probs, y[None, :, None], axis=2)[..., 0]     # [S, n]
    return -jnp.mean(jax.nn.logsumexp(picked, axis=0) - jnp.log(log_probs.shape[0]))


@functools.partial(jax.jit, static_argnums=0)
def _sample_log_probs(model, stacked, x, mc_keys):
    """Log-probabilities ``[S, n, K]`` behind the MC dropout (one train-mode pass per key, as
    ``mc_dropout_predict`` draws them) and ensemble (one pass per member) predictions."""
    single = jax.tree.map(lambda leaf: leaf[0], stacked)
    mc = jax.vmap(lambda k: model.apply(single, x, key=k, train=True))(mc_keys)
    members = jax.vmap(model.apply, in_axes=(0, None))(stacked, x)
    return jax.nn.log_softmax(mc), jax.nn.log_softmax(members)


def _evaluate_seed(model, stacked, data, val, key, n_mc):
    """Metrics of the four methods at every noise level; seed's ensemble ``stacked`` [M, ...]."""
    single = _member(stacked, 0)            # the plain net is the ensemble's first member
    temperature = float(unc.fit_temperature(model.apply(single, val[0]), val[1]))
    y = jnp.asarray(data.y_test)
    results = {m: {k: [] for k in METRICS} for m in METHODS}
    probs_at, entropy_clean = {}, {}
    for level, std in enumerate(NOISE_STDS):
        k_noise, k_mc = jax.random.split(jax.random.fold_in(key, level))
        x = jl.data.add_noise(k_noise, data.x_test, std=std)       # same noise for every method
        logits = model.apply(single, x)
        scaled = unc.apply_temperature(logits, temperature)
        # For the NLL in log space: the same samples as mc_dropout_predict (same keys) and
        # ensemble_predict, as log-probabilities.
        mc_log_probs, member_log_probs = _sample_log_probs(model, stacked, x,
                                                           jax.random.split(k_mc, n_mc))
        sampled = {
            "plain net": (jax.nn.softmax(logits)[None], jax.nn.log_softmax(logits)[None]),
            "temperature scaling": (jax.nn.softmax(scaled)[None],
                                    jax.nn.log_softmax(scaled)[None]),
            "MC dropout": (unc.mc_dropout_predict(model.apply, single, x,
                                                  key=k_mc, n_samples=n_mc), mc_log_probs),
            f"ensemble of {N_MEMBERS}": (unc.ensemble_predict(model.apply, stacked, x),
                                         member_log_probs)}
        for method, (probs, log_probs) in sampled.items():
            m = unc.uncertainty_metrics(probs, y)
            m["nll"] = float(_predictive_nll(log_probs, y))
            entropy = unc.predictive_entropy(probs)
            if std == 0.0:
                entropy_clean[method] = entropy
            m["auroc"] = float(unc.ood_auroc(entropy_clean[method], entropy))
            for k in METRICS:
                results[method][k].append(m[k])
            if std in (0.0, RELIABILITY_STD):
                probs_at[(method, std)] = np.asarray(jnp.mean(probs, 0))
    return results, temperature, probs_at


def _metrics_figure(results, x_example):
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, 3)
    axes = [fig.add_subplot(grid[i // 3, i % 3]) for i in range(len(METRICS))]
    titles = {"accuracy": "test accuracy", "ece": "expected calibration error (15 bins)",
              "nll": "negative log-likelihood (nats, log scale)",
              "entropy": "mean predictive entropy (nats; max log 10 = 2.3)",
              "auroc": "AUROC: entropy tells noisy from clean"}
    stds = np.asarray(NOISE_STDS)
    for ax, metric in zip(axes, METRICS):
        for method in METHODS:
            values = np.asarray(results[method][metric])             # [seeds, levels]
            sd = values.std(0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1])
            ax.errorbar(stds, values.mean(0), yerr=sd, color=COLORS[method], marker="o", ms=3,
                        capsize=2, label=method)
        ax.set(title=titles[metric], xlabel="noise std (pixels in [0, 1])")
    axes[0].axhline(0.1, color="k", ls=":", lw=1, label="chance")
    axes[2].set_yscale("log")
    axes[4].axhline(0.5, color="k", ls=":", lw=1, label="chance")
    for ax in axes:
        ax.legend(fontsize=7)
    cells = grid[1, 2].subgridspec(2, 4)
    for i, (std, image) in enumerate(zip(NOISE_STDS, x_example)):
        ax = fig.add_subplot(cells[i // 4, i % 4])
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"std {std:g}", fontsize=8)
    fig.text(0.84, 0.02, "one test digit at each noise level (shown clipped to [0, 1])",
             ha="center", fontsize=9)
    fig.suptitle("Digits under Gaussian input noise: mean +- sd over seeds "
                 "(AUROC: clean test set vs the same digits at each noise level)")
    return fig


def _reliability_figure(probs_at, y):
    fig = Figure(figsize=(13, 6.5), layout="constrained")
    axes = fig.subplots(2, len(METHODS), sharey=True)
    for r, std in enumerate((0.0, RELIABILITY_STD)):
        for c, method in enumerate(METHODS):
            probs = probs_at[(method, std)]
            diagram = unc.reliability_diagram(probs, y)
            unc.plot_reliability(axes[r, c], diagram, color=COLORS[method])
            for left, count in zip(diagram.bin_edges[:-1], diagram.count):
                if count:
                    axes[r, c].text(left + 1 / 30, 0.01, str(count), ha="center",
                                    va="bottom", fontsize=6, rotation=90)
            ece = float(unc.expected_calibration_error(probs, y))
            shift = "clean" if std == 0.0 else f"noise std {std:g}"
            axes[r, c].set_title(f"{method}, {shift}\nECE {ece:.3f}, accuracy "
                                 f"{np.mean(probs.argmax(1) == y):.3f}", fontsize=9)
    fig.suptitle("Reliability diagrams (seed 0, 15 bins; number of test digits at the foot of "
                 "each bar; hatched: gap between mean confidence and accuracy; dashed: perfect "
                 "calibration)")
    return fig


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(QUICK_SEEDS, FULL_SEEDS))
    seeds = len(seed_values)
    epochs = 60 if quick else 120
    n_mc = 20 if quick else 50
    x, y = jl.data.load_digits()
    # One fixed split (test 30%, then 20% of the rest held out to fit the temperature): fit_many
    # trains all seeds' members at once on shared data; seeds vary init, batches, dropout, noise.
    data = jl.data.train_test_split(jax.random.key(0), x, y, test_size=0.3)
    fit_data = jl.data.train_test_split(jax.random.key(1), data.x_train, data.y_train,
                                        test_size=0.2)
    val = (fit_data.x_test, fit_data.y_test)
    model = jl.nn.mlp((128, 128), 10, dropout=0.2)
    seed_keys = [jax.random.split(jax.random.key(seed), 3) for seed in seed_values]
    init_keys = jnp.concatenate([jax.random.split(k[0], N_MEMBERS) for k in seed_keys])
    fit_keys = jnp.concatenate([jax.random.split(k[1], N_MEMBERS) for k in seed_keys])
    stacked0 = jl.nn.init_stacked(model, init_keys, (x.shape[1],))
    trained = jl.fit_many(model.apply, stacked0, fit_data.x_train, fit_data.y_train, loss=CE,
                          optimizer=optax.adam(LEARNING_RATE), keys=fit_keys, batch_size=64,
                          epochs=epochs).params
    if progress:
        progress(1, seeds + 1)

    results = {m: {k: [] for k in METRICS} for m in METHODS}
    temperatures = []
    for seed in range(seeds):
        ensemble = _members(trained, seed * N_MEMBERS, (seed + 1) * N_MEMBERS)
        seed_results, temperature, probs_at = _evaluate_seed(model, ensemble, data, val,
                                                             seed_keys[seed][2], n_mc)
        if seed == 0:
            reliability_probs = probs_at
        temperatures.append(temperature)
        for method in METHODS:
            for k in METRICS:
                results[method][k].append(seed_results[method][k])
        if progress:
            progress(seed + 2, seeds + 1)

    def arr(method, metric):
        return np.asarray(results[method][metric])                  # [seeds, levels]

    ensemble_name, shifted = f"ensemble of {N_MEMBERS}", slice(1, None)
    accuracy_drop = np.min([arr(m, "accuracy")[:, 0] - arr(m, "accuracy")[:, -1]
                            for m in METHODS], axis=0)                  # [seeds]
    entropy_rise = {m: arr(m, "entropy")[:, -1] - arr(m, "entropy")[:, 0] for m in METHODS}
    ece_gain = np.mean(arr("plain net", "ece")[:, shifted] - arr(ensemble_name, "ece")[:, shifted],
                       1)
    nll_gain = np.mean(arr("plain net", "nll")[:, shifted] - arr(ensemble_name, "nll")[:, shifted],
                       1)
    temp_nll_gain = arr("plain net", "nll")[:, 0] - arr("temperature scaling", "nll")[:, 0]
    ood_auroc = arr(ensemble_name, "auroc")[:, -1]
    example = np.asarray(data.x_test[0])
    noisy = [np.clip(np.asarray(jl.data.add_noise(jax.random.key(level), example[None],
                                                  std=std))[0], 0, 1)
             for level, std in enumerate(NOISE_STDS)]
    fig_metrics = _metrics_figure(results, noisy)
    fig_reliability = _reliability_figure(reliability_probs, np.asarray(data.y_test))

    header = ("method", *(f"std {s:g}" for s in NOISE_STDS))
    tables = {}
    for metric, title in (("accuracy", "Accuracy"), ("ece", "ECE (15 bins)"),
                          ("nll", "NLL (nats)"), ("entropy", "Mean predictive entropy (nats)"),
                          ("auroc", "AUROC of entropy, clean vs this noise level")):
        rows = [(m, *(fmt_mean_sd(arr(m, metric)[:, j]) for j in range(len(NOISE_STDS))))
                for m in METHODS]
        tables[f"{title} vs noise std, mean +- sd over {seeds} seeds"] = markdown_table(header,
                                                                                       rows)
    heaviest = f"std {NOISE_STDS[-1]:g}"
    guo_note = (f"8x8 digits ({data.x_test.shape[0]} test images) and a dropout MLP trained "
                f"{epochs} epochs, not CIFAR-10 and LeNet-5; the temperature is fitted on "
                f"{val[0].shape[0]} held-out digits; 15 bins as in the paper")
    return Outcome(
        name="uncertainty_shift", claim=CLAIM,
        checks=[
            Check.sample(f"entropy rise from clean to {heaviest} (nats), ensemble - plain net "
                         "(paired)", entropy_rise[ensemble_name] - entropy_rise["plain net"],
                         ">", 0.0, source="claim: averaging models 'makes the predictive "
                                          "entropy rise with' the noise"),
            Check.sample(f"entropy rise from clean to {heaviest} (nats), MC dropout - plain net "
                         "(paired)", entropy_rise["MC dropout"] - entropy_rise["plain net"],
                         ">", 0.0, source="claim: the same for MC dropout"),
            Check.sample("ECE under shift (mean over std > 0), plain net - ensemble (paired)",
                         ece_gain, ">", 0.0,
                         source="claim: the ensemble is better calibrated under shift (lower "
                                "ECE)"),
            Check.sample("NLL under shift (mean over std > 0), plain net - ensemble (paired)",
                         nll_gain, ">", 0.0, source="claim: ... and lower NLL"),
            Check.sample("clean test NLL, plain net - temperature scaled (paired)", temp_nll_gain,
                         ">", 0.0, source="claim: temperature scaling 'lowers the single net's "
                                          "in-distribution NLL'"),
            Check.sample(f"ensemble OOD AUROC, entropy of clean vs {heaviest} test digits",
                         ood_auroc, ">=", AUROC_WELL_ABOVE,
                         source="claim: 'well above 0.5' (practical reading: >= 0.75, halfway "
                                "from chance to perfect)"),
            Check.sample(f"accuracy drop from clean to {heaviest}, smallest over the 4 methods",
                         accuracy_drop, ">", 0.0,
                         source="claim: 'every digits classifier loses accuracy'"),
        ],
        literature=[
            report.literature_row(GUO["source"], "clean ECE, uncalibrated (plain net)",
                                  GUO["ece_before"], arr("plain net", "ece")[:, 0],
                                  note=guo_note),
            report.literature_row(GUO["source"], "clean ECE after temperature scaling",
                                  GUO["ece_after"], arr("temperature scaling", "ece")[:, 0],
                                  note=guo_note),
        ],
        numbers={"noise_stds": list(NOISE_STDS), "results": results,
                 "temperatures": temperatures, "accuracy_drop_min_over_methods":
                 accuracy_drop.tolist(),
                 "entropy_rise": {m: v.tolist() for m, v in entropy_rise.items()},
                 "ece_gain_under_shift": ece_gain.tolist(),
                 "nll_gain_under_shift": nll_gain.tolist(),
                 "temperature_nll_gain_clean": temp_nll_gain.tolist(),
                 "ensemble_ood_auroc": ood_auroc.tolist(), "epochs": epochs,
                 "mc_samples": n_mc, "n_members": N_MEMBERS,
                 "n_train": int(fit_data.x_train.shape[0]), "n_val": int(val[0].shape[0]),
                 "n_test": int(data.x_test.shape[0]), "seeds": seeds,
                 "seed_values": list(seed_values), "guo_2017": GUO},
        figures={"metrics_vs_noise": fig_metrics, "reliability": fig_reliability},
        tables=tables,
        notes=(f"Model: MLP 64-128-128-10, ReLU, dropout 0.2, Adam {LEARNING_RATE:g}, "
               f"{epochs} epochs, batch 64. Plain net = ensemble member 0 in test mode; MC "
               f"dropout = the same net with dropout on, {n_mc} samples; ensemble = "
               f"{N_MEMBERS} members trained at once with jl.fit_many; temperature T fitted by "
               "jl.uncertainty.fit_temperature on a held-out validation split (T = "
               f"{fmt_mean_sd(temperatures, 2)}). Noise is additive N(0, std^2), not clipped "
               "(the figure's digits are clipped for display only). NLL is computed in log space "
               "from each method's logits (log of the mean predictive probability by logsumexp "
               "over samples): jl.uncertainty.uncertainty_metrics takes probabilities, and under "
               "heavy noise a float32 softmax rounds the true class's probability to exactly 0 "
               "for all 5 members of an ensemble, which makes its NLL inf; accuracy, ECE and "
               "entropy are the library's. The split (train "
               f"{fit_data.x_train.shape[0]} / validation {val[0].shape[0]} / test "
               f"{data.x_test.shape[0]}) is fixed; seeds vary initialisation, batches, dropout "
               "masks and the noise. The single net's overconfidence is engineered (long "
               "training at this learning rate, no weight decay) to make the demonstration "
               "clear. The accuracy drop at std 1 cannot plausibly fail (noise of std 1 on "
               "pixels in [0, 1]) and is not the evidence; the paired contrasts with the plain "
               "net are."))

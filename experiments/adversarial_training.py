"""Attacks a reviewer accepts (issue 15): adversarial training judged by the worst case over an
ensemble of attacks, FGSM, PGD with random restarts and APGD (Croce & Hein 2020), on digits.

Four MLPs of one architecture start from the same initialisation and see the same batches (per
seed): a plain one, one FGSM-trained (Goodfellow et al. 2015, ``robust.adversarial_apply``), one
PGD-trained (Madry et al. 2018, ``robust.pgd_apply``) and one TRADES-trained (Zhang et al. 2019,
``robust.trades_objective``), all at the L-inf budget eps 0.1. Each is attacked on the fixed test
set with ``robust.robust_accuracy``: an example counts as robust only if it is classified
correctly clean and under every attack. Every check is a mean over seeds with its Student t 95%
interval (seed ``s`` draws the inits, the batch order, the training attacks' and the evaluation
attacks' random starts; the train/test split is fixed). Thresholds:

- "the worst case is at most each attack's accuracy": by construction (the per-example minimum),
  a sanity check on the largest excess over models, seeds and eps, <= 0 (exact);
- "PGD training beats FGSM training under APGD at the training eps": APGD accuracy at eps 0.1,
  PGD-trained - FGSM-trained, paired over seeds, > 0 (the claim's words);
- "adversarial training raises the worst-case robust accuracy": PGD-trained and TRADES-trained -
  plain, paired, > 0;
- "APGD is as strong as PGD with the same steps and restarts": per seed, APGD accuracy minus
  PGD accuracy at eps 0.1, largest over the models, <= ``ATTACK_MARGIN`` (a practical margin of
  one point, about 5 test digits);
- "FGSM alone overstates robust accuracy": FGSM accuracy minus the worst case at eps 0.1, mean
  over the models, > 0.

Gradient masking (Athalye, Carlini & Wagner 2018) would show as FGSM accuracy far above APGD
accuracy; the gap at eps 0.1 is reported for every model in the table and the notes, not checked
(on this small network FGSM training does not mask: its gap is close to PGD training's).

Seeds: quick mode 4 (25 epochs; PGD and TRADES training 5 steps; evaluation at 4 eps, PGD and
APGD 10 steps x 2 restarts), 10 s on a 2-core CPU with the compilation cache warm (20 s when
other jobs share it); full mode 6 (40 epochs; 10 training steps; 5 eps, PGD and APGD 50 steps x
3 restarts), 30 s warm. Each model trains all seeds at once (``jl.fit_many``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list
from jaxlearn import robust
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

CLAIM = ("A robustness number counts only under strong attacks, and adversarial training must "
         "be judged by them: the worst case over FGSM, PGD with random restarts and APGD (an "
         "example is robust only if every attack fails) is at most each attack's accuracy; "
         "APGD, with no step size to set, is as strong as PGD with the same steps and restarts; "
         "FGSM alone overstates robust accuracy; under APGD at the training eps, PGD adversarial "
         "training (Madry et al. 2018) beats FGSM adversarial training, and PGD and TRADES "
         "training raise the worst-case robust accuracy over a plain model.")

CE = jl.losses.SOFTMAX_CE_INT
CLIP = (0.0, 1.0)          # digits pixels lie in [0, 1]
EPS_TRAIN = 0.1            # the training budget, where robustness is read
LEARNING_RATE = 3e-3
BATCH_SIZE = 64
TRADES_BETA = 6.0          # Zhang et al. 2019's 1/lambda
ATTACK_MARGIN = 0.01       # "APGD as strong as PGD": at most 1 point above it
QUICK_SEEDS, FULL_SEEDS = 4, 6
MODELS = ("plain", "FGSM-trained", "PGD-trained", "TRADES")
COLORS = dict(zip(MODELS, ("#636363", "#e6550d", "#31a354", "#756bb1")))
ATTACK_NAMES = ("FGSM", "PGD", "APGD")


def _settings(quick: bool) -> dict:
    """PGD and APGD get the same budget (steps and restarts) at evaluation."""
    if quick:
        return {"epochs": 25, "train_steps": 5, "attack_steps": 10, "restarts": 2,
                "eps": (0.0, 0.05, 0.1, 0.2)}
    return {"epochs": 40, "train_steps": 10, "attack_steps": 50, "restarts": 3,
            "eps": (0.0, 0.05, 0.1, 0.15, 0.2)}


def _objectives(layer, settings):
    """name -> (apply for fit, loss for fit)."""
    steps = settings["train_steps"]
    trades = robust.trades_objective(layer.apply, eps=EPS_TRAIN, beta=TRADES_BETA,
                                     n_steps=steps, clip=CLIP)
    return {
        "plain": (layer.apply, CE),
        "FGSM-trained": (robust.adversarial_apply(layer.apply, eps=EPS_TRAIN, alpha=0.5,
                                                  clip=CLIP), CE),
        "PGD-trained": (robust.pgd_apply(layer.apply, eps=EPS_TRAIN, n_steps=steps, clip=CLIP),
                        CE),
        "TRADES": (trades.apply, trades.loss),
    }


def _member(stacked, i):
    return jax.tree.map(lambda leaf: leaf[i], stacked)


def _curves_figure(eps_values, acc):
    """Accuracy against eps: worst case (solid) and FGSM (dotted), mean +- sd over seeds."""
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    for name in MODELS:
        for what, style in (("worst case", "-"), ("FGSM", ":")):
            values = acc[name][what]                                   # [seeds, n_eps]
            mean = values.mean(0)
            ax.plot(eps_values, mean, style, color=COLORS[name], marker=".",
                    label=f"{name}, {what}")
            if values.shape[0] > 1:
                sd = values.std(0, ddof=1)
                ax.fill_between(eps_values, mean - sd, mean + sd, color=COLORS[name], alpha=0.12,
                                lw=0)
    ax.axvline(EPS_TRAIN, color="gray", ls=":", lw=1)
    ax.text(EPS_TRAIN + 0.003, 0.02, "training eps", color="gray", fontsize=8)
    ax.set(xlabel="L-inf budget eps (pixels in [0, 1])", ylabel="test accuracy",
           ylim=(-0.02, 1.02),
           title="worst case over FGSM, PGD with restarts and APGD (solid) vs FGSM alone (dotted)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _bars_figure(acc, i_train, settings):
    """Per model at the training eps: clean, each attack, worst case (mean +- sd over seeds)."""
    columns = ("clean", *ATTACK_NAMES, "worst case")
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(columns)
    shades = ("#bdbdbd", "#fdae6b", "#74c476", "#3182bd", "#000000")
    for c, (what, shade) in enumerate(zip(columns, shades, strict=True)):
        means = [acc[n][what][:, i_train].mean() for n in MODELS]
        sds = [acc[n][what][:, i_train].std(ddof=1) if acc[n][what].shape[0] > 1 else 0.0
               for n in MODELS]
        ax.bar(np.arange(len(MODELS)) + (c - (len(columns) - 1) / 2) * width, means, width,
               yerr=sds, color=shade, label=what, capsize=2)
    ax.set_xticks(np.arange(len(MODELS)), MODELS)
    ax.set(ylabel=f"test accuracy at eps {EPS_TRAIN}", ylim=(0, 1.05),
           title=f"eps {EPS_TRAIN}: PGD and APGD {settings['attack_steps']} steps x "
                 f"{settings['restarts']} restarts")
    ax.legend(fontsize=8, ncol=5, loc="upper center")
    return fig


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(QUICK_SEEDS, FULL_SEEDS))
    n_seeds = len(seed_values)
    settings = _settings(quick)
    eps_values = np.asarray(settings["eps"], np.float32)
    i_train = int(np.flatnonzero(np.isclose(eps_values, EPS_TRAIN))[0])
    total = len(MODELS) * 2
    x, y = jl.data.load_digits()
    data = jl.data.train_test_split(jax.random.key(0), x, y, test_size=0.3)
    layer = jl.nn.mlp((128,), 10)
    seed_keys = [jax.random.split(jax.random.key(seed), 3) for seed in seed_values]
    init_keys, fit_keys = (jnp.stack([k[j] for k in seed_keys]) for j in (0, 1))
    params0 = jl.nn.init_stacked(layer, init_keys, (data.x_train.shape[1],))
    budget = {"n_steps": settings["attack_steps"], "restarts": settings["restarts"]}
    attacks = ("fgsm", ("pgd", budget), ("apgd", budget))

    trained, done = {}, 0
    for name, (apply, loss) in _objectives(layer, settings).items():
        # Same init and batch order for every model: the comparisons are paired by seed.
        trained[name] = jl.fit_many(apply, params0, data.x_train, data.y_train, loss=loss,
                                    optimizer=optax.adam(LEARNING_RATE), keys=fit_keys,
                                    batch_size=BATCH_SIZE, epochs=settings["epochs"]).params
        done += 1
        if progress:
            progress(done, total)

    # acc[model][what]: [seeds, n_eps] for what in clean, FGSM, PGD, APGD, worst case.
    acc = {n: {w: [] for w in ("clean", *ATTACK_NAMES, "worst case")} for n in MODELS}
    for name in MODELS:
        for s in range(n_seeds):
            result = robust.robust_accuracy(
                layer.apply, _member(trained[name], s), data.x_test, data.y_test,
                eps=eps_values, key=seed_keys[s][2], attacks=attacks, clip=CLIP)
            per_attack = list(result["accuracy"].values())
            acc[name]["clean"].append(np.full(len(eps_values), result["clean"]))
            for what, values in zip(ATTACK_NAMES, per_attack, strict=True):
                acc[name][what].append(values)
            acc[name]["worst case"].append(result["worst_case"])
        acc[name] = {w: np.asarray(v) for w, v in acc[name].items()}
        done += 1
        if progress:
            progress(done, total)

    def at_train(name, what):
        return acc[name][what][:, i_train]                               # [seeds]

    # Largest excess of the worst case over clean or any attack's accuracy (by construction <= 0).
    worst_excess = max(float(np.max(acc[n]["worst case"] - np.min(
        [acc[n][a] for a in ("clean", *ATTACK_NAMES)], axis=0))) for n in MODELS)
    pgd_vs_fgsm = at_train("PGD-trained", "APGD") - at_train("FGSM-trained", "APGD")
    pgd_gain = at_train("PGD-trained", "worst case") - at_train("plain", "worst case")
    trades_gain = at_train("TRADES", "worst case") - at_train("plain", "worst case")
    apgd_excess = np.max([at_train(n, "APGD") - at_train(n, "PGD") for n in MODELS], axis=0)
    fgsm_overstates = np.mean([at_train(n, "FGSM") - at_train(n, "worst case") for n in MODELS],
                              axis=0)                                    # [seeds]
    masking = {n: at_train(n, "FGSM") - at_train(n, "APGD") for n in MODELS}
    ensemble_extra = {n: at_train(n, "APGD") - at_train(n, "worst case") for n in MODELS}
    if progress:
        progress(total, total)

    rows = []
    for name in MODELS:
        rows.append((name, fmt_mean_sd(acc[name]["clean"][:, 0]),
                     *(fmt_mean_sd(at_train(name, a)) for a in ATTACK_NAMES),
                     fmt_mean_sd(at_train(name, "worst case")), fmt_mean_sd(masking[name])))
    budget_text = f"{settings['attack_steps']} steps x {settings['restarts']} restarts"
    table = markdown_table(("model", "clean accuracy", f"FGSM at eps {EPS_TRAIN}",
                            f"PGD ({budget_text})", f"APGD ({budget_text})",
                            "worst case (robust accuracy)", "FGSM - APGD"), rows)
    fig_curves = _curves_figure(eps_values, acc)
    fig_bars = _bars_figure(acc, i_train, settings)

    numbers = {"eps": eps_values.tolist(), "eps_train": EPS_TRAIN, "settings": settings,
               "accuracy": {n: {w: v.tolist() for w, v in acc[n].items()} for n in MODELS},
               "worst_case_minus_min_accuracy_max": worst_excess,
               "apgd_pgd_trained_minus_fgsm_trained": pgd_vs_fgsm.tolist(),
               "worst_case_pgd_trained_minus_plain": pgd_gain.tolist(),
               "worst_case_trades_minus_plain": trades_gain.tolist(),
               "apgd_minus_pgd_max_over_models": apgd_excess.tolist(),
               "fgsm_minus_worst_case_mean_over_models": fgsm_overstates.tolist(),
               "fgsm_minus_apgd": {n: v.tolist() for n, v in masking.items()},
               "apgd_minus_worst_case": {n: v.tolist() for n, v in ensemble_extra.items()},
               "n_test": int(data.x_test.shape[0]), "seeds": n_seeds,
               "seed_values": list(seed_values)}
    gaps = ", ".join(f"{n} {fmt_mean_sd(masking[n])}" for n in MODELS)
    extra = ", ".join(f"{n} {fmt_mean_sd(v)}" for n, v in ensemble_extra.items())
    return Outcome(
        name="adversarial_training", claim=CLAIM,
        checks=[
            Check("worst case - smallest of clean and each attack's accuracy, largest over "
                  "models, seeds and eps", worst_excess, "<=", 0.0, exact=True,
                  source="definition: an example is robust only if it is right clean and every "
                         "attack fails"),
            Check.sample(f"APGD - PGD accuracy at eps {EPS_TRAIN} (same steps and restarts), "
                         "largest over the 4 models", apgd_excess, "<=", ATTACK_MARGIN,
                         source="claim: APGD is as strong as PGD with the same budget "
                                f"(practical margin: {ATTACK_MARGIN:.0%} of the test digits)"),
            Check.sample(f"FGSM - worst-case accuracy at eps {EPS_TRAIN}, mean over the 4 "
                         "models", fgsm_overstates, ">", 0.0,
                         source="claim: an FGSM evaluation alone overstates robustness"),
            Check.sample(f"APGD accuracy at eps {EPS_TRAIN}, PGD-trained - FGSM-trained "
                         "(paired over seeds)", pgd_vs_fgsm, ">", 0.0,
                         source="claim: PGD training beats FGSM training under APGD at the "
                                "training eps"),
            Check.sample(f"worst-case robust accuracy at eps {EPS_TRAIN}, PGD-trained - plain "
                         "(paired)", pgd_gain, ">", 0.0,
                         source="claim: PGD training raises the worst-case robust accuracy"),
            Check.sample(f"worst-case robust accuracy at eps {EPS_TRAIN}, TRADES - plain "
                         "(paired)", trades_gain, ">", 0.0,
                         source="claim: TRADES training raises the worst-case robust accuracy"),
        ],
        numbers=numbers,
        figures={"curves": fig_curves, "bars": fig_bars},
        tables={f"Accuracy at eps {EPS_TRAIN}, mean +- sd over {n_seeds} seeds": table},
        notes=(f"Gradient masking, FGSM - APGD accuracy at eps {EPS_TRAIN}: {gaps}. A masked "
               "model would show a gap of tens of points (FGSM held off, iterative attacks "
               "not); here the largest gap is the plain model's, where FGSM is simply the weaker "
               "attack, and FGSM training, at this eps and on this small network, does not mask "
               "its gradients: its gap is close to the PGD-trained model's. What the ensemble "
               f"adds beyond APGD alone (APGD - worst case): {extra}. MLP (128 ReLU), Adam "
               "3e-3, batches of 64, one fixed 70/30 split of the 8x8 digits; the four models "
               "of a seed share the initialisation and the batch order. Training attacks at "
               f"eps {EPS_TRAIN}: FGSM on half of each batch (adversarial_apply); PGD with "
               f"{settings['train_steps']} steps of 2.5 eps / n_steps from a random start on "
               f"every example (pgd_apply); TRADES with beta {TRADES_BETA:g} and as many steps "
               "on the KL (trades_objective). The training attacks use the model's own "
               "predictions as labels (apply never sees y). Evaluation: robust_accuracy with "
               f"FGSM, PGD and APGD-CE ({budget_text} each; APGD's step size schedule is Croce "
               "& Hein's, untuned), all untargeted, clipped to [0, 1]. APGD-T, FAB and Square "
               "(the rest of AutoAttack) are not run: the robust accuracy under them could be "
               "lower."))

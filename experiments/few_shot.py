"""Few-shot learning on held-out classes: 5-way 1-shot and 5-shot episodes of MNIST-1D digits 5-9,
with prototypical networks trained episodically on digits 0-4 against a linear probe and a
fine-tuned linear head on the same episodes.

A seed is one prototypical network (its own init and training episodes) and one set of test
episodes; each per-seed value is a mean over that seed's episodes, and each check is judged by
the 95% Student-t interval of the mean over seeds (means over hundreds of episodes are close to
normal; no bootstrap). Thresholds and their sources:

- the worst of the 6 (embedding, head) methods beats chance (0.2) by >= 0.1 in 1-shot episodes,
  and every method gains from 5 shots over 1 (per seed: the worst method, the smallest gain):
  the lecture's claim as stated in ``CLAIM``; 0.1 over chance is a low bar, kept as the claim
  states it;
- the comparison the issue asked for, prototypical network against the fine-tuning baseline
  (Snell et al. 2017 present prototypical networks as beating such baselines; Chen et al. 2019,
  "A Closer Look at Few-shot Classification", find a pretrained classifier with a new linear head
  competitive): protonet (prototypes on the episodically trained embedding) - fine-tuned linear
  head on the cross-entropy classifier's embedding > 0, paired over the same episodes, at 1 and
  5 shots. The direction is the claim; whether it holds on our data is a finding.

The classifier embedding is the transfer experiment's single pretrained backbone, so its
per-seed values vary with the episodes only. Seeds: quick 2, full 12 (t_{0.975, 11} = 2.20;
about 2.5 to 4.5 minutes on a busy 2-core CPU). With 6 seeds the 5-shot comparison was
inconclusive at seed offset 0 (0.008 [-0.017, 0.033]) and held at offset 100 (0.048 [0.010,
0.087]); with 12 it holds at both, 0.023 [0.0005, 0.045] and 0.039 [0.016, 0.062] (the first only
just: the 5-shot advantage is small, as Chen et al. found), and the other three checks hold at
both offsets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import jaxlearn as jl
from experiments import seed_list, transfer
from jaxlearn import stats
from jaxlearn.report import Check, Outcome, fmt_mean_sd, markdown_table

FULL_SEEDS = 12

DATA = ("synthetic stand-in: MNIST-1D (generated offline by mnist1d), new digits as the "
        "rare classes")
CLAIM = ("Embeddings learnt on other classes let a model recognise new classes from a handful of "
         "examples: on 5-way episodes of MNIST-1D digits never seen in training, a prototypical "
         "network, a ridge probe and a fine-tuned linear head all beat chance (0.2) by >= 0.1 "
         "with 1 example per class and improve with 5 examples per class; the episodically "
         "trained prototypical network beats the fine-tuning baseline (a classifier's embedding "
         "with a new linear head) on the same episodes.")

N_WAY = 5
N_QUERY = 15
SHOTS = (1, 5)
PROTO_STEPS = 1000
PROTO_LR = 1e-3
FINETUNE_STEPS = 100
EMBEDDINGS = ("protonet (episodic, digits 0-4)", "classifier (cross-entropy, digits 0-4)")
HEADS = ("prototypes", "ridge probe", "fine-tuned linear head")
COLORS = {"prototypes": "#3182bd", "ridge probe": "#31a354",
          "fine-tuned linear head": "#e6550d"}


def _train_protonets(embed, x, y, seed_values, steps: int):
    """One prototypical network per seed (5-way 5-shot training episodes with 15 queries per
    class), all seeds in one compiled program (``jl.fewshot.train_protonet`` vmapped).
    Returns stacked params and losses ``[n_seeds, steps]``."""
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(21), s))(
        jnp.asarray(seed_values))
    init_key = jax.random.key(22)
    # Seeds 0..n-1 keep the original inits; any other first seed draws fresh ones.
    init_key = jax.random.fold_in(init_key, seed_values[0]) if seed_values[0] else init_key
    params0 = transfer.init_members(embed, init_key, len(seed_values), (40,))

    def train(key, params):
        return jl.fewshot.train_protonet(embed.apply, params, x, y,
                                         optimizer=optax.adam(PROTO_LR), key=key, n_way=N_WAY,
                                         k_shot=5, n_query=N_QUERY, steps=steps)

    return jax.vmap(train)(keys, params0)


def _evaluate(embed, params, episodes, scale):
    """``{head: [n_episodes] accuracies}`` for one embedding. ``scale`` is the mean squared norm
    of its features on the training classes: ridge ``lam = 0.1 scale`` and gradient step
    ``10 / scale`` make both baselines invariant to the scale of the features."""
    return {"prototypes": jl.fewshot.evaluate_episodes(embed.apply, params, episodes),
            "ridge probe": jl.fewshot.ridge_probe_episodes(embed.apply, params, episodes,
                                                           lam=0.1 * scale),
            "fine-tuned linear head": jl.fewshot.finetune_episodes(
                embed.apply, params, episodes, steps=FINETUNE_STEPS,
                learning_rate=10.0 / scale)}


def _reading(est) -> str:
    """The paired protonet - baseline interval in words."""
    if est.low > 0:
        return "the protonet is better"
    if est.high < 0:
        return ("the fine-tuning baseline is better, as Chen et al. 2019 found for simple "
                "baselines; Snell et al.'s claim does not carry over to this setting")
    return "no difference beyond seed noise at this number of seeds"


def run(*, quick: bool = False, seeds: int | None = None, seed_offset: int = 0,
        progress=None) -> Outcome:
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(2, FULL_SEEDS))
    seeds = len(seed_values)
    n_episodes = 200 if quick else 600
    proto_steps = 500 if quick else PROTO_STEPS
    pretrain_steps = 600 if quick else 1000          # shared with the transfer experiment
    data = jl.data.load_mnist1d()
    x_train, y_train, _, _ = transfer.split_digits(data, range(N_WAY))
    _, _, x_new, y_new = transfer.split_digits(data, range(N_WAY, 2 * N_WAY))
    embed = transfer.backbone()
    total, done = 2 + seeds, 0

    def step():
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    protonets = _train_protonets(embed, x_train, y_train, seed_values, proto_steps)
    step()
    classifier_params, _, _ = transfer.pretrained_classifier(pretrain_steps)
    step()

    def feature_scale(params):
        f = jl.transfer.features(embed.apply, params, x_train)
        return float(jnp.mean(jnp.sum(f ** 2, axis=1)))

    # acc[embedding][head][shot]: [seeds] mean query accuracy over the seed's episodes.
    acc = {e: {h: {k: [] for k in SHOTS} for h in HEADS} for e in EMBEDDINGS}
    per_episode = {}
    for i, s in enumerate(seed_values):
        params = {EMBEDDINGS[0]: jax.tree.map(lambda a, i=i: a[i], protonets.params),
                  EMBEDDINGS[1]: classifier_params[0]}
        scales = {e: feature_scale(p) for e, p in params.items()}
        for k_shot in SHOTS:
            episodes = jl.fewshot.sample_episodes(
                jax.random.fold_in(jax.random.key(23 + k_shot), s), x_new, y_new,
                n_episodes=n_episodes, n_way=N_WAY, k_shot=k_shot, n_query=N_QUERY)
            for e, p in params.items():
                for h, a in _evaluate(embed, p, episodes, scales[e]).items():
                    acc[e][h][k_shot].append(float(jnp.mean(a)))
                    if i == 0:
                        per_episode[(e, h, k_shot)] = np.asarray(a)
        step()

    per_seed = {(e, h, k): np.asarray(acc[e][h][k]) for e in EMBEDDINGS for h in HEADS
                for k in SHOTS}                                          # [seeds] each
    means = {key: float(v.mean()) for key, v in per_seed.items()}
    methods = [(e, h) for e in EMBEDDINGS for h in HEADS]
    worst_1shot = np.min([per_seed[(e, h, 1)] for e, h in methods], axis=0)     # [seeds]
    min_gain = np.min([per_seed[(e, h, 5)] - per_seed[(e, h, 1)] for e, h in methods], axis=0)
    proto, baseline = (EMBEDDINGS[0], "prototypes"), (EMBEDDINGS[1], "fine-tuned linear head")
    # Same episodes for both methods of a seed: the per-seed difference is paired.
    proto_minus_ft = {k: per_seed[(*proto, k)] - per_seed[(*baseline, k)] for k in SHOTS}
    comparison = {k: stats.estimate(v) for k, v in proto_minus_ft.items()}
    ranking = {k: sorted(((means[(e, h, k)], f"{h} on {e.split(' (')[0]}") for e, h in methods),
                         reverse=True) for k in SHOTS}
    comparison_source = ("the issue's comparison: Snell et al. 2017 (protonets beat "
                         "fine-tuning baselines) vs Chen et al. 2019 (a pretrained classifier + "
                         "linear head is competitive); direction only")

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.25
    for ax, k_shot in zip(axes, SHOTS):
        pos = np.arange(len(EMBEDDINGS))
        for j, h in enumerate(HEADS):
            vals = [np.asarray(acc[e][h][k_shot]) for e in EMBEDDINGS]
            m = [v.mean() for v in vals]
            sd = [v.std(ddof=1) if v.size > 1 else 0.0 for v in vals]
            ax.bar(pos + (j - 1) * width, m, width, yerr=sd, capsize=3, color=COLORS[h],
                   label=h)
            for p_, v in zip(pos + (j - 1) * width, m):
                ax.text(p_, v + 0.02, f"{v:.2f}", ha="center", fontsize=7)
        ax.axhline(1 / N_WAY, color="k", ls=":", lw=1, label="chance (1/5)")
        ax.set_xticks(pos, ["protonet embedding\n(episodic training)",
                            "classifier embedding\n(cross-entropy pretraining)"])
        ax.set(ylim=(0, 1), title=f"5-way {k_shot}-shot on digits 5-9 ({n_episodes} episodes "
               f"x {seeds} seeds)", ylabel="query accuracy")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Few-shot recognition of classes unseen in training (mean +- sd over seeds)")

    rows = [(e, h, *(fmt_mean_sd(acc[e][h][k]) for k in SHOTS)) for e in EMBEDDINGS
            for h in HEADS]
    table = markdown_table(("embedding (trained on digits 0-4)", "classifier on the support set",
                            *(f"5-way {k}-shot" for k in SHOTS)), rows)
    interval = {f"{e} / {h} / {k}-shot": 1.96 * float(np.std(v, ddof=1)) / np.sqrt(v.size)
                for (e, h, k), v in per_episode.items()}
    return Outcome(
        name="few_shot", claim=CLAIM,
        checks=[Check.sample("1-shot: worst of the 6 methods - chance (per seed)",
                             worst_1shot - 1 / N_WAY, ">=", 0.1,
                             source="lecture claim: all methods beat chance (0.2) by >= 0.1 "
                                    "with 1 example per class"),
                Check.sample("smallest 5-shot - 1-shot gain over the 6 methods (per seed)",
                             min_gain, ">", 0.0,
                             source="lecture claim: every method improves with 5 examples per "
                                    "class (direction)"),
                *(Check.sample(f"{k}-shot: protonet - fine-tuning baseline (paired episodes)",
                               proto_minus_ft[k], ">", 0.0, source=comparison_source)
                  for k in SHOTS)],
        numbers={"accuracy": {e: {h: {str(k): v for k, v in d.items()} for h, d in hd.items()}
                              for e, hd in acc.items()},
                 "protonet_minus_finetune_baseline": {str(k): v.tolist()
                                                      for k, v in proto_minus_ft.items()},
                 "worst_1shot_per_seed": worst_1shot.tolist(),
                 "min_gain_per_seed": min_gain.tolist(), "seed_values": list(seed_values),
                 "ranking": {str(k): [(round(m, 4), name) for m, name in r]
                             for k, r in ranking.items()},
                 "ci95_half_width_seed0": interval, "n_episodes": n_episodes,
                 "n_query": N_QUERY, "protonet_steps": proto_steps,
                 "protonet_final_loss": np.asarray(protonets.loss[:, -50:].mean(1)).tolist(),
                 "classifier_pretrain_steps": pretrain_steps, "seeds": seeds},
        figures={"accuracy": fig},
        tables={f"Query accuracy on held-out digits 5-9, mean +- sd over {seeds} seeds": table},
        notes=("Training classes: digits 0-4 (MNIST-1D training split); episodes: 5-way "
               f"(all of digits 5-9, so episodes differ in their examples and class order), "
               f"{N_QUERY} queries per class, drawn from the test split's digits 5-9 "
               "(jl.fewshot.sample_episodes, the same episodes for every method). Embedding = "
               "the transfer experiment's backbone (3 convs + 64 ReLU units), trained either "
               f"as a prototypical network ({proto_steps} steps of one 5-way 5-shot episode, "
               f"Adam {PROTO_LR:g}; one per seed, vmapped) or as a 5-class classifier "
               f"({pretrain_steps} Adam steps; the transfer experiment's pretrained backbone, "
               "one for all seeds: its sd is over episodes only). On top: class-mean "
               "prototypes (jl.fewshot.evaluate_episodes), closed-form ridge "
               "(ridge_probe_episodes, lam = 0.1 E||f||^2) and a new linear head trained by "
               f"{FINETUNE_STEPS} gradient steps of size 10 / E||f||^2 (finetune_episodes; the "
               "library default step 0.5 diverges on the classifier's features, whose squared "
               "norm is ~650). Best first, 1-shot: "
               + "; ".join(f"{name} {m:.3f}" for m, name in ranking[1][:3])
               + ". 5-shot: " + "; ".join(f"{name} {m:.3f}" for m, name in ranking[5][:3])
               + ". Protonet (episodic) - fine-tuning baseline (classifier embedding + new "
               "linear head), paired over the same episodes: "
               + "; ".join(f"{k}-shot {comparison[k]}: {_reading(comparison[k])}"
                           for k in SHOTS)
               + ". Every episode draws all five of digits 5-9 (only their examples and "
               "order change), so the episodes are one 5-class task, not many tasks."
               + (f" Quick mode: 200 episodes, 500 protonet steps, 600 classifier steps, "
                  f"{seeds} seeds (intervals mostly inconclusive)." if quick else "")))

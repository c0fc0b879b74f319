"""The lecture's medical cases on real images, when you have the files: DermaMNIST (HAM10000's
7 skin-lesion diagnoses, Esteva et al.'s and Bissoto et al.'s setting) and PneumoniaMNIST (chest
X-rays, Zech et al.'s setting), as MedMNIST ``.npz`` files in a folder.

``jaxlearn reproduce --data DIR`` (or ``jaxlearn run NAME --data DIR``) runs, right after each
synthetic experiment named in :data:`CASES`, its version on the files found in ``DIR``; a case
whose files are absent is skipped with a one-line note in the report. Each real-data outcome
names its file (with its MD5) in ``Outcome.data``. Nothing is downloaded: put the files there
on a machine with a network (the README says how).

The cases (each a function ``run(name, data_dir, ...)`` dispatches to):

- ``taxonomy`` (DermaMNIST): the 7 diagnoses under a taxonomy after Esteva et al.: malignant
  (epidermal: actinic keratoses/intraepithelial carcinoma, basal cell carcinoma; melanocytic:
  melanoma), benign (melanocytic: nevi; dermal: dermatofibroma, vascular lesions) and
  keratosis-like (benign keratosis-like lesions: seborrhoeic keratoses, and solar lentigines and
  lichen-planus-like keratoses, which are not neoplasms). HAM10000 has no inflammatory
  (non-neoplastic) class of Esteva's kind, so the third inference class is the keratosis-like
  one. Direct training on the 3 inference classes against training on the partition
  (``max_class_size`` = 12% of the training set) and on the 7 leaves, summed by
  :func:`jaxlearn.taxonomy.aggregate`; paired over seeds.
- ``shortcut_token`` (PneumoniaMNIST): a 3x3 token planted in the corner of every training X-ray
  of pneumonia (Zech et al.'s hospital token); the report of :func:`jaxlearn.shortcuts.
  shortcut_report` for that model and for a control trained on the same X-rays without a token.
- ``erased_object`` (DermaMNIST): Bissoto et al.'s protocol with the lesion's region erased.
  MedMNIST has no segmentation masks: the central box (60% of each side; HAM10000's crops centre
  the lesion) is erased, in training and test; melanoma-vs-rest AUC against chance (0.5).
- ``uncertainty_shift`` (DermaMNIST): a deep ensemble of 4 CNNs against one CNN, NLL and ECE on
  the test set and under a shift (Gaussian noise, std 0.1 on [0, 1] pixels).
- ``transfer`` (DermaMNIST -> PneumoniaMNIST): a CNN pretrained on the 7 skin diagnoses,
  fine-tuned on 20 labelled X-rays per class, against the same CNN from scratch (X-rays repeated
  to 3 channels; both files must have the same image size).
- ``few_shot`` (DermaMNIST): an embedding trained on the 4 common diagnoses; 3-way 5-shot
  episodes of the 3 rare ones (actinic keratoses, dermatofibroma, vascular lesions) classified by
  prototypes, against the same prototypes on a randomly initialised network.

Thresholds come from the claims: direction of an effect (``> 0``, paired over seeds) or chance
level. Quick mode subsamples (at most 1500 training and 600 test images) and trains 300 steps,
2 seeds; full mode uses all images, 2000 steps and 5 seeds (minutes per case on a 2-core CPU at
28x28; a 64x64 file costs about 5x more).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlearn as jl
from experiments import seed_list
from jaxlearn import report
from jaxlearn.report import Check, Outcome, markdown_table

# The MedMNIST flags each case needs, in the order they are used.
CASES = {"taxonomy": ("dermamnist",), "shortcut_token": ("pneumoniamnist",),
         "erased_object": ("dermamnist",), "uncertainty_shift": ("dermamnist",),
         "transfer": ("dermamnist", "pneumoniamnist"), "few_shot": ("dermamnist",)}
SIZES = (28, 64, 128, 224)       # MedMNIST+ file sizes; the smallest present is used
DERMA = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")   # DermaMNIST's label order
LEARNING_RATE = 1e-3
BATCH_SIZE = 128
QUICK_TRAIN, QUICK_TEST = 1500, 600     # quick mode's fixed subsample, at most


# ------------------------------------------------------------------------------------ files

def find_files(data_dir: str) -> dict[str, str]:
    """``{flag: path}`` of the MedMNIST files in ``data_dir``: ``<flag>.npz`` (28x28) or
    ``<flag>_<size>.npz``, the smallest size present for each flag."""
    found = {}
    for flag in sorted({f for flags in CASES.values() for f in flags}):
        for size in SIZES:
            path = os.path.join(data_dir, f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
            if os.path.isfile(path):
                found[flag] = path
                break
    return found


def missing(name: str, data_dir: str) -> list[str]:
    """The flags case ``name`` needs that ``data_dir`` lacks (empty: it can run)."""
    found = find_files(data_dir)
    return [flag for flag in CASES[name] if flag not in found]


def skip_note(name: str, data_dir: str) -> str:
    """The one line the report prints for a case whose files are absent."""
    need = missing(name, data_dir)
    files = " and ".join(f"{f}.npz (or {f}_64.npz ...)" for f in need)
    return f"{name} on real data: skipped, {files} not found in {data_dir}"


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load(path: str, *, quick: bool) -> tuple[jl.data.Dataset, str]:
    """Train/test of a MedMNIST file (subsampled in quick mode) and the line naming it, which says
    whether its MD5 was verified against MedMNIST's metadata."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = jl.datasets.load_medmnist(path)
    unverified = [w for w in caught if "not verified" in str(w.message)]
    for w in caught:
        if w not in unverified:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    verified = ("checksum not verified: MedMNIST's metadata is absent (pip install --no-deps "
                "medmnist)" if unverified else "verified against MedMNIST's metadata")
    description = (f"{os.path.basename(path)} (md5 {_md5(path)}, {verified}): "
                   f"{len(data.y_train)} training and {len(data.y_test)} test images "
                   f"{'x'.join(map(str, data.x_train.shape[1:]))}")
    if quick and (len(data.y_train) > QUICK_TRAIN or len(data.y_test) > QUICK_TEST):
        rng = np.random.default_rng(0)       # a fixed subsample: the seeds vary the training
        keep_train = np.sort(rng.permutation(len(data.y_train))[:QUICK_TRAIN])
        keep_test = np.sort(rng.permutation(len(data.y_test))[:QUICK_TEST])
        data = jl.data.Dataset(data.x_train[keep_train], data.y_train[keep_train],
                               data.x_test[keep_test], data.y_test[keep_test])
        description += (f"; quick mode: a fixed subsample of {len(keep_train)} training and "
                        f"{len(keep_test)} test images")
    return data, description


# ------------------------------------------------------------------------------ the models

def backbone() -> jl.nn.Layer:
    """Three stride-2 3x3 convs (16, 32, 32 channels) and a 64-unit ReLU layer:
    ``[batch, h, w, c] -> [batch, 64]`` features."""
    return jl.nn.serial(
        jl.nn.conv2d(16, 3, stride=2, padding=1), jl.nn.relu,
        jl.nn.conv2d(32, 3, stride=2, padding=1), jl.nn.relu,
        jl.nn.conv2d(32, 3, stride=2, padding=1), jl.nn.relu,
        jl.nn.flatten(), jl.nn.dense(64), jl.nn.relu)


def cnn(n_classes: int) -> jl.nn.Layer:
    """:func:`backbone` and a linear layer to ``n_classes`` logits."""
    return jl.nn.serial(backbone(), jl.nn.dense(n_classes))


def _keys(tag: int, seed_values) -> jax.Array:
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.key(tag), s))(
        jnp.asarray(seed_values))


def _train(model, x, y, seed_values, *, steps: int, tag: int, params0=None):
    """One model per seed in one program (``jl.fit_many``): its own init and shuffling."""
    if params0 is None:
        params0 = jl.nn.init_stacked(model, _keys(tag, seed_values), x.shape[1:])
    result = jl.fit_many(model.apply, params0, x, y,
                         loss="softmax_cross_entropy_with_integer_labels",
                         optimizer=optax.adam(LEARNING_RATE), keys=_keys(tag + 1, seed_values),
                         batch_size=min(BATCH_SIZE, len(y)), steps=steps)
    return result.params


def _logits(model, stacked, x) -> np.ndarray:
    """``[seeds, n, classes]`` logits of every member."""
    return np.asarray(jax.vmap(lambda p: jl.predict(model.apply, p, x))(stacked))


def _balanced_accuracy(pred, y, n_classes) -> float:
    present = [c for c in range(n_classes) if np.any(y == c)]
    return float(np.mean([np.mean(pred[y == c] == c) for c in present]))


def _settings(quick: bool, seeds, seed_offset, steps):
    seed_values = seed_list(seeds, seed_offset, quick=quick, default=(2, 5))
    return seed_values, (300 if quick else 2000) if steps is None else steps


# --------------------------------------------------------------------------------- the cases

def _taxonomy(paths, quick, seeds, seed_offset, steps, progress):
    data, description = _load(paths["dermamnist"], quick=quick)
    seed_values, steps = _settings(quick, seeds, seed_offset, steps)
    counts = {name: int(np.sum(data.y_train == i)) for i, name in enumerate(DERMA)}
    tree = {"skin lesion": {
        "malignant": {"malignant epidermal": {"akiec": counts["akiec"], "bcc": counts["bcc"]},
                      "malignant melanocytic": {"mel": counts["mel"]}},
        "benign": {"benign melanocytic": {"nv": counts["nv"]},
                   "benign dermal": {"df": counts["df"], "vasc": counts["vasc"]}},
        "keratosis-like": {"bkl": counts["bkl"]}}}
    inference = ("malignant", "benign", "keratosis-like")
    leaf_names = jl.taxonomy.leaves(tree)
    to_leaf = np.array([leaf_names.index(name) for name in DERMA], np.int32)
    leaf_train, leaf_test = to_leaf[data.y_train], to_leaf[data.y_test]
    inference_of_leaf = jl.taxonomy.inference_labels(tree, list(inference))
    y_test = np.asarray(inference_of_leaf[leaf_test])
    max_class_size = max(1, math.ceil(0.12 * len(data.y_train)))
    part = jl.taxonomy.partition(tree, max_class_size)
    leaves_part = jl.taxonomy.partition(tree, 1)
    arms = {"direct (3 inference classes)": (inference_of_leaf, np.eye(len(inference))),
            f"partitioned ({len(part.classes)} classes)":
                (part.leaf_to_class, jl.taxonomy.aggregation_matrix(tree, part, list(inference))),
            "leaves (7 diagnoses)":
                (leaves_part.leaf_to_class,
                 jl.taxonomy.aggregation_matrix(tree, leaves_part, list(inference)))}
    acc, auc = {}, {}
    for i, (arm, (label_of_leaf, matrix)) in enumerate(arms.items()):
        model = cnn(matrix.shape[0])
        stacked = _train(model, data.x_train, np.asarray(label_of_leaf)[leaf_train], seed_values,
                         steps=steps, tag=100 + 10 * i)
        logits = _logits(model, stacked, data.x_test)
        probs = [np.asarray(jl.taxonomy.aggregate(jax.nn.softmax(lg, axis=-1), matrix))
                 for lg in logits]
        acc[arm] = np.array([_balanced_accuracy(p.argmax(1), y_test, len(inference))
                             for p in probs])
        auc[arm] = np.array([np.mean([jl.taxonomy.binary_task(p, y_test, positive=(j,)).auc
                                      for j in range(len(inference))]) for p in probs])
        if progress:
            progress(i + 1, len(arms))
    direct, partitioned = list(arms)[:2]
    diff = acc[partitioned] - acc[direct]
    table = markdown_table(("trained on", "3-way balanced accuracy", "mean AUC (node vs rest)"),
                           [(arm, report.fmt_mean_sd(acc[arm]), report.fmt_mean_sd(auc[arm]))
                            for arm in arms])
    return dict(
        claim="On real skin-lesion images, training on the taxonomy's partition and summing "
              "beats training on the inference classes directly (Esteva et al. 2017).",
        checks=[Check.sample("3-way balanced accuracy: partitioned - direct (paired)", diff,
                             ">", 0.0, source="Esteva et al. 2017: partitioned 72.1 +- 0.9% "
                                              "against direct 69.4 +- 0.8%")],
        numbers={"balanced_accuracy": {k: v.tolist() for k, v in acc.items()},
                 "mean_auc": {k: v.tolist() for k, v in auc.items()},
                 "training_classes": list(part.classes), "class_sizes": list(part.sizes),
                 "max_class_size": max_class_size, "counts": counts},
        tables={"Test accuracy and AUC per arm, mean +- sd over seeds": table},
        notes=(f"Partition at max_class_size = {max_class_size}: training classes "
               f"{', '.join(part.classes)}. {len(seed_values)} seeds, {steps} steps, Adam "
               f"{LEARNING_RATE:g}, the 2-D CNN of experiments.real_data.cnn."),
        data=description)


def _shortcut_token(paths, quick, seeds, seed_offset, steps, progress):
    data, description = _load(paths["pneumoniamnist"], quick=quick)
    seed_values, steps = _settings(quick, seeds, seed_offset, steps)
    token_class, size = 1, 3          # pneumonia; Zech et al.: the hospital with more cases
    x_token, has_token = jl.shortcuts.plant_token_images(
        jax.random.key(7), data.x_train, data.y_train, correlation=1.0,
        token_class=token_class, size=size)
    cue = jl.shortcuts.token_cue(data.x_train.shape[1:], size=size)
    model = cnn(2)
    reports = {}
    for i, (arm, x) in enumerate((("trained with the token", x_token),
                                  ("control (no token)", data.x_train))):
        stacked = _train(model, x, data.y_train, seed_values, steps=steps, tag=200)
        reports[arm] = [jl.shortcuts.shortcut_report(
            model.apply, jax.tree.map(lambda a, s=s: a[s], stacked), data.x_test, data.y_test,
            cue, token_class=token_class) for s in range(len(seed_values))]
        if progress:
            progress(i + 1, 2)

    def per_seed(arm, key):
        return np.array([r[key] for r in reports[arm]])

    token, control = list(reports)
    drop = per_seed(token, "accuracy_drop_flipped") - per_seed(control, "accuracy_drop_flipped")
    keys = ("accuracy_clean", "accuracy_cue_flipped", "worst_group_accuracy",
            "cue_saliency_fraction")
    table = markdown_table(("model", *keys), [(arm, *(report.fmt_mean_sd(per_seed(arm, k))
                                                      for k in keys)) for arm in reports])
    return dict(
        claim="A CNN trained on X-rays where a hospital token marks pneumonia reads the token: "
              "moving the token to the other class costs it accuracy that a model trained "
              "without the token does not lose (Zech et al. 2018).",
        checks=[Check.sample("accuracy drop when the token is moved to the other class: token "
                             "model - control (paired)", drop, ">", 0.05,
                             source="Zech et al. 2018 (a CNN detects the hospital); 5 points "
                                    "is a stated practical margin")],
        numbers={arm: {k: per_seed(arm, k).tolist() for k in (*keys, "accuracy_drop_flipped")}
                 for arm in reports} | {"token_fraction_train": float(np.mean(has_token))},
        tables={"Shortcut report, mean +- sd over seeds": table},
        notes=(f"A {size}x{size} token (value 1) in the top-left corner of every training "
               "X-ray of pneumonia (correlation 1); the test X-rays are clean and the report "
               "plants the token on copies. "
               f"{len(seed_values)} seeds, {steps} steps."),
        data=description)


def _erased_object(paths, quick, seeds, seed_offset, steps, progress):
    data, description = _load(paths["dermamnist"], quick=quick)
    seed_values, steps = _settings(quick, seeds, seed_offset, steps)
    height, width = data.x_train.shape[1:3]
    box = (round(0.2 * height), round(0.2 * width), round(0.8 * height), round(0.8 * width))

    def erase(x):
        masks = jl.shortcuts.box_masks(np.tile(np.array([box]), (len(x), 1)), height, width)
        return np.asarray(jl.shortcuts.erase_object(x, masks))

    melanoma = DERMA.index("mel")
    model = cnn(len(DERMA))
    auc = {}
    for i, (view, transform) in enumerate((("full image", lambda x: x),
                                           ("lesion region erased", erase))):
        stacked = _train(model, transform(data.x_train), data.y_train, seed_values,
                         steps=steps, tag=300)
        logits = _logits(model, stacked, transform(data.x_test))
        is_melanoma = (data.y_test == melanoma).astype(np.int32)
        auc[view] = np.array([float(jl.metrics.roc_auc(is_melanoma,
                                                       jax.nn.softmax(lg)[:, melanoma]))
                              for lg in logits])
        if progress:
            progress(i + 1, 2)
    table = markdown_table(("trained and tested on", "melanoma-vs-rest AUC"),
                           [(view, report.fmt_mean_sd(v)) for view, v in auc.items()])
    return dict(
        claim="A skin-lesion classifier trained and tested with the lesion erased still beats "
              "chance: it reads the context around the lesion (Bissoto et al. 2019).",
        checks=[Check.sample("melanoma-vs-rest AUC, lesion region erased", auc[
            "lesion region erased"], ">", 0.5, source="Bissoto et al. 2019 (above chance with "
                                                       "the lesion erased); chance AUC = 0.5")],
        numbers={view: v.tolist() for view, v in auc.items()} | {"erased_box": list(box)},
        tables={"Melanoma-vs-rest AUC, mean +- sd over seeds": table},
        notes=(f"Erased box rows {box[0]}-{box[2]}, columns {box[1]}-{box[3]} (zeros), in "
               "training and test images: a central stand-in for the segmentation masks that "
               f"MedMNIST does not have. {len(seed_values)} seeds, {steps} steps."),
        data=description)


def _uncertainty_shift(paths, quick, seeds, seed_offset, steps, progress):
    data, description = _load(paths["dermamnist"], quick=quick)
    seed_values, steps = _settings(quick, seeds, seed_offset, steps)
    members = 4
    model = cnn(len(DERMA))
    # Ensemble e has members 4e .. 4e+3; member 4e alone is the single model it is paired with.
    member_seeds = [members * s + m for s in seed_values for m in range(members)]
    stacked = _train(model, data.x_train, data.y_train, member_seeds, steps=steps, tag=400)
    shifted = np.clip(np.asarray(jl.data.add_noise(jax.random.key(8), data.x_test, std=0.1)),
                      0.0, 1.0)
    y = data.y_test
    result = {}
    for i, (condition, x) in enumerate((("test", data.x_test), ("noise std 0.1", shifted))):
        probs = jax.nn.softmax(_logits(model, stacked, x), axis=-1)   # [E*M, n, K]
        probs = probs.reshape(len(seed_values), members, *probs.shape[1:])
        for method, p in (("single CNN", probs[:, 0]), ("ensemble of 4", probs.mean(1))):
            result[(condition, method)] = {
                "nll": np.array([float(jl.metrics.log_loss(q, y)) for q in p]),
                "ece": np.array([float(jl.uncertainty.expected_calibration_error(q, y))
                                 for q in p]),
                "accuracy": np.array([float(np.mean(np.asarray(q).argmax(1) == y)) for q in p])}
        if progress:
            progress(i + 1, 2)
    gain = (result[("noise std 0.1", "single CNN")]["nll"]
            - result[("noise std 0.1", "ensemble of 4")]["nll"])
    table = markdown_table(("condition", "method", "accuracy", "NLL", "ECE"),
                           [(c, m, *(report.fmt_mean_sd(v[k]) for k in ("accuracy", "nll",
                                                                        "ece")))
                            for (c, m), v in result.items()])
    return dict(
        claim="Under a distribution shift a deep ensemble is more honest than one network: "
              "lower NLL on shifted skin-lesion images (Lakshminarayanan et al. 2017; Ovadia "
              "et al. 2019).",
        checks=[Check.sample("NLL under noise: single CNN - ensemble of 4 (paired)", gain, ">",
                             0.0, source="Ovadia et al. 2019: ensembles are the best calibrated "
                                         "under shift")],
        numbers={f"{c} / {m}": {k: v.tolist() for k, v in r.items()}
                 for (c, m), r in result.items()},
        tables={"Accuracy, NLL and ECE, mean +- sd over ensembles": table},
        notes=(f"{len(seed_values)} ensembles of {members} CNNs each (all trained at once); the "
               "single CNN is each ensemble's first member. Shift: Gaussian noise std 0.1 "
               f"(clipped to [0, 1]). {steps} steps."),
        data=description)


def _transfer(paths, quick, seeds, seed_offset, steps, progress):
    source, source_description = _load(paths["dermamnist"], quick=quick)
    target, target_description = _load(paths["pneumoniamnist"], quick=quick)
    if source.x_train.shape[1:3] != target.x_train.shape[1:3]:
        raise ValueError(f"transfer needs DermaMNIST and PneumoniaMNIST at one image size, got "
                         f"{source.x_train.shape[1:3]} and {target.x_train.shape[1:3]}: put "
                         "files of the same size in the data folder")
    channels = source.x_train.shape[3]
    seed_values, steps = _settings(quick, seeds, seed_offset, steps)
    per_class = 20
    x_target = np.repeat(target.x_train, channels // target.x_train.shape[3], axis=3)
    x_test = np.repeat(target.x_test, channels // target.x_test.shape[3], axis=3)
    source_model = cnn(len(DERMA))
    pretrained = _train(source_model, source.x_train, source.y_train, seed_values, steps=steps,
                        tag=500)
    if progress:
        progress(1, 3)
    model = cnn(2)
    fresh = jl.nn.init_stacked(model, _keys(510, seed_values), x_target.shape[1:])
    # The pretrained backbone with a fresh head; every seed its own labelled subset.
    warm = (pretrained[0], fresh[1])
    subsets = [np.asarray(jl.fewshot.sample_per_class(jax.random.fold_in(jax.random.key(520), s),
                                                      target.y_train, n_per_class=per_class))
               for s in seed_values]
    accuracy = {}
    for i, (arm, params0) in enumerate((("from scratch", fresh), ("fine-tuned from skin "
                                                                  "lesions", warm))):
        accs = []
        for j, rows in enumerate(subsets):
            member = jax.tree.map(lambda a, j=j: a[j:j + 1], params0)
            stacked = _train(model, x_target[rows], target.y_train[rows], seed_values[j:j + 1],
                             steps=steps // 2, tag=530, params0=member)
            pred = _logits(model, stacked, x_test)[0].argmax(1)
            accs.append(_balanced_accuracy(pred, target.y_test, 2))
        accuracy[arm] = np.array(accs)
        if progress:
            progress(2 + i, 3)
    gain = accuracy["fine-tuned from skin lesions"] - accuracy["from scratch"]
    table = markdown_table(("arm", f"balanced accuracy, {per_class} X-rays per class"),
                           [(arm, report.fmt_mean_sd(v)) for arm, v in accuracy.items()])
    return dict(
        claim="With few labels, a network pretrained on another image task and fine-tuned beats "
              "the same network trained from scratch (transfer learning, as in Esteva et al.'s "
              "ImageNet-pretrained classifier).",
        checks=[Check.sample("balanced accuracy: fine-tuned - from scratch (paired)", gain, ">",
                             0.0, source="the lecture's transfer claim (direction of the effect)")],
        numbers={arm: v.tolist() for arm, v in accuracy.items()} | {"per_class": per_class},
        tables={"PneumoniaMNIST test balanced accuracy, mean +- sd over seeds": table},
        notes=(f"Source: the CNN trained on DermaMNIST's 7 diagnoses ({steps} steps); target: "
               f"{per_class} X-rays per class (repeated to {channels} channels), {steps // 2} "
               "steps for both arms; each seed its own labelled subset, shared by the arms. "
               "Dermoscopy and X-rays are far apart: whether the features carry over is the "
               "finding."),
        data=f"{source_description}; {target_description}")


def _few_shot(paths, quick, seeds, seed_offset, steps, progress):
    data, description = _load(paths["dermamnist"], quick=quick)
    seed_values, steps = _settings(quick, seeds, seed_offset, steps)
    base = [DERMA.index(n) for n in ("bcc", "bkl", "mel", "nv")]
    novel = [DERMA.index(n) for n in ("akiec", "df", "vasc")]
    k_shot = 5
    n_query = max(1, min(10, min(int(np.sum(data.y_test == c)) for c in novel) - k_shot))
    in_base = np.isin(data.y_train, base)
    relabel = np.full(len(DERMA), -1, np.int32)
    relabel[base] = np.arange(len(base))
    model = cnn(len(base))
    trained = _train(model, data.x_train[in_base], relabel[data.y_train[in_base]], seed_values,
                     steps=steps, tag=600)
    random_init = jl.nn.init_stacked(model, _keys(610, seed_values), data.x_train.shape[1:])
    embed = backbone().apply
    accuracy = {}
    for i, (arm, stacked) in enumerate((("embedding trained on the 4 common diagnoses",
                                         trained), ("random network", random_init))):
        accs = []
        for j, s in enumerate(seed_values):
            episodes = jl.fewshot.sample_episodes(
                jax.random.fold_in(jax.random.key(620), s), data.x_test, data.y_test,
                n_episodes=100, n_way=len(novel), k_shot=k_shot, n_query=n_query,
                classes=novel)
            accs.append(float(jnp.mean(jl.fewshot.evaluate_episodes(
                embed, jax.tree.map(lambda a, j=j: a[j], stacked)[0], episodes))))
        accuracy[arm] = np.array(accs)
        if progress:
            progress(i + 1, 2)
    learned, random = list(accuracy)
    gain = accuracy[learned] - accuracy[random]
    table = markdown_table(("embedding", f"{len(novel)}-way {k_shot}-shot accuracy"),
                           [(arm, report.fmt_mean_sd(v)) for arm, v in accuracy.items()])
    return dict(
        claim="An embedding learned on common diagnoses classifies rare ones from 5 examples "
              "each (prototypes, Snell et al. 2017) better than a random network's.",
        checks=[Check.sample("3-way 5-shot accuracy on the rare diagnoses: learned - random "
                             "embedding (paired)", gain, ">", 0.0,
                             source="Snell et al. 2017 (direction of the effect)")],
        numbers={arm: v.tolist() for arm, v in accuracy.items()} | {"n_query": n_query},
        tables={"Prototype accuracy on 100 test episodes per seed, mean +- sd": table},
        notes=(f"Base classes: bcc, bkl, mel, nv (training split); novel: akiec, df, vasc, "
               f"episodes drawn from the test split ({k_shot} shots, {n_query} queries per "
               f"class). {len(seed_values)} seeds, {steps} steps."),
        data=description)


_RUN: dict[str, Callable] = {"taxonomy": _taxonomy, "shortcut_token": _shortcut_token,
                             "erased_object": _erased_object,
                             "uncertainty_shift": _uncertainty_shift, "transfer": _transfer,
                             "few_shot": _few_shot}


def outcome_name(name: str) -> str:
    """The report's name for case ``name`` on real data."""
    return f"{name} (real data)"


def run(name: str, data_dir: str, *, quick: bool = False, seeds: int | None = None,
        seed_offset: int = 0, steps: int | None = None, progress=None) -> Outcome:
    """Runs case ``name`` (a key of :data:`CASES`) on the MedMNIST files in ``data_dir``.

    ``steps``: training steps of each model (default 300 quick, 2000 full; the transfer case's
    fine-tuning takes half).

    Raises ``FileNotFoundError`` naming the missing files (the command line skips such a case
    with :func:`skip_note` instead of calling this).
    """
    if name not in CASES:
        raise ValueError(f"no real-data case {name!r}; the cases are {', '.join(CASES)}")
    need = missing(name, data_dir)
    if need:
        raise FileNotFoundError(skip_note(name, data_dir))
    found = find_files(data_dir)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"`steps` must be None or an int >= 1, got {steps!r}")
    parts = _RUN[name]({f: found[f] for f in CASES[name]}, quick, seeds, seed_offset, steps,
                       progress)
    return Outcome(name=outcome_name(name), **parts)

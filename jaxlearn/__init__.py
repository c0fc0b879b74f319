"""jaxlearn: deep learning with few data and explainability, as pure JAX functions.

The modules follow the course's road map — data -> features -> model -> loss -> optimizer ->
train -> evaluate:

- :mod:`jaxlearn.data`: synthetic and bundled datasets, splits, standardisation, augmentation.
- :mod:`jaxlearn.features`: hand-made feature maps (phi, polynomials, random Fourier, filters).
- :mod:`jaxlearn.nn`: layers as ``(init, apply)`` pairs: dense, MLP, conv, dropout, serial.
- :mod:`jaxlearn.losses`: MSE, cross-entropies from logits, entropy and KL, L2.
- :mod:`jaxlearn.linear`: least squares, ridge, logistic regression.
- :mod:`jaxlearn.optim`: gradient descent on any J, optax optimizers and schedules.
- :mod:`jaxlearn.backprop`: the one-hidden-layer MLP's chain rule by hand.
- :mod:`jaxlearn.train`: :func:`fit` and :func:`evaluate`.
- :mod:`jaxlearn.metrics`: accuracy, confusion matrix, precision/recall, ROC/AUC, log-loss, Brier.
- :mod:`jaxlearn.explain`: saliency, integrated gradients, SmoothGrad, occlusion, sanity checks.
- :mod:`jaxlearn.shortcuts`: planted spurious cues, Bissoto ablations, worst-group accuracy.
- :mod:`jaxlearn.robust`: FGSM, PGD, robustness curves, adversarial training.
- :mod:`jaxlearn.uncertainty`: MC dropout, ensembles, temperature scaling, calibration, OOD.
- :mod:`jaxlearn.augment`, :mod:`jaxlearn.transfer`, :mod:`jaxlearn.fewshot`,
  :mod:`jaxlearn.taxonomy`: learning with few labels.
- :mod:`jaxlearn.parallel`: data-parallel meshes over devices and processes.
- :mod:`jaxlearn.checkpoint`: versioned, checksummed, atomic checkpoints; bitwise resume.
"""

from jaxlearn import (
    augment,
    backprop,
    checkpoint,
    data,
    explain,
    features,
    fewshot,
    linear,
    losses,
    metrics,
    nn,
    optim,
    parallel,
    report,
    robust,
    shortcuts,
    taxonomy,
    train,
    transfer,
    uncertainty,
)
from jaxlearn.train import (
    EarlyStopping,
    FitResult,
    evaluate,
    fit,
    fit_many,
    from_linen,
    from_nnx,
    predict,
)

__version__ = "0.1.0"

__all__ = [
    "shortcuts",
    "explain",
    "transfer",
    "taxonomy",
    "fewshot",
    "augment",
    "EarlyStopping",
    "FitResult",
    "backprop",
    "checkpoint",
    "data",
    "evaluate",
    "features",
    "fit",
    "fit_many",
    "from_linen",
    "from_nnx",
    "linear",
    "losses",
    "metrics",
    "nn",
    "optim",
    "parallel",
    "predict",
    "report",
    "robust",
    "train",
    "uncertainty",
]

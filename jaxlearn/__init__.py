"""jaxlearn: deep learning with few data and explainability, as pure JAX functions.

The modules follow the course's road map — data -> features -> model -> loss -> optimizer ->
train -> evaluate:

- :mod:`jaxlearn.data`: synthetic and bundled datasets, splits, standardisation, augmentation.
- :mod:`jaxlearn.datasets`: your own data (MedMNIST .npz, image folders, arrays, CSV), memory
  checks, and batches streamed from the host for data larger than the device.
- :mod:`jaxlearn.features`: hand-made feature maps (phi, polynomials, random Fourier, filters).
- :mod:`jaxlearn.nn`: layers as ``(init, apply)`` pairs: dense, MLP, conv, dropout, serial.
- :mod:`jaxlearn.losses`: MSE, cross-entropies from logits, entropy and KL, L2.
- :mod:`jaxlearn.linear`: least squares, ridge, logistic regression.
- :mod:`jaxlearn.optim`: gradient descent on any J, optax optimizers and schedules.
- :mod:`jaxlearn.backprop`: the one-hidden-layer MLP's chain rule by hand.
- :mod:`jaxlearn.apply`: the model boundary (``as_apply``, flax adapters, models with state).
- :mod:`jaxlearn.train`: :func:`fit` and :func:`fit_many`, with :mod:`jaxlearn.callbacks`,
  :mod:`jaxlearn.state` (the TrainState and the run's fingerprint) and
  :mod:`jaxlearn.evaluation` (:func:`evaluate`, :func:`predict`).
- :mod:`jaxlearn.metrics`: accuracy, confusion matrix, precision/recall, ROC/AUC, log-loss, Brier.
- :mod:`jaxlearn.explain`: saliency, integrated gradients, SmoothGrad (and its square, VarGrad),
  occlusion, sanity checks, Grad-CAM and layer integrated gradients.
- :mod:`jaxlearn.faithfulness`: deletion/insertion curves (AUC), infidelity, sensitivity-max.
- :mod:`jaxlearn.shortcuts`: planted spurious cues, Bissoto ablations, worst-group accuracy.
- :mod:`jaxlearn.robust`: FGSM, PGD (restarts, L-inf/L2), APGD-CE, worst-case robust accuracy,
  robustness curves, adversarial training (FGSM, PGD, TRADES).
- :mod:`jaxlearn.uncertainty`: MC dropout, ensembles, temperature scaling, calibration, OOD.
- :mod:`jaxlearn.conformal`: split conformal prediction sets (LAC, APS, RAPS) with a coverage
  guarantee.
- :mod:`jaxlearn.augment`, :mod:`jaxlearn.transfer`, :mod:`jaxlearn.fewshot`,
  :mod:`jaxlearn.taxonomy`: learning with few labels.
- :mod:`jaxlearn.parallel`: data-parallel meshes over devices and processes.
- :mod:`jaxlearn.checkpoint`: versioned, checksummed, atomic checkpoints; bitwise resume.
"""

from jaxlearn import (
    apply,
    augment,
    backprop,
    callbacks,
    checkpoint,
    compilation_cache,
    conformal,
    data,
    datasets,
    evaluation,
    explain,
    faithfulness,
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
    state,
    taxonomy,
    train,
    transfer,
    uncertainty,
)
from jaxlearn.apply import StatefulApply, from_linen, from_nnx
from jaxlearn.callbacks import Callback, EarlyStopping
from jaxlearn.checkpoint import Checkpoint
from jaxlearn.compilation_cache import clear_compilation_cache, enable_compilation_cache
from jaxlearn.evaluation import evaluate, predict
from jaxlearn.state import TrainState
from jaxlearn.train import FitResult, clear_compile_cache, fit, fit_many

__version__ = "0.1.0"

__all__ = [
    "shortcuts",
    "explain",
    "faithfulness",
    "conformal",
    "transfer",
    "taxonomy",
    "fewshot",
    "augment",
    "apply",
    "callbacks",
    "evaluation",
    "state",
    "Callback",
    "Checkpoint",
    "StatefulApply",
    "TrainState",
    "clear_compile_cache",
    "EarlyStopping",
    "FitResult",
    "backprop",
    "checkpoint",
    "clear_compilation_cache",
    "compilation_cache",
    "data",
    "datasets",
    "enable_compilation_cache",
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

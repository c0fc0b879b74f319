"""The attribution_faithfulness experiment in quick mode (3 seeds): every check is an interval over
the seeds or a labelled sanity check, each with a source; the deletion test ranks the methods as
the full run does (10 seeds, tables in the module's notes), and the key numbers lie in the ranges
the runs measured (quick: integrated gradients and gradient x input ~0.05-0.1 deletion AUC, the
random map ~0.3 on MNIST-1D and ~0.5-0.6 on the digits, Grad-CAM all 0 on ~90% of the digits).
The layer choices are checked on their own, fast."""

import jax
import numpy as np
import pytest
from experiment_checks import check_outcome, check_progress, quick_run

from experiments import attribution_faithfulness as af
from jaxlearn import explain

NAME = "attribution_faithfulness"


def test_grad_cam_layers_are_the_last_convolutions_feature_maps():
    # MNIST-1D: 40 -> 19 -> 10 -> 5 positions of 25 channels; digits: 8x8 -> 4x4 of 32 channels.
    expected = {"MNIST-1D": (2, 5, 25), "digits": (2, 4, 4, 32)}
    for task in af.TASKS:
        _, params = af.MODELS[task].init(jax.random.key(0), af.INPUT_SHAPE[task])
        features, head = explain.cut_model(af.LAYERS[task], af.CAM_LAYER[task])
        x = np.zeros((2, *af.INPUT_SHAPE[task]), np.float32)
        assert features(params, x).shape == expected[task]
        assert head(params, features(params, x)).shape == (2, 10)
        # The next layer is the flatten: cutting one later leaves no spatial axes.
        later, _ = explain.cut_model(af.LAYERS[task], af.CAM_LAYER[task] + 1)
        assert later(params, x).ndim == 2


@pytest.mark.slow
def test_attribution_faithfulness_quick():
    out, calls = quick_run(NAME)
    check_outcome(out, NAME)
    check_progress(calls)
    assert len(calls) == 6                                  # 3 seeds x 2 tasks
    for c in out.checks:
        assert c.source, c.what
        assert c.kind == "sanity" or (c.kind == "interval" and len(c.values) == 3), c.as_dict()
    # 2 tasks x (accuracy + 5 gradient methods) + 2 sanity checks.
    assert len(out.checks) == 14
    assert [c.threshold for c in out.checks if c.kind == "sanity"] == [0.9999, 1e-6]
    numbers = out.numbers
    deletion, sanity = numbers["deletion_auc"], numbers["sanity_spearman"]

    # Every gradient-based method beats the random map on every seed on MNIST-1D, and so do all
    # but Grad-CAM on the digits (paired differences -0.1 to -0.5).
    for task in af.TASKS:
        for m in af.GRADIENT_METHODS:
            if (task, m) != ("digits", "grad_cam"):
                assert np.all(np.subtract(deletion[task][m], deletion[task]["random"]) < -0.05)
    # Ranking: gradient x input and integrated gradients first, the random map last.
    for task in af.TASKS:
        assert set(numbers["ranking"][task][:2]) == {"gradient_x_input",
                                                     "integrated_gradients"}
        assert numbers["ranking"][task][-1] == "random"
        assert max(deletion[task]["integrated_gradients"]) < 0.12
    assert 0.25 < np.mean(deletion["MNIST-1D"]["random"]) < 0.35
    assert 0.45 < np.mean(deletion["digits"]["random"]) < 0.65

    # The finding: Grad-CAM's map is all 0 on most digits (the weighted sum is negative
    # everywhere), never on MNIST-1D, and on the digits it is within 0.1 of the random map.
    assert np.mean(numbers["grad_cam_zero_map_fraction"]["digits"]) > 0.7
    assert np.max(numbers["grad_cam_zero_map_fraction"]["MNIST-1D"]) < 0.05
    cam = np.subtract(deletion["digits"]["grad_cam"], deletion["digits"]["random"])
    assert np.all(np.abs(cam) < 0.1)

    # Sanity column: the random map scores exactly 1; gradient maps fall to a weak correlation;
    # gradient x input keeps ~0.9 on the digits (their blank pixels are 0 for any weights).
    for task in af.TASKS:
        assert min(sanity[task]["random"]) >= 0.9999
        assert max(sanity[task]["saliency"]) < 0.3
    assert min(sanity["digits"]["gradient_x_input"]) > 0.8
    assert numbers["end_gap"] <= 1e-6
    assert min(numbers["test_accuracy"]["MNIST-1D"]) > 0.65
    assert min(numbers["test_accuracy"]["digits"]) > 0.9
    assert set(out.figure_names) == {"deletion_curves", "auc", "maps"}
    assert len(out.tables) == 2 and "Grad-CAM" in out.notes

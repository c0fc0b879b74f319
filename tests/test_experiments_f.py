"""Shortcut and explainability experiments (shortcut_token, erased_object, saliency_sanity) run in
quick mode with one seed: each claim must hold and its key numbers must lie in the range the full
runs measured (wide enough for one seed, narrow enough to catch a broken model). The scene
builder of erased_object is checked on its own, fast."""

import jax
import numpy as np
import pytest
from experiment_checks import check_outcome, check_progress, progress_recorder

from experiments import erased_object, saliency_sanity, shortcut_token


def test_scene_parts_place_the_digit_inside_the_frame_and_bias_the_background():
    n = 2000
    labels = jax.random.randint(jax.random.key(0), (n,), 0, 10)
    digits = jax.random.uniform(jax.random.key(1), (n, 8, 8, 1), minval=0.5, maxval=1.0)
    pasted, background, boxes, style = erased_object._scene_parts(jax.random.key(2), digits,
                                                                  labels, 0.8)
    boxes, style, labels = np.asarray(boxes), np.asarray(style), np.asarray(labels)
    border = erased_object.BORDER
    # Boxes are 8x8 and never reach the 2-pixel frame, so keep_border shows background only.
    assert np.all(boxes[:, 2:] - boxes[:, :2] == 8)
    assert boxes[:, :2].min() == border and boxes[:, 2:].max() == 16 - border
    pasted = np.asarray(pasted)
    assert np.all(pasted[:, :border] == 0) and np.all(pasted[:, :, -border:] == 0)
    # Every pasted digit sits exactly in its box (its pixels are >= 0.5 here).
    assert np.all((pasted[..., 0] > 0).sum(axis=(1, 2)) == 64)
    # P(style = label) = 0.8 + 0.2 / 10 = 0.82; binomial sd sqrt(0.82 * 0.18 / 2000) = 0.009,
    # so 0.03 is more than 3 sd.
    assert abs(np.mean(style == labels) - 0.82) < 0.03
    # Background mean 0.05 + 0.05 s with N(0, 0.05^2) noise: per image the mean over 256 pixels
    # has sd 0.05 / 16 = 0.003; 0.015 is 5 sd.
    means = np.asarray(background).mean(axis=(1, 2, 3))
    assert np.max(np.abs(means - (0.05 + 0.05 * style))) < 0.015


@pytest.mark.slow
def test_shortcut_token_quick():
    calls, progress = progress_recorder()
    out = shortcut_token.run(quick=True, seeds=1, progress=progress)
    check_outcome(out, "shortcut_token")
    check_progress(calls)
    results = out.numbers["results"]
    clean, short = results["clean model"]["1.0"], results["shortcut model"]["1.0"]
    # Full run (3 seeds): clean model 0.97 on every test set's '0's, shortcut model 0.09 +- 0.12.
    assert clean["token_class_accuracy_clean"][0] >= 0.9
    assert short["token_class_accuracy_clean"][0] <= 0.5
    # The token alone (on a blank image) is read as a '0' by the shortcut model only.
    assert short["token_only_accuracy"][0] == 1.0
    assert clean["token_only_accuracy"][0] == 0.0
    # Both models reach ~0.97 on the i.i.d. test set: the shortcut costs nothing there.
    assert short["accuracy_iid"][0] >= 0.93 and clean["accuracy_iid"][0] >= 0.93
    # With the token independent of the label (phi = 0) the model ignores it: no drop on '0's.
    assert results["shortcut model"]["0.0"]["token_class_accuracy_clean"][0] >= 0.9
    assert results["shortcut model"]["0.0"]["accuracy_clean"][0] >= 0.93
    assert out.numbers["token_area_fraction"] == 4 / 64


@pytest.mark.slow
def test_erased_object_quick():
    calls, progress = progress_recorder()
    out = erased_object.run(quick=True, seeds=1, progress=progress)
    check_outcome(out, "erased_object")
    check_progress(calls)
    acc = out.numbers["accuracy"]
    chance = out.numbers["chance"][0]
    assert 0.1 <= chance <= 0.11           # 10 balanced classes, stratified split
    # The digits themselves are learnable (full runs: 0.80 with the object only, either set).
    assert acc["control"]["object only (box)"][0] >= 0.65
    assert acc["biased"]["object only (box)"][0] >= 0.65
    # Background only: full runs 0.44 (biased) vs 0.10 (control).
    assert 0.3 <= acc["biased"]["object erased"][0] <= 0.85
    assert abs(acc["control"]["object erased"][0] - chance) <= 0.05
    # Nothing beats reading the background style perfectly, P + (1 - P) / 10 (+ 0.05 for the
    # sampling noise of 540 test scenes: sd <= 0.022): a leak of the object would.
    for bias, values in out.numbers["erased_accuracy_vs_bias"].items():
        p = float(bias)
        assert values[0] <= p + (1 - p) / 10 + 0.05, (bias, values)
    # With the object in view the background still helps (full runs: 0.76 vs 0.68).
    assert acc["biased"]["whole scene"][0] > acc["control"]["whole scene"][0]


@pytest.mark.slow
def test_saliency_sanity_quick():
    calls, progress = progress_recorder()
    out = saliency_sanity.run(quick=True, seeds=1, progress=progress)
    check_outcome(out, "saliency_sanity")
    check_progress(calls)
    assert out.numbers["test_accuracy"][0] >= 0.93
    table = out.numbers["spearman"]
    # Randomising only the output layer is the first cascading step and the "logits" row of the
    # independent test: the same random weights, so the same numbers.
    assert table["cascading"]["logits"] == table["independent"]["logits"]
    # Full runs: the gradient's rho falls to ~0.0 (all layers), gradient x input stays ~0.9.
    assert table["cascading"]["hidden 1"]["gradient"][0] <= 0.3
    assert table["cascading"]["hidden 1"]["gradient_x_input"][0] >= 0.8
    assert out.numbers["passes"] == {"gradient": True, "gradient_x_input": False,
                                     "integrated_gradients": False, "smoothgrad": True}
    # Gradient x input of a random network is still the input, by rank (~0.94)...
    with_input = out.numbers["spearman_with_input"]["all layers randomised"]
    assert with_input["gradient_x_input"][0] >= 0.8
    assert abs(with_input["gradient"][0]) <= 0.2
    # ...and most of its agreement with the trained map comes from the blank pixels, where it is
    # 0 for every model: on the digit's pixels alone its rho is lower (~0.4), yet above the
    # gradient's (~0.0).
    digit = out.numbers["spearman_digit_pixels_all_randomised"]
    assert digit["gradient_x_input"][0] < table["cascading"]["hidden 1"]["gradient_x_input"][0]
    assert digit["gradient_x_input"][0] > digit["gradient"][0] + 0.15

"""What every experiment module shares: the ``run`` signature, the seeds it runs (``seed_list``)."""

import inspect

import pytest

import experiments


def test_every_experiment_takes_seeds_and_a_seed_offset():
    for name, module in experiments.discover().items():
        params = inspect.signature(module.run).parameters
        assert list(params) == ["quick", "seeds", "seed_offset", "progress"], name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), name
        assert params["seeds"].default is None and params["seed_offset"].default == 0, name
        assert isinstance(module.CLAIM, str) and module.CLAIM, name


def test_seed_list_counts_from_the_offset_and_takes_the_mode_default():
    assert experiments.seed_list(None, quick=True, default=(2, 10)) == (0, 1)
    assert experiments.seed_list(None, quick=False, default=(2, 10)) == tuple(range(10))
    assert experiments.seed_list(3, 100, quick=True) == (100, 101, 102)


@pytest.mark.parametrize("seeds, offset, message", [
    (0, 0, "`seeds` must be None or an int >= 1, got 0"),
    (2.0, 0, "`seeds` must be None or an int >= 1, got 2.0"),
    (True, 0, "`seeds` must be None or an int >= 1, got True"),
    (2, -1, "`seed_offset` must be an int >= 0, got -1"),
])
def test_seed_list_refuses_bad_values(seeds, offset, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        experiments.seed_list(seeds, offset, quick=True)

"""The presets hold what PARITY.md says each framework does, and each field is settable alone."""

import dataclasses
import math

import pytest

from lstm_ref.presets import PRESETS, Preset, preset

# PARITY.md, "Differences that change results" and "GRU", one row per field.
PARITY = {
    "init_scheme": {"matlab": "matlab", "keras": "keras", "pytorch": "pytorch"},
    "adam_epsilon": {"matlab": 1e-8, "keras": 1e-7, "pytorch": 1e-8},
    "eps_placement": {"matlab": "pytorch", "keras": "keras", "pytorch": "pytorch"},
    "learning_rate": {"matlab": 1e-3, "keras": 1e-3, "pytorch": 1e-3},
    "beta_1": {"matlab": 0.9, "keras": 0.9, "pytorch": 0.9},
    "beta_2": {"matlab": 0.999, "keras": 0.999, "pytorch": 0.999},
    "l2": {"matlab": 1e-4, "keras": 0.0, "pytorch": 0.0},
    "bias_l2_factor": {"matlab": 0.0},
    "loss": {"matlab": "half_mse", "keras": "mse", "pytorch": "mse"},
    "shuffle": {"matlab": "once", "keras": "every-epoch", "pytorch": "every-epoch"},
    "drop_last": {"matlab": True, "keras": False, "pytorch": False},
    "gradient_threshold": {"matlab": math.inf, "keras": math.inf, "pytorch": math.inf},
    "gradient_threshold_method": {"matlab": "l2norm"},
    "hard_sigmoid": {"matlab": "matlab", "keras": "keras"},
    "gru_reset_mode": {"matlab": "after-multiplication", "keras": "recurrent-bias-after-multiplication",
                       "pytorch": "recurrent-bias-after-multiplication"},
    "epochs": {"matlab": 30, "keras": 1},
    "batch_size": {"matlab": 128, "keras": 32},
    "momentum": {"matlab": 0.9},
    "momentum_form": {"matlab": "velocity", "keras": "velocity", "pytorch": "buffer"},
    "rho": {"keras": 0.9, "pytorch": 0.99},  # keras RMSprop rho, torch RMSprop alpha
    "dtype": {"matlab": "float32", "keras": "float32", "pytorch": "float32"},
    "padding": {"matlab": "right"},  # SequencePaddingDirection
    "sequence_length": {"matlab": "longest"},  # SequenceLength
}


@pytest.mark.parametrize("field", list(PARITY))
def test_presets_hold_the_parity_facts(field):
    for name, value in PARITY[field].items():
        assert getattr(preset(name), field) == value, f"{name}.{field}"


def test_every_field_is_covered_by_the_parity_table():
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name"}
    assert fields == set(PARITY)


def test_one_difference_is_settable_alone():
    base = preset("matlab")
    changed = preset("matlab", shuffle="never")
    assert changed.shuffle == "never" and changed.name == "matlab+custom"
    for f in dataclasses.fields(Preset):
        if f.name not in ("shuffle", "name"):
            assert getattr(changed, f.name) == getattr(base, f.name), f.name
    assert preset(changed, drop_last=False).name == "matlab+custom"
    assert preset("keras") is PRESETS["keras"]


def test_presets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset("keras").adam_epsilon = 1e-8


def test_bad_overrides_and_names_are_named():
    with pytest.raises(TypeError, match="unknown preset field\\(s\\) \\['shufle'\\]"):
        preset("keras", shufle="never")
    with pytest.raises(ValueError, match="shuffle must be one of"):
        preset("keras", shuffle="sometimes")
    with pytest.raises(ValueError, match="preset name must be one of"):
        preset("tensorflow")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        preset("keras", batch_size=0)
    with pytest.raises(ValueError, match="gradient_threshold must be > 0"):
        preset("matlab", gradient_threshold=0)

"""Framework presets: every default that changes results, named once.

MATLAB, Keras 3 and PyTorch train "the same" LSTM differently: other
initialisers, Adam epsilon and where it is added, MATLAB's default L2
regularisation, half-MSE against MSE, shuffling every epoch or once, the last
partial mini-batch kept or dropped. A ``Preset`` holds one framework's choice
for each, so a course reproduces any of them on purpose, and any single
difference can be switched alone::

    preset("matlab")                         # everything as trainNetwork does it
    preset("matlab", shuffle="never")        # ... except the shuffling
    preset("keras", adam_epsilon=1e-8)       # Keras with PyTorch's epsilon

The facts and their sources are in PARITY.md (MATLAB documentation and toolbox
sources; Keras 3.15.1 source, checked on its PyTorch backend; torch/nn docs).
``lstm_ref.training.fit`` reads a preset; the front ends (``lstm_ref.keras``,
``lstm_ref.matlab``) build theirs from it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

SHUFFLE_POLICIES = ("every-epoch", "once", "never")
EPS_PLACEMENTS = ("keras", "pytorch")
CLIP_METHODS = ("l2norm", "global-l2norm", "absolute-value")
LOSSES = ("mse", "half_mse", "mae", "crossentropy", "binary_crossentropy")
HARD_SIGMOIDS = ("keras", "matlab")
INIT_SCHEMES = ("keras", "matlab", "pytorch")
PADDINGS = ("right", "left")
SEQUENCE_LENGTHS = ("longest", "shortest")


@dataclass(frozen=True)
class Preset:
    """One framework's training defaults (all fields settable alone).

    Attributes:
        name: the framework the values came from ("keras", "matlab", "pytorch",
            or "custom" once a field was overridden).
        init_scheme: initialisers, a scheme of ``lstm_ref.init``:
            "keras"/"matlab" = Glorot-uniform input weights, orthogonal
            recurrent weights, zero bias with forget block 1;
            "pytorch" = U(-1/sqrt(H), 1/sqrt(H)) for every parameter.
        learning_rate: Adam's step size (1e-3 in all three).
        beta_1, beta_2: Adam's moment decays (0.9, 0.999 in all three).
        adam_epsilon: 1e-7 in Keras, 1e-8 in MATLAB and PyTorch (RMSprop
            uses the same epsilon and placement).
        eps_placement: "keras" adds epsilon to the un-corrected sqrt(v):
            ``w -= lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)``
            (keras/src/optimizers/adam.py); "pytorch" adds it after the bias
            correction: ``w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``
            (torch.optim.Adam). MATLAB uses "pytorch" here: its documented
            update divides the bias-corrected moments, eps added after; PARITY.md
            records only MATLAB's epsilon, so this placement is *unverified*.
            For RMSprop, "keras" is ``g / sqrt(v + eps)`` and "pytorch"
            ``g / (sqrt(v) + eps)``.
        momentum_form: "velocity" (``v = mu v - lr g; w += v``: Keras SGD and
            MATLAB sgdm's documented update) or "buffer" (``u = mu u + g;
            w -= lr u``: torch.optim.SGD); they differ only after a change of
            the learning rate (a schedule).
        rho: RMSprop's decay of the squared-gradient average (0.9 in Keras,
            torch's alpha 0.99; MATLAB's SquaredGradientDecayFactor for
            rmsprop 0.9, *unverified*: not in PARITY.md).
        momentum: SGD momentum (MATLAB sgdm's Momentum 0.9; Keras and torch
            SGD 0). Not in PARITY.md: MATLAB's value is *unverified* here.
        l2: L2 regularisation factor lambda, added to the gradient as
            ``lambda * factor * w``. MATLAB's L2Regularization is 1e-4 by
            default; that it enters the gradient exactly as lambda*w is the
            documented meaning, *unverified* against MATLAB itself.
        bias_l2_factor: the factor for biases (MATLAB BiasL2Factor 0: exempt).
        loss: regression loss. "mse": mean over the last axis then the batch
            (Keras, and nn.MSELoss's mean); "half_mse": MATLAB regressionLayer,
            per observation ``0.5 * sum_i (t_i - y_i)^2``, mean over the
            mini-batch, and for sequence outputs also divided by S.
        shuffle: "every-epoch" (Keras shuffle=True, DataLoader(shuffle=True)),
            "once" (MATLAB's default: one permutation reused every epoch) or
            "never".
        drop_last: discard the last partial mini-batch (MATLAB: 1000 samples
            at 32 train 31 iterations per epoch; Keras and PyTorch keep it: 32).
        gradient_threshold: clipping threshold; ``math.inf`` = off (MATLAB's
            GradientThreshold default Inf; Keras and PyTorch do not clip).
        gradient_threshold_method: "l2norm" (MATLAB's default: each parameter's
            gradient rescaled to norm <= threshold on its own),
            "global-l2norm" (all gradients together, torch's
            clip_grad_norm_), or "absolute-value" (element-wise clamp).
        hard_sigmoid: "keras" = clip(x/6 + 0.5, 0, 1) (Keras 3);
            "matlab" = max(0, min(1, 0.2x + 0.5)).
        gru_reset_mode: the GRU's reset-gate placement when a model does not
            say: "after-multiplication" (MATLAB gruLayer, no recurrent bias)
            or "recurrent-bias-after-multiplication" (Keras reset_after=True,
            nn.GRU).
        epochs: MATLAB MaxEpochs 30; Keras fit epochs 1; PyTorch has none
            (10 here, as a loop must stop somewhere).
        batch_size: MATLAB MiniBatchSize 128; Keras 32; DataLoader 1 (32 here,
            as in the seed).
        dtype: "float32" (Keras floatx, MATLAB single, torch default) or
            "float64".
        padding: where variable-length sequences are padded with zeros to
            the longest of their mini-batch: "right" (MATLAB's default
            SequencePaddingDirection; the network reads the sequence, then
            the zeros) or "left" (the zeros first, so that the last time
            step is the sequence's own: MATLAB's advice for OutputMode 'last').
        sequence_length: "longest" (pad each mini-batch's variable-length
            sequences to its longest, MATLAB's default SequenceLength) or
            "shortest" (truncate them to its shortest, on the side ``padding``
            names: the last steps for "right", the first for "left").
    """

    name: str
    init_scheme: str
    adam_epsilon: float
    eps_placement: str
    l2: float
    bias_l2_factor: float
    loss: str
    shuffle: str
    drop_last: bool
    gradient_threshold: float
    gradient_threshold_method: str
    hard_sigmoid: str
    gru_reset_mode: str
    epochs: int
    batch_size: int
    momentum: float = 0.0
    momentum_form: str = "velocity"
    rho: float = 0.9
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    dtype: str = "float32"
    padding: str = "right"
    sequence_length: str = "longest"

    def __post_init__(self) -> None:
        for field, choices in (
            ("init_scheme", INIT_SCHEMES),
            ("eps_placement", EPS_PLACEMENTS),
            ("loss", LOSSES),
            ("shuffle", SHUFFLE_POLICIES),
            ("gradient_threshold_method", CLIP_METHODS),
            ("hard_sigmoid", HARD_SIGMOIDS),
            ("gru_reset_mode", ("after-multiplication", "before-multiplication",
                                "recurrent-bias-after-multiplication")),
            ("dtype", ("float32", "float64")),
            ("momentum_form", ("velocity", "buffer")),
            ("padding", PADDINGS),
            ("sequence_length", SEQUENCE_LENGTHS),
        ):
            if getattr(self, field) not in choices:
                raise ValueError(
                    f"{field} must be one of {choices}, got {getattr(self, field)!r}"
                )
        for field in ("epochs", "batch_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")
        for field in ("adam_epsilon", "l2", "bias_l2_factor", "learning_rate", "momentum", "rho"):
            if not getattr(self, field) >= 0:
                raise ValueError(f"{field} must be >= 0, got {getattr(self, field)!r}")
        if not self.gradient_threshold > 0:
            raise ValueError(
                f"gradient_threshold must be > 0 (math.inf = off), got "
                f"{self.gradient_threshold!r}"
            )


PRESETS = {
    "keras": Preset(
        name="keras", init_scheme="keras", adam_epsilon=1e-7, eps_placement="keras",
        l2=0.0, bias_l2_factor=0.0, loss="mse", shuffle="every-epoch",
        drop_last=False, gradient_threshold=math.inf,
        gradient_threshold_method="global-l2norm", hard_sigmoid="keras",
        gru_reset_mode="recurrent-bias-after-multiplication", epochs=1, batch_size=32,
    ),
    "matlab": Preset(
        name="matlab", init_scheme="matlab", adam_epsilon=1e-8, eps_placement="pytorch",
        l2=1e-4, bias_l2_factor=0.0, loss="half_mse", shuffle="once",
        drop_last=True, gradient_threshold=math.inf,
        gradient_threshold_method="l2norm", hard_sigmoid="matlab",
        gru_reset_mode="after-multiplication", epochs=30, batch_size=128,
        momentum=0.9,
    ),
    "pytorch": Preset(
        name="pytorch", init_scheme="pytorch", adam_epsilon=1e-8, eps_placement="pytorch",
        l2=0.0, bias_l2_factor=0.0, loss="mse", shuffle="every-epoch",
        drop_last=False, gradient_threshold=math.inf,
        gradient_threshold_method="global-l2norm", hard_sigmoid="keras",
        gru_reset_mode="recurrent-bias-after-multiplication", epochs=10, batch_size=32,
        rho=0.99, momentum_form="buffer",
    ),
}


def preset(name: str | Preset = "keras", **overrides: object) -> Preset:
    """A framework's preset, with any field overridden alone.

    Args:
        name: "keras", "matlab", "pytorch", or a ``Preset`` to start from.
        **overrides: fields of ``Preset`` (e.g. ``shuffle="never"``).
    Returns:
        A frozen ``Preset``; its ``name`` becomes "<name>+custom" when
        overridden, so a history records that it is not the framework's own.
    """
    if isinstance(name, Preset):
        base = name
    elif name in PRESETS:
        base = PRESETS[name]
    else:
        raise ValueError(f"preset name must be one of {tuple(PRESETS)}, got {name!r}")
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown preset field(s) {unknown}; the fields are {sorted(fields)}")
    if not overrides:
        return base
    label = base.name if base.name.endswith("+custom") else base.name + "+custom"
    return dataclasses.replace(base, name=label, **overrides)

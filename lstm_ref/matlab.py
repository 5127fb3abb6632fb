"""MATLAB-style front end: Deep Learning Toolbox's sequence API over lstm_ref's training engine.

A MATLAB script moves over by changing syntax only::

    % MATLAB                                             # Python, lstm_ref.matlab
    layers = [sequenceInputLayer(1)                      layers = [sequenceInputLayer(1),
              lstmLayer(64, 'OutputMode', 'last')                  lstmLayer(64, 'OutputMode', 'last'),
              fullyConnectedLayer(1)                               fullyConnectedLayer(1),
              regressionLayer];                                    regressionLayer()]
    options = trainingOptions('adam', ...                options = trainingOptions('adam',
        'MaxEpochs', 10, 'MiniBatchSize', 32);               'MaxEpochs', 10, 'MiniBatchSize', 32)
    XTrain = num2cell(X, 2);                             XTrain = num2cell(X, 2)
    [net, info] = trainNetwork(XTrain, y, ...            net, info = trainNetwork(XTrain, y, layers, options)
                               layers, options);
    YPred = predict(net, XTrain);                        YPred = predict(net, XTrain)

``predictAndUpdateState``, ``classifyAndUpdateState`` and ``resetState`` carry the
recurrent layers' state from one call to the next, as MATLAB's do (closed-loop
forecasting).

Functions take MATLAB's forms: positional arguments, then name-value pairs as
strings with case-insensitive names (Python keywords work too:
``lstmLayer(64, OutputMode='last')``); an unknown name is rejected with the
list of valid ones. Defaults are MATLAB's (PARITY.md): Glorot input weights,
orthogonal recurrent weights, unit-forget-gate bias, OutputMode 'sequence';
GRU ResetGateMode 'after-multiplication'; Adam with learning rate 1e-3 and
epsilon 1e-8; L2Regularization 1e-4 with biases exempt (BiasL2Factor 0);
GradientThreshold Inf ('l2norm'); MaxEpochs 30; MiniBatchSize 128 (all the
sequences when there are fewer); Shuffle 'once'; the last partial mini-batch
discarded; half-MSE regression loss;
SequenceLength 'longest' with zero-padding on the right
('SequencePaddingDirection','left' pads before), the network running over
the padding as MATLAB's does ('shortest' truncates instead); ValidationPatience
Inf (no validation stopping), OutputNetwork 'last-iteration'; tanh state and
sigmoid gate activations ('softsign', 'hard-sigmoid' on request). Training
runs in ``lstm_ref.training.fit`` with ``lstm_ref.presets.preset("matlab", ...)``;
the layers are ``lstm_ref.layers``.

Data layouts (MATLAB's, not lstm_ref's batch-first arrays):

- predictors: a list of N arrays, each C-by-S (channels by time steps), stands
  for MATLAB's N-by-1 cell array of sequences; one C-by-S numeric array is one
  sequence (MATLAB reads a 1000x10 matrix as ONE sequence of 1000 channels).
- responses, regression: an N-by-R numeric array for OutputMode 'last'; for
  OutputMode 'sequence' a list of R-by-S arrays (or one R-by-S array for one
  sequence), every sequence of the same length.
- responses, classification: N labels (any 1-D array: ints, strings), which
  stand for a categorical array; the classes are its sorted unique values.

Not MATLAB: ``trainNetwork(..., seed=0)`` seeds initialisation, shuffling and
dropout in place of MATLAB's global ``rng``; the network runs in float32
(MATLAB's single) unless ``dtype=torch.float64``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lstm_ref import init, interop, layers as tl, training
from lstm_ref._validate import check_float_dtype, check_real, is_real_number, rng_from_seed
from lstm_ref.presets import preset

# ------------------------------------------------------------- argument parsing


def _choice(*choices: str) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError(f"'{name}' must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value.lower()

    return check


def _positive_int(name: str, value: object) -> int:
    """A positive integer, given as an int or, as every MATLAB number is a double, a whole float (32.0)."""
    whole = isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer())
    if isinstance(value, bool) or not whole or value < 1:
        raise ValueError(f"'{name}' must be a positive integer, got {value!r}")
    return int(value)


def _layer_size(func: str, name: str, value: object) -> int:
    """A layer's size argument, its error prefixed with the function's name as the options' are."""
    try:
        return _positive_int(name, value)
    except ValueError as e:
        raise ValueError(f"{func}: {e}") from None


def _real(name: str, value: object, within: Callable[[float], bool], expected: str) -> float:
    """A real number (not a bool) for which ``within`` holds (False for NaN), as a float."""
    if not (is_real_number(value) and within(value)):
        raise ValueError(f"'{name}' must be {expected}, got {value!r}")
    return float(value)


def _nonnegative(name: str, value: object) -> float:
    return _real(name, value, lambda v: 0 <= v < math.inf, "a finite nonnegative number")


def _positive(name: str, value: object) -> float:
    return _real(name, value, lambda v: 0 < v < math.inf, "a finite positive number")


def _threshold(name: str, value: object) -> float:
    """A positive number, Inf allowed (MATLAB's GradientThreshold: Inf clips nothing)."""
    return _real(name, value, lambda v: v > 0, "a positive number (Inf allowed)")


def _fraction(name: str, value: object) -> float:
    return _real(name, value, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _factor(name: str, value: object) -> float:
    """A number in [0, 1] (MATLAB's LearnRateDropFactor)."""
    return _real(name, value, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def _logical(name: str, value: object) -> bool:
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    raise ValueError(f"'{name}' must be true or false (1 or 0), got {value!r}")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a character vector (str), got {value!r}")
    return value


def _matrix(name: str, value: object) -> np.ndarray | None:
    """A MATLAB matrix option (initial weights); [] (None or empty) means unset."""
    if value is None:
        return None
    a = np.array(value, dtype=np.float64)  # a copy: MATLAB values are never shared
    if a.size == 0:
        return None
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"'{name}' must be a finite 2-D numeric matrix, got shape {a.shape}")
    return a


def _anything(name: str, value: object) -> object:
    return value


def _patience(name: str, value: object) -> float:
    """A positive integer or Inf (MATLAB's ValidationPatience), as a float."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    return float(_positive_int(name, value))


def _sequence_length(name: str, value: object) -> str:
    """'longest' or 'shortest'; MATLAB's third form, a positive integer, is refused as not supported.

    With an integer MATLAB pads each mini-batch to its longest sequence and splits it into chunks of
    that many steps, which become extra mini-batches (trainingOptions page), the network's state
    carried from one chunk to the next (*unverified*). The engine makes one iteration per mini-batch,
    each from zero states, so it cannot reproduce that; nothing approximate is done instead.
    """
    if isinstance(value, str) and value.lower() in ("longest", "shortest"):
        return value.lower()
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value > 0:
        raise ValueError(f"'{name}' as a number of time steps ({value!r}: split each mini-batch's sequences into "
                         f"chunks trained in consecutive iterations with the state carried over) is not "
                         f"supported; use 'longest' or 'shortest'")
    raise ValueError(f"'{name}' must be 'longest', 'shortest' or a positive integer, got {value!r}")


def _zero(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value != 0:
        raise ValueError(f"'{name}' must be 0 (padding with other values is not supported), got {value!r}")
    return 0.0


Spec = dict[str, tuple[object, Callable[[str, object], object]]]


def _parse(func: str, args: Sequence[object], kwargs: dict[str, object], spec: Spec) -> dict[str, object]:
    """MATLAB name-value pairs (and Python keywords) against ``spec``: name -> (default, check).

    Names match case-insensitively; a later pair wins, as in MATLAB.
    """
    if len(args) % 2:
        raise ValueError(
            f"{func}: name-value arguments must come in pairs ('Name', value); "
            f"got an odd number ({len(args)}) after the positional arguments"
        )
    canonical = {name.lower(): name for name in spec}
    values = {name: default for name, (default, _) in spec.items()}
    pairs = [(args[k], args[k + 1]) for k in range(0, len(args), 2)] + list(kwargs.items())
    for name, value in pairs:
        if not isinstance(name, str):
            raise TypeError(f"{func}: expected an option name (str) in a name-value pair, got {name!r}")
        key = canonical.get(name.lower())
        if key is None:
            raise ValueError(
                f"{func}: '{name}' is not a recognized parameter. Valid names are: {', '.join(spec)}."
            )
        try:
            values[key] = spec[key][1](key, value)
        except ValueError as err:
            raise ValueError(f"{func}: {err}") from None
    return values


# ----------------------------------------------------------------------- layers
GRU_RESET_GATE_MODES = ("after-multiplication", "before-multiplication", "recurrent-bias-after-multiplication")
_WEIGHT_INITS = ("glorot", "orthogonal", "narrow-normal", "zeros")


@dataclass
class Layer:
    """A layer of a MATLAB layer array. Fields carry MATLAB's property names."""

    Name: str

    kind = "Layer"

    def description(self) -> str:
        return self.kind


@dataclass
class SequenceInputLayer(Layer):
    """Statistics of the input normalization: C-by-1, given or computed by trainNetwork."""

    InputSize: int
    MinLength: int = 1
    Normalization: str = "none"
    Mean: np.ndarray | None = None
    StandardDeviation: np.ndarray | None = None
    Min: np.ndarray | None = None
    Max: np.ndarray | None = None

    kind = "Sequence Input"

    def description(self) -> str:
        return f"Sequence input with {self.InputSize} dimensions"


@dataclass
class _RecurrentLayer(Layer):
    """What lstmLayer, bilstmLayer and gruLayer share; learnables in MATLAB's layout."""

    NumHiddenUnits: int
    OutputMode: str
    StateActivationFunction: str
    GateActivationFunction: str
    InputWeightsInitializer: str
    RecurrentWeightsInitializer: str
    BiasInitializer: str
    InputWeightsL2Factor: float
    RecurrentWeightsL2Factor: float
    BiasL2Factor: float
    InputWeights: np.ndarray | None = None  # (G*H, C) after training, [] before
    RecurrentWeights: np.ndarray | None = None  # (G*H, H)
    Bias: np.ndarray | None = None  # (G*H, 1)
    InputSize: int | str = "auto"

    cell = "lstm"
    gates = 4
    directions = 1

    def description(self) -> str:
        return f"{self.kind} with {self.NumHiddenUnits} hidden units"


@dataclass
class LSTMLayer(_RecurrentLayer):
    kind = "LSTM"
    function = "lstmLayer"


@dataclass
class BiLSTMLayer(_RecurrentLayer):
    """Learnables stack the forward then the backward direction: InputWeights (8H, C) etc."""

    kind = "BiLSTM"
    function = "bilstmLayer"
    directions = 2


@dataclass
class GRULayer(_RecurrentLayer):
    ResetGateMode: str = "after-multiplication"

    kind = "GRU"
    function = "gruLayer"
    cell = "gru"
    gates = 3


@dataclass
class FullyConnectedLayer(Layer):
    OutputSize: int
    WeightsInitializer: str = "glorot"
    BiasInitializer: str = "zeros"
    WeightL2Factor: float = 1.0
    BiasL2Factor: float = 0.0
    Weights: np.ndarray | None = None  # (OutputSize, InputSize)
    Bias: np.ndarray | None = None  # (OutputSize, 1)
    InputSize: int | str = "auto"

    kind = "Fully Connected"

    def description(self) -> str:
        return f"{self.OutputSize} fully connected layer"


@dataclass
class DropoutLayer(Layer):
    Probability: float = 0.5

    kind = "Dropout"

    def description(self) -> str:
        return f"{100 * self.Probability:g}% dropout"


@dataclass
class SoftmaxLayer(Layer):
    kind = "Softmax"


@dataclass
class RegressionOutputLayer(Layer):
    ResponseNames: tuple = ()
    LossFunction: str = "mse"

    kind = "Regression Output"

    def description(self) -> str:
        return "mean-squared-error (half-MSE)"


@dataclass
class ClassificationOutputLayer(Layer):
    Classes: str | np.ndarray = "auto"
    LossFunction: str = "crossentropyex"

    kind = "Classification Output"

    def description(self) -> str:
        return "crossentropyex"


def sequenceInputLayer(inputSize: int, *args: object, **kwargs: object) -> SequenceInputLayer:
    """A sequence input layer of ``inputSize`` channels (C), normalizing every time step::

        'zerocenter'          x - Mean
        'zscore'              (x - Mean) ./ StandardDeviation
        'rescale-symmetric'   2 (x - Min) ./ (Max - Min) - 1
        'rescale-zero-one'    (x - Min) ./ (Max - Min)

    Options: 'Name', 'MinLength' (1), 'Normalization' ('none' or the above),
    and its statistics 'Mean', 'StandardDeviation', 'Min', 'Max' (C-by-1).
    trainNetwork computes them per channel over every time step of the
    training sequences (before padding; the standard deviation divides by
    the number of values, *unverified* against MATLAB) unless they are given
    and 'ResetInputNormalization' is false. The layer normalizes padded
    steps too, as it sees them.
    """
    size = _layer_size("sequenceInputLayer", "inputSize", inputSize)
    o = _parse("sequenceInputLayer", args, kwargs, {
        "Name": ("", _text), "MinLength": (1, _positive_int),
        "Normalization": ("none", _choice("none", *_NORMALIZATIONS)),
        **{stat: (None, _matrix) for stat in _STATISTICS},
    })
    for stat in _STATISTICS:
        if o[stat] is not None and o[stat].shape != (size, 1):
            raise ValueError(f"sequenceInputLayer: '{stat}' must be {size}-by-1, got {_size(o[stat].shape)}")
    return SequenceInputLayer(InputSize=size, **o)


# The statistics each normalization needs, of the layer's four.
_STATISTICS = ("Mean", "StandardDeviation", "Min", "Max")
_NORMALIZATIONS = {"zerocenter": ("Mean",), "zscore": ("Mean", "StandardDeviation"),
                   "rescale-symmetric": ("Min", "Max"), "rescale-zero-one": ("Min", "Max")}


class _Normalize(nn.Module):
    """sequenceInputLayer's normalization, (x - shift) / divisor per channel (no parameters)."""

    def __init__(self, layer: SequenceInputLayer, dtype: torch.dtype) -> None:
        super().__init__()
        self.kind, self.dtype = layer.Normalization, dtype
        self.stats: dict[str, np.ndarray] = {}
        C = layer.InputSize
        self.register_buffer("shift", torch.zeros(C, dtype=dtype))
        self.register_buffer("divisor", torch.ones(C, dtype=dtype))
        given = {stat: getattr(layer, stat) for stat in _NORMALIZATIONS[self.kind]}
        if all(v is not None for v in given.values()):
            self.set({k: v[:, 0] for k, v in given.items()})

    def set(self, stats: dict[str, np.ndarray]) -> None:
        """Use ``stats`` (each (C,)) from now on."""
        if self.kind == "zerocenter":
            shift, divisor = stats["Mean"], np.ones_like(stats["Mean"])
        elif self.kind == "zscore":
            shift, divisor = stats["Mean"], stats["StandardDeviation"]
        else:
            low, span = stats["Min"], stats["Max"] - stats["Min"]
            shift, divisor = (low + span / 2, span / 2) if self.kind == "rescale-symmetric" else (low, span)
        if not np.all(divisor > 0):
            channel = int(np.flatnonzero(~(divisor > 0))[0]) + 1
            raise ValueError(f"sequenceInputLayer: input channel {channel} does not vary in the training data, "
                             f"so '{self.kind}' normalization would divide by zero")
        self.stats = stats
        self.shift.copy_(torch.as_tensor(shift, dtype=self.dtype))
        self.divisor.copy_(torch.as_tensor(divisor, dtype=self.dtype))

    def fit(self, sequences: Sequence[np.ndarray]) -> None:
        """Statistics per channel over every time step of ``sequences`` ((S_n, C) each)."""
        values = np.concatenate(sequences)  # (sum of S_n, C)
        stats = {"Mean": values.mean, "StandardDeviation": values.std, "Min": values.min, "Max": values.max}
        self.set({k: stats[k](axis=0) for k in _NORMALIZATIONS[self.kind]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.stats:
            raise ValueError("sequenceInputLayer: the normalization statistics are not set; train the network "
                             "or give them ('Mean', 'StandardDeviation', 'Min', 'Max')")
        return (x - self.shift) / self.divisor  # (N, T, C)


# MATLAB's activation names -> lstm_ref.layers.ACTIVATIONS. MATLAB's lstmLayer.m (copyright 2017-2023)
# accepts exactly these: validatestring(value, {'tanh', 'softsign'}) and validatestring(value,
# {'sigmoid', 'hard-sigmoid'}); its hard sigmoid is clip(0.2 x + 0.5, 0, 1) (PARITY.md), not Keras 3's x/6 + 0.5.
_STATE_ACTIVATIONS = {"tanh": "tanh", "softsign": "softsign"}
_GATE_ACTIVATIONS = {"sigmoid": "sigmoid", "hard-sigmoid": "hard_sigmoid_matlab"}


def _recurrent(func: str, cls: type, numHiddenUnits: int, args, kwargs, bias_inits, extra: Spec | None = None):
    size = _layer_size(func, "numHiddenUnits", numHiddenUnits)
    spec: Spec = {
        "Name": ("", _text),
        "OutputMode": ("sequence", _choice("sequence", "last")),
        "StateActivationFunction": ("tanh", _choice(*_STATE_ACTIVATIONS)),
        "GateActivationFunction": ("sigmoid", _choice(*_GATE_ACTIVATIONS)),
        "InputWeightsInitializer": ("glorot", _choice(*_WEIGHT_INITS)),
        "RecurrentWeightsInitializer": ("orthogonal", _choice(*_WEIGHT_INITS)),
        "BiasInitializer": (bias_inits[0], _choice(*bias_inits)),
        "InputWeightsL2Factor": (1.0, _nonnegative),
        "RecurrentWeightsL2Factor": (1.0, _nonnegative),
        "BiasL2Factor": (0.0, _nonnegative),
        "InputWeights": (None, _matrix),
        "RecurrentWeights": (None, _matrix),
        "Bias": (None, _matrix),
        **(extra or {}),
    }
    layer = cls(NumHiddenUnits=size, **_parse(func, args, kwargs, spec))
    _check_initial_values(func, layer)
    return layer


def lstmLayer(numHiddenUnits: int, *args: object, **kwargs: object) -> LSTMLayer:
    """An LSTM layer of H = ``numHiddenUnits``.

    Equations (gate rows i, f, g, o of InputWeights W (4H, C), RecurrentWeights
    R (4H, H), Bias b (4H, 1))::

        [i; f; g; o] = [s(W_i x + R_i h + b_i); s(W_f x + ...); a(W_g x + ...); s(W_o x + ...)]
        c = f .* c_prev + i .* g,    h = o .* a(c)

    with the state activation a = 'StateActivationFunction' ('tanh' | 'softsign':
    x / (1 + |x|)) and the gate activation s = 'GateActivationFunction'
    ('sigmoid' | 'hard-sigmoid': max(0, min(1, 0.2 x + 0.5))), the values
    MATLAB's lstmLayer.m accepts (its 2023 source; no 'relu').

    Options: 'OutputMode' ('sequence' | 'last'), 'Name',
    'StateActivationFunction' ('tanh'), 'GateActivationFunction' ('sigmoid'),
    'InputWeightsInitializer' ('glorot'), 'RecurrentWeightsInitializer'
    ('orthogonal'), 'BiasInitializer' ('unit-forget-gate' | 'zeros' |
    'narrow-normal' | 'ones'), 'InputWeightsL2Factor' (1),
    'RecurrentWeightsL2Factor' (1), 'BiasL2Factor' (0), and initial values
    'InputWeights', 'RecurrentWeights', 'Bias' in MATLAB's layout.
    """
    return _recurrent("lstmLayer", LSTMLayer, numHiddenUnits, args, kwargs,
                      ("unit-forget-gate", "zeros", "narrow-normal", "ones"))


def bilstmLayer(numHiddenUnits: int, *args: object, **kwargs: object) -> BiLSTMLayer:
    """A bidirectional LSTM: H units per direction, output [forward; backward] (2H channels).

    Options as for :func:`lstmLayer` (the activations included, as
    MATLAB's bilstmLayer has them); the learnables stack the forward then
    the backward direction (InputWeights 8H-by-C, RecurrentWeights 8H-by-H,
    Bias 8H-by-1), as MATLAB's bilstmLayer.

    'OutputMode','last' returns the last time step of the concatenated output
    sequence: the forward direction's final state and the backward
    direction's state after reading only the last step (MATLAB's documented
    meaning of 'last', taking the last time step of the output; not verified
    against MATLAB itself). It differs from Keras' Bidirectional and PyTorch's
    h_n, whose backward half has read the whole sequence.
    """
    return _recurrent("bilstmLayer", BiLSTMLayer, numHiddenUnits, args, kwargs,
                      ("unit-forget-gate", "zeros", "narrow-normal", "ones"))


def gruLayer(numHiddenUnits: int, *args: object, **kwargs: object) -> GRULayer:
    """A GRU layer of H = ``numHiddenUnits``, gate rows r, z, h~ (MATLAB's order)::

        r = s(W_r x + R_r h + b_r),   z = s(W_z x + R_z h + b_z)
        'after-multiplication' (default):  h~ = a(W_h x + b_h + r .* (R_h h))   Bias 3H-by-1
        'before-multiplication':            h~ = a(W_h x + R_h (r .* h) + b_h)   Bias 3H-by-1
        'recurrent-bias-after-multiplication': a recurrent bias in every block,
            h~ = a(W_h x + b_h + r .* (R_h h + bh_h)) (as nn.GRU)           Bias 6H-by-1
        h = (1 - z) .* h~ + z .* h_prev

    Options as for :func:`lstmLayer` plus 'ResetGateMode': the state activation
    a ('StateActivationFunction', tanh by default) makes the candidate h~, the
    gate activation s ('GateActivationFunction') the gates r and z, as the
    gruLayer page's Activations properties say; 'BiasInitializer' is 'zeros'
    by default ('narrow-normal', 'ones').
    """
    return _recurrent("gruLayer", GRULayer, numHiddenUnits, args, kwargs, ("zeros", "narrow-normal", "ones"),
                      {"ResetGateMode": ("after-multiplication", _choice(*GRU_RESET_GATE_MODES))})


def fullyConnectedLayer(outputSize: int, *args: object, **kwargs: object) -> FullyConnectedLayer:
    """``y = W x + b`` per time step: Weights W (outputSize, C), Bias b (outputSize, 1).

    Options: 'Name', 'WeightsInitializer' ('glorot' | 'narrow-normal' | 'zeros'),
    'BiasInitializer' ('zeros' | 'narrow-normal' | 'ones'), 'WeightL2Factor' (1),
    'BiasL2Factor' (0), initial 'Weights' and 'Bias'.
    """
    size = _layer_size("fullyConnectedLayer", "outputSize", outputSize)
    layer = FullyConnectedLayer(OutputSize=size, **_parse("fullyConnectedLayer", args, kwargs, {
        "Name": ("", _text),
        "WeightsInitializer": ("glorot", _choice("glorot", "narrow-normal", "zeros")),
        "BiasInitializer": ("zeros", _choice("zeros", "narrow-normal", "ones")),
        "WeightL2Factor": (1.0, _nonnegative),
        "BiasL2Factor": (0.0, _nonnegative),
        "Weights": (None, _matrix),
        "Bias": (None, _matrix),
    }))
    _check_initial_values("fullyConnectedLayer", layer)
    return layer


def dropoutLayer(probability: float = 0.5, *args: object, **kwargs: object) -> DropoutLayer:
    """Zero each input with ``probability`` during training (inputs scaled by 1/(1-p)); identity at prediction."""
    return DropoutLayer(Probability=_fraction("probability", probability),
                        **_parse("dropoutLayer", args, kwargs, {"Name": ("", _text)}))


def softmaxLayer(*args: object, **kwargs: object) -> SoftmaxLayer:
    """Softmax over the channels."""
    return SoftmaxLayer(**_parse("softmaxLayer", args, kwargs, {"Name": ("", _text)}))


def regressionLayer(*args: object, **kwargs: object) -> RegressionOutputLayer:
    """Half mean squared error: per observation 0.5 * sum_i (t_i - y_i)^2, mean over the mini-batch.

    For sequence outputs the sum also runs over the S steps and is divided by S.
    """
    return RegressionOutputLayer(**_parse("regressionLayer", args, kwargs, {
        "Name": ("", _text), "ResponseNames": ((), _anything),
    }))


def classificationLayer(*args: object, **kwargs: object) -> ClassificationOutputLayer:
    """Cross-entropy of the softmax probabilities against one class per observation, mean over the mini-batch."""
    return ClassificationOutputLayer(**_parse("classificationLayer", args, kwargs, {
        "Name": ("", _text), "Classes": ("auto", _anything),
    }))


def _check_initial_values(func: str, layer: Layer) -> None:
    """Initial learnables given as options must have MATLAB's shapes (C still unknown)."""
    if isinstance(layer, FullyConnectedLayer):
        shapes = {"Weights": (layer.OutputSize, None), "Bias": (layer.OutputSize, 1)}
    else:
        rows = layer.directions * layer.gates * layer.NumHiddenUnits
        if isinstance(layer, GRULayer) and layer.ResetGateMode == "recurrent-bias-after-multiplication":
            bias_rows = 2 * rows
        else:
            bias_rows = rows
        shapes = {"InputWeights": (rows, None), "RecurrentWeights": (rows, layer.NumHiddenUnits),
                  "Bias": (bias_rows, 1)}
    for name, shape in shapes.items():
        value = getattr(layer, name)
        if value is not None and (value.shape[0] != shape[0] or shape[1] not in (None, value.shape[1])):
            expected = f"{shape[0]}-by-{'C' if shape[1] is None else shape[1]}"
            raise ValueError(f"{func}: '{name}' must be {expected}, got {value.shape[0]}-by-{value.shape[1]}")


# ------------------------------------------------------------- training options
_COMMON_OPTIONS: Spec = {
    "InitialLearnRate": (None, _positive),
    "MaxEpochs": (30, _positive_int),
    "MiniBatchSize": (128, _positive_int),
    "Shuffle": ("once", _choice("once", "never", "every-epoch")),
    "L2Regularization": (1e-4, _nonnegative),
    "GradientThreshold": (math.inf, _threshold),
    "GradientThresholdMethod": ("l2norm", _choice("l2norm", "global-l2norm", "absolute-value")),
    "LearnRateSchedule": ("none", _choice("none", "piecewise")),
    "LearnRateDropFactor": (0.1, _factor),
    "LearnRateDropPeriod": (10, _positive_int),
    "SequenceLength": ("longest", _sequence_length),
    "SequencePaddingDirection": ("right", _choice("right", "left")),
    "SequencePaddingValue": (0, _zero),
    "ResetInputNormalization": (True, _logical),
    "Verbose": (True, _logical),
    "VerboseFrequency": (50, _positive_int),
    "ValidationData": (None, _anything),
    "ValidationFrequency": (50, _positive_int),
    "ValidationPatience": (math.inf, _patience),
    "OutputNetwork": ("last-iteration", _choice("last-iteration", "best-validation-loss")),
    "Plots": ("none", _choice("none", "training-progress")),
    "ExecutionEnvironment": ("auto", _choice("auto", "cpu", "gpu")),
}
# Options that exist for one solver only, with MATLAB's defaults.
_SOLVER_OPTIONS: dict[str, Spec] = {
    "sgdm": {"Momentum": (0.9, _fraction)},
    "adam": {
        "GradientDecayFactor": (0.9, _fraction),
        "SquaredGradientDecayFactor": (0.999, _fraction),
        "Epsilon": (1e-8, _positive),
    },
    "rmsprop": {
        "SquaredGradientDecayFactor": (0.9, _fraction),
        "Epsilon": (1e-8, _positive),
    },
}
_DEFAULT_LEARN_RATE = {"sgdm": 0.01, "adam": 1e-3, "rmsprop": 1e-3}
# The solver options' names in lstm_ref.presets.Preset (rmsprop's squared-gradient decay is rho).
_SOLVER_FIELDS = {"Momentum": "momentum", "GradientDecayFactor": "beta_1",
                  "SquaredGradientDecayFactor": "beta_2", "Epsilon": "adam_epsilon"}
_RMSPROP_FIELDS = {**_SOLVER_FIELDS, "SquaredGradientDecayFactor": "rho"}


@dataclass(frozen=True)
class TrainingOptions:
    """What trainingOptions returns; fields carry MATLAB's names (None: not an option of this solver)."""

    SolverName: str
    InitialLearnRate: float
    MaxEpochs: int
    MiniBatchSize: int
    Shuffle: str
    L2Regularization: float
    GradientThreshold: float
    GradientThresholdMethod: str
    LearnRateSchedule: str
    LearnRateDropFactor: float
    LearnRateDropPeriod: int
    SequenceLength: str
    SequencePaddingDirection: str
    SequencePaddingValue: float
    ResetInputNormalization: bool
    Verbose: bool
    VerboseFrequency: int
    ValidationData: object
    ValidationFrequency: int
    ValidationPatience: float
    OutputNetwork: str
    Plots: str
    ExecutionEnvironment: str
    Momentum: float | None = None
    GradientDecayFactor: float | None = None
    SquaredGradientDecayFactor: float | None = None
    Epsilon: float | None = None


def trainingOptions(solverName: str, *args: object, **kwargs: object) -> TrainingOptions:
    """Training options for ``solverName`` 'adam', 'sgdm' or 'rmsprop', with MATLAB's defaults.

    Common options (defaults): 'InitialLearnRate' (1e-3 adam, 0.01 sgdm),
    'MaxEpochs' (30), 'MiniBatchSize' (128), 'Shuffle' ('once' | 'never' |
    'every-epoch'), 'L2Regularization' (1e-4), 'GradientThreshold' (Inf),
    'GradientThresholdMethod' ('l2norm' | 'global-l2norm' | 'absolute-value'),
    'LearnRateSchedule' ('none' | 'piecewise': the rate times
    'LearnRateDropFactor' (0.1) every 'LearnRateDropPeriod' (10) epochs),
    'SequenceLength' ('longest': pad each mini-batch's sequences to its longest |
    'shortest': truncate them to its shortest; a positive integer, MATLAB's
    splitting into chunks, is not supported), 'SequencePaddingDirection'
    ('right': pad or truncate at the end | 'left': at the start, so that the
    sequences end together), 'SequencePaddingValue' (0),
    'ResetInputNormalization' (true: the input layer's statistics come from
    the training data even where given), 'Verbose' (true), 'VerboseFrequency' (50),
    'ValidationData' ({XVal, YVal} as a tuple), 'ValidationFrequency' (50),
    'ValidationPatience' (Inf: training stops once the validation loss has
    been larger than or equal to the smallest earlier one that many
    validations in a row), 'OutputNetwork' ('last-iteration' |
    'best-validation-loss': the network of the validation with the smallest
    loss; needs 'ValidationData'),
    'Plots' ('none' | 'training-progress': a matplotlib figure after training),
    'ExecutionEnvironment' ('auto' | 'cpu' | 'gpu').
    sgdm: 'Momentum' (0.9). adam: 'GradientDecayFactor' (0.9),
    'SquaredGradientDecayFactor' (0.999), 'Epsilon' (1e-8). rmsprop:
    'SquaredGradientDecayFactor' (0.9), 'Epsilon' (1e-8).
    """
    if not isinstance(solverName, str):
        raise TypeError(f"trainingOptions: solverName must be 'adam', 'sgdm' or 'rmsprop', got {solverName!r}")
    solver = solverName.lower()
    if solver not in _SOLVER_OPTIONS:
        raise ValueError(f"trainingOptions: solverName must be 'adam', 'sgdm' or 'rmsprop', got {solverName!r}")
    o = _parse("trainingOptions", args, kwargs, {**_COMMON_OPTIONS, **_SOLVER_OPTIONS[solver]})
    if o["InitialLearnRate"] is None:
        o["InitialLearnRate"] = _DEFAULT_LEARN_RATE[solver]
    if o["ValidationData"] is not None and not (isinstance(o["ValidationData"], (tuple, list))
                                                and len(o["ValidationData"]) == 2):
        raise ValueError("trainingOptions: 'ValidationData' must be a pair (XValidation, YValidation), "
                         "MATLAB's {XValidation, YValidation}")
    if o["OutputNetwork"] == "best-validation-loss" and o["ValidationData"] is None:
        raise ValueError("trainingOptions: 'OutputNetwork','best-validation-loss' needs 'ValidationData'")
    return TrainingOptions(SolverName=solver, **o)


# ----------------------------------------------------------------- data layouts
def num2cell(A: np.ndarray, dim: int) -> list[np.ndarray]:
    """MATLAB's ``num2cell(A, dim)`` for a 2-D A: a list of its rows (dim=2, each 1-by-S) or columns (dim=1, each R-by-1).

    ``num2cell(X, 2)`` turns an N-by-S matrix into N one-channel sequences (1-by-S, C-by-S).
    """
    a = np.asarray(A)
    if a.ndim != 2:
        raise ValueError(f"num2cell: A must be a 2-D matrix, got shape {a.shape}")
    if dim == 2:
        return [a[k : k + 1, :].copy() for k in range(a.shape[0])]
    if dim == 1:
        return [a[:, k : k + 1].copy() for k in range(a.shape[1])]
    raise ValueError(f"num2cell: dim must be 1 or 2, got {dim!r}")


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _seed_form_error(X: np.ndarray, arch: _Architecture) -> ValueError:
    n, s = X.shape
    C = arch.C
    return ValueError(
        f"Invalid training data. A numeric {n}x{s} array is ONE sequence with {n} channels and {s} time "
        f"steps, but sequenceInputLayer({C}) expects {C} channel(s). For {n} sequences of {s} steps "
        f"(C-by-S = {C}-by-{s} each) pass a {n}x1 cell array: XTrain = num2cell(X, 2) "
        f"(lstm_ref.matlab.num2cell, or [x[None, :] for x in X]). With one response per sequence "
        f"(a {n}-by-R matrix), the recurrent layer must output only its last time step: "
        f"{arch.advice}."
    )


def _cell(X: object, what: str, C: int) -> tuple[list[np.ndarray], bool]:
    """MATLAB predictors -> (N sequences as (S_n, C) arrays, whether X was one numeric C-by-S sequence)."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim != 2:
            raise ValueError(f"Invalid {what}. A numeric sequence must be a C-by-S matrix, got size {_size(X.shape)}; "
                             f"for several sequences pass a list of C-by-S matrices (MATLAB's N-by-1 cell array)")
        if X.shape[0] != C:
            raise ValueError(f"Invalid {what}. The sequence is {_size(X.shape)} (C-by-S) but the input size "
                             f"of sequenceInputLayer is {C}")
        X = [X]
        single = True
    elif isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object):
        single = False
        X = list(np.asarray(X, dtype=object).reshape(-1)) if isinstance(X, np.ndarray) else list(X)
    else:
        raise TypeError(f"Invalid {what}. Predictors must be a list of C-by-S numeric matrices "
                        f"(MATLAB's N-by-1 cell array), got {type(X).__name__}")
    if not X:
        raise ValueError(f"Invalid {what}. The cell array of sequences is empty")
    sequences = []
    for n, x in enumerate(X):
        a = np.asarray(x)
        if a.dtype == object or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise TypeError(f"Invalid {what}. Sequence {n} must be a real numeric C-by-S matrix, got dtype {a.dtype}")
        if a.ndim != 2:
            hint = " (a vector: use x[None, :] for one channel)" if a.ndim == 1 else ""
            raise ValueError(f"Invalid {what}. Sequence {n} must be a C-by-S matrix, got shape {a.shape}{hint}")
        if a.shape[0] != C:
            raise ValueError(f"Invalid {what}. Sequences must have {C} channel(s) (the InputSize of "
                             f"sequenceInputLayer), sequence {n} is {_size(a.shape)} (C-by-S)")
        if a.shape[1] == 0:
            raise ValueError(f"Invalid {what}. Sequence {n} is empty (0 time steps)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Invalid {what}. Sequence {n} contains NaN or Inf")
        sequences.append(a.T.astype(np.float64))  # (S_n, C)
    return sequences, single


@dataclass(frozen=True)
class _Architecture:
    """What the layer array says about the data: channels in, outputs, output mode, task."""

    C: int
    R: int
    mode: str  # "sequence" or "last"
    task: str  # "regression" or "classification"
    advice: str  # the first recurrent layer's call with 'OutputMode','last', for error messages


def _regression_targets(Y: object, arch: _Architecture, sequences: list[np.ndarray], single: bool,
                        what: str) -> np.ndarray:
    """MATLAB regression responses -> (N, R) for 'last' or (N, S, R) for 'sequence'."""
    n = len(sequences)
    if arch.mode == "last":
        if isinstance(Y, (list, tuple)):
            raise ValueError(f"Invalid {what}. The network outputs one time step per sequence "
                             f"('OutputMode','last'): responses must be an N-by-R numeric matrix, not a cell array")
        y = _real_responses(Y, what)
        y = y[:, None] if y.ndim == 1 else y
        if y.shape != (n, arch.R):
            raise ValueError(f"Invalid {what}. Responses must be {n}-by-{arch.R} (N-by-R: one row per sequence, "
                             f"R = the OutputSize of the last fullyConnectedLayer), got {_size(y.shape)}")
        return _finite_responses(y, what)
    responses = [Y] if single else Y
    if not single and not isinstance(Y, (list, tuple)):
        shape = _size(np.shape(Y))
        raise ValueError(
            f"Invalid {what}. The network outputs a sequence (OutputMode 'sequence', the default), so responses "
            f"must be a cell array of R-by-S sequences, got a {shape} numeric array. For one response per "
            f"sequence use the last time step only: {arch.advice}")
    if len(responses) != n:
        raise ValueError(f"Invalid {what}. There are {n} sequences but {len(responses)} responses")
    out = []
    for k, (x, r) in enumerate(zip(sequences, responses)):
        r = _real_responses(r, what)
        if r.shape != (arch.R, x.shape[0]):
            raise ValueError(f"Invalid {what}. Response {k} must be {arch.R}-by-{x.shape[0]} (R-by-S, as its "
                             f"sequence), got {_size(r.shape)}")
        out.append(r.T)  # (S, R)
    if len({len(r) for r in out}) != 1:
        raise ValueError(f"Invalid {what}. Sequence-to-sequence training needs sequences of one length here "
                         f"(padded responses are not masked); got lengths {sorted({len(r) for r in out})}")
    return _finite_responses(np.stack(out), what)  # (N, S, R)


def _real_responses(Y: object, what: str) -> np.ndarray:
    """Regression responses as float64; complex numbers and strings are refused, not cast or parsed."""
    return check_real(f"Invalid {what}. Responses (Y)", Y).astype(np.float64)


def _finite_responses(y: np.ndarray, what: str) -> np.ndarray:
    """``y`` (N, ...) as it is, or an error naming the first observation whose responses hold NaN or Inf."""
    bad = ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)  # (N,)
    if bad.any():
        raise ValueError(f"Invalid {what}. Responses (Y) must not contain NaN or Inf; observation "
                         f"{int(np.argmax(bad))} does")
    return y


def _labels(Y: object, n: int, what: str) -> np.ndarray:
    y = np.asarray(Y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"Invalid {what}. Responses must be {n} categorical labels (an N-by-1 vector), "
                         f"got size {_size(y.shape)}")
    if np.issubdtype(y.dtype, np.floating):
        _finite_responses(y, what)  # NaN labels get the NaN error, not the one below
        if not np.all(y == np.round(y)):
            raise ValueError(f"Invalid {what}. Classification responses must be categorical labels "
                             f"(ints or strings), got non-integer numbers; use regressionLayer for numeric targets")
    return y


# --------------------------------------------------------------- the network
class _LastStep(nn.Module):
    """(N, T, F) -> (N, F): the last time step of the (padded) sequence, MATLAB's 'last'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1]


class _Softmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


def _draw_weights(initializer: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An lstm_ref-layout weight (fan_in, fan_out) drawn by a MATLAB initializer name."""
    if initializer == "glorot":
        return init.glorot_uniform(shape, rng)
    if initializer == "orthogonal":
        return init.orthogonal(shape, rng)
    if initializer == "narrow-normal":
        return 0.01 * rng.standard_normal(shape)
    return np.zeros(shape)


def _draw_bias(initializer: str, H: int, gates: int, rng: np.random.Generator) -> np.ndarray:
    if initializer == "unit-forget-gate":
        return init.unit_forget_bias(H)
    if initializer == "narrow-normal":
        return 0.01 * rng.standard_normal(gates * H)
    return np.full(gates * H, 1.0 if initializer == "ones" else 0.0)


def _recurrent_params(layer: _RecurrentLayer, C: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """One lstm_ref params dict per direction, from the layer's initial values or its initializers.

    The initializers draw MATLAB's whole learnables, as MATLAB does: a bilstmLayer's
    InputWeights is one 8H-by-C matrix, so its Glorot bound is sqrt(6 / (C + 8H))
    and its orthogonal RecurrentWeights come from one QR of an 8H-by-H matrix.
    Rows 1..G*H belong to the forward direction, the next G*H to the backward one.
    """
    H, rows = layer.NumHiddenUnits, layer.directions * layer.gates * layer.NumHiddenUnits
    mode = getattr(layer, "ResetGateMode", None)
    names = ("InputWeights", "RecurrentWeights", "Bias")
    given = {name: getattr(layer, name) for name in names}
    if all(v is None for v in given.values()):
        n_bias = 2 if mode == "recurrent-bias-after-multiplication" else 1
        given = {
            "InputWeights": _draw_weights(layer.InputWeightsInitializer, (C, rows), rng).T,  # (dirs*G*H, C)
            "RecurrentWeights": _draw_weights(layer.RecurrentWeightsInitializer, (H, rows), rng).T,  # (dirs*G*H, H)
            "Bias": np.concatenate([_draw_bias(layer.BiasInitializer, H, layer.gates, rng)
                                    for _ in range(layer.directions * n_bias)])[:, None],
        }
    elif any(v is None for v in given.values()):
        raise ValueError(f"{layer.kind} layer '{layer.Name}': give all of 'InputWeights', "
                         f"'RecurrentWeights' and 'Bias' as initial values, or none")
    elif given["InputWeights"].shape[1] != C:
        raise ValueError(f"{layer.kind} layer '{layer.Name}': 'InputWeights' must be {rows}-by-{C} for {C} "
                         f"input channels, got {_size(given['InputWeights'].shape)}")
    blocks = {k: np.split(v, layer.directions) for k, v in given.items()}  # each direction's rows
    return [interop.from_matlab({k: blocks[k][d] for k in names}, layer.cell, reset_mode=mode)
            for d in range(layer.directions)]


def _recurrent_module(layer: _RecurrentLayer, C: int, rng: np.random.Generator, dtype: torch.dtype) -> nn.Module:
    params = _recurrent_params(layer, C, rng)

    activations = {"cell_activation": _STATE_ACTIVATIONS[layer.StateActivationFunction],
                   "recurrent_activation": _GATE_ACTIVATIONS[layer.GateActivationFunction]}

    def one(p: dict[str, np.ndarray], reverse: bool) -> nn.Module:
        if layer.cell == "gru":
            return tl.GRU(p, reset_mode=layer.ResetGateMode, return_sequences=True, reverse=reverse, dtype=dtype,
                          **activations)
        return tl.LSTM(p, return_sequences=True, reverse=reverse, dtype=dtype, **activations)

    if layer.directions == 2:
        return tl.Bidirectional(one(params[0], False), one(params[1], True))
    return one(params[0], False)


def _dense_module(layer: FullyConnectedLayer, C: int, rng: np.random.Generator, dtype: torch.dtype) -> nn.Module:
    R = layer.OutputSize
    if layer.Weights is not None and layer.Weights.shape[1] != C:
        raise ValueError(f"Fully Connected layer '{layer.Name}': 'Weights' must be {R}-by-{C} for {C} "
                         f"inputs, got {_size(layer.Weights.shape)}")
    W = layer.Weights.T.copy() if layer.Weights is not None else _draw_weights(layer.WeightsInitializer, (C, R), rng)
    b = layer.Bias[:, 0].copy() if layer.Bias is not None else _draw_bias(layer.BiasInitializer, R, 1, rng)
    return tl.Dense({"W": W, "b": b}, dtype=dtype)


def _parameter_roles(layer: Layer, prefix: str, module: nn.Module) -> dict[str, tuple[str, float]]:
    """Each parameter of ``module`` (the layer, named ``prefix`` in the network) by name: the MATLAB
    learnable it is part of and its L2 factor. A bilstmLayer's two directions make one InputWeights, one
    RecurrentWeights and one Bias; a GRU's recurrent bias bh is part of its Bias (6H-by-1)."""
    if isinstance(layer, FullyConnectedLayer):
        by_key = {"W": ("Weights", layer.WeightL2Factor), "b": ("Bias", layer.BiasL2Factor)}
    else:
        by_key = {"W": ("InputWeights", layer.InputWeightsL2Factor),
                  "U": ("RecurrentWeights", layer.RecurrentWeightsL2Factor),
                  "b": ("Bias", layer.BiasL2Factor), "bh": ("Bias", layer.BiasL2Factor)}
    roles = {}
    for name, _ in module.named_parameters():
        learnable, factor = by_key[name.rsplit(".", 1)[-1]]
        roles[f"{prefix}.{name}"] = (f"{prefix}.{learnable}", factor)
    return roles


def _build(layers: Sequence[Layer], rng: np.random.Generator,
           dtype: torch.dtype) -> tuple[nn.Sequential, list[nn.Module | None], dict[str, tuple[str, float]],
                                        _Architecture]:
    """The torch network of a MATLAB layer array, one slot per layer (None where a layer has no module), and
    its parameters' roles (``_parameter_roles``)."""
    if not isinstance(layers, (list, tuple)) or not layers or not all(isinstance(la, Layer) for la in layers):
        raise TypeError("layers must be a non-empty list of layers, e.g. [sequenceInputLayer(1), lstmLayer(64, "
                        "'OutputMode', 'last'), fullyConnectedLayer(1), regressionLayer()]")
    if not isinstance(layers[0], SequenceInputLayer):
        raise ValueError(f"The first layer must be sequenceInputLayer(C), got a {layers[0].kind} layer")
    output = layers[-1]
    if not isinstance(output, (RegressionOutputLayer, ClassificationOutputLayer)):
        raise ValueError(f"The last layer must be regressionLayer or classificationLayer, got a {output.kind} layer")
    if isinstance(output, ClassificationOutputLayer) and not (len(layers) > 2 and isinstance(layers[-2], SoftmaxLayer)):
        raise ValueError("Missing softmax layer: classificationLayer must follow softmaxLayer")
    C = F = layers[0].InputSize
    mode = "sequence"
    modules, slots, roles = [], [], {}
    normalize = None if layers[0].Normalization == "none" else _Normalize(layers[0], dtype)
    if normalize is not None:
        modules.append(normalize)
    for k, layer in enumerate(layers[1:-1], start=1):
        if isinstance(layer, (SequenceInputLayer, RegressionOutputLayer, ClassificationOutputLayer)):
            raise ValueError(f"Layer {k + 1} ({layer.kind}) may only come first (input) or last (output)")
        module: nn.Module
        if isinstance(layer, _RecurrentLayer):
            if mode == "last":
                raise ValueError(f"Layer {k + 1} ({layer.kind}) needs sequence input, but an earlier recurrent "
                                 f"layer outputs only its last time step ('OutputMode','last'); give that layer "
                                 f"'OutputMode','sequence'")
            module = _recurrent_module(layer, F, rng, dtype)
            F = layer.directions * layer.NumHiddenUnits
        elif isinstance(layer, FullyConnectedLayer):
            module = _dense_module(layer, F, rng, dtype)
            F = layer.OutputSize
        elif isinstance(layer, DropoutLayer):
            module = nn.Dropout(layer.Probability)
        elif isinstance(layer, SoftmaxLayer):
            module = _Softmax()
        else:
            raise TypeError(f"Layer {k + 1}: unsupported layer type {type(layer).__name__}")
        if isinstance(layer, (_RecurrentLayer, FullyConnectedLayer)):
            roles.update(_parameter_roles(layer, str(len(modules)), module))
        slots.append(module)
        modules.append(module)
        if isinstance(layer, _RecurrentLayer) and layer.OutputMode == "last":
            modules.append(_LastStep())
            mode = "last"
    task = "classification" if isinstance(output, ClassificationOutputLayer) else "regression"
    recurrent = [la for la in layers if isinstance(la, _RecurrentLayer)]
    first = (recurrent[0].function, recurrent[0].NumHiddenUnits) if recurrent else ("lstmLayer", "numHiddenUnits")
    advice = f"{first[0]}({first[1]}, 'OutputMode', 'last')"
    return nn.Sequential(*modules), [normalize, *slots, None], roles, _Architecture(C, F, mode, task, advice)


def _learnables(layer: Layer, module: nn.Module | None) -> dict[str, np.ndarray]:
    """A layer's learnables in MATLAB's layout, read from its module."""
    def numpy(m: nn.Module) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().double().numpy() for k, v in m.named_parameters(recurse=False)}

    if isinstance(layer, FullyConnectedLayer):
        p = numpy(module)
        return {"Weights": p["W"].T.copy(), "Bias": p["b"][:, None].copy()}
    if isinstance(module, _Normalize):
        return {k: v[:, None].copy() for k, v in module.stats.items()}
    if isinstance(layer, _RecurrentLayer):
        parts = [module.forward_layer, module.backward_layer] if layer.directions == 2 else [module]
        mode = getattr(layer, "ResetGateMode", None)
        weights = [interop.to_matlab(numpy(m), layer.cell, reset_mode=mode) for m in parts]
        return {k: np.concatenate([w[k] for w in weights]) for k in weights[0]}
    return {}


class SeriesNetwork:
    """A trained network: ``Layers`` (MATLAB's layer array with learned values), ``Classes``.

    ``net.Layers[1].InputWeights`` is MATLAB's ``net.Layers(2).InputWeights``
    (Python counts from 0). The torch module is ``net.module``.
    """

    def __init__(self, layers: Sequence[Layer], module: nn.Sequential, slots: list[nn.Module | None],
                 arch: _Architecture, classes: np.ndarray | None) -> None:
        self._layers = [copy.deepcopy(layer) for layer in layers]
        self.module = module
        self._slots = slots
        self._arch = arch
        self.Classes = classes
        # The recurrent layers' states by position in ``module``, each (h, c) or (h,) with one row per
        # observation, as left by predictAndUpdateState; None: the initial (zero) states.
        self._state: dict[int, tl.State] | None = None

    @property
    def Layers(self) -> tuple[Layer, ...]:
        """The layer array with InputWeights/RecurrentWeights/Bias (Weights/Bias) as now learned."""
        out = []
        for layer, module in zip(self._layers, self._slots):
            values = _learnables(layer, module)
            if isinstance(layer, (_RecurrentLayer, FullyConnectedLayer)):
                values["InputSize"] = values["InputWeights" if "InputWeights" in values else "Weights"].shape[1]
            if isinstance(layer, ClassificationOutputLayer):
                values["Classes"] = self.Classes
            out.append(dataclasses.replace(layer, **values))
        return tuple(out)

    def __repr__(self) -> str:
        rows = [f"  SeriesNetwork with {len(self._layers)} layers:"]
        for k, layer in enumerate(self._layers, start=1):
            rows.append(f"    {k:>2}   {layer.Name!r:<8} {layer.kind:<22} {layer.description()}")
        return "\n".join(rows)


# ------------------------------------------------------------------- training
def _torch_float(dtype: object) -> torch.dtype:
    """trainNetwork's dtype, float32 or float64 given as a torch or NumPy dtype or a name, as a torch dtype."""
    if dtype in (torch.float32, torch.float64):
        return dtype
    return torch.float64 if check_float_dtype("dtype", dtype) == np.float64 else torch.float32


def _device(environment: str) -> torch.device:
    if environment == "gpu" and not torch.cuda.is_available():
        raise ValueError("'ExecutionEnvironment' is 'gpu' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device("cuda" if environment != "cpu" and torch.cuda.is_available() else "cpu")


def _prepare(X: object, Y: object, arch: _Architecture, what: str,
             classes: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
    """MATLAB predictors and responses -> engine inputs: (S_n, C) sequences, targets, classes."""
    if (isinstance(X, np.ndarray) and X.dtype != object and X.ndim == 2 and X.shape[0] != arch.C
            and np.ndim(Y) >= 1 and len(Y) == X.shape[0] > 1):
        raise _seed_form_error(X, arch)
    sequences, single = _cell(X, what, arch.C)
    if arch.task == "regression":
        return sequences, _regression_targets(Y, arch, sequences, single, what), None
    if arch.mode == "sequence":
        raise ValueError(f"Invalid {what}. Sequence-to-sequence classification is not supported; "
                         f"classify whole sequences with {arch.advice}")
    labels = _labels(Y, len(sequences), what)
    if classes is None:
        classes = np.unique(labels)
    if len(classes) != arch.R:
        raise ValueError(f"Invalid {what}. The responses have {len(classes)} classes but the last "
                         f"fullyConnectedLayer has OutputSize {arch.R}")
    index = np.searchsorted(classes, labels)
    unknown = (index >= len(classes)) | (classes[np.minimum(index, len(classes) - 1)] != labels)
    if np.any(unknown):
        raise ValueError(f"Invalid {what}. Labels {sorted(set(labels[unknown].tolist()))} are not among the "
                         f"training classes {classes.tolist()}")
    return sequences, index.astype(np.int64), classes


class _Progress:
    """Builds MATLAB's ``info`` per iteration and prints the verbose table.

    Rows at iteration 1, every VerboseFrequency iterations and the last; the
    validation set is evaluated at iteration 1, every ValidationFrequency
    iterations and the last (NaN in ``info`` elsewhere), as MATLAB does.
    Called by the engine after every iteration, it returns True to end
    training there: validation stopping (``_validation_stop``).
    """

    def __init__(self, opts: TrainingOptions, task: str, total: int, validate: Callable[[], dict] | None,
                 model: nn.Module) -> None:
        self.opts, self.task, self.total, self.validate, self.model = opts, task, total, validate, model
        self.metric = "RMSE" if task == "regression" else "Accuracy"
        names = ["TrainingLoss", f"Training{self.metric}", "BaseLearnRate"]
        names += ["ValidationLoss", f"Validation{self.metric}"] if validate else []
        self.rows: dict[str, list[float]] = {name: [] for name in names}
        val = validate is not None
        self.columns = [("Epoch", ""), ("Iteration", ""), ("Time Elapsed", "(hh:mm:ss)"),
                        ("Mini-batch", self.metric), *[("Validation", self.metric)] * val,
                        ("Mini-batch", "Loss"), *[("Validation", "Loss")] * val, ("Base Learning", "Rate")]
        self.widths = [9, 13, 16] + [14] * (len(self.columns) - 4) + [17]
        self.rule = "|" + "=" * (sum(self.widths) + len(self.widths) - 1) + "|"
        self.best_loss, self.worse = math.inf, 0  # the smallest validation loss; validations since, none smaller
        self.best_state: dict[str, torch.Tensor] | None = None  # the model at best_loss ('best-validation-loss')
        self.output_iteration = 0  # the iteration of the network trainNetwork returns

    def metric_value(self, y_pred: torch.Tensor, y: torch.Tensor) -> float:
        """Mini-batch RMSE, the squared errors summed over the responses (regression), or accuracy in percent."""
        if self.task == "regression":
            # sqrt(sum of squares / (N S)): summed over the R responses, so that RMSE = sqrt(2 half-MSE)
            return float(torch.sqrt(((y_pred - y.reshape(y_pred.shape)) ** 2).mean() * y_pred.shape[-1]))
        return 100.0 * float((y_pred.argmax(-1) == y.long()).double().mean())

    def _line(self, cells: Sequence[str], align: str) -> str:
        return "|" + "|".join(f" {c:{align}{w - 2}} " for c, w in zip(cells, self.widths)) + "|"

    def _validation_stop(self, loss: float, iteration: int) -> bool:
        """MATLAB's 'ValidationPatience': True once the validation loss has been larger than or equal to
        the smallest earlier one ValidationPatience times in a row, counted from the last new minimum
        (trainingOptions page: the number of times the validation loss can be larger than or equal to
        the previously smallest loss before training stops). Keeps the network of the smallest loss for
        'OutputNetwork','best-validation-loss' (the network of that validation's iteration)."""
        if loss < self.best_loss:
            self.best_loss, self.worse = loss, 0
            if self.opts.OutputNetwork == "best-validation-loss":
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.output_iteration = iteration
        else:
            self.worse += 1
        return self.worse >= self.opts.ValidationPatience

    def __call__(self, it: training.IterationInfo) -> bool:
        metric = self.metric_value(it.y_pred, it.y)
        self.rows["TrainingLoss"].append(it.loss)
        self.rows[f"Training{self.metric}"].append(metric)
        self.rows["BaseLearnRate"].append(it.learning_rate)
        if self.opts.OutputNetwork == "last-iteration":
            self.output_iteration = it.iteration
        last = it.iteration == self.total
        scores = None
        if self.validate is not None:
            if it.iteration == 1 or last or it.iteration % self.opts.ValidationFrequency == 0:
                scores = self.validate()
                self.model.train()  # validation switched the model to eval mode mid-training
            self.rows["ValidationLoss"].append(scores["loss"] if scores else math.nan)
            self.rows[f"Validation{self.metric}"].append(scores["metric"] if scores else math.nan)
        stop = scores is not None and self._validation_stop(scores["loss"], it.iteration)
        last = last or stop
        if self.opts.Verbose and (it.iteration == 1 or last or it.iteration % self.opts.VerboseFrequency == 0):
            self._print_row(it, metric, scores, last, stop)
        return stop

    def _print_row(self, it: training.IterationInfo, metric: float, scores: dict | None, last: bool,
                   stop: bool) -> None:
        """The table's row of iteration ``it`` (its header before the first; the closing rule after the last)."""
        if it.iteration == 1:
            device = next(self.model.parameters()).device.type
            print(f"Training on single {'CPU' if device == 'cpu' else 'GPU'}.")
            print("\n".join([self.rule, self._line([top for top, _ in self.columns], "^"),
                             self._line([bottom for _, bottom in self.columns], "^"), self.rule]))
        fmt = "{:.2f}%" if self.task == "classification" else "{:.2f}"
        seconds = int(it.elapsed)
        cells = [str(it.epoch), str(it.iteration),
                 f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}", fmt.format(metric)]
        if self.validate is not None:
            cells.append(fmt.format(scores["metric"]) if scores else "")
        cells.append(f"{it.loss:.4f}")
        if self.validate is not None:
            cells.append(f"{scores['loss']:.4f}" if scores else "")
        cells.append(f"{it.learning_rate:.4f}")
        print(self._line(cells, ">"))
        if last:
            print(self.rule)
            print(f"Training finished: {'Met validation criterion' if stop else 'Max epochs completed'}.")
        sys.stdout.flush()

    def info(self) -> dict[str, object]:
        return {**{k: np.asarray(v) for k, v in self.rows.items()}, "OutputNetworkIteration": self.output_iteration}


@dataclass
class TrainingInfo:
    """MATLAB's ``info`` struct: one value per iteration (NaN where validation did not run).

    Regression: TrainingLoss, TrainingRMSE (MATLAB's sqrt(sum((Y - T).^2) / (N S)):
    squared errors summed over the R responses, averaged over the N observations
    and S time steps; sqrt(2 TrainingLoss) for sequence-to-one). Classification: TrainingLoss,
    TrainingAccuracy (percent). Both: BaseLearnRate, and ValidationLoss,
    ValidationRMSE/ValidationAccuracy when 'ValidationData' was given;
    OutputNetworkIteration, the iteration whose network trainNetwork returned
    (the last, or the best validation's for 'OutputNetwork','best-validation-loss').
    The arrays end at the iteration where validation stopping ended training.
    """

    TrainingLoss: np.ndarray
    BaseLearnRate: np.ndarray
    TrainingRMSE: np.ndarray | None = None
    TrainingAccuracy: np.ndarray | None = None
    ValidationLoss: np.ndarray | None = None
    ValidationRMSE: np.ndarray | None = None
    ValidationAccuracy: np.ndarray | None = None
    OutputNetworkIteration: int = 0


def trainNetwork(X: object, Y: object, layers: Sequence[Layer], options: TrainingOptions, *,
                 seed: int | np.random.Generator = 0,
                 dtype: torch.dtype | np.dtype | str = torch.float32) -> tuple[SeriesNetwork, TrainingInfo]:
    """Train a layer array on MATLAB-layout data as MATLAB's trainNetwork does.

    Args:
        X: a list of N C-by-S sequences (MATLAB's N-by-1 cell array), or one C-by-S matrix.
        Y: regression: N-by-R numeric (OutputMode 'last') or a list of R-by-S
            sequences (OutputMode 'sequence'); classification: N labels.
        layers: [sequenceInputLayer(C), ..., regressionLayer()] or [..., softmaxLayer(), classificationLayer()].
        options: from :func:`trainingOptions`.
        seed: a non-negative int or a ``numpy.random.Generator``; seeds initialisation, shuffling and
            dropout (MATLAB uses its global rng).
        dtype: float32 (MATLAB's single precision) or float64, as a torch or NumPy dtype or a name.
    Returns:
        (net, info): a :class:`SeriesNetwork` and a :class:`TrainingInfo`.
    """
    if not isinstance(options, TrainingOptions):
        raise TypeError(f"options must come from trainingOptions(...), got {type(options).__name__}")
    rng = rng_from_seed(seed)
    dtype = _torch_float(dtype)
    device = _device(options.ExecutionEnvironment)
    model, slots, roles, arch = _build(layers, rng, dtype)
    model.to(device)
    sequences, y, classes = _prepare(X, Y, arch, "training data", None)
    normalize = slots[0]
    if normalize is not None and (options.ResetInputNormalization or not normalize.stats):
        normalize.fit(sequences)
    # Fewer sequences than 'MiniBatchSize' make one mini-batch of all of them, as in MATLAB, whose
    # chickenpox example trains its one sequence with the default MiniBatchSize of 128.
    n = len(sequences)
    batch = min(options.MiniBatchSize, n)
    validate = None
    loss = "half_mse" if arch.task == "regression" else "crossentropy"
    if options.ValidationData is not None:
        val_x, val_y, _ = _prepare(*options.ValidationData, arch, "validation data", classes)
        def validate() -> dict[str, float]:
            y_pred = training.predict(model, val_x, batch_size=batch, padding=options.SequencePaddingDirection,
                                      sequence_length=options.SequenceLength)
            y_pred_t = torch.as_tensor(np.asarray(y_pred))
            y_t = torch.as_tensor(val_y, dtype=y_pred_t.dtype)
            return {"loss": float(training.get_loss(loss)(y_pred_t, y_t)),
                    "metric": progress.metric_value(y_pred_t, y_t)}

    total = options.MaxEpochs * (n // batch)
    progress = _Progress(options, arch.task, total, validate, model)
    config = preset(
        "matlab", loss=loss, epochs=options.MaxEpochs, batch_size=batch, shuffle=options.Shuffle,
        l2=options.L2Regularization, gradient_threshold=options.GradientThreshold,
        gradient_threshold_method=options.GradientThresholdMethod, learning_rate=options.InitialLearnRate,
        dtype="float64" if dtype == torch.float64 else "float32", padding=options.SequencePaddingDirection,
        sequence_length=options.SequenceLength,
        **{field: getattr(options, name)
           for name, field in (_RMSPROP_FIELDS if options.SolverName == "rmsprop" else _SOLVER_FIELDS).items()
           if getattr(options, name) is not None},
    )
    schedule = None
    if options.LearnRateSchedule == "piecewise":
        def schedule(epoch: int) -> float:
            return options.LearnRateDropFactor ** (epoch // options.LearnRateDropPeriod)

    training.fit(model, sequences, y, config=config, optimizer=options.SolverName,
                 l2_factors={name: factor for name, (_, factor) in roles.items()},
                 learnables={name: learnable for name, (learnable, _) in roles.items()},
                 learning_rate_schedule=schedule, seed=rng, verbose=0, callback=progress)
    if progress.best_state is not None:  # 'OutputNetwork','best-validation-loss'
        model.load_state_dict(progress.best_state)
    info = TrainingInfo(**progress.info())
    if options.Plots == "training-progress":
        _plot_progress(info, progress.metric)
    return SeriesNetwork(layers, model, slots, arch, classes), info


def _plot_progress(info: TrainingInfo, metric: str) -> None:
    """MATLAB's training-progress plot, drawn once after training."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    for ax, name in zip(axes, (metric, "Loss")):
        train, val = getattr(info, f"Training{name}"), getattr(info, f"Validation{name}")
        ax.plot(np.arange(1, len(train) + 1), train, label="training")
        if val is not None:
            done = ~np.isnan(val)
            ax.plot(np.flatnonzero(done) + 1, val[done], "k--o", markersize=3, label="validation")
        ax.set_ylabel(name + (" (%)" if name == "Accuracy" else ""))
        ax.legend()
    axes[-1].set_xlabel("Iteration")
    fig.suptitle("Training progress")


# ----------------------------------------------------------------- prediction
_PREDICT_OPTIONS: Spec = {
    "MiniBatchSize": (128, _positive_int),
    "SequenceLength": ("longest", _choice("longest")),
    "SequencePaddingDirection": ("right", _choice("right", "left")),
    "SequencePaddingValue": (0, _zero),
    "ExecutionEnvironment": ("auto", _choice("auto", "cpu", "gpu")),
}


def predict(net: SeriesNetwork, X: object, *args: object, **kwargs: object) -> np.ndarray | list[np.ndarray]:
    """The network's responses (regression) or class scores (classification) for MATLAB-layout X.

    Options: 'MiniBatchSize' (128; sequences are padded with zeros to the longest
    of each mini-batch, which changes their outputs as in MATLAB),
    'SequencePaddingDirection' ('right', or 'left': the zeros first, so that a
    'last' output is each sequence's own last step), 'SequenceLength'
    ('longest'), 'ExecutionEnvironment'.
    Returns an N-by-R (or N-by-K scores) array for OutputMode 'last'; for
    OutputMode 'sequence' a list of R-by-S arrays, or one R-by-S array when X
    is one numeric sequence. The recurrent layers start from the network's
    state (zeros, or what :func:`predictAndUpdateState` left), which stays as it is.
    """
    return _predict("predict", net, X, args, kwargs)[1]


def predictAndUpdateState(net: SeriesNetwork, X: object, *args: object,
                          **kwargs: object) -> tuple[SeriesNetwork, np.ndarray | list[np.ndarray]]:
    """``[updatedNet, Y] = predictAndUpdateState(net, X)``: :func:`predict`, then keep the state.

    The recurrent layers start from ``net``'s state and ``updatedNet`` holds
    their states after the last time step of X (the padded one, for sequences
    of unequal length), one per observation, so that the next call continues
    the sequences: the closed-loop forecast of MATLAB's chickenpox example
    (XTrain, YTrain 1-by-S, the series and the series one step ahead)::

        net = resetState(net)
        net, _ = predictAndUpdateState(net, XTrain)
        Y = np.zeros((1, steps))
        net, Y[:, :1] = predictAndUpdateState(net, YTrain[:, -1:])
        for t in range(1, steps):
            net, Y[:, t : t + 1] = predictAndUpdateState(net, Y[:, t - 1 : t])

    ``net`` itself is unchanged (MATLAB returns a new network), and later
    calls must give the same number of observations until :func:`resetState`.
    Options as for :func:`predict`. Unidirectional layers only: a bilstmLayer
    reads each sequence backwards too, which no later call can continue.
    """
    return _predict("predictAndUpdateState", net, X, args, kwargs, update=True)


def classifyAndUpdateState(net: SeriesNetwork, X: object, *args: object,
                           **kwargs: object) -> tuple[SeriesNetwork, np.ndarray]:
    """``[updatedNet, YPred] = classifyAndUpdateState(net, X)``: :func:`classify` with the state
    carried as by :func:`predictAndUpdateState`."""
    _check_classifier(net)
    updated, scores = predictAndUpdateState(net, X, *args, **kwargs)
    return updated, net.Classes[np.argmax(scores, axis=-1)]


def resetState(net: SeriesNetwork) -> SeriesNetwork:
    """``net = resetState(net)``: the network with its recurrent layers back at their initial (zero) states."""
    _check_network(net)
    reset = copy.copy(net)
    reset._state = None
    return reset


def _check_network(net: object) -> None:
    if not isinstance(net, SeriesNetwork):
        raise TypeError(f"net must be a network from trainNetwork, got {type(net).__name__}")


def _check_classifier(net: object) -> None:
    if not isinstance(net, SeriesNetwork) or net.Classes is None:
        raise TypeError("classify needs a classification network (one trained with classificationLayer)")


def _predict(func: str, net: SeriesNetwork, X: object, args, kwargs, update: bool = False):
    """(the network with the states after X if ``update``, else ``net``; the responses as :func:`predict`)."""
    _check_network(net)
    o = _parse(func, args, kwargs, _PREDICT_OPTIONS)
    net.module.to(_device(o["ExecutionEnvironment"]))
    sequences, single = _cell(X, "data", net._arch.C)
    recurrent = [k for k, m in enumerate(net.module) if isinstance(m, (tl.LSTM, tl.GRU))]
    if update and (not recurrent or any(isinstance(m, tl.Bidirectional) for m in net.module)):
        raise ValueError(f"{func} needs a network with recurrent layers, all unidirectional (lstmLayer, "
                         f"gruLayer): a bilstmLayer reads each sequence backwards too, so no later call can "
                         f"continue its state")
    rows = None if net._state is None else len(next(iter(net._state.values()))[0])  # h's rows
    if rows is not None and rows != len(sequences):
        raise ValueError(f"{func}: the network's state holds {rows} observation(s), from an earlier "
                         f"predictAndUpdateState call, but X has {len(sequences)}; call resetState(net) first")
    states: dict[int, list] = {k: [] for k in recurrent}

    def call(xb: torch.Tensor, rows: slice) -> torch.Tensor:
        for k, module in enumerate(net.module):
            if k not in states:
                xb = module(xb)
                continue
            before = None if net._state is None else _state_rows(net._state[k], rows, xb.device)
            xb, after = module.forward_with_state(xb, before)
            states[k].append(after)
        return xb

    stateful = recurrent and (update or net._state is not None)  # else the layers start from zeros and keep nothing
    out = training.predict(net.module, sequences, batch_size=o["MiniBatchSize"],
                           padding=o["SequencePaddingDirection"], call=call if stateful else None)
    if net._arch.mode == "last":
        responses = np.asarray(out, dtype=np.float64)
    else:
        responses = [np.asarray(r, dtype=np.float64).T for r in out]  # each (R, S)
        responses = responses[0] if single else responses
    if not update:
        return net, responses
    updated = copy.copy(net)
    updated._state = {k: tuple(torch.cat(s) for s in zip(*parts)) for k, parts in states.items()}  # batches joined
    return updated, responses


def _state_rows(state: tl.State, rows: slice, device: torch.device) -> tl.State:
    """The rows ``rows`` of a layer's state, on ``device``."""
    return tuple(s[rows].to(device) for s in state)


def classify(net: SeriesNetwork, X: object, *args: object, **kwargs: object) -> np.ndarray:
    """Predicted labels (the training labels' values), N-by-1 as a 1-D array; options as :func:`predict`."""
    _check_classifier(net)
    scores = predict(net, X, *args, **kwargs)
    return net.Classes[np.argmax(scores, axis=-1)]

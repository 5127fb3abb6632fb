"""lstm_ref.matlab: every MATLAB row of PARITY.md through the front end, argument parsing, layouts.

Networks here are tiny and trained for one or two epochs in float64, so that
the quantities compared (losses, weight updates, outputs) are exact to 1e-9.
"""

import math
import re

import numpy as np
import pytest
import torch

import lstm_ref
from lstm_ref import interop
from lstm_ref import matlab as m

RTOL, ATOL = 1e-9, 1e-12
F64 = torch.float64


def _cell(N, C, S, seed):
    """N random C-by-S sequences (MATLAB's N-by-1 cell array)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((C, S)) for _ in range(N)]


def _lstm_weights(H, C, seed, gates=4):
    """Random learnables in MATLAB's layout, non-zero biases included."""
    rng = np.random.default_rng(seed)
    return {"InputWeights": 0.5 * rng.standard_normal((gates * H, C)),
            "RecurrentWeights": 0.5 * rng.standard_normal((gates * H, H)),
            "Bias": 0.5 * rng.standard_normal((gates * H, 1))}


def _quiet(*args):
    return m.trainingOptions(*args, "Verbose", False)


def _train(X, Y, layers, *args, **kwargs):
    return m.trainNetwork(X, Y, layers, _quiet(*args), dtype=F64, **kwargs)


def _np_lstm_fc(X, lstm, fc, cell="lstm", **options):
    """Independent forward: lstm_ref's NumPy cell, last step, then y = Weights x + Bias."""
    x = np.stack([s.T for s in X])  # (N, S, C)
    params = interop.from_matlab(lstm, cell, **options)
    forward = lstm_ref.lstm_forward if cell == "lstm" else lstm_ref.gru_forward
    kwargs = {"reset_mode": options["reset_mode"]} if cell == "gru" else {}
    out = forward(x, params, **kwargs)[0]  # (N, S, H)
    return out[:, -1] @ fc["Weights"].T + fc["Bias"][:, 0]  # (N, R)


# ----------------------------------------------------------------- defaults
def test_training_options_defaults_are_matlabs():
    o = m.trainingOptions("adam")
    assert (o.InitialLearnRate, o.GradientDecayFactor, o.SquaredGradientDecayFactor, o.Epsilon) == (
        1e-3, 0.9, 0.999, 1e-8)
    assert (o.MaxEpochs, o.MiniBatchSize, o.Shuffle, o.L2Regularization) == (30, 128, "once", 1e-4)
    assert o.GradientThreshold == math.inf and o.GradientThresholdMethod == "l2norm"
    assert (o.SequenceLength, o.SequencePaddingDirection, o.VerboseFrequency) == ("longest", "right", 50)
    assert (o.Plots, o.Verbose, o.Momentum) == ("none", True, None)
    assert (o.ValidationPatience, o.OutputNetwork) == (math.inf, "last-iteration")
    s = m.trainingOptions("sgdm")
    assert (s.InitialLearnRate, s.Momentum, s.Epsilon) == (0.01, 0.9, None)


def test_layer_defaults_are_matlabs():
    lstm = m.lstmLayer(8)
    assert lstm.OutputMode == "sequence"
    assert (lstm.InputWeightsInitializer, lstm.RecurrentWeightsInitializer, lstm.BiasInitializer) == (
        "glorot", "orthogonal", "unit-forget-gate")
    assert (lstm.BiasL2Factor, lstm.InputWeightsL2Factor) == (0.0, 1.0)
    gru = m.gruLayer(8)
    assert gru.ResetGateMode == "after-multiplication" and gru.BiasInitializer == "zeros"
    for layer in (lstm, gru, m.bilstmLayer(8)):
        assert (layer.StateActivationFunction, layer.GateActivationFunction) == ("tanh", "sigmoid")
    assert m.fullyConnectedLayer(3).BiasL2Factor == 0.0


# ------------------------------------------------------------ argument forms
def test_name_value_pairs_are_case_insensitive_and_keywords_work():
    assert m.lstmLayer(64, "outputmode", "LAST").OutputMode == "last"
    assert m.lstmLayer(64, OutputMode="last").OutputMode == "last"
    o = m.trainingOptions("Adam", "maxepochs", 10, "MINIBATCHSIZE", 32, "Shuffle", "every-epoch")
    assert (o.SolverName, o.MaxEpochs, o.MiniBatchSize, o.Shuffle) == ("adam", 10, 32, "every-epoch")
    assert m.trainingOptions("adam", "MaxEpochs", 5, "MaxEpochs", 7).MaxEpochs == 7  # the last pair wins
    # Every MATLAB number is a double: a computed size such as N/4 is a whole float, taken as an int.
    o = m.trainingOptions("adam", "MaxEpochs", 1000 / 100, "MiniBatchSize", np.float64(32.0))
    assert (o.MaxEpochs, o.MiniBatchSize) == (10, 32) and type(o.MiniBatchSize) is int
    assert m.lstmLayer(8.0).NumHiddenUnits == 8


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: m.lstmLayer(64, "OutputMod", "last"), ValueError,
         r"'OutputMod' is not a recognized parameter\. Valid names are: Name, OutputMode, "),
        (lambda: m.trainingOptions("adam", "Momentum", 0.9), ValueError,
         r"'Momentum' is not a recognized parameter.*Epsilon"),
        (lambda: m.trainingOptions("adam", "MaxEpochs"), ValueError, "must come in pairs"),
        (lambda: m.trainingOptions("adam", 10, "MaxEpochs"), TypeError, "option name"),
        (lambda: m.trainingOptions("adam", "MaxEpochs", 0), ValueError, "'MaxEpochs' must be a positive integer"),
        (lambda: m.trainingOptions("adam", "Shuffle", "always"), ValueError, "'Shuffle' must be one of"),
        (lambda: m.trainingOptions("rmsprop", "Momentum", 0.9), ValueError,
         r"'Momentum' is not a recognized parameter"),
        (lambda: m.trainingOptions("lbfgs"), ValueError, "solverName must be 'adam', 'sgdm' or 'rmsprop'"),
        (lambda: m.trainingOptions("adam", "SequenceLength", 20), ValueError,
         r"'SequenceLength' as a number of time steps \(20: split .* is not supported; use 'longest' or 'shortest'"),
        (lambda: m.trainingOptions("adam", "SequenceLength", "medium"), ValueError,
         "'SequenceLength' must be 'longest', 'shortest' or a positive integer"),
        (lambda: m.trainingOptions("adam", "ValidationPatience", 0), ValueError, "'ValidationPatience' must be a"),
        (lambda: m.trainingOptions("adam", "OutputNetwork", "best-validation-loss"), ValueError,
         "'OutputNetwork','best-validation-loss' needs 'ValidationData'"),
        (lambda: m.lstmLayer(4, "StateActivationFunction", "relu"), ValueError,
         r"^lstmLayer: 'StateActivationFunction' must be one of 'tanh', 'softsign', got 'relu'$"),
        (lambda: m.gruLayer(4, "GateActivationFunction", "hard_sigmoid"), ValueError,
         r"^gruLayer: 'GateActivationFunction' must be one of 'sigmoid', 'hard-sigmoid', got 'hard_sigmoid'$"),
        (lambda: m.trainingOptions("adam", "ValidationData", 3), ValueError, "ValidationData"),
        (lambda: m.lstmLayer(0), ValueError, "^lstmLayer: 'numHiddenUnits' must be a positive integer, got 0$"),
        (lambda: m.gruLayer(2.5), ValueError, "^gruLayer: 'numHiddenUnits' must be a positive integer, got 2.5$"),
        (lambda: m.fullyConnectedLayer(0), ValueError, "^fullyConnectedLayer: 'outputSize' must be a positive"),
        (lambda: m.trainingOptions("adam", "MiniBatchSize", 32.5), ValueError, "'MiniBatchSize' must be a positive"),
        (lambda: m.lstmLayer(4, "Bias", np.zeros((15, 1))), ValueError, "'Bias' must be 16-by-1"),
        (lambda: m.gruLayer(4, "ResetGateMode", "after"), ValueError, "'ResetGateMode' must be one of"),
        (lambda: m.gruLayer(4, "ResetGateMode", "recurrent-bias-after-multiplication", "Bias", np.zeros((12, 1))),
         ValueError, "'Bias' must be 24-by-1"),
        (lambda: m.dropoutLayer(1.0), ValueError, "probability"),
        (lambda: m.sequenceInputLayer(1, "Normalization", "l2"), ValueError, "'Normalization'"),
        (lambda: m.trainingOptions("adam", "InitialLearnRate", math.inf), ValueError,
         r"^trainingOptions: 'InitialLearnRate' must be a finite positive number, got inf$"),
        (lambda: m.trainingOptions("adam", "L2Regularization", math.inf), ValueError,
         r"^trainingOptions: 'L2Regularization' must be a finite nonnegative number, got inf$"),
        (lambda: m.trainingOptions("rmsprop", "Epsilon", math.inf), ValueError,
         r"^trainingOptions: 'Epsilon' must be a finite positive number, got inf$"),
        (lambda: m.trainingOptions("adam", "LearnRateDropFactor", 5), ValueError,
         r"^trainingOptions: 'LearnRateDropFactor' must be a number in \[0, 1\], got 5$"),
        (lambda: m.trainingOptions("adam", "GradientThreshold", -math.inf), ValueError,
         r"^trainingOptions: 'GradientThreshold' must be a positive number \(Inf allowed\), got -inf$"),
    ],
)
def test_bad_arguments_get_matlab_like_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_only_gradient_threshold_may_be_inf_and_the_drop_factor_may_be_1():
    o = m.trainingOptions("adam", "GradientThreshold", math.inf, "LearnRateDropFactor", 1)
    assert (o.GradientThreshold, o.LearnRateDropFactor) == (math.inf, 1.0)


@pytest.mark.parametrize(("keywords", "error", "message"), [
    ({"seed": True}, TypeError, "seed must be an int or a numpy.random.Generator, got bool"),
    ({"seed": 1.5}, TypeError, "seed must be an int or a numpy.random.Generator, got float"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
    ({"dtype": torch.float16}, TypeError, "dtype must be float32 or float64 (the backends' dtypes), got torch.float16"),
    ({"dtype": torch.int32}, TypeError, "dtype must be float32 or float64 (the backends' dtypes), got torch.int32"),
])
def test_train_network_checks_its_seed_and_dtype(keywords, error, message):
    layers = [m.sequenceInputLayer(1), m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    with pytest.raises(error, match=re.escape(message)):
        m.trainNetwork(_cell(4, 1, 3, 0), np.zeros((4, 1)), layers, _quiet("adam", "MaxEpochs", 1), **keywords)


@pytest.mark.parametrize("dtype", [np.float64, "float64", torch.float64, np.dtype(np.float32), "float32"])
def test_train_network_takes_float_dtypes_by_numpy_torch_or_name(dtype):
    layers = [m.sequenceInputLayer(1), m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    net, _ = m.trainNetwork(_cell(4, 1, 3, 0), np.zeros((4, 1)), layers, _quiet("adam", "MaxEpochs", 1),
                            dtype=dtype)
    expected = torch.float32 if "32" in str(dtype) else torch.float64
    assert all(p.dtype == expected for p in net.module.parameters())


@pytest.mark.parametrize(("Y", "kind"), [
    (np.zeros((4, 1)) + 1j, "complex128"), (np.full((4, 1), "1.5"), "<U3"), (np.zeros((4, 1), dtype=object), "object"),
])
def test_complex_or_text_regression_responses_are_refused_not_cast_or_parsed(Y, kind):
    layers = [m.sequenceInputLayer(1), m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    with pytest.raises(ValueError, match=re.escape(f"Invalid training data. Responses (Y) must hold real numbers "
                                                   f"(bool, int or float), got dtype {kind}")):
        _train(_cell(4, 1, 3, 0), Y, layers, "adam", "MaxEpochs", 1)
    sequence_layers = [m.sequenceInputLayer(1), m.lstmLayer(2), m.fullyConnectedLayer(1), m.regressionLayer()]
    with pytest.raises(ValueError, match=re.escape(f"Responses (Y) must hold real numbers (bool, int or float), "
                                                   f"got dtype {kind}")):
        _train(_cell(4, 1, 3, 0), [np.repeat(Y[k], 3)[None] for k in range(4)], sequence_layers, "adam",
               "MaxEpochs", 1)


# ------------------------------------------------------------ data layouts
def test_the_seed_call_as_written_is_rejected_with_the_exact_advice():
    X = np.random.default_rng(0).standard_normal((1000, 10))
    y = X.sum(axis=1, keepdims=True)
    layers = [m.sequenceInputLayer(1), m.lstmLayer(64), m.fullyConnectedLayer(1), m.regressionLayer()]
    options = m.trainingOptions("adam", "MaxEpochs", 10, "MiniBatchSize", 32)
    with pytest.raises(ValueError) as err:
        m.trainNetwork(X, y, layers, options)
    text = str(err.value)
    assert "ONE sequence with 1000 channels and 10 time steps" in text
    assert "XTrain = num2cell(X, 2)" in text and "a 1000x1 cell array" in text and "1-by-10" in text
    assert "lstmLayer(64, 'OutputMode', 'last')" in text


def test_cell_input_with_default_sequence_output_asks_for_output_mode_last():
    X = _cell(40, 1, 5, 0)
    layers = [m.sequenceInputLayer(1), m.gruLayer(7), m.fullyConnectedLayer(1), m.regressionLayer()]
    with pytest.raises(ValueError, match=r"cell array of R-by-S.*gruLayer\(7, 'OutputMode', 'last'\)"):
        _train(X, np.zeros((40, 1)), layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 8)


@pytest.mark.parametrize(
    ("X", "Y", "message"),
    [
        ([np.zeros((2, 5))] * 8, np.zeros((8, 1)), r"must have 1 channel\(s\).*sequence 0 is 2x5"),
        ([np.zeros(5)] * 8, np.zeros((8, 1)), r"x\[None, :\] for one channel"),
        ([np.zeros((1, 0))] * 8, np.zeros((8, 1)), "0 time steps"),
        ([np.full((1, 5), np.nan)] * 8, np.zeros((8, 1)), "NaN"),
        ([np.zeros((1, 5))] * 8, np.array([[0.0]] * 5 + [[np.nan]] + [[0.0]] * 2),
         r"^Invalid training data\. Responses \(Y\) must not contain NaN or Inf; observation 5 does$"),
        ([np.zeros((1, 5))] * 8, np.zeros((8, 2)), r"Responses must be 8-by-1"),
        ([np.zeros((1, 5))] * 8, [np.zeros((1, 5))] * 8, "N-by-R numeric matrix, not a cell array"),
        (np.zeros((2, 3, 4)), np.zeros((1, 1)), "C-by-S matrix, got size 2x3x4"),
        ("abc", np.zeros((1, 1)), "list of C-by-S"),
    ],
)
def test_wrong_layouts_get_clear_errors(X, Y, message):
    layers = [m.sequenceInputLayer(1), m.lstmLayer(3, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    with pytest.raises((ValueError, TypeError), match=message):
        _train(X, Y, layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 4)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([m.lstmLayer(3), m.regressionLayer()], "first layer must be sequenceInputLayer"),
        ([m.sequenceInputLayer(1), m.lstmLayer(3)], "last layer must be regressionLayer or classificationLayer"),
        ([m.sequenceInputLayer(1), m.lstmLayer(3, "OutputMode", "last"), m.fullyConnectedLayer(2),
          m.classificationLayer()], "Missing softmax layer"),
        ([m.sequenceInputLayer(1), m.lstmLayer(3, "OutputMode", "last"), m.lstmLayer(3),
          m.regressionLayer()], "needs sequence input"),
    ],
)
def test_bad_layer_arrays_are_rejected(layers, message):
    with pytest.raises(ValueError, match=message):
        _train(_cell(8, 1, 4, 0), np.zeros((8, 1)), layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 4)


def test_num2cell_rows_and_columns():
    A = np.arange(6.0).reshape(2, 3)
    rows, cols = m.num2cell(A, 2), m.num2cell(A, 1)
    assert [r.shape for r in rows] == [(1, 3)] * 2 and [c.shape for c in cols] == [(2, 1)] * 3
    np.testing.assert_array_equal(rows[1], A[1:2])
    with pytest.raises(ValueError, match="dim must be 1 or 2"):
        m.num2cell(A, 3)


# ------------------------------------------------------- the loss and the steps
def test_regression_loss_is_half_mse_summed_over_responses():
    """One iteration over the whole batch: info.TrainingLoss[0] = mean_n 0.5 * sum_r (t - y)^2 at the initial
    weights, and info.TrainingRMSE[0] = sqrt(mean_n sum_r (t - y)^2) = sqrt(2 TrainingLoss[0])."""
    X, H, R = _cell(12, 2, 6, 1), 5, 2
    lstm = _lstm_weights(H, 2, 2)
    fc = {"Weights": np.random.default_rng(3).standard_normal((R, H)), "Bias": np.array([[0.3], [-0.2]])}
    Y = np.random.default_rng(4).standard_normal((12, R))
    layers = [m.sequenceInputLayer(2), m.lstmLayer(H, "OutputMode", "last", **lstm),
              m.fullyConnectedLayer(R, **fc), m.regressionLayer()]
    _, info = _train(X, Y, layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 12)
    y0 = _np_lstm_fc(X, lstm, fc)
    expected = 0.5 * ((Y - y0) ** 2).sum(axis=1).mean()
    np.testing.assert_allclose(info.TrainingLoss[0], expected, rtol=RTOL, err_msg="half-MSE loss")
    np.testing.assert_allclose(info.TrainingRMSE[0], np.sqrt(((Y - y0) ** 2).sum(axis=1).mean()), rtol=RTOL,
                               err_msg="mini-batch RMSE, summed over the responses as MATLAB's")


def test_l2_regularisation_exempts_biases():
    """sgdm without momentum, one step: the L2 term moves every weight by -lr * lambda * w and no bias."""
    X, Y, H = _cell(10, 1, 4, 5), np.random.default_rng(6).standard_normal((10, 1)), 3
    lstm, fc = _lstm_weights(H, 1, 7), {"Weights": np.ones((1, H)), "Bias": np.array([[0.5]])}
    nets = {}
    for lam in (0.0, 0.1):
        layers = [m.sequenceInputLayer(1), m.lstmLayer(H, "OutputMode", "last", **lstm),
                  m.fullyConnectedLayer(1, **fc), m.regressionLayer()]
        nets[lam], _ = _train(X, Y, layers, "sgdm", "Momentum", 0, "InitialLearnRate", 0.5,
                              "L2Regularization", lam, "MaxEpochs", 1, "MiniBatchSize", 10)
    with_l2, without = nets[0.1].Layers, nets[0.0].Layers
    for k, name, initial in [(1, "InputWeights", lstm["InputWeights"]), (1, "RecurrentWeights",
                             lstm["RecurrentWeights"]), (2, "Weights", fc["Weights"])]:
        np.testing.assert_allclose(getattr(with_l2[k], name) - getattr(without[k], name), -0.5 * 0.1 * initial,
                                   rtol=1e-7, atol=ATOL, err_msg=f"L2 step of {name}")
    for k in (1, 2):
        np.testing.assert_allclose(with_l2[k].Bias, without[k].Bias, rtol=0, atol=ATOL,
                                   err_msg="biases must be exempt (BiasL2Factor 0)")


def test_1000_samples_at_32_give_31_iterations_per_epoch():
    X, Y = m.num2cell(np.zeros((1000, 3)), 2), np.zeros((1000, 1))
    layers = [m.sequenceInputLayer(1), m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    _, info = _train(X, Y, layers, "adam", "MaxEpochs", 2, "MiniBatchSize", 32)
    assert info.TrainingLoss.shape == (62,) and info.TrainingRMSE.shape == (62,)


def _per_batch_losses(shuffle):
    """Iteration losses over 2 epochs with a negligible learning rate: they identify each mini-batch's samples."""
    X, Y = _cell(40, 1, 3, 8), np.random.default_rng(9).standard_normal((40, 1))
    layers = [m.sequenceInputLayer(1), m.lstmLayer(4, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    _, info = _train(X, Y, layers, "sgdm", "InitialLearnRate", 1e-300, "MaxEpochs", 2, "MiniBatchSize", 12,
                     "Shuffle", shuffle)
    return info.TrainingLoss.reshape(2, 3)  # (epochs, iterations per epoch): 40 // 12 = 3, 4 samples discarded


def test_shuffle_once_reuses_one_permutation():
    once, never, every = (_per_batch_losses(s) for s in ("once", "never", "every-epoch"))
    np.testing.assert_array_equal(once[0], once[1], err_msg="'once': epoch 2 must see the same mini-batches")
    np.testing.assert_array_equal(never[0], never[1])
    assert not np.allclose(once[0], never[0]), "'once' must permute (it gave the unshuffled batches)"
    assert not np.allclose(every[0], every[1]), "'every-epoch' must draw a new permutation"


def _one_step_regression(seed):
    """8 sequences with targets far off, and a fixed-weight LSTM(3) + FC(1) regression net:
    (X, Y, lstm weights, fc weights, layers)."""
    X, Y, H = _cell(8, 1, 4, seed), 100 * np.ones((8, 1)), 3
    lstm = _lstm_weights(H, 1, seed + 1)
    fc = {"Weights": np.ones((1, H)), "Bias": np.zeros((1, 1))}
    layers = [m.sequenceInputLayer(1), m.lstmLayer(H, "OutputMode", "last", **lstm), m.fullyConnectedLayer(1, **fc),
              m.regressionLayer()]
    return X, Y, lstm, fc, layers


@pytest.mark.parametrize(("make", "options", "gates", "bias_gates"), [
    (m.lstmLayer, (), 4, 4), (m.bilstmLayer, (), 8, 8),
    (m.gruLayer, ("ResetGateMode", "recurrent-bias-after-multiplication"), 3, 6)])
def test_gradient_threshold_l2norm_clips_each_matlab_learnable(make, options, gates, bias_gates):
    """sgdm, no momentum, no L2, threshold 1e-3: every learnable moves by exactly lr * threshold in norm, as
    MATLAB clips learnable by learnable: a bilstmLayer's InputWeights, RecurrentWeights and Bias (both
    directions in each) and a GRU's 6H-by-1 Bias (its recurrent bias included) each as one matrix."""
    X, Y, H = _cell(8, 1, 4, 10), 100 * np.ones((8, 1)), 3
    rng = np.random.default_rng(11)
    rec = {"InputWeights": 0.5 * rng.standard_normal((gates * H, 1)),
           "RecurrentWeights": 0.5 * rng.standard_normal((gates * H, H)),
           "Bias": 0.5 * rng.standard_normal((bias_gates * H, 1))}
    fc = {"Weights": np.ones((1, (2 if make is m.bilstmLayer else 1) * H)), "Bias": np.zeros((1, 1))}
    layers = [m.sequenceInputLayer(1), make(H, "OutputMode", "last", *options, **rec),
              m.fullyConnectedLayer(1, **fc), m.regressionLayer()]
    net, _ = _train(X, Y, layers, "sgdm", "Momentum", 0, "InitialLearnRate", 0.1, "L2Regularization", 0,
                    "GradientThreshold", 1e-3, "MaxEpochs", 1, "MiniBatchSize", 8)
    moved = [getattr(net.Layers[1], k) - v for k, v in rec.items()] + [net.Layers[2].Weights - fc["Weights"]]
    np.testing.assert_allclose([np.linalg.norm(d) for d in moved], 0.1 * 1e-3, rtol=1e-6,
                               err_msg="clipping learnable by learnable ('l2norm')")


def test_rmsprop_first_step_is_lr_over_sqrt_one_minus_decay():
    """rmsprop, one step from v = 0: v = (1 - rho) g^2, so each weight moves by lr / sqrt(1 - rho) (eps 1e-8 aside)."""
    X, Y, lstm, fc, layers = _one_step_regression(12)
    assert m.trainingOptions("rmsprop").SquaredGradientDecayFactor == 0.9
    net, _ = _train(X, Y, layers, "rmsprop", "SquaredGradientDecayFactor", 0.5, "InitialLearnRate", 0.01,
                    "L2Regularization", 0, "MaxEpochs", 1, "MiniBatchSize", 8)
    moved = np.abs(np.concatenate([(net.Layers[2].Weights - fc["Weights"]).ravel(),
                                   (net.Layers[2].Bias - fc["Bias"]).ravel()]))
    np.testing.assert_allclose(moved, 0.01 / np.sqrt(0.5), rtol=1e-6, err_msg="rmsprop first step")


def test_piecewise_learn_rate_schedule():
    X, Y = _cell(8, 1, 3, 12), np.zeros((8, 1))
    layers = [m.sequenceInputLayer(1), m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    _, info = _train(X, Y, layers, "adam", "InitialLearnRate", 0.01, "LearnRateSchedule", "piecewise",
                     "LearnRateDropFactor", 0.5, "LearnRateDropPeriod", 2, "MaxEpochs", 5, "MiniBatchSize", 4)
    np.testing.assert_allclose(info.BaseLearnRate, np.repeat([0.01, 0.01, 0.005, 0.005, 0.0025], 2), rtol=1e-12)


# ------------------------------------------------------------- initialisers
@pytest.mark.parametrize(("make", "directions"), [(m.lstmLayer, 1), (m.bilstmLayer, 2)])
def test_lstm_initial_weights_glorot_orthogonal_unit_forget_gate(make, directions):
    """MATLAB's initial learnables; a bilstmLayer's InputWeights is ONE 8H-by-C matrix (Glorot over C + 8H, one QR)."""
    C, H = 4, 8
    rows = directions * 4 * H
    layers = [m.sequenceInputLayer(C), make(H, "OutputMode", "last"), m.fullyConnectedLayer(1), m.regressionLayer()]
    net, _ = _train(_cell(4, C, 2, 13), np.zeros((4, 1)), layers, "sgdm", "InitialLearnRate", 1e-300,
                    "MaxEpochs", 1, "MiniBatchSize", 4)
    lstm = net.Layers[1]
    assert lstm.InputWeights.shape == (rows, C) and lstm.RecurrentWeights.shape == (rows, H)
    assert lstm.Bias.shape == (rows, 1) and lstm.InputSize == C
    np.testing.assert_allclose(lstm.Bias[:, 0], np.tile(np.repeat([0.0, 1.0, 0.0, 0.0], H), directions),
                               rtol=0, atol=1e-200, err_msg="unit-forget-gate bias: rows i, f, g, o = 0, 1, 0, 0")
    bound = math.sqrt(6 / (C + rows))
    assert 0.9 * bound < np.abs(lstm.InputWeights).max() <= bound, f"Glorot bound sqrt(6/(C+{rows // H}H))"
    np.testing.assert_allclose(lstm.RecurrentWeights.T @ lstm.RecurrentWeights, np.eye(H), atol=1e-12,
                               err_msg=f"orthogonal RecurrentWeights ({rows // H}H-by-H, orthonormal columns)")


@pytest.mark.parametrize(("mode", "bias_rows"), [("after-multiplication", 3), ("before-multiplication", 3),
                                                 ("recurrent-bias-after-multiplication", 6)])
def test_gru_reset_placements_and_bias_sizes(mode, bias_rows):
    """Bias 3H (6H with a recurrent bias), and predict equals lstm_ref's NumPy GRU of the same placement."""
    C, H = 2, 4
    rng = np.random.default_rng(14)
    gru = {"InputWeights": rng.standard_normal((3 * H, C)), "RecurrentWeights": rng.standard_normal((3 * H, H)),
           "Bias": rng.standard_normal((bias_rows * H, 1))}
    fc = {"Weights": rng.standard_normal((1, H)), "Bias": np.array([[0.1]])}
    X = _cell(6, C, 5, 15)
    layers = [m.sequenceInputLayer(C), m.gruLayer(H, "OutputMode", "last", "ResetGateMode", mode, **gru),
              m.fullyConnectedLayer(1, **fc), m.regressionLayer()]
    net, _ = _train(X, np.zeros((6, 1)), layers, "sgdm", "InitialLearnRate", 1e-300, "MaxEpochs", 1,
                    "MiniBatchSize", 6)
    learned = net.Layers[1]
    assert learned.Bias.shape == (bias_rows * H, 1) and learned.InputWeights.shape == (3 * H, C)
    weights = {k: getattr(learned, k) for k in gru}
    expected = _np_lstm_fc(X, weights, fc, cell="gru", reset_mode=mode)
    np.testing.assert_allclose(m.predict(net, X), expected, rtol=1e-9, atol=ATOL, err_msg=f"GRU {mode}")


def test_gru_placements_differ():
    rng = np.random.default_rng(16)
    gru = {"InputWeights": rng.standard_normal((12, 1)), "RecurrentWeights": rng.standard_normal((12, 4)),
           "Bias": rng.standard_normal((12, 1))}
    X = _cell(3, 1, 5, 17)
    outs = [_np_lstm_fc(X, gru, {"Weights": np.ones((1, 4)), "Bias": np.zeros((1, 1))}, cell="gru", reset_mode=mode)
            for mode in ("after-multiplication", "before-multiplication")]
    assert not np.allclose(*outs), "the two placements must give different outputs on the same weights"


# ------------------------------------------------------- learnables and outputs
def test_layers_expose_weights_in_matlab_layout_equal_to_interop():
    C, H = 2, 3
    layers = [m.sequenceInputLayer(C), m.lstmLayer(H, "OutputMode", "last"), m.fullyConnectedLayer(2),
              m.regressionLayer()]
    net, _ = _train(_cell(8, C, 4, 18), np.ones((8, 2)), layers, "adam", "MaxEpochs", 2, "MiniBatchSize", 4)
    module = net.module[0]
    params = {k: v.detach().numpy() for k, v in module.named_parameters()}
    lstm = net.Layers[1]
    np.testing.assert_array_equal(lstm.InputWeights, params["W"].T)  # (4H, C), rows i, f, g, o
    np.testing.assert_array_equal(lstm.RecurrentWeights, params["U"].T)
    np.testing.assert_array_equal(lstm.Bias, params["b"][:, None])
    for name, value in interop.to_matlab(params, "lstm").items():
        np.testing.assert_array_equal(getattr(lstm, name), value, err_msg=f"{name} vs interop.to_matlab")
    fc = net.Layers[2]
    assert fc.Weights.shape == (2, H) and fc.Bias.shape == (2, 1) and fc.InputSize == H
    x = np.stack([s.T for s in _cell(5, C, 4, 19)])
    h = lstm_ref.lstm_forward(x, interop.from_matlab({"InputWeights": lstm.InputWeights, "RecurrentWeights":
                              lstm.RecurrentWeights, "Bias": lstm.Bias}))[0][:, -1]
    np.testing.assert_allclose(m.predict(net, [s.T for s in x]), h @ fc.Weights.T + fc.Bias[:, 0], rtol=1e-9)


def test_bilstm_last_is_the_last_step_of_the_concatenated_sequence():
    """Forward half: state after the whole sequence; backward half: after reading only the last step."""
    C, H = 2, 3
    layers = [m.sequenceInputLayer(C), m.bilstmLayer(H, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    X = _cell(6, C, 5, 20)
    net, _ = _train(X, np.ones((6, 1)), layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 3)
    bi = net.Layers[1]
    assert bi.InputWeights.shape == (8 * H, C) and bi.RecurrentWeights.shape == (8 * H, H)
    assert bi.Bias.shape == (8 * H, 1)
    halves = [interop.from_matlab({k: np.split(getattr(bi, k), 2)[d] for k in ("InputWeights", "RecurrentWeights",
                                   "Bias")}) for d in (0, 1)]
    x = np.stack([s.T for s in X])  # (N, S, C)
    out = lstm_ref.bidirectional_forward("lstm", x, *halves)[0]  # (N, S, 2H)
    fc = net.Layers[2]
    np.testing.assert_allclose(m.predict(net, X), out[:, -1] @ fc.Weights.T + fc.Bias[:, 0], rtol=1e-9)
    backward_one_step = lstm_ref.lstm_forward(x[:, -1:], halves[1])[0][:, 0]
    np.testing.assert_allclose(out[:, -1, H:], backward_one_step, rtol=1e-12)


def test_sequence_to_sequence_regression_and_single_sequence_layout():
    """One C-by-S numeric sequence with R-by-S responses (MATLAB's forecasting layout)."""
    series = np.sin(np.linspace(0, 6, 41))[None, :]  # 1-by-41
    layers = [m.sequenceInputLayer(1), m.lstmLayer(4), m.fullyConnectedLayer(1), m.regressionLayer()]
    net, info = _train(series[:, :-1], series[:, 1:], layers, "adam", "MaxEpochs", 3, "MiniBatchSize", 1)
    assert info.TrainingLoss.shape == (3,)
    out = m.predict(net, series[:, :-1])
    assert out.shape == (1, 40)
    outs = m.predict(net, [series[:, :-1], series[:, :10]])
    assert [o.shape for o in outs] == [(1, 40), (1, 10)]
    np.testing.assert_allclose(outs[1], out[:, :10], rtol=1e-9, err_msg="a causal network's prefix outputs")


def test_classification_info_classify_and_validation():
    rng = np.random.default_rng(21)
    labels = np.array(["high", "low"])[rng.integers(0, 2, 30)]
    X = [rng.standard_normal((1, 4)) + (2 if lab == "high" else -2) for lab in labels]
    layers = [m.sequenceInputLayer(1), m.lstmLayer(4, "OutputMode", "last"), m.fullyConnectedLayer(2),
              m.softmaxLayer(), m.classificationLayer()]
    net, info = _train(X, labels, layers, "adam", "InitialLearnRate", 0.05, "MaxEpochs", 6, "MiniBatchSize", 10,
                       "ValidationData", (X[:12], labels[:12]), "ValidationFrequency", 4)
    assert net.Classes.tolist() == ["high", "low"] and net.Layers[-1].Classes.tolist() == ["high", "low"]
    assert info.TrainingAccuracy.shape == (18,) and info.TrainingRMSE is None
    assert np.all((info.TrainingAccuracy >= 0) & (info.TrainingAccuracy <= 100))
    validated = np.flatnonzero(~np.isnan(info.ValidationLoss)) + 1
    np.testing.assert_array_equal(validated, [1, 4, 8, 12, 16, 18])
    scores = m.predict(net, X)
    assert scores.shape == (30, 2)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-12)
    predicted = m.classify(net, X, "MiniBatchSize", 7)
    np.testing.assert_array_equal(predicted, net.Classes[scores.argmax(axis=1)])
    assert (predicted == labels).mean() > 0.9
    with pytest.raises(ValueError, match=r"Labels \['medium'\] are not among the training classes"):
        _train(X, labels, layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 10,
               "ValidationData", (X[:2], np.array(["medium", "low"])))


def test_verbose_table_has_matlabs_columns_and_rows(capsys):
    X, Y = _cell(40, 1, 3, 22), np.zeros((40, 1))
    layers = [m.sequenceInputLayer(1), m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    m.trainNetwork(X, Y, layers, m.trainingOptions("adam", "MaxEpochs", 12, "MiniBatchSize", 8,
                                                   "VerboseFrequency", 25), dtype=F64)
    out = capsys.readouterr().out
    for column in ("Epoch", "Iteration", "Time Elapsed", "(hh:mm:ss)", "Mini-batch", "RMSE", "Loss",
                   "Base Learning"):
        assert column in out, f"verbose table lacks {column!r}"
    rows = [line.split("|")[1:3] for line in out.splitlines() if line.startswith("|") and line[2:9].strip().isdigit()]
    assert [int(it) for _, it in rows] == [1, 25, 50, 60], "rows at iteration 1, every 25, and the last"
    assert "Training finished: Max epochs completed." in out


def test_training_progress_plot_draws_loss_and_rmse_per_iteration():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, Y = _cell(16, 1, 3, 24), np.zeros((16, 1))
    layers = [m.sequenceInputLayer(1), m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    before = set(plt.get_fignums())
    _, info = _train(X, Y, layers, "adam", "MaxEpochs", 3, "MiniBatchSize", 4, "Plots", "training-progress")
    (new,) = set(plt.get_fignums()) - before
    fig = plt.figure(new)
    rmse_axis, loss_axis = fig.axes
    np.testing.assert_array_equal(rmse_axis.lines[0].get_ydata(), info.TrainingRMSE)
    np.testing.assert_array_equal(loss_axis.lines[0].get_ydata(), info.TrainingLoss)
    plt.close(fig)


def test_left_padding_reads_the_zeros_first_in_training_and_prediction():
    """'SequencePaddingDirection','left' is zero columns before each shorter sequence, in
    trainNetwork's mini-batches and in predict's."""
    rng = np.random.default_rng(11)
    X = [rng.standard_normal((2, S)) for S in (3, 6, 4, 6, 2)]
    by_hand = [np.hstack([np.zeros((2, 6 - x.shape[1])), x]) for x in X]  # all 2-by-6
    y = rng.standard_normal((5, 1))
    layers = [m.sequenceInputLayer(2), m.lstmLayer(3, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    options = ("adam", "MaxEpochs", 2, "MiniBatchSize", 5, "Shuffle", "never")
    left, _ = _train(X, y, layers, *options, "SequencePaddingDirection", "left")
    padded, _ = _train(by_hand, y, layers, *options)
    for a, b in zip(left.Layers, padded.Layers):
        if isinstance(a, m.LSTMLayer):
            np.testing.assert_allclose(a.RecurrentWeights, b.RecurrentWeights, rtol=RTOL, atol=ATOL)
    predicted = m.predict(left, X, "SequencePaddingDirection", "left")
    np.testing.assert_allclose(predicted, m.predict(left, by_hand), rtol=RTOL, atol=ATOL)
    assert not np.allclose(predicted, m.predict(left, X))  # right padding reads the zeros last


NORMALIZED = {  # the normalization by hand, from per-channel statistics over every time step
    "zerocenter": lambda x, v: x - v.mean(0)[:, None],
    "zscore": lambda x, v: (x - v.mean(0)[:, None]) / v.std(0)[:, None],
    "rescale-symmetric": lambda x, v: 2 * (x - v.min(0)[:, None]) / (v.max(0) - v.min(0))[:, None] - 1,
    "rescale-zero-one": lambda x, v: (x - v.min(0)[:, None]) / (v.max(0) - v.min(0))[:, None],
}


@pytest.mark.parametrize("kind", NORMALIZED)
def test_input_normalization_is_the_training_datas_statistics_applied_to_every_step(kind):
    rng = np.random.default_rng(12)
    X = [rng.standard_normal((2, 5)) * [[3.0], [0.5]] + [[10.0], [-2.0]] for _ in range(6)]
    values = np.concatenate([x.T for x in X])  # every time step, (30, C)
    y = rng.standard_normal((6, 1))

    def layers(normalization):
        return [m.sequenceInputLayer(2, "Normalization", normalization), m.lstmLayer(3, "OutputMode", "last"),
                m.fullyConnectedLayer(1), m.regressionLayer()]

    options = ("adam", "MaxEpochs", 2, "MiniBatchSize", 3, "Shuffle", "never")
    net, _ = _train(X, y, layers(kind), *options)
    by_hand, _ = _train([NORMALIZED[kind](x, values) for x in X], y, layers("none"), *options)
    np.testing.assert_allclose(net.Layers[1].RecurrentWeights, by_hand.Layers[1].RecurrentWeights, rtol=1e-9)
    np.testing.assert_allclose(m.predict(net, X), m.predict(by_hand, [NORMALIZED[kind](x, values) for x in X]),
                               rtol=1e-9)
    stats = {"Mean": values.mean(0), "StandardDeviation": values.std(0), "Min": values.min(0), "Max": values.max(0)}
    used = {"zerocenter": ["Mean"], "zscore": ["Mean", "StandardDeviation"]}.get(kind, ["Min", "Max"])
    for name, value in stats.items():
        got = getattr(net.Layers[0], name)
        if name in used:
            np.testing.assert_allclose(got, value[:, None], rtol=1e-12)
        else:
            assert got is None, name


def test_given_normalization_statistics_are_kept_only_without_reset():
    rng = np.random.default_rng(13)
    X, y = [rng.standard_normal((1, 4)) for _ in range(4)], rng.standard_normal((4, 1))
    layers = [m.sequenceInputLayer(1, "Normalization", "zscore", "Mean", [[5.0]], "StandardDeviation", [[2.0]]),
              m.lstmLayer(2, "OutputMode", "last"), m.fullyConnectedLayer(1), m.regressionLayer()]
    kept, _ = _train(X, y, layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 4, "ResetInputNormalization", False)
    assert (kept.Layers[0].Mean, kept.Layers[0].StandardDeviation) == ([[5.0]], [[2.0]])
    reset, _ = _train(X, y, layers, "adam", "MaxEpochs", 1, "MiniBatchSize", 4)
    np.testing.assert_allclose(reset.Layers[0].Mean, [[np.concatenate(X, axis=1).mean()]])
    with pytest.raises(ValueError, match="input channel 2 does not vary in the training data, so 'zscore'"):
        _train([np.vstack([x, np.ones_like(x)]) for x in X], y,
               [m.sequenceInputLayer(2, "Normalization", "zscore"), *layers[1:]], "adam", "MaxEpochs", 1)
    with pytest.raises(ValueError, match="'Mean' must be 3-by-1, got 1x3"):
        m.sequenceInputLayer(3, "Normalization", "zscore", "Mean", [[1.0, 2.0, 3.0]])


# ------------------------------------------------------------ activations
NP_ACTIVATIONS = {  # MATLAB's activation options, written out independently of lstm_ref
    "tanh": np.tanh,
    "softsign": lambda a: a / (1 + np.abs(a)),
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "hard-sigmoid": lambda a: np.clip(0.2 * a + 0.5, 0, 1),
}


def _np_matlab_recurrent(x, W, R, b, cell, state, gate):
    """MATLAB's equations step by step from zero states, learnables in MATLAB's layout (rows i, f, g, o
    or r, z, h~; GRU 'after-multiplication'): the hidden states (N, S, H)."""
    a, s = NP_ACTIVATIONS[state], NP_ACTIVATIONS[gate]
    H = R.shape[1]
    h, c, out = np.zeros((len(x), H)), np.zeros((len(x), H)), []
    for t in range(x.shape[1]):
        xw, hr = x[:, t] @ W.T + b[:, 0], h @ R.T  # (N, G*H) each
        if cell == "lstm":
            i, f, g, o = np.split(xw + hr, 4, axis=1)
            c = s(f) * c + s(i) * a(g)
            h = s(o) * a(c)
        else:
            r, z = s(xw[:, :H] + hr[:, :H]), s(xw[:, H : 2 * H] + hr[:, H : 2 * H])
            h = (1 - z) * a(xw[:, 2 * H :] + r * hr[:, 2 * H :]) + z * h
        out.append(h)
    return np.stack(out, axis=1)


@pytest.mark.parametrize(("make", "cell", "gates", "directions"), [
    (m.lstmLayer, "lstm", 4, 1), (m.gruLayer, "gru", 3, 1), (m.bilstmLayer, "lstm", 4, 2)])
@pytest.mark.parametrize(("state", "gate"), [("softsign", "hard-sigmoid"), ("tanh", "hard-sigmoid"),
                                             ("softsign", "sigmoid")])
def test_state_and_gate_activation_functions_follow_matlabs_equations(make, cell, gates, directions, state, gate):
    """'StateActivationFunction' (g and c in the LSTM, h~ in the GRU) and 'GateActivationFunction' (the
    gates; hard-sigmoid = clip(0.2 x + 0.5, 0, 1)): predict equals MATLAB's equations in NumPy, and the
    layers keep the values as properties."""
    C, H = 2, 3
    rng = np.random.default_rng(30)
    rec = {"InputWeights": 1.5 * rng.standard_normal((directions * gates * H, C)),  # large enough to clip
           "RecurrentWeights": rng.standard_normal((directions * gates * H, H)),
           "Bias": rng.standard_normal((directions * gates * H, 1))}
    fc = {"Weights": rng.standard_normal((1, directions * H)), "Bias": np.array([[0.2]])}
    X = _cell(5, C, 6, 31)
    layers = [m.sequenceInputLayer(C), make(H, "OutputMode", "last", "StateActivationFunction", state,
                                            "GateActivationFunction", gate, **rec),
              m.fullyConnectedLayer(1, **fc), m.regressionLayer()]
    net, _ = _train(X, np.zeros((5, 1)), layers, "sgdm", "InitialLearnRate", 1e-300, "MaxEpochs", 1,
                    "MiniBatchSize", 5)
    learned = net.Layers[1]
    assert (learned.StateActivationFunction, learned.GateActivationFunction) == (state, gate)
    x = np.stack([s.T for s in X])  # (N, S, C)
    halves = [np.split(rec[k], directions) for k in ("InputWeights", "RecurrentWeights", "Bias")]
    forward = _np_matlab_recurrent(x, *(p[0] for p in halves), cell, state, gate)[:, -1]  # (N, H)
    features = [forward]
    if directions == 2:  # the backward half at the last step has read only that step
        features.append(_np_matlab_recurrent(x[:, -1:], *(p[1] for p in halves), cell, state, gate)[:, 0])
    expected = np.hstack(features) @ fc["Weights"].T + fc["Bias"][:, 0]
    np.testing.assert_allclose(m.predict(net, X), expected, rtol=1e-9, atol=ATOL,
                               err_msg=f"{make.__name__} with {state} state and {gate} gate activations")
    default = _np_matlab_recurrent(x, *(p[0] for p in halves), cell, "tanh", "sigmoid")[:, -1]
    assert not np.allclose(forward, default), "the activations must change the outputs"


# ------------------------------------------------------- sequence length
@pytest.mark.parametrize("direction", ["right", "left"])
def test_sequence_length_shortest_truncates_each_mini_batch_on_the_padding_side(direction):
    """'SequenceLength','shortest': each mini-batch is cut to its shortest sequence, at the end ('right') or
    the start ('left'); training and validation equal 'longest' on sequences truncated so by hand."""
    rng = np.random.default_rng(32)
    X = [rng.standard_normal((2, S)) for S in (3, 6, 5, 4)]
    y = rng.standard_normal((4, 1))
    shortest = (3, 3, 4, 4)  # per mini-batch of 2, in order (Shuffle 'never')
    by_hand = [x[:, :k] if direction == "right" else x[:, -k:] for x, k in zip(X, shortest)]
    layers = [m.sequenceInputLayer(2), m.lstmLayer(3, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    options = ("adam", "MaxEpochs", 3, "MiniBatchSize", 2, "Shuffle", "never", "ValidationFrequency", 2,
               "SequencePaddingDirection", direction)
    net, info = _train(X, y, layers, *options, "SequenceLength", "shortest", "ValidationData", (X, y))
    cut, cut_info = _train(by_hand, y, layers, *options, "ValidationData", (by_hand, y))
    np.testing.assert_allclose(info.TrainingLoss, cut_info.TrainingLoss, rtol=RTOL, err_msg="training losses")
    np.testing.assert_allclose(info.ValidationLoss, cut_info.ValidationLoss, rtol=RTOL, err_msg="validation losses")
    np.testing.assert_allclose(net.Layers[1].RecurrentWeights, cut.Layers[1].RecurrentWeights, rtol=RTOL, atol=ATOL)
    _, longest = _train(X, y, layers, *options)
    assert not np.allclose(info.TrainingLoss, longest.TrainingLoss), "'shortest' must differ from 'longest'"


# -------------------------------------------------- validation stopping
def _diverging_validation(*args):
    """Training targets sum(x), validation targets -sum(x): the validation loss rises as training learns."""
    rng = np.random.default_rng(33)
    X = [rng.standard_normal((1, 4)) for _ in range(32)]
    y = np.array([[x.sum()] for x in X])
    layers = [m.sequenceInputLayer(1), m.lstmLayer(8, "OutputMode", "last"), m.fullyConnectedLayer(1),
              m.regressionLayer()]
    return X, y, m.trainNetwork(X, y, layers, m.trainingOptions(
        "adam", "InitialLearnRate", 0.02, "MaxEpochs", 20, "MiniBatchSize", 8, "ValidationData", (X[:8], -y[:8]),
        "ValidationFrequency", 2, "VerboseFrequency", 1000, *args), dtype=F64)


def test_validation_patience_stops_after_that_many_validations_without_a_new_minimum(capsys):
    """ValidationPatience 3, validated every 2 iterations: training ends at the third validation in a row
    whose loss is >= the smallest before it (here iteration 6, the minimum at iteration 1); info ends there."""
    _, _, (_, info) = _diverging_validation("ValidationPatience", 3)
    assert info.TrainingLoss.shape == info.ValidationLoss.shape == info.BaseLearnRate.shape == (6,)
    validated = np.flatnonzero(~np.isnan(info.ValidationLoss))
    np.testing.assert_array_equal(validated + 1, [1, 2, 4, 6])
    losses = info.ValidationLoss[validated]
    assert np.all(losses[1:] >= losses[0]), f"the seeded problem must never improve on iteration 1: {losses}"
    assert info.OutputNetworkIteration == 6
    out = capsys.readouterr().out
    rows = [line.split("|")[2].strip() for line in out.splitlines() if line.startswith("|")
            and line[2:9].strip().isdigit()]
    assert rows == ["1", "6"] and "Training finished: Met validation criterion." in out
    _, _, (_, full) = _diverging_validation()  # ValidationPatience Inf: all 20 epochs of 4 iterations
    assert full.TrainingLoss.shape == (80,) and full.OutputNetworkIteration == 80


def test_output_network_best_validation_loss_returns_the_network_of_the_smallest_validation_loss():
    """'OutputNetwork','best-validation-loss': the returned network scores the smallest ValidationLoss on
    the validation data, and OutputNetworkIteration is its iteration (not the last)."""
    X, y, (net, info) = _diverging_validation("OutputNetwork", "best-validation-loss", "MaxEpochs", 3)
    best = int(np.nanargmin(info.ValidationLoss))
    assert info.OutputNetworkIteration == best + 1 < len(info.TrainingLoss) == 12
    half_mse = 0.5 * ((m.predict(net, X[:8]) - -y[:8]) ** 2).sum(axis=1).mean()
    np.testing.assert_allclose(half_mse, info.ValidationLoss[best], rtol=1e-9,
                               err_msg="the returned network's validation loss")

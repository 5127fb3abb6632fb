"""The seed examples and MATLAB's Japanese Vowels example, trained end to end.

- the MATLAB seed (sum of a sequence) in its working form, through lstm_ref.matlab;
- MATLAB's "Sequence Classification Using Deep Learning" example (Japanese
  Vowels) with MATLAB's settings, through lstm_ref.matlab: MATLAB reports a
  test accuracy of about 0.95;
- the PyTorch seed (next value of a sine window), plain nn.LSTM + nn.Linear
  trained by lstm_ref.training with the 'pytorch' preset.
"""

import numpy as np
import torch
from torch import nn

from lstm_ref import data, training
from lstm_ref.matlab import (
    bilstmLayer,
    classificationLayer,
    classify,
    fullyConnectedLayer,
    lstmLayer,
    num2cell,
    predict,
    regressionLayer,
    sequenceInputLayer,
    softmaxLayer,
    trainingOptions,
    trainNetwork,
)


def test_matlab_seed_example_in_working_form_trains():
    X, y = data.sum_of_sequence(1000, 10, seed=0)
    XTrain = num2cell(X[:, :, 0], 2)  # 1000x1 cell of 1x10 (C-by-S)
    layers = [sequenceInputLayer(1), lstmLayer(64, "OutputMode", "last"), fullyConnectedLayer(1), regressionLayer()]
    options = trainingOptions("adam", "MaxEpochs", 10, "MiniBatchSize", 32, "Verbose", False)
    net, info = trainNetwork(XTrain, y, layers, options)

    assert info.TrainingLoss.shape == (310,), "10 epochs of 31 iterations (the partial mini-batch is discarded)"
    first, last = info.TrainingLoss[:31].mean(), info.TrainingLoss[-31:].mean()
    assert last < first / 10, f"half-MSE fell only from {first:.3f} to {last:.3f}"
    np.testing.assert_allclose(info.TrainingRMSE, np.sqrt(2 * info.TrainingLoss), rtol=1e-4,
                               err_msg="one response: RMSE = sqrt(2 * half-MSE)")

    X_new, y_new = data.sum_of_sequence(200, 10, seed=1)
    y_pred = predict(net, num2cell(X_new[:, :, 0], 2))
    assert y_pred.shape == (200, 1)
    rmse = float(np.sqrt(np.mean((y_pred - y_new) ** 2)))
    assert rmse < 0.2 * y_new.std(), f"test RMSE {rmse:.3f} against a target std of {y_new.std():.3f}"


def _sorted_by_length(X, y):
    """MATLAB's example sorts the sequences by length to reduce padding; returns C-by-S sequences."""
    order = np.argsort([len(x) for x in X], kind="stable")
    return [X[k].T for k in order], y[order]


def test_matlab_japanese_vowels_example_reaches_its_accuracy():
    XTrain, YTrain = _sorted_by_length(*data.japanese_vowels("train"))
    XTest, YTest = _sorted_by_length(*data.japanese_vowels("test"))
    layers = [
        sequenceInputLayer(12),
        bilstmLayer(100, "OutputMode", "last"),
        fullyConnectedLayer(9),
        softmaxLayer(),
        classificationLayer(),
    ]
    options = trainingOptions(
        "adam", "ExecutionEnvironment", "cpu", "GradientThreshold", 1, "MaxEpochs", 50, "MiniBatchSize", 27,
        "SequenceLength", "longest", "Shuffle", "never", "Verbose", False,
    )
    net, info = trainNetwork(XTrain, YTrain, layers, options)
    assert info.TrainingAccuracy.shape == (500,), "50 epochs of 270 / 27 = 10 iterations"
    YPred = classify(net, XTest, "MiniBatchSize", 27, "SequenceLength", "longest")
    accuracy = float(np.mean(YPred == YTest))
    assert accuracy >= 0.93, f"test accuracy {accuracy:.4f}; MATLAB reports about 0.95"


class _SeedSineModel(nn.Module):
    """The PyTorch seed's model: nn.LSTM(1, 50, batch_first=True), then nn.Linear(50, 1) on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, 50, batch_first=True)
        self.linear = nn.Linear(50, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # (N, T, 50)
        return self.linear(out[:, -1])  # (N, 1)


def test_pytorch_seed_sine_example_reaches_test_mse_below_1e3():
    split = data.sine_windows(seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _SeedSineModel()
    training.fit(model, split.X_train, split.y_train, config="pytorch", epochs=50, batch_size=32,
                 loss="mse", seed=0, verbose=0)
    y_pred = training.predict(model, split.X_test, batch_size=32)
    mse = float(np.mean((y_pred - split.y_test) ** 2))
    assert y_pred.shape == (198, 1)
    assert mse < 1e-3, f"test MSE {mse:.2e}"

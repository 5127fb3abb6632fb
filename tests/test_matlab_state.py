"""lstm_ref.matlab's network state: predictAndUpdateState, classifyAndUpdateState, resetState.

A recurrent network's state after part of a sequence, carried into the next
call, must give the outputs of the whole sequence read at once; the network
passed in never changes (MATLAB returns a new network). Networks are trained
for one epoch in float64, so that split and whole runs agree to 1e-12.
"""

import numpy as np
import pytest
import torch

from lstm_ref import matlab as m

F64 = torch.float64


def _net(recurrent, output_mode="sequence", task="regression", C=2, seed=0):
    """A one-epoch network [sequenceInputLayer(C), *recurrent, fullyConnectedLayer, output] on random data."""
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((C, 7)) for _ in range(8)]
    if task == "classification":
        head, Y = [m.fullyConnectedLayer(3), m.softmaxLayer(), m.classificationLayer()], np.arange(8) % 3
    elif output_mode == "last":
        head, Y = [m.fullyConnectedLayer(1), m.regressionLayer()], rng.standard_normal((8, 1))
    else:
        head, Y = [m.fullyConnectedLayer(1), m.regressionLayer()], [rng.standard_normal((1, 7)) for _ in X]
    layers = [m.sequenceInputLayer(C), *recurrent(output_mode), *head]
    options = m.trainingOptions("adam", "MaxEpochs", 1, "MiniBatchSize", 4, "Verbose", False)
    return m.trainNetwork(X, Y, layers, options, dtype=F64, seed=seed)[0]


NETWORKS = {
    "lstm": lambda mode: [m.lstmLayer(5, "OutputMode", mode)],
    "gru": lambda mode: [m.gruLayer(4, "OutputMode", mode)],
    "gru, recurrent bias": lambda mode: [
        m.gruLayer(4, "OutputMode", mode, "ResetGateMode", "recurrent-bias-after-multiplication")],
    "stacked lstm, gru": lambda mode: [m.lstmLayer(3), m.gruLayer(4, "OutputMode", mode)],
}


@pytest.mark.parametrize("recurrent", NETWORKS.values(), ids=NETWORKS.keys())
def test_the_state_carries_a_sequence_over_calls(recurrent):
    net = _net(recurrent)
    X = np.random.default_rng(1).standard_normal((2, 12))  # one sequence, C-by-S
    whole = m.predict(net, X)  # (1, 12)
    updated, first = m.predictAndUpdateState(net, X[:, :5])
    updated, second = m.predictAndUpdateState(updated, X[:, 5:])
    np.testing.assert_allclose(np.hstack([first, second]), whole, rtol=1e-12, atol=1e-12)

    closed = m.resetState(updated)  # one step at a time, as a closed-loop forecast runs
    steps = []
    for t in range(12):
        closed, y = m.predictAndUpdateState(closed, X[:, t : t + 1])
        steps.append(y)
    np.testing.assert_allclose(np.hstack(steps), whole, rtol=1e-12, atol=1e-12)


def test_predict_reads_the_state_and_leaves_it_and_the_input_network_unchanged():
    net = _net(NETWORKS["lstm"])
    X = np.random.default_rng(2).standard_normal((2, 9))
    fresh = m.predict(net, X)
    updated, _ = m.predictAndUpdateState(net, X[:, :4])
    np.testing.assert_array_equal(m.predict(net, X), fresh)  # net itself never changed
    continued = m.predict(updated, X[:, 4:])
    np.testing.assert_allclose(continued, fresh[:, 4:], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(m.predict(updated, X[:, 4:]), continued)  # predict did not move the state
    np.testing.assert_array_equal(m.predict(m.resetState(updated), X), fresh)
    assert not np.allclose(m.predict(updated, X), fresh)  # the state is not the zero state


def test_many_observations_keep_one_state_each_across_mini_batches():
    net = _net(NETWORKS["lstm"], output_mode="last")
    rng = np.random.default_rng(3)
    X = [rng.standard_normal((2, 6)) for _ in range(5)]
    whole = m.predict(net, X)  # (5, 1): the last step of each sequence
    updated, _ = m.predictAndUpdateState(net, [x[:, :2] for x in X], "MiniBatchSize", 2)
    updated, last = m.predictAndUpdateState(updated, [x[:, 2:] for x in X], "MiniBatchSize", 3)
    np.testing.assert_allclose(last, whole, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"holds 5 observation\(s\).*X has 2; call resetState"):
        m.predictAndUpdateState(updated, X[:2])
    assert m.predict(m.resetState(updated), X[:2]).shape == (2, 1)


def test_classify_and_update_state_continues_the_sequence():
    net = _net(NETWORKS["gru"], output_mode="last", task="classification")
    X = np.random.default_rng(4).standard_normal((2, 10))
    updated, _ = m.classifyAndUpdateState(net, X[:, :6])
    updated, label = m.classifyAndUpdateState(updated, X[:, 6:])
    np.testing.assert_array_equal(label, m.classify(net, X))
    scores = m.predict(net, X)
    assert label[0] == net.Classes[np.argmax(scores)]


def test_networks_without_a_state_to_carry_are_refused():
    net = _net(lambda mode: [m.bilstmLayer(3, "OutputMode", mode)])
    X = np.random.default_rng(5).standard_normal((2, 4))
    with pytest.raises(ValueError, match="predictAndUpdateState needs a network with recurrent layers, all "
                                         "unidirectional .*bilstmLayer reads each sequence backwards"):
        m.predictAndUpdateState(net, X)
    assert m.predict(net, X).shape == (1, 4)  # predict itself is fine
    with pytest.raises(TypeError, match="net must be a network from trainNetwork, got dict"):
        m.resetState({})
    with pytest.raises(TypeError, match="classify needs a classification network"):
        m.classifyAndUpdateState(_net(NETWORKS["lstm"]), X)


def test_a_closed_loop_forecast_of_one_series_as_in_matlabs_chickenpox_example():
    """One training sequence with the default MiniBatchSize (128): one iteration per epoch, as
    MATLAB trains it; then the forecast feeds each prediction back as the next input."""
    series = np.sin(np.linspace(0, 12, 120))[None]  # 1-by-120
    XTrain, YTrain = series[:, :-1], series[:, 1:]
    layers = [m.sequenceInputLayer(1), m.lstmLayer(16), m.fullyConnectedLayer(1), m.regressionLayer()]
    options = m.trainingOptions("adam", "MaxEpochs", 100, "InitialLearnRate", 0.01, "Verbose", False)
    net, info = m.trainNetwork(XTrain, YTrain, layers, options, seed=0)
    assert len(info.TrainingLoss) == 100

    steps = 10
    net = m.resetState(net)
    net, _ = m.predictAndUpdateState(net, XTrain)
    Y = np.zeros((1, steps))
    net, Y[:, :1] = m.predictAndUpdateState(net, YTrain[:, -1:])
    for t in range(1, steps):
        net, Y[:, t : t + 1] = m.predictAndUpdateState(net, Y[:, t - 1 : t])
    truth = np.sin(12 + 12 / 119 * np.arange(1, steps + 1))
    repeat_last = np.abs(series[0, -1] - truth).max()  # about 0.9
    assert np.abs(Y[0] - truth).max() < repeat_last / 5

"""Keras masks that reach sequence outputs: the masked loss and metrics, against real Keras 3.

A model whose mask (``Masking`` or ``Embedding(mask_zero=True)``) is not ended
by a recurrent layer with return_sequences=False gives per-step outputs
(N, T, K) with a mask (N, T); Keras leaves the masked steps out of the loss
(keras/src/losses/loss.py ``apply_mask``) and the metrics. Each model is built
in both, real Keras' weights copied in; predict(), evaluate(), the per-epoch
history of fit(shuffle=False) with validation, and the weights after fit must
agree. The unit tests check the weighting by hand.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import warnings  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lstm_ref import keras as lk  # noqa: E402
from lstm_ref import training  # noqa: E402

# Keras 3.15's torch backend converts a tensor wrapper with np.asarray(copy=False)
# inside predict(); NumPy 2 warns about that wrapper, not about anything here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

PREDICT_ATOL = 1e-6
HISTORY_RTOL = 2e-6
WEIGHTS_ATOL = 2e-6
EPOCHS = 3
# The padding must matter: the loss with the padded steps read differs from the masked loss
# by far more than the parity tolerance.
MASK_EFFECT_RTOL = 1e-2


def _padded_series(n=50, T=7, D=2, value=0.0):
    """Float sequences of 1 to T steps padded with ``value`` before (even rows) or after (odd rows).

    Targets (N, T, 1): the running sum of the real steps; at padded steps 1.0, which a
    model that does not mask them is pulled towards.
    """
    rng = np.random.default_rng(2)
    X = np.full((n, T, D), value, dtype=np.float32)  # (N, T, D)
    y = np.ones((n, T, 1), dtype=np.float32)  # (N, T, 1)
    for i in range(n):
        steps = rng.standard_normal((1 + i % T, D)).astype(np.float32)  # (T_n, D)
        kept = slice(T - len(steps), T) if i % 2 == 0 else slice(0, len(steps))
        X[i, kept] = steps
        y[i, kept, 0] = np.cumsum(steps.sum(axis=1))
    return X, y


def _binary_series():
    """As ``_padded_series``, the target whether the running sum is positive (padded steps: 1)."""
    X, y = _padded_series()
    return X, (y > 0).astype(np.float32)


def _tagged_tokens(n=48, T=9, vocab=12, classes=4):
    """Token ids 1..vocab-1 padded with 0 before or after; per-step tags (N, T): the running sum of
    the ids modulo ``classes`` (padded steps: tag 3)."""
    rng = np.random.default_rng(3)
    X = np.zeros((n, T), dtype=np.int64)
    y = np.full((n, T), classes - 1, dtype=np.int64)
    for i in range(n):
        ids = rng.integers(1, vocab, size=2 + i % (T - 1))
        kept = slice(T - len(ids), T) if i % 2 == 0 else slice(0, len(ids))
        X[i, kept] = ids
        y[i, kept] = np.cumsum(ids) % classes
    return X, y


def _one_hot_tags():
    X, y = _tagged_tokens()
    return X, np.eye(4, dtype=np.float32)[y]  # (N, T, 4)


# name -> (build(ns) for ns in (keras.layers, lstm_ref.keras), loss, metrics, data)
CASES = {
    "masking_lstm_regression": (
        lambda ns: [ns.Masking(0.0, input_shape=(None, 2)), ns.LSTM(16, return_sequences=True), ns.Dense(1)],
        "mse", ["mae"], _padded_series),
    "masking_value_gru_mae": (
        lambda ns: [ns.Masking(mask_value=-1.0, input_shape=(None, 2)), ns.GRU(6, return_sequences=True),
                    ns.Dense(1)], "mae", ["mse"], lambda: _padded_series(value=-1.0)),
    "embedding_tagging": (
        lambda ns: [ns.Embedding(12, 5, mask_zero=True), ns.LSTM(8, return_sequences=True),
                    ns.Dense(4, activation="softmax")],
        "sparse_categorical_crossentropy", ["accuracy"], _tagged_tokens),
    "stacked_lstm_gru_dropout": (
        lambda ns: [ns.Masking(input_shape=(None, 2)), ns.LSTM(5, return_sequences=True), ns.Dropout(0.0),
                    ns.GRU(4, reset_after=False, return_sequences=True), ns.Dense(1)],
        "mse", ["mae"], _padded_series),
    "masking_bidirectional_lstm": (  # Keras outputs 0 at masked steps of a Bidirectional layer
        lambda ns: [ns.Masking(input_shape=(None, 2)), ns.Bidirectional(ns.LSTM(4, return_sequences=True)),
                    ns.Dense(1)], "mse", ["mae"], _padded_series),
    "embedding_bidirectional_gru_one_hot": (
        lambda ns: [ns.Embedding(12, 5, mask_zero=True), ns.Bidirectional(ns.GRU(4, return_sequences=True)),
                    ns.Dense(4, activation="softmax")],
        "categorical_crossentropy", ["accuracy"], _one_hot_tags),
    "masking_go_backwards_lstm": (  # outputs in reading order (last step first), the mask as it came
        lambda ns: [ns.Masking(input_shape=(None, 2)), ns.LSTM(5, go_backwards=True, return_sequences=True),
                    ns.Dense(1)], "mse", [], _padded_series),
    "masking_simple_rnn": (
        lambda ns: [ns.Masking(input_shape=(None, 2)), ns.SimpleRNN(6, return_sequences=True), ns.Dense(1)],
        "MSE", ["MAE"], _padded_series),
    "embedding_bidirectional_simple_rnn_sum_tagging": (  # merged by sum, 0 at masked steps; Keras' aliases
        lambda ns: [ns.Embedding(12, 5, mask_zero=True),
                    ns.Bidirectional(ns.SimpleRNN(6, return_sequences=True), merge_mode="sum"),
                    ns.Dense(4, activation="softmax")],
        "SparseCategoricalCrossentropy", ["acc"], _tagged_tokens),
    "masking_bidirectional_gru_mul": (
        lambda ns: [ns.Masking(input_shape=(None, 2)),
                    ns.Bidirectional(ns.GRU(4, return_sequences=True), merge_mode="mul"), ns.Dense(1)],
        "mean_squared_error", ["MeanAbsoluteError"], _padded_series),
    "masking_dense_binary": (  # no recurrent layer: the mask goes straight to the output
        lambda ns: [ns.Masking(input_shape=(None, 2)), ns.Dense(3, activation="tanh"),
                    ns.Dense(1, activation="sigmoid")],
        "binary_crossentropy", ["accuracy"], _binary_series),
}


def _keras_layers(build):
    with warnings.catch_warnings():  # Keras warns about input_shape on a layer; the seed passes it
        warnings.simplefilter("ignore", UserWarning)
        return build(keras.layers)


def _twins(case):
    """(real Keras model, lstm_ref.keras model) compiled alike, with Keras' initial weights in both."""
    build, loss, metrics, _ = CASES[case]
    keras.utils.set_random_seed(0)
    real = keras.Sequential(_keras_layers(build))
    real.compile(optimizer="adam", loss=loss, metrics=metrics)
    ours = lk.Sequential(build(lk))
    ours.compile(optimizer="adam", loss=loss, metrics=metrics)
    X, _ = CASES[case][3]()
    real.predict(X[:2], verbose=0)  # builds the Keras model
    ours.predict(X[:2])
    ours.set_weights(real.get_weights())
    return real, ours


@pytest.mark.parametrize("case", list(CASES))
def test_masked_sequence_outputs_match_real_keras(case):
    X, y = CASES[case][3]()
    real, ours = _twins(case)
    np.testing.assert_allclose(ours.predict(X), real.predict(X, verbose=0), atol=PREDICT_ATOL,
                               err_msg=f"{case}: predict(), masked steps included")
    np.testing.assert_allclose(ours.evaluate(X, y), real.evaluate(X, y, verbose=0), rtol=HISTORY_RTOL,
                               err_msg=f"{case}: evaluate() before training")

    fit = dict(epochs=EPOCHS, batch_size=16, shuffle=False, validation_split=0.25, verbose=0)
    h_real, h_ours = real.fit(X, y, **fit).history, ours.fit(X, y, **fit).history
    assert set(h_ours) == set(h_real)
    for key in h_real:
        np.testing.assert_allclose(h_ours[key], h_real[key], rtol=HISTORY_RTOL,
                                   err_msg=f"{case}: per-epoch {key} of fit(shuffle=False)")
    for w_ours, w_real in zip(ours.get_weights(), real.get_weights()):
        np.testing.assert_allclose(w_ours, w_real, atol=WEIGHTS_ATOL, err_msg=f"{case}: weights after fit")


@pytest.mark.parametrize("case", list(CASES))
def test_the_mask_changes_the_loss_by_more_than_the_tolerance(case):
    """Reading the padded steps would give another loss: the parity above could not pass by accident."""
    X, y = CASES[case][3]()
    real, ours = _twins(case)
    rng = np.random.default_rng(4)  # weights far from the initial near-uniform softmax
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in real.get_weights()]
    real.set_weights(weights)
    ours.set_weights(weights)
    masked = np.ravel(real.evaluate(X, y, verbose=0))[0]  # the loss, with or without metrics
    assert np.ravel(ours.evaluate(X, y))[0] == pytest.approx(masked, rel=HISTORY_RTOL)
    unmasked = training.evaluate(ours.module, X, y, loss=lk.LOSSES[CASES[case][1]])["loss"]  # no mask
    assert abs(unmasked - masked) > MASK_EFFECT_RTOL * masked, (masked, unmasked)


def test_outputs_at_masked_steps_are_keras_own():
    """LSTM/GRU carry the last kept output through masked steps (0 before the first), Bidirectional gives 0."""
    X = np.zeros((2, 5, 2), dtype=np.float32)
    X[0, 2:], X[1, :3] = 1.0, -0.5  # row 0 pre-padded, row 1 post-padded
    lk.set_random_seed(0)
    carried = lk.Sequential([lk.Masking(input_shape=(None, 2)), lk.GRU(3, return_sequences=True)]).predict(X)
    np.testing.assert_array_equal(carried[0, :2], 0.0)
    np.testing.assert_array_equal(carried[1, 3:], carried[1, [2, 2]])
    assert np.abs(carried[1, :3]).min() > 0
    both = lk.Sequential([lk.Masking(input_shape=(None, 2)),
                          lk.Bidirectional(lk.LSTM(2, return_sequences=True))]).predict(X)
    np.testing.assert_array_equal(both[0, :2], 0.0)
    np.testing.assert_array_equal(both[1, 3:], 0.0)
    assert np.abs(both[0, 2:]).min() > 0 and np.abs(both[1, :3]).min() > 0


def test_the_mask_reaches_the_output_through_dense_and_dropout_only_with_return_sequences():
    x = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [3.0, 0.0]]])  # (1, 3, 2): step 0 padding
    expected = [[False, True, True]]
    for after in ([], [lk.Dense(3)], [lk.LSTM(2, return_sequences=True), lk.Dropout(0.5), lk.Dense(1)],
                  [lk.Bidirectional(lk.GRU(2, return_sequences=True))]):
        model = lk.Sequential([lk.Masking(input_shape=(None, 2)), *after])
        out, mask = model.module.forward_with_mask(x)
        assert mask.tolist() == expected and out.shape[:2] == (1, 3)
    for end in (lk.LSTM(2), lk.Bidirectional(lk.GRU(2))):
        model = lk.Sequential([lk.Masking(input_shape=(None, 2)), lk.LSTM(2, return_sequences=True), end])
        assert model.module.forward_with_mask(x)[1] is None
    tokens = torch.tensor([[0, 4, 2]])
    assert lk.Sequential([lk.Input((None,)), lk.Embedding(5, 2)]).module.forward_with_mask(tokens)[1] is None
    masked = lk.Sequential([lk.Input((None,)), lk.Embedding(5, 2, mask_zero=True)])
    assert masked.module.forward_with_mask(tokens)[1].tolist() == expected


# ------------------------------------------------------------- the weighting by hand
VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # (N, T) = (2, 3)
MASK = torch.tensor([[True, False, True], [False, False, True]])  # 3 of 6 steps kept


def test_masked_mean_weighs_kept_steps_total_over_valid():
    # Keras: weight 6/3 = 2 on the kept steps, sum (2 + 6 + 12) / 6 = 10/3 = (1 + 3 + 6) / 3.
    assert training.masked_mean(VALUES, MASK).item() == pytest.approx(10 / 3, rel=1e-7)
    assert training.masked_mean(VALUES, None).item() == pytest.approx(3.5)
    assert training.masked_mean(VALUES, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0  # divide_no_nan
    values = VALUES.clone().requires_grad_()
    training.masked_mean(values, MASK).backward()
    np.testing.assert_allclose(values.grad.numpy(), MASK.numpy() / 3.0, rtol=1e-7)  # 0 at masked steps
    with pytest.raises(ValueError, match=r"mask must have the shape of the per-step losses \(2, 3\), got \(2, 2\)"):
        training.masked_mean(VALUES, MASK[:, :2])


def test_every_loss_leaves_out_the_masked_steps():
    y_pred = torch.tensor([[[0.2, 0.8], [0.6, 0.4]], [[0.9, 0.1], [0.5, 0.5]]])  # (N, T, K) = (2, 2, 2)
    y = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])  # one-hot
    mask = torch.tensor([[True, False], [True, True]])  # 3 steps kept
    kept = [(0, 0), (1, 0), (1, 1)]

    def by_hand(per_step):
        return sum(per_step(y_pred[n, t], y[n, t]) for n, t in kept) / 3

    cases = {
        "mse": (training.mse, lambda p, t: float(((p - t) ** 2).mean())),
        "mae": (training.mae, lambda p, t: float((p - t).abs().mean())),
        "crossentropy": (training.crossentropy, lambda p, t: -float(torch.log(p[t.argmax()]))),
        "binary_crossentropy": (training.binary_crossentropy,
                                lambda p, t: -float((t * p.log() + (1 - t) * (1 - p).log()).mean())),
    }
    for name, (loss, step_loss) in cases.items():
        assert loss(y_pred, y, mask=mask).item() == pytest.approx(by_hand(step_loss), rel=1e-6), name
        assert loss(y_pred, y).item() == pytest.approx(float(loss(y_pred, y, mask=torch.ones(2, 2, dtype=bool))),
                                                       rel=1e-6), name
    sparse = training.crossentropy(y_pred, y.argmax(dim=-1), mask=mask)  # class indices (N, T)
    assert sparse.item() == pytest.approx(by_hand(cases["crossentropy"][1]), rel=1e-6)


def test_metric_sums_are_keras_mean_metric_updates():
    # Per sample: mean_t(m v) = (1 + 3)/3 and 6/3; count mean_t(m) = 2/3 and 1/3.
    total, count = training.metric_sums(VALUES, MASK)
    assert (total, count) == (pytest.approx(10 / 3), pytest.approx(1.0))
    assert training.metric_sums(VALUES, None) == (pytest.approx(2.0 + 5.0), 2.0)
    per_feature = VALUES.unsqueeze(-1).expand(2, 3, 4)  # (N, T, K) with the mask (N, T)
    assert training.metric_sums(per_feature, MASK) == (pytest.approx(10 / 3), pytest.approx(1.0))
    with pytest.raises(ValueError, match=r"a masked metric must give per-step values of shape \(2, 3\)"):
        training.metric_sums(VALUES[:, 0], MASK)


def test_epoch_metric_is_the_mean_over_kept_steps_and_zero_with_none_kept():
    """Two mini-batches, one fully masked: Keras' Mean metric sums totals and counts over batches."""

    class Echo(torch.nn.Module):  # y_pred = x (N, T, 1); the mask: x != 0
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.w * x

    model = Echo()
    x = np.array([[[1.0], [0.0], [3.0]], [[0.0], [0.0], [0.0]]], dtype=np.float32)  # (2, 3, 1)
    y = np.zeros((2, 3), dtype=np.float32)
    scores = training.evaluate(model, x, y, loss="mae", metrics={"mae": lambda p, t: (p[..., 0] - t).abs()},
                               batch_size=1, forward_with_mask=lambda xb: (model(xb), xb[..., 0] != 0))
    # batch 1: loss (1 + 3)/2 = 2, metric total (1 + 3)/3, count 2/3; batch 2: loss 0, nothing counted
    assert scores == {"loss": pytest.approx(1.0), "mae": pytest.approx(2.0)}
    none_kept = training.evaluate(model, x[1:], y[1:], loss="mse", metrics={"mse": lambda p, t: p[..., 0] - t},
                                  forward_with_mask=lambda xb: (model(xb), xb[..., 0] != 0))
    assert none_kept == {"loss": 0.0, "mse": 0.0}


# ------------------------------------------------------------------------ refusals
def test_per_sample_targets_for_per_step_outputs_are_refused():
    """y (N, 1) for (N, T, 1) outputs: Keras fails inside torch ("size of tensor a (32) must match ..."),
    this names both shapes."""
    X, y = _padded_series()
    model = lk.Sequential(CASES["masking_lstm_regression"][0](lk))
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match=r"targets of shape \(32, 1\) do not match predictions of shape "
                                         r"\(32, 7, 1\)"):
        model.evaluate(X, y[:, -1])


def test_a_loss_without_a_mask_argument_is_refused_by_python_under_a_mask():
    """The engine hands a mask to the loss as ``mask=``: a loss that cannot take it is not silently unmasked."""
    model = torch.nn.Linear(1, 1)
    x, y = np.ones((2, 3, 1), dtype=np.float32), np.ones((2, 3, 1), dtype=np.float32)
    with pytest.raises(TypeError, match="mask"):
        training.evaluate(model, x, y, loss="half_mse",
                          forward_with_mask=lambda xb: (model(xb), torch.ones(xb.shape[:2], dtype=torch.bool)))

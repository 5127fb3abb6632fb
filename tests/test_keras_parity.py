"""lstm_ref.keras against real Keras 3 (PyTorch backend): same weights, same numbers.

Each model is built in both, real Keras' initial weights are copied into
lstm_ref.keras with get_weights/set_weights, then predict() must agree and
the per-epoch loss history of fit(shuffle=False) must agree: Adam's epsilon
placement, the loss reduction, the kept partial batch and the batch-size
weighted epoch mean all show in these numbers.
"""

import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lstm_ref import keras as lk  # noqa: E402
from lstm_ref.data import embedding_classification, sum_of_sequence  # noqa: E402

# Keras 3.15's torch backend converts a tensor wrapper with np.asarray(copy=False)
# inside predict(); NumPy 2 warns about that wrapper, not about anything here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)



PREDICT_ATOL = 1e-5
HISTORY_RTOL = 1e-4
EPOCHS = 3


def _regression_data(seed=0, n=50, T=6, D=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, D)).astype(np.float32)
    return X, X.sum(axis=(1, 2))[:, None].astype(np.float32)  # (N, 1)


def _multilabel_data():
    """Three labels per sequence, any of them on: whether each feature sum, and the total, is positive."""
    X, _ = _regression_data()
    sums = X.sum(axis=1)  # (N, 2)
    return X, np.c_[sums > 0, sums.sum(axis=1) > 0].astype(np.float32)  # (N, 3)


def _tokens(n=50):
    X, y = embedding_classification(n_samples=n, n_steps=8, vocab_size=12, seed=1)
    return X, y.astype(np.float32)


def _padded_tokens(n=50):
    """Token sequences with padding (id 0) before some and after others, as pad_sequences leaves them."""
    X, y = _tokens(n)
    X = X + (X == 0)  # no id 0 inside a sequence
    for i, row in enumerate(X):
        row[: i % 4] = 0
        if i % 3 == 0:
            row[-2:] = 0
    return X, y


def _padded_series(n=50, T=7, D=2, value=0.0):
    """Float sequences of 1 to T steps, padded with ``value`` before (even rows) or after (odd rows).

    The target is the sum of the real steps, so reading the padding changes the answer.
    """
    rng = np.random.default_rng(2)
    X = np.full((n, T, D), value, dtype=np.float32)  # (N, T, D)
    y = np.zeros((n, 1), dtype=np.float32)
    for i in range(n):
        steps = rng.standard_normal((1 + i % T, D)).astype(np.float32)
        if i % 2 == 0:
            X[i, T - len(steps):] = steps  # "pre" padding
        else:
            X[i, : len(steps)] = steps  # "post" padding
        y[i] = steps.sum()
    return X, y


# name -> (build(ns) for ns in (keras.layers, lstm_ref.keras), loss, metrics, data)
CASES = {
    "lstm": (lambda ns: [ns.LSTM(8, input_shape=(None, 2)), ns.Dense(1)], "mse", [], _regression_data),
    "lstm_hard_sigmoid_sequences": (
        lambda ns: [ns.LSTM(5, recurrent_activation="hard_sigmoid", return_sequences=True,
                            input_shape=(None, 2)), ns.LSTM(4), ns.Dense(1)],
        "mae", ["mse"], _regression_data),
    "gru_reset_after": (lambda ns: [ns.GRU(8, input_shape=(None, 2)), ns.Dense(1)], "mse", [], _regression_data),
    "gru_reset_before": (
        lambda ns: [ns.GRU(8, reset_after=False, input_shape=(None, 2)), ns.Dense(1)], "mse", ["mae"],
        _regression_data),
    "bidirectional_lstm": (
        lambda ns: [ns.Bidirectional(ns.LSTM(6), input_shape=(None, 2)), ns.Dense(3, activation="relu"),
                    ns.Dense(1)], "mse", [], _regression_data),
    "embedding_lstm_binary": (
        lambda ns: [ns.Embedding(12, 4), ns.LSTM(6), ns.Dense(1, activation="sigmoid")],
        "binary_crossentropy", ["accuracy"], _tokens),
    "multilabel_sigmoid_accuracy_is_categorical": (  # Keras picks 'accuracy' by the shapes, not the loss
        lambda ns: [ns.GRU(6, input_shape=(None, 2)), ns.Dense(3, activation="sigmoid")],
        "binary_crossentropy", ["accuracy"], _multilabel_data),
    "masked_lstm_sequences": (
        lambda ns: [ns.Embedding(12, 4, mask_zero=True), ns.LSTM(5, return_sequences=True), ns.Dropout(0.0),
                    ns.LSTM(4), ns.Dense(1, activation="sigmoid")],
        "binary_crossentropy", ["accuracy"], _padded_tokens),
    "masked_gru_reset_before": (
        lambda ns: [ns.Embedding(12, 4, mask_zero=True), ns.GRU(6, reset_after=False),
                    ns.Dense(1, activation="sigmoid")], "binary_crossentropy", [], _padded_tokens),
    "masked_bidirectional_gru": (
        lambda ns: [ns.Embedding(12, 4, mask_zero=True), ns.Bidirectional(ns.GRU(4)),
                    ns.Dense(1, activation="sigmoid")], "binary_crossentropy", [], _padded_tokens),
    "lstm_go_backwards_sequences": (  # Keras keeps a backward layer's outputs in reading order
        lambda ns: [ns.LSTM(5, go_backwards=True, return_sequences=True, input_shape=(None, 2)), ns.LSTM(4),
                    ns.Dense(1)], "mse", [], _regression_data),
    "masking_lstm": (
        lambda ns: [ns.Masking(input_shape=(None, 2)), ns.LSTM(6), ns.Dense(1)], "mse", [], _padded_series),
    "masking_gru": (
        lambda ns: [ns.Masking(mask_value=0.0), ns.GRU(6), ns.Dense(1)], "mse", ["mae"], _padded_series),
    "masking_stacked_lstm": (
        lambda ns: [ns.Masking(input_shape=(None, 2)), ns.LSTM(5, return_sequences=True), ns.LSTM(4),
                    ns.Dense(1)], "mse", [], _padded_series),
    "masking_bidirectional_lstm": (
        lambda ns: [ns.Masking(), ns.Bidirectional(ns.LSTM(4)), ns.Dense(1)], "mse", [], _padded_series),
    "masking_value_dense_dropout_bidirectional_sequences_gru": (  # Dense and Dropout pass the mask on
        lambda ns: [ns.Masking(mask_value=-1.0), ns.Dense(3, activation="tanh"), ns.Dropout(0.0),
                    ns.Bidirectional(ns.LSTM(3, return_sequences=True)), ns.GRU(3, reset_after=False),
                    ns.Dense(1)], "mse", [], lambda: _padded_series(value=-1.0)),
    "simple_rnn": (lambda ns: [ns.SimpleRNN(8, input_shape=(None, 2)), ns.Dense(1)], "mse", [], _regression_data),
    "simple_rnn_relu_stacked_backwards_no_bias": (  # relu is fused in torch, hard_sigmoid runs step by step
        lambda ns: [ns.SimpleRNN(5, activation="relu", return_sequences=True, input_shape=(None, 2)),
                    ns.SimpleRNN(4, activation="hard_sigmoid", go_backwards=True, use_bias=False),
                    ns.Dense(3, activation="hard_sigmoid"), ns.Dense(1)], "mse", ["mae"], _regression_data),
    "masked_simple_rnn_acc": (  # History keys 'acc', as the metric was named
        lambda ns: [ns.Embedding(12, 4, mask_zero=True), ns.SimpleRNN(6), ns.Dense(1, activation="sigmoid")],
        "binary_crossentropy", ["acc"], _padded_tokens),
    "bidirectional_simple_rnn_sum": (
        lambda ns: [ns.Bidirectional(ns.SimpleRNN(6), merge_mode="sum", input_shape=(None, 2)), ns.Dense(1)],
        "mse", [], _regression_data),
    "bidirectional_lstm_mul_sequences": (
        lambda ns: [ns.Bidirectional(ns.LSTM(4, return_sequences=True), merge_mode="mul", input_shape=(None, 2)),
                    ns.GRU(3), ns.Dense(1)], "mse", [], _regression_data),
    "masked_bidirectional_gru_ave": (
        lambda ns: [ns.Embedding(12, 4, mask_zero=True), ns.Bidirectional(ns.GRU(4), merge_mode="ave"),
                    ns.Dense(1, activation="sigmoid")], "binary_crossentropy", ["accuracy"], _padded_tokens),
    "masking_bidirectional_simple_rnn_concat_sequences": (
        lambda ns: [ns.Masking(input_shape=(None, 2)),
                    ns.Bidirectional(ns.SimpleRNN(3, return_sequences=True), merge_mode="concat"),
                    ns.SimpleRNN(3), ns.Dense(1)], "mse", [], _padded_series),
}


def _keras_layers(build):
    import warnings

    with warnings.catch_warnings():  # Keras warns about input_shape on a layer; the seed passes it
        warnings.simplefilter("ignore", UserWarning)
        return build(keras.layers)


@pytest.mark.parametrize("case", list(CASES))
def test_predict_and_history_match_real_keras(case):
    build, loss, metrics, data = CASES[case]
    X, y = data()
    keras.utils.set_random_seed(0)
    real = keras.Sequential(_keras_layers(build))
    real.compile(optimizer="adam", loss=loss, metrics=metrics)
    ours = lk.Sequential(build(lk))
    ours.compile(optimizer="adam", loss=loss, metrics=metrics)
    real.predict(X[:2], verbose=0)  # builds the Keras model
    ours.predict(X[:2])
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in real.get_weights()]
    assert ours.count_params() == real.count_params()
    ours.set_weights(real.get_weights())

    np.testing.assert_allclose(ours.predict(X), real.predict(X, verbose=0), atol=PREDICT_ATOL,
                               err_msg=f"{case}: predict() after copying Keras' weights")

    h_real = real.fit(X, y, epochs=EPOCHS, batch_size=16, shuffle=False, verbose=0).history
    h_ours = ours.fit(X, y, epochs=EPOCHS, batch_size=16, shuffle=False, verbose=0).history
    assert set(h_ours) == set(h_real)
    for key in h_real:
        np.testing.assert_allclose(h_ours[key], h_real[key], rtol=HISTORY_RTOL,
                                   err_msg=f"{case}: per-epoch {key} of fit(shuffle=False)")
    for w_ours, w_real in zip(ours.get_weights(), real.get_weights()):
        np.testing.assert_allclose(w_ours, w_real, atol=1e-4, err_msg=f"{case}: weights after fit")


@pytest.mark.parametrize("make", [
    lambda ns: ns.RMSprop(),
    lambda ns: ns.SGD(learning_rate=0.05, momentum=0.9),
    lambda ns: ns.Adam(learning_rate=0.01, epsilon=1e-3),  # a large epsilon shows its placement
], ids=["rmsprop", "sgd-momentum", "adam-large-epsilon"])
def test_other_optimisers_match_real_keras(make):
    X, y = _regression_data()
    keras.utils.set_random_seed(0)
    real = keras.Sequential(_keras_layers(CASES["lstm"][0]))
    real.compile(optimizer=make(keras.optimizers), loss="mse")
    ours = lk.Sequential(CASES["lstm"][0](lk))
    ours.compile(optimizer=make(lk.optimizers), loss="mse")
    real.predict(X[:1], verbose=0)
    ours.set_weights(real.get_weights())
    h_real = real.fit(X, y, epochs=EPOCHS, batch_size=16, shuffle=False, verbose=0).history["loss"]
    h_ours = ours.fit(X, y, epochs=EPOCHS, batch_size=16, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h_ours, h_real, rtol=HISTORY_RTOL, err_msg="per-epoch loss")


def test_validation_split_takes_the_last_fraction_like_keras():
    X, y = _regression_data(n=40)
    keras.utils.set_random_seed(0)
    real = keras.Sequential(_keras_layers(CASES["lstm"][0]))
    real.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    ours = lk.Sequential(CASES["lstm"][0](lk))
    ours.compile(optimizer=lk.optimizers.Adam(learning_rate=0.01), loss="mse")
    real.predict(X[:1], verbose=0)
    ours.set_weights(real.get_weights())
    fit_real = real.fit(X, y, epochs=2, batch_size=8, shuffle=False, validation_split=0.25, verbose=0)
    fit_ours = ours.fit(X, y, epochs=2, batch_size=8, shuffle=False, validation_split=0.25, verbose=0)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(fit_ours.history[key], fit_real.history[key], rtol=HISTORY_RTOL, err_msg=key)
    assert fit_ours.params == fit_real.params  # verbose, epochs, steps (30 training samples at 8: 4)


def _seed_final_loss(Sequential, layers_ns, set_random_seed, seed):
    """The Keras seed example (PARITY.md top) trained by one implementation."""
    X, y = sum_of_sequence(n_samples=1000, n_steps=10, seed=seed)
    set_random_seed(seed)
    model = Sequential(_keras_layers(lambda ns: [ns.LSTM(64, input_shape=(None, 1)), ns.Dense(1)])
                       if layers_ns is keras.layers else [lk.LSTM(64, input_shape=(None, 1)), lk.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model.fit(X, y, epochs=10, batch_size=32, verbose=0).history["loss"][-1]


def test_seed_example_final_loss_within_20_percent_of_keras():
    real = np.median([_seed_final_loss(keras.Sequential, keras.layers, keras.utils.set_random_seed, s)
                      for s in range(3)])
    ours = np.median([_seed_final_loss(lk.Sequential, lk, lk.set_random_seed, s) for s in range(3)])
    assert abs(ours - real) <= 0.2 * real, f"median final loss {ours:.4f} vs real Keras {real:.4f}"


@pytest.mark.parametrize("input_shape, build", [
    ((None,), lambda ns: [ns.Embedding(50, 8), ns.Bidirectional(ns.LSTM(4, return_sequences=True)),
                          ns.GRU(3, reset_after=False), ns.Dropout(0.1), ns.Dense(1, activation="sigmoid")]),
    ((None, 3), lambda ns: [ns.Masking(), ns.LSTM(4, return_sequences=True), ns.Masking(mask_value=-1),
                            ns.GRU(2), ns.Dense(1)]),
    ((None, 2), lambda ns: [ns.SimpleRNN(5, return_sequences=True), ns.SimpleRNN(4, use_bias=False),
                            ns.Dense(2)]),
    ((None,), lambda ns: [ns.Embedding(30, 4), ns.Bidirectional(ns.SimpleRNN(3, return_sequences=True),
                                                                merge_mode="sum"),
                          ns.Bidirectional(ns.GRU(2), merge_mode="ave"), ns.Dense(1, activation="hard_sigmoid")]),
], ids=["embedding", "masking", "simple_rnn", "merge_modes"])
def test_summary_table_equals_real_keras(capsys, input_shape, build):
    keras.backend.clear_session()  # Keras numbers its layer names per session
    real = keras.Sequential([keras.Input(input_shape), *build(keras.layers)])
    real.summary()
    expected = capsys.readouterr().out
    lk.Sequential([lk.Input(input_shape), *build(lk)]).summary()
    assert capsys.readouterr().out.strip() == expected.strip()


def test_masking_skips_the_padding_and_changes_the_outputs():
    """Masked steps are skipped: a padded row predicts what its real steps alone predict, unlike without Masking."""
    X, _ = _padded_series()

    def plain(ns):
        return [ns.LSTM(6, input_shape=(None, 2)), ns.Dense(1)]

    keras.utils.set_random_seed(0)
    real_masked, real_plain = (keras.Sequential(_keras_layers(b)) for b in (CASES["masking_lstm"][0], plain))
    real_masked.predict(X[:1], verbose=0)
    real_plain.predict(X[:1], verbose=0)
    real_plain.set_weights(real_masked.get_weights())  # Masking has no weights
    ours_masked, ours_plain = lk.Sequential(CASES["masking_lstm"][0](lk)), lk.Sequential(plain(lk))
    ours_masked.set_weights(real_masked.get_weights())
    ours_plain.set_weights(real_masked.get_weights())

    masked, unmasked = ours_masked.predict(X), ours_plain.predict(X)
    np.testing.assert_allclose(masked, real_masked.predict(X, verbose=0), atol=PREDICT_ATOL)
    np.testing.assert_allclose(unmasked, real_plain.predict(X, verbose=0), atol=PREDICT_ATOL)
    assert np.abs(masked - unmasked).max() > 0.05, "Masking changed nothing: the padding was read"
    for row, out in zip(X[:8], masked):  # pre- and post-padded rows of 1 to 7 real steps
        steps = row[np.any(row != 0, axis=-1)]  # (T_n, D)
        np.testing.assert_allclose(ours_plain.predict(steps[None]), out[None], atol=PREDICT_ATOL)


@pytest.mark.parametrize("options", [{}, {"maxlen": 2}, {"maxlen": 4, "padding": "post"},
                                     {"maxlen": 2, "truncating": "post"}, {"value": -1},
                                     {"dtype": "float32", "value": 0.5, "padding": "post"}],
                         ids=["defaults", "maxlen", "post-padding", "post-truncating", "value", "float"])
def test_pad_sequences_equals_keras(options):
    ragged = [[1], [2, 3], [4, 5, 6], []]
    vectors = [np.arange(6.0).reshape(3, 2), np.ones((1, 2))]
    for sequences in (ragged, vectors):
        ours, theirs = lk.pad_sequences(sequences, **options), keras.utils.pad_sequences(sequences, **options)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
    assert lk.utils.pad_sequences is lk.pad_sequences
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post', got 'both'"):
        lk.pad_sequences(ragged, padding="both")
    with pytest.raises(ValueError, match=r"every step of every sequence must have one shape, got \[\(1,\), \(2,\)\]"):
        lk.pad_sequences([np.ones((2, 2)), np.ones((1, 1))])


def _twins(build, X, optimizer, loss, metrics=()):
    """(real Keras model, lstm_ref.keras model) built by ``build``, compiled with ``optimizer(ns)`` for ns in
    (keras.optimizers, lstm_ref.keras.optimizers) (or a name), with Keras' initial weights in both."""
    keras.utils.set_random_seed(0)
    real = keras.Sequential(_keras_layers(build))
    ours = lk.Sequential(build(lk))
    for model, ns in ((real, keras.optimizers), (ours, lk.optimizers)):
        model.compile(optimizer=optimizer if isinstance(optimizer, str) else optimizer(ns), loss=loss,
                      metrics=list(metrics))
    real.predict(X[:2], verbose=0)  # builds the Keras model
    ours.predict(X[:2])
    ours.set_weights(real.get_weights())
    return real, ours


def _assert_same_history(h_ours, h_real, what):
    assert list(h_ours) == list(h_real), f"{what}: History keys"
    for key in h_real:
        np.testing.assert_allclose(h_ours[key], h_real[key], rtol=HISTORY_RTOL, err_msg=f"{what}: {key}")


def _assert_same_weights(ours, real, what, atol=1e-5):
    for k, (w_ours, w_real) in enumerate(zip(ours.get_weights(), real.get_weights())):
        np.testing.assert_allclose(w_ours, w_real, atol=atol, err_msg=f"{what}: weight {k}")


@pytest.mark.parametrize("optimizer, loss, metrics", [
    ("Adam", "MSE", ["acc", "MAE"]),
    ("ADAM", "MeanSquaredError", ["Accuracy", "mean_squared_error", "MeanAbsoluteError"]),
    ("RMSprop", "mean_absolute_error", ["ACC", "mse"]),
    ("sgd", "MAE", ["accuracy", "MSE", "mean_absolute_error"]),
])
def test_compile_names_and_history_keys_match_real_keras(optimizer, loss, metrics):
    """Keras' spellings are taken, and History (val_ included) is keyed by the metric names as given."""
    X, y = _regression_data()
    real, ours = _twins(CASES["gru_reset_after"][0], X, optimizer, loss, metrics)
    fit = dict(epochs=2, batch_size=16, shuffle=False, validation_split=0.2, verbose=0)
    _assert_same_history(ours.fit(X, y, **fit).history, real.fit(X, y, **fit).history, f"{optimizer}/{loss}")


def _class_ids():
    X, y = _tokens()
    return X, y.astype(np.int64)  # (N,) ids of 2 classes


def _one_hot():
    X, y = _class_ids()
    return X, np.eye(2, dtype=np.float32)[y]  # (N, 2)


@pytest.mark.parametrize("loss, metrics, data, units", [
    ("BCE", ["acc"], _tokens, 1),
    ("bce", ["ACC"], _tokens, 1),
    ("BinaryCrossentropy", ["accuracy"], _tokens, 1),
    ("crossentropy", ["acc"], _tokens, 1),  # binary by the shapes
    ("CE", ["acc"], _class_ids, 2),  # sparse by the shapes
    ("SparseCategoricalCrossentropy", ["Acc"], _class_ids, 2),
    ("CategoricalCrossentropy", ["acc"], _one_hot, 2),
], ids=["BCE", "bce", "BinaryCrossentropy", "crossentropy-binary", "CE-sparse", "SparseCategoricalCrossentropy",
        "CategoricalCrossentropy"])
def test_classification_loss_names_match_real_keras(loss, metrics, data, units):
    X, y = data()
    activation = "sigmoid" if units == 1 else "softmax"
    real, ours = _twins(lambda ns: [ns.Embedding(12, 4), ns.LSTM(6), ns.Dense(units, activation=activation)], X,
                        "adam", loss, metrics)
    fit = dict(epochs=2, batch_size=16, shuffle=False, validation_split=0.2, verbose=0)
    _assert_same_history(ours.fit(X, y, **fit).history, real.fit(X, y, **fit).history, loss)


@pytest.mark.parametrize("argument, name", [("optimizer", "adamw"), ("loss", "Mse"), ("loss", "meansquarederror"),
                                            ("loss", "huber"), ("metrics", "Mae"), ("metrics", "rmse")])
def test_names_keras_refuses_or_we_lack_are_refused_with_the_list(argument, name):
    compiled = {"optimizer": "adam", "loss": "mse", "metrics": []}
    compiled[argument] = [name] if argument == "metrics" else name
    model = lk.Sequential(CASES["lstm"][0](lk))
    with pytest.raises(ValueError, match=re.escape(f"got {name!r}")) as refused:
        model.compile(**compiled)
    listed = {"optimizer": lk.OPTIMIZERS, "loss": lk.LOSSES, "metrics": lk.METRICS}[argument]
    assert all(repr(known) in str(refused.value) for known in listed)
    assert "hard_sigmoid_keras" not in str(refused.value)
    if name in ("Mse", "meansquarederror", "Mae", "rmse"):  # Keras refuses these too
        real = keras.Sequential(_keras_layers(CASES["lstm"][0]))
        real.compile(**compiled)
        with pytest.raises(ValueError, match="Could not interpret"):
            real.fit(*_regression_data(n=4), verbose=0)


# Keras clips before the update (keras/src/optimizers/base_optimizer.py); values small enough to bind.
CLIP_BUILD = (lambda ns: [ns.GRU(6, return_sequences=True, input_shape=(None, 2)),  # one (2, 3H) bias variable
                          ns.Bidirectional(ns.LSTM(3)), ns.Dense(1)])
CLIPS = [{"clipnorm": 0.05}, {"global_clipnorm": 0.2}, {"clipvalue": 0.002}]


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: next(iter(c)))
@pytest.mark.parametrize("name, learning_rate", [("SGD", 0.1), ("Adam", 0.01), ("RMSprop", 0.01)])
def test_gradient_clipping_matches_real_keras(name, learning_rate, clip):
    X, y = _regression_data()
    real, ours = _twins(CLIP_BUILD, X, lambda ns: getattr(ns, name)(learning_rate=learning_rate, **clip), "mse")
    free = lk.Sequential(CLIP_BUILD(lk))
    free.compile(optimizer=getattr(lk.optimizers, name)(learning_rate=learning_rate), loss="mse")
    free.set_weights(real.get_weights())
    fit = dict(epochs=2, batch_size=16, shuffle=False, verbose=0)
    h_real = real.fit(X, y, **fit).history
    _assert_same_history(ours.fit(X, y, **fit).history, h_real, f"{name} {clip}")
    _assert_same_weights(ours, real, f"{name} {clip}: weights after fit")
    free.fit(X, y, **fit)
    moved = max(np.abs(a - b).max() for a, b in zip(free.get_weights(), real.get_weights()))
    assert moved > 1e-3, f"{clip} did not bind: unclipped training ends {moved} away"


def test_at_most_one_clipping_argument_with_keras_message():
    for ns in (keras.optimizers, lk.optimizers):
        with pytest.raises(ValueError) as refused:
            ns.Adam(clipnorm=1.0, clipvalue=0.5)
        if ns is keras.optimizers:
            message = str(refused.value)
    assert str(refused.value) == message
    assert lk.SGD(clipnorm=0.0).clipping() == {} and lk.RMSprop(clipvalue=-1.0).clipping() == {}  # Keras: off


@pytest.mark.parametrize("options", [
    {},  # val_loss, patience 0
    {"monitor": "val_mae", "patience": 2, "restore_best_weights": True},
    {"monitor": "loss", "min_delta": 0.5, "patience": 1, "start_from_epoch": 3},
    {"baseline": 2.0, "patience": 3, "restore_best_weights": True},
    {"monitor": "val_mae", "mode": "max", "patience": 1},
], ids=["defaults", "val_mae-restore", "loss-min_delta-start", "baseline-restore", "max"])
def test_early_stopping_matches_real_keras(options):
    X, y = _regression_data(n=40)
    real, ours = _twins(CASES["lstm"][0], X, lambda ns: ns.Adam(learning_rate=0.05), "mse", ["mae"])
    fit = dict(epochs=30, batch_size=8, shuffle=False, validation_split=0.25, verbose=0)
    fit_real = real.fit(X, y, callbacks=[keras.callbacks.EarlyStopping(**options)], **fit)
    fit_ours = ours.fit(X, y, callbacks=[lk.callbacks.EarlyStopping(**options)], **fit)
    assert len(fit_real.history["loss"]) < 30, "the case must stop early in Keras"
    assert fit_ours.epoch == fit_real.epoch and fit_ours.params == fit_real.params
    _assert_same_history(fit_ours.history, fit_real.history, f"EarlyStopping({options})")
    _assert_same_weights(ours, real, f"EarlyStopping({options}): weights after fit", atol=1e-4)


def test_early_stopping_on_accuracy_goes_up_like_keras():
    X, y = _tokens(n=80)
    real, ours = _twins(CASES["embedding_lstm_binary"][0], X, lambda ns: ns.Adam(learning_rate=0.02),
                        "binary_crossentropy", ["acc"])
    fit = dict(epochs=20, batch_size=16, shuffle=False, validation_split=0.25, verbose=0)
    options = dict(monitor="val_acc", patience=1, restore_best_weights=True)
    fit_real = real.fit(X, y, callbacks=[keras.callbacks.EarlyStopping(**options)], **fit)
    fit_ours = ours.fit(X, y, callbacks=[lk.EarlyStopping(**options)], **fit)
    assert len(fit_real.history["loss"]) < 20
    _assert_same_history(fit_ours.history, fit_real.history, "EarlyStopping(val_acc)")
    _assert_same_weights(ours, real, "EarlyStopping(val_acc): restored weights", atol=1e-4)


def test_early_stopping_warnings_and_errors_are_keras_own():
    X, y = _regression_data(n=20)
    messages = []
    for ns, model in zip((keras, lk), _twins(CASES["lstm"][0], X, "adam", "mse", ["mae"])):
        with pytest.warns(UserWarning) as caught:
            history = model.fit(X, y, epochs=2, verbose=0, callbacks=[ns.callbacks.EarlyStopping()])
        messages.append([str(w.message) for w in caught if "Early stopping" in str(w.message)])
        assert len(history.history["loss"]) == 2  # no val_loss: never stops
        with pytest.raises(ValueError) as refused:
            model.fit(X, y, epochs=2, verbose=0, callbacks=[ns.callbacks.EarlyStopping(monitor="foo")])
        messages.append(str(refused.value))
        with pytest.warns(UserWarning, match="EarlyStopping mode 'lowest' is unknown, fallback to auto mode."):
            ns.callbacks.EarlyStopping(mode="lowest")
    assert messages[0] == messages[2] and len(messages[0]) == 2
    assert "Available metrics are: loss,mae" in messages[0][0]
    assert messages[1] == messages[3]
    with pytest.raises(TypeError, match="lstm_ref.keras implements EarlyStopping only, got TerminateOnNaN"):
        model.fit(X, y, callbacks=[keras.callbacks.TerminateOnNaN()])


def test_bad_labels_and_ids_are_named_where_keras_fails():
    """Keras on PyTorch fails inside torch (IndexError) or at the dtype (ValueError); ours names the value first."""
    X, y = _tokens()
    classify = (lambda ns: [ns.Embedding(12, 4), ns.LSTM(3), ns.Dense(3, activation="softmax")])
    real, ours = _twins(classify, X, "adam", "sparse_categorical_crossentropy")
    labels = y.astype(np.int64) * 3  # 0 or 3, for 3 classes
    with pytest.raises(IndexError, match="out of bounds"):
        real.fit(X, labels, verbose=0)
    with pytest.raises(IndexError, match=re.escape("Received a label value of 3 which is outside the valid range "
                                                   "of [0, 3)")):
        ours.fit(X, labels, verbose=0)
    with pytest.raises(IndexError, match=re.escape("Received a label value of -1")):
        ours.evaluate(X, labels - 1)
    with pytest.raises(IndexError, match=re.escape("Received a label value of 3")):
        ours.fit(X[:40], labels[:40] // 3, validation_data=(X[40:], labels[40:]), verbose=0)
    strings = np.array(["no", "yes"])[y.astype(int)]
    for model, match in ((real, "Invalid dtype"), (ours, "y holds strings \\(dtype <U3\\); Keras takes numbers")):
        with pytest.raises(ValueError, match=match):
            model.fit(X, strings, verbose=0)
    with pytest.raises(ValueError, match="x holds strings"):
        ours.predict(np.array([["a", "b"]]))
    too_big = np.where(X == 11, 12, X)  # input_dim 12: ids 0..11
    with pytest.raises(IndexError, match="index out of range"):
        real.predict(too_big, verbose=0)
    with pytest.raises(IndexError, match=re.escape("Embedding input holds the token id 12, outside the valid "
                                                   "range [0, 12)")):
        ours.predict(too_big)
    # Keras on PyTorch reads id -1 as the last row without a word; a negative id is always a bug: refused.
    with pytest.raises(IndexError, match=re.escape("token id -1, outside the valid range [0, 12)")):
        ours.predict(np.where(X == 11, -1, X))


@pytest.mark.parametrize("build", [
    lambda ns: [ns.LSTM(6, dropout=0.3, recurrent_dropout=0.4, return_sequences=True, input_shape=(None, 2)),
                ns.GRU(5, dropout=0.5), ns.Dense(1)],
    lambda ns: [ns.Masking(input_shape=(None, 2)),
                ns.Bidirectional(ns.GRU(4, reset_after=False, recurrent_dropout=0.3)), ns.Dense(1)],
    lambda ns: [ns.SimpleRNN(5, dropout=0.2, recurrent_dropout=0.2, go_backwards=True, input_shape=(None, 2)),
                ns.Dense(1)],
], ids=["lstm_gru", "masked_bidirectional_gru", "simple_rnn"])
def test_dropout_layers_predict_and_evaluate_as_real_keras(build):
    """Inference ignores dropout and recurrent_dropout: with Keras' weights, predict and evaluate equal Keras'."""
    X, y = _padded_series()
    real, ours = _twins(build, X, "adam", "mse")
    np.testing.assert_allclose(ours.predict(X), real.predict(X, verbose=0), atol=PREDICT_ATOL,
                               err_msg="predict() with dropout layers")
    assert ours.evaluate(X, y) == pytest.approx(real.evaluate(X, y, verbose=0), rel=HISTORY_RTOL)

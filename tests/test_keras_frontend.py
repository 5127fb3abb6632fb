"""lstm_ref.keras on its own: Keras' API forms, defaults, weight layout and errors.

(The numbers against real Keras 3 are in test_keras_parity.py.)
"""

import re

import numpy as np
import pytest
import torch

from lstm_ref import keras as lk
from lstm_ref.data import sum_of_sequence
from lstm_ref.keras import (GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Masking, Sequential,
                            SimpleRNN)




def test_the_seed_lines_run_with_only_the_import_changed():
    lk.set_random_seed(0)
    # PARITY.md, the Keras seed, verbatim apart from the import and the data seed.
    X = np.random.default_rng(0).standard_normal((1000, 10, 1))
    y = X.sum(axis=1)
    model = Sequential([LSTM(64, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(X, y, epochs=2, batch_size=32, verbose=0)
    assert len(history.history["loss"]) == 2 and history.history["loss"][1] < history.history["loss"][0]
    assert history.params["steps"] == 32  # 1000 at 32: the partial batch is kept
    assert model.predict(X[:5]).shape == (5, 1)


def test_weights_have_keras_shapes_and_order():
    D, H = 3, 4
    cases = {
        LSTM(H): [(D, 4 * H), (H, 4 * H), (4 * H,)],
        LSTM(H, use_bias=False): [(D, 4 * H), (H, 4 * H)],
        GRU(H): [(D, 3 * H), (H, 3 * H), (2, 3 * H)],
        GRU(H, reset_after=False): [(D, 3 * H), (H, 3 * H), (3 * H,)],
        Bidirectional(LSTM(H)): [(D, 4 * H), (H, 4 * H), (4 * H,)] * 2,
        SimpleRNN(H): [(D, H), (H, H), (H,)],
        SimpleRNN(H, use_bias=False): [(D, H), (H, H)],
        Bidirectional(SimpleRNN(H), merge_mode="ave"): [(D, H), (H, H), (H,)] * 2,
    }
    for layer, shapes in cases.items():
        model = Sequential([Input((None, D)), layer])
        assert [w.shape for w in model.get_weights()] == shapes, type(layer).__name__
        assert model.count_params() == sum(np.prod(s) for s in shapes)
    model = Sequential([Input((None,)), Embedding(10, 5), LSTM(2), Dense(3, activation="softmax")])
    assert [w.shape for w in model.get_weights()] == [(10, 5), (5, 8), (2, 8), (8,), (2, 3), (3,)]


def test_default_initialisers_are_keras_defaults():
    H, D = 8, 3
    model = Sequential([LSTM(H, input_shape=(None, D))])
    kernel, recurrent, bias = model.get_weights()
    limit = np.sqrt(6 / (D + 4 * H))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit  # glorot_uniform
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(H), atol=1e-5)  # orthogonal rows
    np.testing.assert_array_equal(bias, np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])  # unit forget bias
    no_unit = Sequential([LSTM(H, unit_forget_bias=False, input_shape=(None, D))])
    np.testing.assert_array_equal(no_unit.get_weights()[2], np.zeros(4 * H))
    emb = Sequential([Input((None,)), Embedding(100, 10)]).get_weights()[0]
    assert np.abs(emb).max() <= 0.05


def test_gru_weights_are_reordered_to_keras_z_r_h():
    H = 3
    model = Sequential([GRU(H, input_shape=(None, 2))])
    module = model.layers[0].module  # lstm_ref layout: blocks r, z, n
    kernel, _, bias = model.get_weights()
    np.testing.assert_array_equal(kernel[:, :H], module.W.detach().numpy()[:, H : 2 * H])  # z
    np.testing.assert_array_equal(kernel[:, H : 2 * H], module.W.detach().numpy()[:, :H])  # r
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    for ours, given in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(ours, given)
    np.testing.assert_array_equal(module.bh.detach().numpy()[H : 2 * H], weights[2][1, :H])  # recurrent z bias


def test_set_weights_rejects_wrong_counts_and_shapes():
    model = Sequential([LSTM(4, input_shape=(None, 2)), Dense(1)])
    weights = model.get_weights()
    with pytest.raises(ValueError, match="takes 5 weight arrays, got 4"):
        model.set_weights(weights[:4])
    with pytest.raises(ValueError, match="layer 'lstm': weight 0 must have shape \\(2, 16\\), got \\(16, 2\\)"):
        model.set_weights([weights[0].T, *weights[1:]])


def test_summary_prints_the_keras_table(capsys):
    Sequential([LSTM(64, input_shape=(None, 1)), Dense(1)]).summary()
    out = capsys.readouterr().out
    assert "│ lstm (LSTM)                     │ (None, 64)             │        16,896 │" in out
    assert "│ dense (Dense)                   │ (None, 1)              │            65 │" in out
    assert " Total params: 16,961 (66.25 KB)" in out


def test_model_builds_on_first_use_without_an_input_shape():
    model = Sequential([GRU(3), Dense(2)])
    with pytest.raises(RuntimeError, match="not built yet"):
        model.get_weights()
    assert model(np.zeros((4, 5, 2), dtype=np.float32)).shape == (4, 2)
    assert model.count_params() == 3 * (2 * 3 + 3 * 3 + 2 * 3) + 8


def test_classification_with_metrics_validation_and_evaluate():
    lk.set_random_seed(1)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 5, 2)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64) + (X[:, :, 1].sum(axis=1) > 0)  # 3 classes
    model = Sequential([LSTM(8, input_shape=(None, 2)), Dropout(0.1), Dense(3, activation="softmax")])
    model.compile(optimizer=lk.optimizers.Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(X, y, epochs=8, batch_size=16, validation_split=0.25, verbose=0).history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history["loss"][-1] < history["loss"][0] and history["accuracy"][-1] > 0.5
    loss, accuracy = model.evaluate(X[90:], y[90:])
    assert loss == pytest.approx(history["val_loss"][-1], rel=1e-5)
    assert accuracy == pytest.approx(history["val_accuracy"][-1], rel=1e-6)
    probs = model.predict(X)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(X), probs)  # dropout is off at inference


def test_same_seed_same_model_and_history():
    def run(seed):
        lk.set_random_seed(seed)
        X, y = sum_of_sequence(n_samples=64, n_steps=4, seed=0)
        model = Sequential([LSTM(4, input_shape=(None, 1)), Dropout(0.2), Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model.fit(X, y, epochs=2, verbose=0).history["loss"]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_hard_sigmoid_uses_keras_3_definition():
    layer = LSTM(2, recurrent_activation="hard_sigmoid", input_shape=(None, 1))
    Sequential([layer])
    assert layer.module.recurrent_activation == "hard_sigmoid_keras" and not layer.module.fused


def test_optimizer_objects_keep_keras_epsilon_placement():
    adam = lk.optimizers.Adam(learning_rate=0.01, epsilon=1e-8)
    assert (adam.learning_rate, adam.epsilon, adam.eps_placement) == (0.01, 1e-8, "keras")
    sgd = lk.optimizers.SGD(momentum=0.9)
    assert (sgd.learning_rate, sgd.momentum) == (0.01, 0.9)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="units must be a positive int"):
        LSTM(0)
    with pytest.raises(ValueError, match="activation must be one of"):
        Dense(1, activation="swish")
    with pytest.raises(ValueError, match="input_shape=\\(timesteps, features\\)"):
        Sequential([LSTM(2, input_shape=(3,))])
    model = Sequential([LSTM(2, input_shape=(None, 1)), Dense(1)])
    with pytest.raises(RuntimeError, match="call compile"):
        model.fit(np.zeros((4, 3, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="loss must be one of"):
        model.compile(optimizer="adam", loss="huber")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        model.compile(optimizer="adagrad", loss="mse")
    with pytest.raises(TypeError, match="Embedding input must hold integer token ids"):
        Sequential([Input((None,)), Embedding(5, 2)]).module(torch.zeros(2, 3))
    for rate in (1.5, "0.5", True):
        with pytest.raises(ValueError, match=re.escape(f"rate must be a number in [0, 1], got {rate!r}")):
            Dropout(rate)
    assert Dropout(1.0).rate == 1.0  # as in Keras 3: every value dropped
    with pytest.raises(ValueError, match=re.escape("optimizer must be one of ('adam', 'rmsprop', 'sgd') (any case) "
                                                   "or an optimizer object, got 3")):
        model.compile(optimizer=3, loss="mse")  # at compile, not at fit
    with pytest.raises(TypeError, match="LSTM: lstm_ref.keras does not implement Keras' return_state"):
        LSTM(2, return_state=True, dropout=0.1)
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match=re.escape("x holds samples of shape (3,), but the model takes samples of "
                                                   "shape (None, 1) (x of shape (batch, None, 1))")):
        model.fit(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="y must hold the targets to score the predictions against, got None"):
        model.evaluate(np.zeros((4, 3, 1)), None)


def test_masking_is_a_weightless_layer_added_one_by_one():
    model = Sequential([Input((None, 2))])
    model.add(Masking(mask_value=-1))  # a mask open while the model grows is fine
    model.add(LSTM(3))
    model.add(Dense(1))
    masking = model.layers[0]
    assert (masking.name, masking.mask_value, masking.output_shape) == ("masking", -1.0, (None, 2))
    assert masking.get_weights() == [] and model.count_params() == 4 * 3 * (2 + 3 + 1) + 4
    masking.set_weights([])
    with pytest.raises(ValueError, match="layer 'masking' takes 0 weight arrays, got 1"):
        masking.set_weights([np.zeros(2)])
    x = np.array([[[-1, -1], [1, -1], [0, 0]]], dtype=np.float32)  # step 0 masked, step 1 not (one feature differs)
    out = masking.module(torch.as_tensor(x))
    assert out.tolist() == [[[0, 0], [1, -1], [0, 0]]]
    assert masking.compute_mask(torch.as_tensor(x)).tolist() == [[False, True, True]]
    assert lk.layers.Masking is Masking


def test_masking_arguments_are_checked():
    for bad in ("0", None, [0.0], True):
        with pytest.raises(TypeError, match="mask_value must be a number"):
            Masking(mask_value=bad)
    with pytest.raises(ValueError, match="mask_value must not be NaN"):
        Masking(mask_value=float("nan"))
    with pytest.raises(ValueError, match="Masking expects inputs of shape \\(batch, timesteps, features\\)"):
        Sequential([Masking(input_shape=(3,)), Dense(1)])


def test_dense_takes_the_keras_activation_names_of_the_recurrent_layers():
    lk.set_random_seed(0)
    x = np.linspace(-4, 4, 9, dtype=np.float32)[:, None]  # (9, 1)
    model = Sequential([Input((1,)), Dense(1, activation="hard_sigmoid", kernel_initializer="ones")])
    np.testing.assert_allclose(model.predict(x)[:, 0], np.clip(x[:, 0] / 6 + 0.5, 0, 1), atol=1e-7)  # Keras 3
    for name in [*lk.ACTIVATIONS, None]:
        assert Dense(1, activation=name).activation == LSTM(1, activation=name).activation
    for bad in ("hard_sigmoid_keras", "hard_sigmoid_matlab", "swish"):  # internal names are not Keras'
        for make in (lambda a: Dense(1, activation=a), lambda a: GRU(1, recurrent_activation=a),
                     lambda a: SimpleRNN(1, activation=a)):
            with pytest.raises(ValueError, match=re.escape(f"activation must be one of {tuple(lk.ACTIVATIONS)} "
                                                           f"or None, got {bad!r}")) as refused:
                make(bad)
            assert "_keras" not in str(refused.value).replace(repr(bad), "")


def test_simple_rnn_runs_the_fused_kernel_and_the_masked_steps_alike():
    """tanh and relu run torch.rnn_tanh/rnn_relu; under an all-True mask the same cell runs step by step."""
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((3, 5, 2)), dtype=torch.float32)
    everything = torch.ones(3, 5, dtype=torch.bool)
    for activation, fused in (("tanh", True), ("relu", True), ("softsign", False)):
        for go_backwards in (False, True):
            layer = SimpleRNN(4, activation=activation, return_sequences=True, go_backwards=go_backwards,
                              bias_initializer="random_normal")
            Sequential([Input((None, 2)), layer])
            assert layer.module.fused is fused
            torch.testing.assert_close(layer.module(x), layer.module(x, everything), rtol=1e-6, atol=1e-6)


def test_bidirectional_merge_modes_and_their_shapes():
    for mode, width in (("concat", 6), ("sum", 3), ("mul", 3), ("ave", 3)):
        model = Sequential([Input((None, 2)), Bidirectional(SimpleRNN(3, return_sequences=True), merge_mode=mode)])
        assert model.layers[0].output_shape == (None, width)
        assert model.predict(np.ones((2, 4, 2), dtype=np.float32)).shape == (2, 4, width)
    with pytest.raises(ValueError, match="merge_mode=None returns the forward and backward outputs as two tensors, "
                                         "which a Sequential model cannot pass on"):
        Bidirectional(LSTM(2), merge_mode=None)
    with pytest.raises(ValueError, match=re.escape("merge_mode must be one of ('concat', 'sum', 'mul', 'ave'), "
                                                   "got 'max'")):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(TypeError, match="layer must be an LSTM, GRU or SimpleRNN, got Dense"):
        Bidirectional(Dense(2))


def test_a_gru_bias_is_one_variable_for_clipnorm():
    """Keras' GRU bias (2, 3H) is one variable: its b and bh are clipped together (``_Clipping``)."""
    model = Sequential([Input((None, 2)), Bidirectional(GRU(3, return_sequences=True)),
                        GRU(2, use_bias=False, return_sequences=True),
                        GRU(2, reset_after=False, return_sequences=True), GRU(2), Dense(1)])
    assert model._learnables() == {
        "0.forward_layer.b": "0.forward_layer.bias", "0.forward_layer.bh": "0.forward_layer.bias",
        "0.backward_layer.b": "0.backward_layer.bias", "0.backward_layer.bh": "0.backward_layer.bias",
        "3.b": "3.bias", "3.bh": "3.bias"}
    names = dict(model.module.named_parameters())
    assert all(name in names for name in model._learnables())
    assert lk.Adam(clipnorm=1.0).clipping() == {"gradient_threshold": 1.0, "gradient_threshold_method": "l2norm"}
    assert lk.SGD(global_clipnorm=2).clipping()["gradient_threshold_method"] == "global-l2norm"
    assert lk.RMSprop(clipvalue=0.5).clipping()["gradient_threshold_method"] == "absolute-value"
    assert lk.Adam().clipping() == {}


def _keras_cell_reference(layer, x, rate, recurrent_rate):
    """Keras' cells (keras/src/layers/rnn/lstm.py, gru.py, simple_rnn.py) in Keras' weight layout, with the
    dropout masks drawn anew from torch's RNG in lstm_ref.layers' documented order: x's (G', N, D), G' = G
    with recurrent dropout else 1, then h's (G, N, H), each Bernoulli(1 - rate) / (1 - rate)."""
    kernel, recurrent_kernel, *bias = (torch.tensor(w) for w in layer.get_weights())
    (N, T, D), H = x.shape, layer.units
    G = recurrent_kernel.shape[1] // H
    ones = torch.ones(1, N, D), torch.ones(1, N, H)
    mx, mh = (torch.bernoulli(torch.full(shape, 1 - r)) / (1 - r) if r else one
              for r, shape, one in ((rate, (G if recurrent_rate else 1, N, D), ones[0]),
                                    (recurrent_rate, (G, N, H), ones[1])))
    mx, mh = mx.expand(G, N, D), mh.expand(G, N, H)
    if isinstance(layer, GRU):  # the masks follow lstm_ref's gate order r, z, n; Keras' blocks are z, r, h
        mx, mh = mx[[1, 0, 2]], mh[[1, 0, 2]]
    K, R = kernel.chunk(G, dim=1), recurrent_kernel.chunk(G, dim=1)
    b_in, b_rec = (bias[0][0], bias[0][1]) if bias[0].ndim == 2 else (bias[0], torch.zeros(G * H))
    h, c = torch.zeros(N, H), torch.zeros(N, H)
    for t in range(T):
        xk = [(x[:, t] * mx[k]) @ K[k] + b_in.chunk(G)[k] for k in range(G)]  # (N, H) each
        hk = [(h * mh[k]) @ R[k] + b_rec.chunk(G)[k] for k in range(G)]
        if isinstance(layer, LSTM):
            i, f, o = (torch.sigmoid(xk[k] + hk[k]) for k in (0, 1, 3))
            c = f * c + i * torch.tanh(xk[2] + hk[2])
            h = o * torch.tanh(c)
        elif isinstance(layer, GRU):
            z, r = (torch.sigmoid(xk[k] + hk[k]) for k in (0, 1))
            hh = torch.tanh(xk[2] + (r * hk[2] if layer.reset_after else (r * h * mh[2]) @ R[2]))
            h = z * h + (1 - z) * hh
        else:
            h = torch.tanh(xk[0] + hk[0])
    return h


@pytest.mark.parametrize("rate, recurrent_rate", [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)])
@pytest.mark.parametrize("make", [lambda **kw: LSTM(5, **kw), lambda **kw: GRU(5, **kw),
                                  lambda **kw: GRU(5, reset_after=False, **kw), lambda **kw: SimpleRNN(5, **kw)],
                         ids=["lstm", "gru", "gru-reset-before", "simple-rnn"])
def test_training_forward_with_dropout_is_keras_cell_with_the_drawn_masks(make, rate, recurrent_rate):
    """In training mode the layer equals Keras' cell equations with masks drawn in the documented order."""
    layer = make(dropout=rate, recurrent_dropout=recurrent_rate, input_shape=(None, 3))
    model = Sequential([layer])
    rng = np.random.default_rng(3)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])  # biases too
    x = torch.tensor(rng.standard_normal((4, 6, 3)), dtype=torch.float32)
    model.module.train()
    torch.manual_seed(11)
    out = model.module(x)
    torch.manual_seed(11)
    expected = _keras_cell_reference(layer, x, rate, recurrent_rate)
    np.testing.assert_allclose(out.detach().numpy(), expected.numpy(), rtol=1e-5, atol=1e-5,
                               err_msg="h_T in training with dropout")
    assert np.abs(out.detach().numpy() - model.predict(x.numpy())).max() > 1e-2, "dropout changed nothing"


@pytest.mark.parametrize("make", [LSTM, GRU, SimpleRNN])
def test_fit_with_dropout_repeats_with_the_seed_and_differs_without(make):
    X, y = sum_of_sequence(n_samples=48, n_steps=5, seed=0)

    def run(seed, **rates):
        lk.set_random_seed(seed)
        model = Sequential([make(4, input_shape=(None, 1), **rates), Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model.fit(X, y, epochs=2, batch_size=16, verbose=0).history["loss"], model.get_weights()

    (loss, weights), (loss_again, weights_again) = run(5, dropout=0.3, recurrent_dropout=0.3), \
        run(5, dropout=0.3, recurrent_dropout=0.3)
    assert loss == loss_again
    for w, w_again in zip(weights, weights_again):
        np.testing.assert_array_equal(w, w_again)
    for rates in ({}, {"dropout": 0.3}, {"recurrent_dropout": 0.3}):
        assert run(5, **rates)[0] != loss, f"fit with {rates} equals fit with both dropouts"
    assert run(6, dropout=0.3, recurrent_dropout=0.3)[0] != loss


def test_bad_dropout_rates_are_refused_naming_the_argument():
    for make, name, rate in ((LSTM, "dropout", 1.0), (GRU, "recurrent_dropout", -0.1),
                             (SimpleRNN, "dropout", "0.5"), (LSTM, "recurrent_dropout", float("nan")),
                             (GRU, "dropout", True)):
        with pytest.raises(ValueError, match=re.escape(f"{name} must be a number in [0, 1), got {rate!r}")):
            make(2, **{name: rate})
    assert LSTM(2, dropout=0, recurrent_dropout=0.99).recurrent_dropout == 0.99


def test_lists_are_converted_as_np_asarray_converts_them_and_ragged_lists_refused():
    """A list of token id lists stays integer (Embedding), a list of float sequences is one array; a ragged
    list, which Keras refuses, is refused here too, pointing to pad_sequences (it is never padded silently)."""
    lk.set_random_seed(0)
    ids = np.random.default_rng(0).integers(1, 10, size=(8, 6))
    classifier = Sequential([Embedding(10, 4), LSTM(3), Dense(1, activation="sigmoid")])
    classifier.compile(optimizer="adam", loss="binary_crossentropy")
    np.testing.assert_array_equal(classifier.predict(ids.tolist()), classifier.predict(ids))
    assert len(classifier.fit(ids.tolist(), [0, 1] * 4, verbose=0).history["loss"]) == 1
    X, y = sum_of_sequence(n_samples=8, n_steps=5, seed=0)
    model = Sequential([LSTM(3, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    np.testing.assert_array_equal(model.predict(X.tolist()), model.predict(X))
    with pytest.raises(ValueError, match=re.escape("x is a ragged list (samples of different shapes, such as "
                                                   "sequences of different lengths), which Keras refuses: pad "
                                                   "them to one length first, e.g. x = pad_sequences(x")):
        model.predict([np.ones((5, 1)), np.ones((3, 1))])


def test_integer_and_bool_features_are_cast_to_float_as_keras_casts_them():
    lk.set_random_seed(0)
    X, y = sum_of_sequence(n_samples=16, n_steps=5, seed=0)
    counts = np.round(3 * X).astype(np.int64)
    model = Sequential([LSTM(3, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    np.testing.assert_array_equal(model.predict(counts), model.predict(counts.astype(np.float32)))
    np.testing.assert_array_equal(model.predict(X > 0), model.predict((X > 0).astype(np.float32)))
    assert model.evaluate(counts, y) == model.evaluate(counts.astype(np.float32), y)
    assert len(model.fit(counts, y, validation_data=(X > 0, y), verbose=0).history["val_loss"]) == 1


def test_complex_numbers_are_refused_not_cast_to_their_real_part():
    model = Sequential([LSTM(3, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    X, y = sum_of_sequence(n_samples=8, n_steps=5, seed=0)
    with pytest.raises(ValueError, match=re.escape("x must hold real numbers (bool, int or float), got dtype "
                                                   "complex128")):
        model.predict(X + 1j)
    with pytest.raises(ValueError, match=re.escape("y must hold real numbers (bool, int or float), got dtype "
                                                   "complex128")):
        model.fit(X, y + 1j, verbose=0)


def test_set_random_seed_takes_non_negative_ints_only():
    """Keras' set_random_seed refuses floats and None; a bool is refused too, as every seed in lstm_ref."""
    lk.set_random_seed(np.int64(3))
    for seed, error, message in ((1.5, TypeError, "got float"), (None, TypeError, "got NoneType"),
                                 (True, TypeError, "got bool"), (-1, ValueError, "a non-negative int, got -1")):
        with pytest.raises(error, match=f"seed must be .*{message}"):
            lk.set_random_seed(seed)


def test_numpy_integer_counts_are_taken_and_bad_batch_sizes_named_in_predict_and_evaluate():
    X, y = sum_of_sequence(n_samples=8, n_steps=5, seed=0)
    model = Sequential([LSTM(3, input_shape=(None, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(X, y, epochs=np.int64(2), batch_size=np.int64(4), verbose=0)
    assert len(history.history["loss"]) == 2 and history.params["steps"] == 2
    for batch_size in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match=re.escape(f"batch_size must be a positive int, got {batch_size!r}")):
            model.predict(X, batch_size=batch_size)
        with pytest.raises(ValueError, match=re.escape(f"batch_size must be a positive int, got {batch_size!r}")):
            model.evaluate(X, y, batch_size=batch_size)
    with pytest.raises(ValueError, match=re.escape("validation_data must be a pair (x_val, y_val), got a tuple of "
                                                   "length 1")):
        model.fit(X, y, validation_data=(X,), verbose=0)

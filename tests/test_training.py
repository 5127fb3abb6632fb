"""Every training semantic of lstm_ref.training, checked against a hand computation or torch itself."""

import math
import re

import numpy as np
import pytest
import torch

from lstm_ref import training
from lstm_ref.presets import preset

RTOL = 1e-12


class IndexTarget(torch.nn.Module):
    """A linear model of x[:, -1]; used with y = sample index to see the batch order."""

    def __init__(self, D: int = 1) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros(D, 1, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        return x[:, -1] @ self.W + self.b  # (N, 1)


def _batches_seen(config, n=10, epochs=3, batch_size=4, seed=0):
    """The sample indices of every mini-batch, in training order, per epoch."""
    seen: list[list[np.ndarray]] = [[] for _ in range(epochs)]
    x = np.zeros((n, 2, 1))
    y = np.arange(n, dtype=float)[:, None]
    training.fit(IndexTarget(), x, y, config=config, epochs=epochs, batch_size=batch_size, seed=seed,
                 verbose=0, optimizer=training.SGD(0.0),
                 callback=lambda info: seen[info.epoch - 1].append(info.y[:, 0].numpy().astype(int)))
    return seen


# ----------------------------------------------------------------- losses
def test_half_mse_is_half_the_sum_over_responses_mean_over_observations():
    y_pred = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 1.0]], dtype=torch.float64)
    # per observation: 0.5*(1+4) = 2.5, 0.5*(1+4) = 2.5, 0.5*(0+4) = 2; mean 7/3
    assert training.half_mse(y_pred, y).item() == pytest.approx(7 / 3, rel=RTOL)
    # Keras mse: mean of all 6 squared errors = 14/6
    assert training.mse(y_pred, y).item() == pytest.approx(14 / 6, rel=RTOL)


def test_half_mse_of_sequences_is_also_divided_by_the_steps():
    rng = np.random.default_rng(0)
    y_pred, y = torch.from_numpy(rng.standard_normal((4, 5, 2))), torch.from_numpy(rng.standard_normal((4, 5, 2)))
    expected = 0.5 * ((y_pred - y) ** 2).sum().item() / (4 * 5)
    assert training.half_mse(y_pred, y).item() == pytest.approx(expected, rel=RTOL)


def test_targets_of_shape_n_align_with_predictions_of_shape_n_by_1():
    y_pred = torch.tensor([[1.0], [2.0]])
    assert training.mse(y_pred, torch.tensor([0.0, 0.0])).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="do not match predictions"):
        training.mse(y_pred, torch.zeros(3))


def test_crossentropy_sparse_one_hot_logits_and_probabilities_agree():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    expected = -torch.log_softmax(logits, -1)[[0, 1], [0, 2]].mean()
    probs = torch.softmax(logits, -1)
    one_hot = torch.nn.functional.one_hot(labels, 3).double()
    for value in (training.crossentropy(logits, labels, from_logits=True),
                  training.crossentropy(probs, labels),
                  training.crossentropy(probs, labels[:, None].double()),
                  training.crossentropy(probs, one_hot)):
        assert value.item() == pytest.approx(expected.item(), rel=1e-12)


def test_crossentropy_names_a_class_id_outside_the_classes():
    """As the Keras front end names it; torch's gather would fail with an index error (a device assert on CUDA)."""
    probs = torch.full((4, 3), 1 / 3, dtype=torch.float64)
    for bad in (5, -1):
        with pytest.raises(IndexError, match=f"Received a label value of {bad} which is outside the valid range "
                                             "of \\[0, 3\\)"):
            training.crossentropy(probs, torch.tensor([0, 1, 2, bad]))


def test_binary_crossentropy_clips_probabilities_like_keras():
    y = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    p = torch.tensor([[1.0], [0.25]], dtype=torch.float64)  # log(1) clipped to log(1 - 1e-7)
    expected = -(math.log(1 - 1e-7) + math.log(0.75)) / 2
    assert training.binary_crossentropy(p, y).item() == pytest.approx(expected, rel=1e-12)
    logits = torch.logit(torch.tensor([[0.9], [0.25]], dtype=torch.float64))
    expected = -(math.log(0.9) + math.log(0.75)) / 2
    assert training.binary_crossentropy(logits, y, from_logits=True).item() == pytest.approx(expected, rel=1e-12)


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="loss must be a callable or one of"):
        training.get_loss("hinge")


# ------------------------------------------------------------- optimisers
def _adam_by_hand(g_seq, w0, lr, b1, b2, eps, placement):
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(g_seq, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        if placement == "keras":
            w = w - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        else:
            w = w - lr / (1 - b1**t) * m / (np.sqrt(v) / math.sqrt(1 - b2**t) + eps)
    return w


@pytest.mark.parametrize("placement", ["keras", "pytorch"])
def test_adam_matches_a_hand_computation_for_each_epsilon_placement(placement):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(5)
    # tiny gradients make epsilon matter, so the two placements differ visibly
    g_seq = [rng.standard_normal(5) * 1e-6 for _ in range(4)]
    eps = 1e-7
    expected = _adam_by_hand(g_seq, w0, 0.01, 0.9, 0.999, eps, placement)
    other = _adam_by_hand(g_seq, w0, 0.01, 0.9, 0.999, eps, "pytorch" if placement == "keras" else "keras")
    w = torch.from_numpy(w0.copy())
    opt = training.Adam(0.01, epsilon=eps, eps_placement=placement)
    for g in g_seq:
        opt.step([w], [torch.from_numpy(g)])
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12, err_msg=f"Adam ({placement} epsilon)")
    assert np.abs(expected - other).max() > 1e-4, "the two placements should differ for tiny gradients"


@pytest.mark.parametrize("ours, make_ref", [
    (lambda: training.Adam(0.01, epsilon=1e-8, eps_placement="pytorch"),
     lambda w: torch.optim.Adam([w], lr=0.01, eps=1e-8)),
    (lambda: training.RMSprop(0.01, rho=0.99, epsilon=1e-8, eps_placement="pytorch"),
     lambda w: torch.optim.RMSprop([w], lr=0.01, alpha=0.99, eps=1e-8)),
    (lambda: training.SGD(0.05, momentum=0.9),  # equal while the learning rate is constant
     lambda w: torch.optim.SGD([w], lr=0.05, momentum=0.9)),
], ids=["adam-pytorch-placement", "rmsprop-pytorch-placement", "sgd-momentum"])
def test_optimiser_equals_torch_optim(ours, make_ref):
    rng = np.random.default_rng(2)
    w_ours = torch.from_numpy(rng.standard_normal((3, 4)))
    w_torch = torch.nn.Parameter(w_ours.clone())
    opt, ref = ours(), make_ref(w_torch)
    for _ in range(5):
        g = torch.from_numpy(rng.standard_normal((3, 4)))
        opt.step([w_ours], [g])
        w_torch.grad = g.clone()
        ref.step()
    torch.testing.assert_close(w_ours, w_torch.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("form", ["velocity", "buffer"])
def test_sgd_momentum_forms_across_a_learning_rate_drop(form):
    rng = np.random.default_rng(9)
    w0, g_seq = rng.standard_normal(3), [rng.standard_normal(3) for _ in range(4)]
    rates = [0.1, 0.1, 0.01, 0.01]
    w, state = w0.copy(), np.zeros(3)
    for lr, g in zip(rates, g_seq):
        if form == "velocity":
            state = 0.9 * state - lr * g
            w = w + state
        else:
            state = 0.9 * state + g
            w = w - lr * state
    ours = torch.from_numpy(w0.copy())
    opt = training.SGD(momentum=0.9, momentum_form=form)
    for lr, g in zip(rates, g_seq):
        opt.learning_rate = lr
        opt.step([ours], [torch.from_numpy(g)])
    np.testing.assert_allclose(ours.numpy(), w, rtol=1e-12, err_msg=f"SGD ({form} momentum)")
    if form == "buffer":  # torch.optim.SGD is the buffer form, learning-rate changes included
        ref = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        sgd = torch.optim.SGD([ref], lr=0.1, momentum=0.9)
        for lr, g in zip(rates, g_seq):
            sgd.param_groups[0]["lr"] = lr
            ref.grad = torch.from_numpy(g)
            sgd.step()
        torch.testing.assert_close(ours, ref.detach(), rtol=1e-12, atol=1e-14)


def test_rmsprop_keras_placement_matches_a_hand_computation():
    rng = np.random.default_rng(8)
    w0, g_seq = rng.standard_normal(4), [rng.standard_normal(4) * 1e-4 for _ in range(3)]
    w, v = w0.copy(), np.zeros(4)
    for g in g_seq:
        v = 0.9 * v + 0.1 * g**2
        w = w - 0.01 * g / np.sqrt(v + 1e-7)
    ours = torch.from_numpy(w0.copy())
    opt = training.RMSprop(0.01, rho=0.9, epsilon=1e-7, eps_placement="keras")
    for g in g_seq:
        opt.step([ours], [torch.from_numpy(g)])
    np.testing.assert_allclose(ours.numpy(), w, rtol=1e-12, err_msg="RMSprop (keras epsilon)")


# ------------------------------------------------- regularisation, clipping
def test_l2_is_added_to_weight_gradients_and_biases_are_exempt():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 3, 2)), rng.standard_normal((8, 1))
    model = IndexTarget(D=2)
    with torch.no_grad():
        model.W.copy_(torch.from_numpy(rng.standard_normal((2, 1))))
        model.b.fill_(0.5)
    W0, b0 = model.W.detach().clone(), model.b.detach().clone()
    loss = training.mse(model(torch.from_numpy(x)), torch.from_numpy(y))
    gW, gb = torch.autograd.grad(loss, [model.W, model.b])
    lr, l2 = 0.1, 0.3
    config = preset("keras", l2=l2, bias_l2_factor=0.0, loss="mse", shuffle="never")
    training.fit(model, x, y, config=config, epochs=1, batch_size=8, optimizer=training.SGD(lr), verbose=0)
    torch.testing.assert_close(model.W.detach(), W0 - lr * (gW + l2 * W0), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(model.b.detach(), b0 - lr * gb, rtol=1e-12, atol=1e-14)


def test_callback_and_stop_end_training_early():
    x, y = np.zeros((10, 2, 1)), np.zeros((10, 1))
    model = IndexTarget()
    at_fourth = training.fit(model, x, y, epochs=5, batch_size=4, verbose=0, callback=lambda it: it.iteration == 4)
    assert len(at_fourth.iteration_loss) == 4 and len(at_fourth.loss) == 2  # 3 + 1 iterations: two epochs begun
    after_two = training.fit(model, x, y, epochs=5, batch_size=4, verbose=0, stop=lambda h: len(h.loss) == 2)
    assert len(after_two.loss) == 2 and len(after_two.iteration_loss) == 6
    assert not model.training  # left in eval mode as after a full run


def test_l2_factors_per_parameter_override_the_bias_rule():
    model = IndexTarget(D=2)
    params, factors = training._trainable(model, preset("matlab"), {"b": 2.0}, None)[:2]
    assert factors == [1.0, 2.0]
    assert training.is_bias("lstm.bias_ih_l0") and training.is_bias("0.bh") and not training.is_bias("0.W")
    with pytest.raises(ValueError, match="l2_factors names unknown parameters \\['c'\\]"):
        training._trainable(model, preset("matlab"), {"c": 1.0}, None)
    with pytest.raises(ValueError, match="learnables names unknown parameters \\['c'\\]"):
        training._trainable(model, preset("matlab"), None, {"c": "x"})
    assert training._trainable(model, preset("matlab"), None, None)[2] is None  # each parameter alone
    assert training._trainable(model, preset("matlab"), None, {"W": "Wb", "b": "Wb"})[2] == [0, 0]


def test_clipping_per_learnable_and_global():
    g1, g2 = torch.tensor([3.0, 4.0], dtype=torch.float64), torch.tensor([0.6, 0.8], dtype=torch.float64)
    per = [g1.clone(), g2.clone()]
    training.clip_gradients(per, 2.0, "l2norm")  # norms 5 and 1: only the first is rescaled
    torch.testing.assert_close(per[0], g1 * 2 / 5)
    torch.testing.assert_close(per[1], g2)
    glob = [g1.clone(), g2.clone()]
    training.clip_gradients(glob, 2.0, "global-l2norm")  # global norm sqrt(26)
    for ours, g in zip(glob, (g1, g2)):
        torch.testing.assert_close(ours, g * 2 / math.sqrt(26), rtol=1e-12, atol=0)
    absolute = [g1.clone()]
    training.clip_gradients(absolute, 3.5, "absolute-value")
    torch.testing.assert_close(absolute[0], torch.tensor([3.0, 3.5], dtype=torch.float64))
    g3 = torch.tensor([0.0, 0.5], dtype=torch.float64)
    grouped = [g1.clone(), g2.clone(), g3.clone()]
    training.clip_gradients(grouped, 1.0, "l2norm", [0, 1, 1])  # norms 5 and sqrt(1 + 0.25): both rescaled
    torch.testing.assert_close(grouped[0], g1 / 5)
    for ours, g in zip(grouped[1:], (g2, g3)):
        torch.testing.assert_close(ours, g / math.sqrt(1.25), rtol=1e-12, atol=0)
    untouched = [g1.clone()]
    training.clip_gradients(untouched, math.inf, "l2norm")
    torch.testing.assert_close(untouched[0], g1)


# ---------------------------------------------------------- mini-batches
@pytest.mark.parametrize("name, iterations", [("matlab", 31), ("keras", 32), ("pytorch", 32)])
def test_partial_batch_discarded_or_kept(name, iterations):
    x, y = np.zeros((1000, 2, 1)), np.zeros((1000, 1))
    history = training.fit(IndexTarget(), x, y, config=name, epochs=2, batch_size=32, verbose=0)
    assert len(history.iteration_loss) == 2 * iterations
    assert len(history.loss) == 2


def test_shuffle_every_epoch_once_and_never():
    every = _batches_seen(preset("keras", shuffle="every-epoch"))
    orders = [np.concatenate(epoch) for epoch in every]
    assert sorted(orders[0]) == list(range(10)) and len(orders[0]) == 10  # partial batch kept
    assert not np.array_equal(orders[0], orders[1]) or not np.array_equal(orders[1], orders[2])
    once = [np.concatenate(epoch) for epoch in _batches_seen(preset("matlab", shuffle="once"))]
    assert len(once[0]) == 8  # 10 at 4: the partial batch of 2 dropped
    assert all(np.array_equal(once[0], order) for order in once)
    assert not np.array_equal(once[0], np.arange(8))
    never = [np.concatenate(epoch) for epoch in _batches_seen(preset("keras", shuffle="never"))]
    assert all(np.array_equal(order, np.arange(10)) for order in never)


def test_shuffling_is_seeded():
    config = preset("keras")
    a, b, c = (_batches_seen(config, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(p, q) for e, f in zip(a, b) for p, q in zip(e, f))
    assert any(not np.array_equal(np.concatenate(e), np.concatenate(f)) for e, f in zip(a, c))


def test_epoch_loss_is_the_batch_size_weighted_mean():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((10, 2, 1)), rng.standard_normal((10, 1))
    history = training.fit(IndexTarget(), x, y, config="keras", epochs=2, batch_size=4, verbose=0)
    for epoch in range(2):
        losses = np.array(history.iteration_loss[3 * epoch : 3 * epoch + 3])
        assert history.loss[epoch] == pytest.approx(losses @ [4, 4, 2] / 10, rel=1e-12)


def test_variable_length_sequences_are_padded_right_to_the_longest_in_each_batch():
    x, lengths = training.pad_sequences([np.ones((2, 1)), np.ones((4, 1)), np.ones(3)])
    assert x.shape == (3, 4, 1) and lengths.tolist() == [2, 4, 3]
    np.testing.assert_array_equal(x[0, :, 0], [1, 1, 0, 0])
    shapes = []

    class Recorder(IndexTarget):
        def forward(self, x):
            shapes.append(tuple(x.shape))
            return super().forward(x)

    sequences = [np.ones((t, 1)) for t in (2, 5, 3, 3)]
    training.fit(Recorder(), sequences, np.zeros((4, 1)), config=preset("matlab", shuffle="never"),
                 epochs=1, batch_size=2, verbose=0)
    assert shapes == [(2, 5, 1), (2, 3, 1)]
    with pytest.raises(ValueError, match="same D features"):
        training.pad_sequences([np.ones((2, 1)), np.ones((2, 2))])


def _recorder(seen: list) -> IndexTarget:
    """An IndexTarget that appends the first feature (B, T) of every mini-batch it sees to ``seen``."""

    class Recorder(IndexTarget):
        def forward(self, x):
            seen.append(x[:, :, 0].detach().numpy().copy())
            return super().forward(x)

    return Recorder()


def test_left_padding_puts_the_zeros_first_and_crops_each_batch_to_its_last_steps():
    x, lengths = training.pad_sequences([np.ones((2, 1)), np.ones((4, 1))], "left")
    np.testing.assert_array_equal(x[:, :, 0], [[0, 0, 1, 1], [1, 1, 1, 1]])
    seen = []
    sequences = [np.arange(1.0, t + 1)[:, None] for t in (2, 5, 3, 1)]
    training.fit(_recorder(seen), sequences, np.zeros((4, 1)), config=preset("matlab", shuffle="never", padding="left"),
                 epochs=1, batch_size=2, verbose=0)
    np.testing.assert_array_equal(seen[0], [[0, 0, 0, 1, 2], [1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(seen[1], [[1, 2, 3], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"padding must be one of \('right', 'left'\), got 'both'"):
        training.pad_sequences(sequences, "both")
    with pytest.raises(ValueError, match="padding must be one of"):
        preset("matlab", padding="center")


@pytest.mark.parametrize(("padding", "first", "second"), [
    ("right", [[1, 2], [1, 2]], [[1, 2, 3], [1, 2, 3]]),  # each mini-batch's first steps
    ("left", [[1, 2], [4, 5]], [[1, 2, 3], [2, 3, 4]])])  # its last: the sequences end together
def test_sequence_length_shortest_truncates_each_batch_to_its_shortest(padding, first, second):
    seen = []
    sequences = [np.arange(1.0, t + 1)[:, None] for t in (2, 5, 3, 4)]
    config = preset("matlab", shuffle="never", padding=padding, sequence_length="shortest")
    training.fit(_recorder(seen), sequences, np.zeros((4, 1)), config=config, epochs=1, batch_size=2, verbose=0)
    np.testing.assert_array_equal(seen[0], first)
    np.testing.assert_array_equal(seen[1], second)
    with pytest.raises(ValueError, match="sequence_length must be one of"):
        preset("matlab", sequence_length="longer")


def test_predict_returns_each_sequence_at_its_own_length():
    class PerStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

        def forward(self, x):
            return self.scale * x  # (N, T, 1): one output per step

    sequences = [np.arange(1.0, t + 1)[:, None] for t in (3, 1, 4)]
    for padding in ("right", "left"):
        out = training.predict(PerStep(), sequences, batch_size=2, padding=padding)
        assert [o.shape for o in out] == [(3, 1), (1, 1), (4, 1)]
        for o, s in zip(out, sequences):
            np.testing.assert_array_equal(o, 2 * s)


def test_fit_is_reproducible_with_dropout_and_shuffling():
    def run(seed):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(6, 1))
        x = np.random.default_rng(0).standard_normal((20, 3, 2))
        return training.fit(model, x, x.sum(axis=(1, 2))[:, None], config="keras", epochs=3,
                            batch_size=8, seed=seed, verbose=0).iteration_loss

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_learning_rate_schedule_and_callback_report_each_iteration():
    infos = []
    x, y = np.zeros((8, 2, 1)), np.ones((8, 1))
    training.fit(IndexTarget(), x, y, config="keras", epochs=3, batch_size=4, verbose=0,
                 optimizer=training.SGD(0.1), learning_rate_schedule=lambda e: 0.5**e, callback=infos.append)
    assert [i.iteration for i in infos] == list(range(1, 7))
    assert [i.learning_rate for i in infos] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert [i.end_of_epoch for i in infos] == [False, True] * 3


def test_validation_and_metrics_are_reported_per_epoch():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((12, 2, 1)), rng.standard_normal((12, 1))
    abs_err = {"mae": lambda p, t: (p - t).abs().mean(dim=1)}
    history = training.fit(IndexTarget(), x, y, config="keras", epochs=2, batch_size=12, verbose=0,
                           metrics=abs_err, validation_data=(x, y), optimizer=training.SGD(0.0))
    expected = np.abs(y).mean()  # the model predicts 0 and never moves at lr 0
    assert history.metrics["mae"] == pytest.approx([expected] * 2)
    assert history.metrics["val_mae"] == pytest.approx([expected] * 2)
    assert history.val_loss == pytest.approx(history.loss)


def test_progress_bar_unless_verbose_0(capsys):
    x, y = np.zeros((8, 2, 1)), np.ones((8, 1))
    training.fit(IndexTarget(), x, y, epochs=2, batch_size=4, verbose=0)
    assert capsys.readouterr().err == ""
    training.fit(IndexTarget(), x, y, epochs=2, batch_size=4, verbose=1)
    assert "4/4" in capsys.readouterr().err


def test_float32_by_default_and_float64_allowed():
    x, y = np.zeros((8, 2, 1)), np.ones((8, 1))
    model32 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 1))
    training.fit(model32, x, y, epochs=1, verbose=0)
    assert training.predict(model32, x).dtype == np.float32
    assert training.predict(IndexTarget(), x).dtype == np.float64


def test_bad_arguments_are_named():
    x, y = np.zeros((8, 2, 1)), np.ones((8, 1))
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        training.fit(IndexTarget(), x, y, epochs=0)
    with pytest.raises(ValueError, match="same number of samples"):
        training.fit(IndexTarget(), x, y[:4], verbose=0)
    with pytest.raises(ValueError, match="x contains NaN"):
        training.fit(IndexTarget(), np.full((8, 2, 1), np.nan), y, verbose=0)
    with pytest.raises(ValueError, match="no iteration would run"):
        training.fit(IndexTarget(), x, y, config="matlab", verbose=0)  # 8 samples, batches of 128 dropped
    with pytest.raises(ValueError, match="optimizer must be"):
        training.fit(IndexTarget(), x, y, optimizer="adagrad", verbose=0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        training.fit(lambda v: v, x, y)
    with pytest.raises(ValueError, match=re.escape("validation_data must be a pair (x_val, y_val), got a tuple "
                                                   "of length 1")):
        training.fit(IndexTarget(), x, y, validation_data=(x,), verbose=0)


def test_batch_sizes_and_counts_are_checked_as_fit_checks_them():
    """predict and evaluate take the batch_size that fit takes; NumPy integers count, bools do not."""
    x, y = np.zeros((8, 2, 1)), np.ones((8, 1))
    history = training.fit(IndexTarget(), x, y, epochs=np.int64(2), batch_size=np.int64(4), verbose=0)
    assert len(history.loss) == 2 and len(history.iteration_loss) == 4
    for batch_size in (0, -2, 2.5, True):
        message = re.escape(f"batch_size must be a positive int, got {batch_size!r}")
        with pytest.raises(ValueError, match=message):
            training.predict(IndexTarget(), x, batch_size=batch_size)
        with pytest.raises(ValueError, match=message):
            training.evaluate(IndexTarget(), x, y, batch_size=batch_size)
        with pytest.raises(ValueError, match=message):
            training.fit(IndexTarget(), x, y, batch_size=batch_size, verbose=0)


@pytest.mark.parametrize(("seed", "error", "message"), [
    (True, TypeError, "seed must be an int or a numpy.random.Generator, got bool"),
    (None, TypeError, "seed must be an int or a numpy.random.Generator, got NoneType"),
    (1.5, TypeError, "seed must be an int or a numpy.random.Generator, got float"),
    (-1, ValueError, "seed must be a non-negative int, got -1"),
])
def test_seeds_are_checked_as_the_initialisers_check_them(seed, error, message):
    with pytest.raises(error, match=re.escape(message)):
        training.fit(IndexTarget(), np.zeros((8, 2, 1)), np.ones((8, 1)), seed=seed, verbose=0)


@pytest.mark.parametrize(("x", "y", "message"), [
    (np.zeros((8, 2, 1)) + 1j, np.ones((8, 1)), "x must hold real numbers (bool, int or float), got dtype complex128"),
    (np.zeros((8, 2, 1)), np.ones((8, 1)) + 0j, "y must hold real numbers (bool, int or float), got dtype complex128"),
    (np.zeros((8, 2, 1)), np.full((8, 1), "1.5"), "y must hold real numbers (bool, int or float), got dtype <U3"),
    (np.zeros((8, 2, 1)), np.ones((0, 1)), "y must not be empty, got shape (0, 1)"),
])
def test_complex_and_non_numeric_data_are_refused_naming_the_argument(x, y, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        training.fit(IndexTarget(), x, y, verbose=0)


def test_training_never_writes_into_the_arrays_a_layer_was_built_from():
    from lstm_ref.layers import Dense

    params = {"W": np.ones((3, 1)), "b": np.zeros(1)}
    before = {k: v.copy() for k, v in params.items()}
    model = Dense(params, dtype=torch.float64)
    x = np.random.default_rng(0).standard_normal((8, 3))
    training.fit(model, x, x.sum(axis=1, keepdims=True) * 2, epochs=2, batch_size=4, seed=0, verbose=0)
    assert not torch.equal(model.W.detach(), torch.ones(3, 1, dtype=torch.float64))
    for key in params:
        np.testing.assert_array_equal(params[key], before[key], err_msg=f"params[{key!r}] changed")

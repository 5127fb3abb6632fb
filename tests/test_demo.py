"""lstm_ref.demo: its Adam is Keras' Adam, and the demo trains and writes its plot."""

from __future__ import annotations

import keras
import numpy as np

from lstm_ref import demo

# Keras keeps the learning rate in a float32 variable (1e-3 becomes 1.00000005e-3), so its
# updates differ from exact float64 ones by float32's relative rounding.
UPDATE_RTOL = 1e-6


def test_adam_equals_keras_adam(rng):
    w0 = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) for _ in range(4)]
    ours = {"w": w0.copy()}
    adam = demo.Adam(ours)
    var = keras.Variable(w0.copy(), dtype="float64")
    opt = keras.optimizers.Adam(learning_rate=1e-3)  # Keras defaults: 0.9, 0.999, epsilon 1e-7
    for step, g in enumerate(grads):
        adam.step({"w": g})
        opt.apply_gradients([(keras.ops.convert_to_tensor(g, dtype="float64"), var)])
        theirs = var.value.detach().cpu().numpy()
        np.testing.assert_allclose(
            ours["w"] - w0, theirs - w0, rtol=UPDATE_RTOL, err_msg=f"total update after Adam step {step + 1}"
        )


def test_demo_trains_and_writes_the_plot(tmp_path, capsys):
    out = tmp_path / "plots" / "demo.png"
    assert demo.main(["--epochs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    losses = [float(line.split("loss")[1]) for line in printed.splitlines() if line.startswith("epoch")]
    assert len(losses) == 2 and losses[1] < losses[0], f"training loss did not fall: {losses}"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the plot is not a PNG file"
    assert list(out.parent.iterdir()) == [out], "a temporary file was left beside the plot"

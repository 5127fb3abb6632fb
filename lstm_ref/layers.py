"""Torch modules over ``lstm_ref.torch_backend``, the building blocks of the front ends.

Each module holds its parameters in the lstm_ref layout (package docstring:
``W (D, G*H)``, ``U (H, G*H)``, ``b``; gate order i, f, g, o and r, z, n) as
``nn.Parameter`` named exactly like the dict keys, so that
``dict(module.named_parameters())`` is a params dict of the backend and the
front ends convert to Keras or MATLAB layouts key by key. Modules are built
from NumPy parameter dicts (``lstm_ref.init`` draws them), in float32 unless
told otherwise. A recurrent module runs the fused ``nn.LSTM``/``nn.GRU``/``nn.RNN``
kernel when its cell allows it (standard LSTM, sigmoid gates, tanh; a vanilla
RNN with tanh or relu) and the gate-by-gate cell otherwise (variants,
hard-sigmoid, before-multiplication GRU).

Dropout in the recurrent layers is Keras 3's (keras/src/layers/rnn/
dropout_rnn_cell.py and the LSTMCell, GRUCell, SimpleRNNCell ``call``s), in
training mode only (``module.train()``): masks of 0 and 1/(1 - rate), each
entry kept with probability 1 - rate, drawn from torch's RNG once per call
(per batch) and used at every step. ``dropout`` masks the inputs x_t,
``recurrent_dropout`` the h_{t-1} that the gates read. Without recurrent
dropout one input mask (N, D) serves every gate, so x is masked once for the
whole sequence and the fused kernel still runs; with it (Keras'
implementation 1) every gate block k gets its own masks, x_t W_k reading
x_t * mx_k and h_{t-1} U_k reading h_{t-1} * mh_k, and the cell runs gate
by gate (a fused kernel cannot mask h between steps). The GRU's update
z * h_{t-1} reads the unmasked h_{t-1}, as Keras'.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from lstm_ref import torch_backend as tb

Tensor = torch.Tensor
State = tuple[Tensor, ...]  # a recurrent layer's state: (h,), or (h, c) for the LSTM

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softsign": nn.functional.softsign,  # x / (1 + |x|): MATLAB's StateActivationFunction 'softsign'
    "linear": lambda x: x,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "hard_sigmoid_keras": tb.hard_sigmoid_keras,
    "hard_sigmoid_matlab": tb.hard_sigmoid_matlab,
}


def dropout_rate(name: str, rate: object) -> float:
    """``rate`` as a float, checked to be a dropout rate in [0, 1) (1 would drop every value)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 <= rate < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def dropout_mask(shape: tuple[int, ...], rate: float, like: Tensor) -> Tensor:
    """Inverted dropout's mask of ``shape``: Bernoulli(1 - rate) draws of torch's RNG divided by 1 - rate
    (Keras' ``backend.random.dropout`` on ones), in ``like``'s dtype and on its device."""
    keep = 1.0 - rate
    return torch.bernoulli(torch.full(shape, keep, dtype=like.dtype, device=like.device)) / keep


def activation(name: str) -> Callable[[Tensor], Tensor]:
    """An activation by name (see ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class _ParamModule(nn.Module):
    """A module whose parameters come from a NumPy dict, keys kept as names."""

    def __init__(self, params: Mapping[str, np.ndarray], dtype: torch.dtype,
                 device: torch.device | str | None) -> None:
        super().__init__()
        for key, value in params.items():
            # torch.tensor copies: training must never write into the caller's arrays.
            self.register_parameter(
                key, nn.Parameter(torch.tensor(np.asarray(value), dtype=dtype, device=device))
            )

    def params(self) -> dict[str, Tensor]:
        """The parameters as a backend params dict (live tensors)."""
        return dict(self.named_parameters(recurse=False))


class _Recurrent(_ParamModule):
    """Shared plumbing of the recurrent layers: time reversal, output choice, masking.

    ``activations`` maps the activation keywords of the ``torch_backend`` cell
    (``activation``, and ``recurrent_activation`` for the gated cells) to
    names in ``ACTIVATIONS``. ``dropout`` and ``recurrent_dropout`` are rates
    in [0, 1) (module docstring).
    """

    bias_keys: tuple[str, ...] = ("b",)  # the cell's biases (zeros when absent)
    state_size = 1  # arrays in the state

    def __init__(self, params, *, return_sequences, reverse, activations: Mapping[str, str], dtype,
                 device, dropout=0.0, recurrent_dropout=0.0) -> None:
        for name in activations.values():
            activation(name)  # raises for an unknown name
        super().__init__(params, dtype, device)
        self.return_sequences = return_sequences
        self.reverse = reverse
        self.activation_names = dict(activations)
        self.dropout = dropout_rate("dropout", dropout)
        self.recurrent_dropout = dropout_rate("recurrent_dropout", recurrent_dropout)

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        """(the hidden states (N, T, H), the final state) from ``state``, zeros when None."""
        raise NotImplementedError

    def _cell_params(self, x: Tensor) -> dict[str, Tensor]:
        """The params dict, with zero biases where the layer has none (use_bias=False)."""
        p = self.params()
        for key in self.bias_keys:
            if key not in p:
                p[key] = torch.zeros(p["U"].shape[1], dtype=x.dtype, device=x.device)
        return p

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (N, T, D) -> (N, T, H) if return_sequences else (N, H), from zero states.

        With ``reverse`` the sequence is read from the last step to the first
        and the outputs are flipped back, so that step t of the output belongs
        to step t of the input (Keras Bidirectional, MATLAB bilstmLayer).

        ``mask`` (N, T) bool, as Keras' masking (``Embedding(mask_zero=True)``):
        at a step whose mask is False the state and the output stay those of
        the step before (zeros before the first step kept), so that a padded
        sequence gives what the sequence alone gives; the last output is the
        state after the last step kept. Masked, the cell runs gate by gate.

        In training mode, ``dropout`` and ``recurrent_dropout`` draw their
        masks (``_dropout_masks``) for this call.
        """
        return self.forward_with_state(x, mask=mask)[0]

    def forward_with_state(self, x: Tensor, state: State | None = None,
                           mask: Tensor | None = None) -> tuple[Tensor, State]:
        """As ``forward``, from ``state`` (zeros when None); also returns the state after the last step read.

        The state is (h, c) for the LSTM and (h,) for the GRU, each (N, H), as
        MATLAB's HiddenState and CellState: ``matlab.predictAndUpdateState``
        carries it from one call to the next.
        """
        if self.reverse:
            x, mask = x.flip(1), None if mask is None else mask.flip(1)
        x_masks, h_masks = self._dropout_masks(x)
        if h_masks is None and x_masks is not None:
            x, x_masks = x * x_masks[0, :, None], None  # (N, T, D): one mask for every step and gate
        if mask is None and h_masks is None:
            out, final = self._run(x, state)  # (N, T, H)
        else:
            out, final = self._run_steps(x, state, mask, x_masks, h_masks)
        if not self.return_sequences:
            return out[:, -1], final  # (N, H): the last step read
        return (out.flip(1) if self.reverse else out), final

    def _dropout_masks(self, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """In training, the masks (``dropout_mask``) of x (G', N, D) and of h (G, N, H), in that order;
        None for a rate of 0 and outside training.

        G is the cell's number of gate blocks (4 LSTM, 3 GRU, 1 SimpleRNN);
        G' is G with recurrent dropout and 1 without it, as Keras'
        ``dropout_mask_count``, set only where recurrent_dropout > 0.
        """
        if not self.training:
            return None, None
        (N, _, D), (H, GH) = x.shape, self.U.shape
        G = GH // H
        x_masks = dropout_mask((G if self.recurrent_dropout else 1, N, D), self.dropout, x) if self.dropout else None
        h_masks = dropout_mask((G, N, H), self.recurrent_dropout, x) if self.recurrent_dropout else None
        return x_masks, h_masks

    def _run_steps(self, x: Tensor, state: State | None, mask: Tensor | None, x_masks: Tensor | None = None,
                   h_masks: Tensor | None = None) -> tuple[Tensor, State]:
        """``_run`` step by step, gate by gate, keeping the state where ``mask`` (N, T) is False (None:
        nowhere), gate block k reading x * x_masks[k] and h * h_masks[k] (``_dropout_masks``)."""
        p, acts = self._cell_params(x), self._activations()
        if state is None:
            zeros = torch.zeros(x.shape[0], p["U"].shape[0], dtype=x.dtype, device=x.device)
            state = (zeros,) * self.state_size
        xW = tb.gate_projection(x, p["W"], None if x_masks is None else x_masks[:, :, None])  # (N, T, GH)
        outs = []
        for t in range(x.shape[1]):
            new = self._step(x[:, t], state, p, acts, xW[:, t], h_masks)
            state = new if mask is None else tuple(torch.where(mask[:, t, None], n, old) for n, old in zip(new, state))
            outs.append(state[0])  # h (N, H)
        return torch.stack(outs, dim=1), state

    def _step(self, x: Tensor, state: State, p: dict[str, Tensor], acts: dict, xW: Tensor,
              h_masks: Tensor | None) -> State:
        """One step of the cell, gate by gate, with the activations ``acts`` (``_activations``), the
        input projection ``xW`` (N, GH) and recurrent-dropout masks ``h_masks`` (G, N, H) or None."""
        raise NotImplementedError

    def _activations(self) -> dict[str, Callable[[Tensor], Tensor]]:
        """The cell's activation functions, as the gate-by-gate functions of ``torch_backend`` take them."""
        return {keyword: activation(name) for keyword, name in self.activation_names.items()}


class _Gated(_Recurrent):
    """What the LSTM and the GRU share: gates (sigma = ``recurrent_activation``) and a cell activation."""

    def __init__(self, params, *, return_sequences, reverse, recurrent_activation, cell_activation, dtype,
                 device, dropout=0.0, recurrent_dropout=0.0) -> None:
        super().__init__(params, return_sequences=return_sequences, reverse=reverse, dtype=dtype, device=device,
                         activations={"recurrent_activation": recurrent_activation, "activation": cell_activation},
                         dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.recurrent_activation = recurrent_activation
        self.cell_activation = cell_activation
        self.fused = recurrent_activation == "sigmoid" and cell_activation == "tanh"


class LSTM(_Gated):
    """An LSTM layer (any variant) over the torch backend.

    Args:
        params: NumPy dict W (D, GH), U (H, GH), b (GH,) [, p_i, p_f, p_o];
            without ``b`` the layer has no bias (Keras use_bias=False).
        variant: see ``lstm_ref.torch_backend.LSTM_VARIANTS``.
        return_sequences: all steps (N, T, H) or the last (N, H).
        reverse: read the sequence backwards (the backward half of a BiLSTM).
        recurrent_activation, cell_activation: names in ``ACTIVATIONS`` for
            the gates (sigma) and for g and tanh(c).
        dropout, recurrent_dropout: Keras' dropout rates of x_t and h_{t-1}
            in [0, 1), in training mode only (module docstring).
    """

    state_size = 2  # (h, c)

    def __init__(self, params: Mapping[str, np.ndarray], *, variant: str = "standard",
                 return_sequences: bool = False, reverse: bool = False,
                 recurrent_activation: str = "sigmoid", cell_activation: str = "tanh",
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0) -> None:
        super().__init__(params, return_sequences=return_sequences, reverse=reverse,
                         recurrent_activation=recurrent_activation, cell_activation=cell_activation, dtype=dtype,
                         device=device, dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.variant = variant
        self.fused = self.fused and variant == "standard"

    def _step(self, x, state, p, acts, xW, h_masks):
        return tb.lstm_step(x, *state, p, variant=self.variant, xW=xW, h_masks=h_masks, **acts)

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        p = self._cell_params(x)
        h0, c0 = (None, None) if state is None else state
        if self.fused:
            return tb.lstm_forward_fast(x, p, h0, c0)
        return tb.lstm_forward(x, p, h0, c0, variant=self.variant, **self._activations())


class GRU(_Gated):
    """A GRU layer (any reset-gate placement) over the torch backend.

    Args:
        params: NumPy dict W (D, 3H), U (H, 3H), b (3H,) [, bh (3H,) for
            ``recurrent-bias-after-multiplication``]; without ``b`` no bias.
        reset_mode: see ``lstm_ref.torch_backend.GRU_RESET_MODES``.
        Other arguments as for ``LSTM``.
    """

    def __init__(self, params: Mapping[str, np.ndarray], *,
                 reset_mode: str = "after-multiplication", return_sequences: bool = False,
                 reverse: bool = False, recurrent_activation: str = "sigmoid",
                 cell_activation: str = "tanh", dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0) -> None:
        super().__init__(params, return_sequences=return_sequences, reverse=reverse,
                         recurrent_activation=recurrent_activation, cell_activation=cell_activation, dtype=dtype,
                         device=device, dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.reset_mode = reset_mode
        if reset_mode == "recurrent-bias-after-multiplication":
            self.bias_keys = ("b", "bh")
        self.fused = self.fused and reset_mode != "before-multiplication"

    def _step(self, x, state, p, acts, xW, h_masks):
        return (tb.gru_step(x, state[0], p, reset_mode=self.reset_mode, xW=xW, h_masks=h_masks, **acts),)

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        p = self._cell_params(x)
        h0 = None if state is None else state[0]
        if self.fused:
            out, h = tb.gru_forward_fast(x, p, h0, reset_mode=self.reset_mode)
        else:
            out, h = tb.gru_forward(x, p, h0, reset_mode=self.reset_mode, **self._activations())
        return out, (h,)


class SimpleRNN(_Recurrent):
    """A vanilla (Elman) RNN layer over the torch backend: ``h_t = act(x_t W + h_{t-1} U + b)``.

    Args:
        params: NumPy dict W (D, H), U (H, H), b (H,); without ``b`` no bias.
        activation_name: a name in ``ACTIVATIONS`` for act; "tanh" and "relu"
            run the fused kernel of ``nn.RNN`` (``torch_backend.rnn_forward_fast``).
        Other arguments as for ``LSTM``.
    """

    def __init__(self, params: Mapping[str, np.ndarray], *, activation_name: str = "tanh",
                 return_sequences: bool = False, reverse: bool = False, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0) -> None:
        super().__init__(params, return_sequences=return_sequences, reverse=reverse,
                         activations={"activation": activation_name}, dtype=dtype, device=device,
                         dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.fused = activation_name in tb.RNN_NONLINEARITIES

    def _step(self, x, state, p, acts, xW, h_masks):
        return (tb.rnn_step(x, state[0], p, xW=xW, h_masks=h_masks, **acts),)

    def _run(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        p = self._cell_params(x)
        h0 = None if state is None else state[0]
        if self.fused:
            out, h = tb.rnn_forward_fast(x, p, h0, nonlinearity=self.activation_names["activation"])
        else:
            out, h = tb.rnn_forward(x, p, h0, **self._activations())
        return out, (h,)


MERGE_MODES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "concat": lambda fw, bw: torch.cat([fw, bw], dim=-1),  # (..., 2H), forward features first
    "sum": torch.add,
    "mul": torch.mul,
    "ave": lambda fw, bw: (fw + bw) / 2,
}


class Bidirectional(nn.Module):
    """A forward and a backward (``reverse=True``) recurrent layer, their outputs merged.

    ``merge_mode`` as Keras' Bidirectional (keras/src/layers/rnn/bidirectional.py):
    "concat" gives (N, T, 2H) or (N, 2H), forward features first (also
    MATLAB's bilstmLayer); "sum", "mul" and "ave" give (N, T, H) or (N, H),
    the elementwise sum, product or mean of the two directions.
    """

    def __init__(self, forward_layer: _Recurrent, backward_layer: _Recurrent, merge_mode: str = "concat") -> None:
        super().__init__()
        if forward_layer.reverse or not backward_layer.reverse:
            raise ValueError("backward_layer must have reverse=True and forward_layer reverse=False")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {tuple(MERGE_MODES)}, got {merge_mode!r}")
        self.forward_layer = forward_layer
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """As each layer's ``forward``; ``mask`` (N, T) masks both directions alike."""
        return MERGE_MODES[self.merge_mode](self.forward_layer(x, mask), self.backward_layer(x, mask))


class Dense(_ParamModule):
    """``y = act(x W + b)`` over the last axis; W (D, R), b (R,) (optional)."""

    def __init__(self, params: Mapping[str, np.ndarray], *, activation_name: str = "linear",
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> None:
        super().__init__(params, dtype, device)
        self.activation_name = activation_name
        self.act = activation(activation_name)

    def forward(self, x: Tensor) -> Tensor:
        z = x @ self.W  # (..., R)
        if "b" in self._parameters:
            z = z + self.b
        return self.act(z)


class Embedding(_ParamModule):
    """Token ids (N, T) -> vectors (N, T, D) by rows of E (V, D)."""

    def __init__(self, params: Mapping[str, np.ndarray], *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        super().__init__(params, dtype, device)

    def forward(self, x: Tensor) -> Tensor:
        """Rows of E for the ids x; an id outside [0, V) is an error (torch would read id -1 as
        the last row, and on CUDA stop at a device-side assert without naming the id)."""
        if x.is_floating_point():
            raise TypeError("Embedding input must hold integer token ids, got floats")
        V = self.E.shape[0]
        outside = x[(x < 0) | (x >= V)]
        if outside.numel():
            raise IndexError(f"Embedding input holds the token id {int(outside[0])}, outside the valid range "
                             f"[0, {V}) of its {V} rows (Keras' input_dim): ids must be in 0..{V - 1}")
        return self.E[x]  # (N, T, D)

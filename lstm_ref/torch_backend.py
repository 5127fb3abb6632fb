"""PyTorch backend: the NumPy backend's cells with autograd, and fast wrappers.

Two forms of the same equations, both taking the parameter dicts of
``lstm_ref`` (layout in the package docstring: ``W (D, G*H)``, ``U (H, G*H)``,
``b (G*H,)``, gate order i, f, g, o for the LSTM and r, z, n for the GRU) as
torch tensors:

* the teaching form, written gate by gate so that every line is one equation
  of the course (``lstm_step``/``lstm_forward``, ``gru_step``/``gru_forward``,
  ``rnn_step``/``rnn_forward``); gradients come from autograd;
* the fast form (``lstm_forward_fast``, ``gru_forward_fast``), thin wrappers
  over the fused kernels behind ``nn.LSTM``/``nn.GRU`` (``torch.lstm``,
  ``torch.gru``, cuDNN on CUDA) for the cells those kernels can express.

Both equal the NumPy backend to 1e-10 in float64 (tests/test_torch_backend.py).
Tensors are created on the input's device and dtype, so everything runs on
CUDA when the inputs live there and never requires it.

References: Hochreiter & Schmidhuber 1997; Gers et al. 2000 (forget gate);
Greff et al. 2017, "LSTM: A Search Space Odyssey" (variants);
Cho et al. 2014 (GRU); torch/nn/modules/rnn.py (the fused kernels' layout).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

Tensor = torch.Tensor
Activation = Callable[[Tensor], Tensor]
Params = Mapping[str, Tensor]

LSTM_VARIANTS = ("standard", "peephole", "coupled", "no_forget", "no_output")
GRU_RESET_MODES = (
    "after-multiplication",
    "before-multiplication",
    "recurrent-bias-after-multiplication",
)
# Gate blocks of the fused matrices, in column order, per LSTM variant.
LSTM_BLOCKS = {
    "standard": "ifgo",
    "peephole": "ifgo",
    "coupled": "igo",
    "no_forget": "igo",
    "no_output": "ifg",
}


def hard_sigmoid_keras(x: Tensor) -> Tensor:
    """Keras 3 hard sigmoid: ``relu6(x + 3) / 6 = clip(x/6 + 1/2, 0, 1)``.

    keras/src/activations/activations.py (Keras 3.15): 0 for x <= -3,
    1 for x >= 3, x/6 + 0.5 between (Keras 2 used 0.2x + 0.5).
    """
    return torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)


def hard_sigmoid_matlab(x: Tensor) -> Tensor:
    """MATLAB hard sigmoid (lstmLayer 'GateActivationFunction','hard-sigmoid').

    ``max(0, min(1, 0.2 x + 0.5))`` (PARITY.md, MATLAB column).
    """
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_params(params: Params, keys: tuple[str, ...], cell: str) -> None:
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(
            f"params for {cell} must hold keys {keys}; missing {missing}"
        )


def _check_sequence(x: Tensor, W: Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError(
            f"x must be a torch tensor of shape (N, T, D), got "
            f"{type(x).__name__} with shape {tuple(getattr(x, 'shape', ()))}"
        )
    if x.shape[2] != W.shape[0]:
        raise ValueError(
            f"x has D={x.shape[2]} features but W expects D={W.shape[0]}"
        )


def _zeros_state(x: Tensor, H: int) -> Tensor:
    return torch.zeros(x.shape[0], H, dtype=x.dtype, device=x.device)


def _lstm_keys(variant: str) -> tuple[str, ...]:
    return ("W", "U", "b", "p_i", "p_f", "p_o") if variant == "peephole" else ("W", "U", "b")


def lstm_step(
    x: Tensor,
    h_prev: Tensor,
    c_prev: Tensor,
    params: Params,
    *,
    variant: str = "standard",
    recurrent_activation: Activation = torch.sigmoid,
    activation: Activation = torch.tanh,
    xW: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step, gate by gate.

    Standard cell (sigma = ``recurrent_activation``, tanh = ``activation``)::

        z = x W + h_prev U + b                     (N, 4H), blocks [i|f|g|o]
        i = sigma(z_i)   f = sigma(z_f)   g = tanh(z_g)   o = sigma(z_o)
        c = f * c_prev + i * g
        h = o * tanh(c)

    Variants (``variant``): ``peephole`` adds p_i * c_prev to z_i, p_f * c_prev
    to z_f and p_o * c to z_o; ``coupled`` has blocks [i|g|o] and f = 1 - i;
    ``no_forget`` has blocks [i|g|o] and f = 1; ``no_output`` has blocks
    [i|f|g] and o = 1.

    Args:
        x: (N, D) input at this step.
        h_prev, c_prev: (N, H) previous hidden and cell states.
        params: dict with W (D, GH), U (H, GH), b (GH,) (and p_i, p_f, p_o (H,)
            for the peephole variant).
        xW: optional precomputed ``x @ W`` (N, GH), so that a sequence does its
            input projection once for all steps.
    Returns:
        h, c: (N, H) each.
    """
    _check_choice("variant", variant, LSTM_VARIANTS)
    _check_params(params, _lstm_keys(variant), f"the {variant} LSTM")
    if xW is None:
        xW = x @ params["W"]
    z = xW + h_prev @ params["U"] + params["b"]  # (N, GH)
    blocks = dict(zip(LSTM_BLOCKS[variant], z.chunk(len(LSTM_BLOCKS[variant]), dim=1)))
    if variant == "peephole":
        blocks["i"] = blocks["i"] + params["p_i"] * c_prev
        blocks["f"] = blocks["f"] + params["p_f"] * c_prev
    i = recurrent_activation(blocks["i"])  # (N, H)
    g = activation(blocks["g"])  # (N, H)
    if variant == "coupled":
        f = 1.0 - i
    elif variant == "no_forget":
        f = torch.ones_like(i)
    else:
        f = recurrent_activation(blocks["f"])
    c = f * c_prev + i * g  # (N, H)
    if variant == "no_output":
        o = torch.ones_like(c)
    elif variant == "peephole":
        o = recurrent_activation(blocks["o"] + params["p_o"] * c)
    else:
        o = recurrent_activation(blocks["o"])
    h = o * activation(c)  # (N, H)
    return h, c


def lstm_forward(
    x: Tensor,
    params: Params,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    *,
    variant: str = "standard",
    return_sequences: bool = True,
    recurrent_activation: Activation = torch.sigmoid,
    activation: Activation = torch.tanh,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run ``lstm_step`` over a sequence (teaching form, any variant).

    Args:
        x: (N, T, D) batch-first inputs.
        params: as in ``lstm_step``.
        h0, c0: (N, H) initial states; zeros when None.
    Returns:
        out: (N, T, H) all hidden states if ``return_sequences`` else (N, H) h_T;
        (h_T, c_T): (N, H) final states.
    """
    _check_choice("variant", variant, LSTM_VARIANTS)
    _check_params(params, _lstm_keys(variant), f"the {variant} LSTM")
    _check_sequence(x, params["W"])
    H = params["U"].shape[0]
    h = _zeros_state(x, H) if h0 is None else h0
    c = _zeros_state(x, H) if c0 is None else c0
    xW = x @ params["W"]  # (N, T, GH): the input projection of every step at once
    hs = []
    for t in range(x.shape[1]):
        h, c = lstm_step(
            x[:, t], h, c, params, variant=variant, xW=xW[:, t],
            recurrent_activation=recurrent_activation, activation=activation,
        )
        hs.append(h)
    out = torch.stack(hs, dim=1) if return_sequences else h  # (N, T, H) or (N, H)
    return out, (h, c)


def gru_step(
    x: Tensor,
    h_prev: Tensor,
    params: Params,
    *,
    reset_mode: str = "after-multiplication",
    recurrent_activation: Activation = torch.sigmoid,
    activation: Activation = torch.tanh,
    xW: Tensor | None = None,
) -> Tensor:
    """One GRU step, gate by gate (sigma = ``recurrent_activation``)::

        r = sigma(x W_r + h_prev U_r + b_r)
        z = sigma(x W_z + h_prev U_z + b_z)
        n = tanh(x W_n + b_n + r * (h_prev U_n))          after-multiplication
        n = tanh(x W_n + (r * h_prev) U_n + b_n)          before-multiplication
        n = tanh(x W_n + b_n + r * (h_prev U_n + bh_n))   recurrent-bias-after-multiplication
        h = (1 - z) * n + z * h_prev

    In ``recurrent-bias-after-multiplication`` (nn.GRU, Keras reset_after=True)
    the recurrent bias bh (3H,) is added to h_prev U in all three blocks.

    Args:
        x: (N, D); h_prev: (N, H); params: W (D, 3H), U (H, 3H), b (3H,)
        [, bh (3H,)]; xW: optional precomputed ``x @ W`` (N, 3H).
    Returns:
        h: (N, H).
    """
    _check_choice("reset_mode", reset_mode, GRU_RESET_MODES)
    with_bh = reset_mode == "recurrent-bias-after-multiplication"
    _check_params(params, ("W", "U", "b", "bh") if with_bh else ("W", "U", "b"), "the GRU")
    if xW is None:
        xW = x @ params["W"]
    x_r, x_z, x_n = (xW + params["b"]).chunk(3, dim=1)  # (N, H) each
    U_r, U_z, U_n = params["U"].chunk(3, dim=1)  # (H, H) each
    if reset_mode == "before-multiplication":
        r = recurrent_activation(x_r + h_prev @ U_r)
        z = recurrent_activation(x_z + h_prev @ U_z)
        n = activation(x_n + (r * h_prev) @ U_n)
    else:
        hU = h_prev @ params["U"]  # (N, 3H)
        if with_bh:
            hU = hU + params["bh"]
        h_r, h_z, h_n = hU.chunk(3, dim=1)
        r = recurrent_activation(x_r + h_r)
        z = recurrent_activation(x_z + h_z)
        n = activation(x_n + r * h_n)
    return (1.0 - z) * n + z * h_prev  # (N, H)


def gru_forward(
    x: Tensor,
    params: Params,
    h0: Tensor | None = None,
    *,
    reset_mode: str = "after-multiplication",
    return_sequences: bool = True,
    recurrent_activation: Activation = torch.sigmoid,
    activation: Activation = torch.tanh,
) -> tuple[Tensor, Tensor]:
    """Run ``gru_step`` over a sequence (teaching form, any reset mode).

    Args:
        x: (N, T, D); params: as in ``gru_step``; h0: (N, H) or None (zeros).
    Returns:
        out: (N, T, H) if ``return_sequences`` else (N, H); h_T: (N, H).
    """
    _check_choice("reset_mode", reset_mode, GRU_RESET_MODES)
    _check_params(params, ("W", "U", "b"), "the GRU")
    _check_sequence(x, params["W"])
    h = _zeros_state(x, params["U"].shape[0]) if h0 is None else h0
    xW = x @ params["W"]  # (N, T, 3H)
    hs = []
    for t in range(x.shape[1]):
        h = gru_step(
            x[:, t], h, params, reset_mode=reset_mode, xW=xW[:, t],
            recurrent_activation=recurrent_activation, activation=activation,
        )
        hs.append(h)
    return (torch.stack(hs, dim=1) if return_sequences else h), h


def rnn_step(
    x: Tensor, h_prev: Tensor, params: Params, *, activation: Activation = torch.tanh
) -> Tensor:
    """One vanilla RNN step: ``h = tanh(x W + h_prev U + b)``, (N, H).

    params: W (D, H), U (H, H), b (H,).
    """
    _check_params(params, ("W", "U", "b"), "the RNN")
    return activation(x @ params["W"] + h_prev @ params["U"] + params["b"])  # (N, H)


def rnn_forward(
    x: Tensor,
    params: Params,
    h0: Tensor | None = None,
    *,
    return_sequences: bool = True,
    activation: Activation = torch.tanh,
) -> tuple[Tensor, Tensor]:
    """Run ``rnn_step`` over a sequence x (N, T, D).

    Returns:
        out: (N, T, H) if ``return_sequences`` else (N, H); h_T: (N, H).
    """
    _check_params(params, ("W", "U", "b"), "the RNN")
    _check_sequence(x, params["W"])
    h = _zeros_state(x, params["U"].shape[0]) if h0 is None else h0
    hs = []
    for t in range(x.shape[1]):
        h = rnn_step(x[:, t], h, params, activation=activation)
        hs.append(h)
    return (torch.stack(hs, dim=1) if return_sequences else h), h


def lstm_forward_fast(
    x: Tensor,
    params: Params,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    *,
    return_sequences: bool = True,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """The standard LSTM through the fused kernel of ``nn.LSTM``.

    ``nn.LSTM`` stores ``weight_ih = W.T``, ``weight_hh = U.T`` and two biases
    of which only the sum matters; here ``bias_ih = b`` and ``bias_hh = 0``.
    Same arguments and results as ``lstm_forward(variant="standard")``.
    """
    _check_params(params, ("W", "U", "b"), "the standard LSTM")
    _check_sequence(x, params["W"])
    H = params["U"].shape[0]
    h = _zeros_state(x, H) if h0 is None else h0
    c = _zeros_state(x, H) if c0 is None else c0
    weights = [params["W"].T, params["U"].T, params["b"], torch.zeros_like(params["b"])]
    out, h_T, c_T = torch.lstm(
        x, (h[None], c[None]), weights, True, 1, 0.0, False, False, True
    )  # out (N, T, H); h_T, c_T (1, N, H)
    return (out if return_sequences else out[:, -1]), (h_T[0], c_T[0])


def gru_forward_fast(
    x: Tensor,
    params: Params,
    h0: Tensor | None = None,
    *,
    reset_mode: str = "recurrent-bias-after-multiplication",
    return_sequences: bool = True,
) -> tuple[Tensor, Tensor]:
    """The GRU through the fused kernel of ``nn.GRU``.

    ``nn.GRU`` computes ``recurrent-bias-after-multiplication`` (``bias_ih = b``,
    ``bias_hh = bh``); ``after-multiplication`` is the same with ``bh = 0``.
    ``before-multiplication`` has no fused kernel: use ``gru_forward``.
    """
    choices = ("after-multiplication", "recurrent-bias-after-multiplication")
    if reset_mode not in choices:
        raise ValueError(
            f"reset_mode must be one of {choices} for the fused GRU (nn.GRU "
            f"cannot apply the reset gate before the multiplication), got "
            f"{reset_mode!r}; use gru_forward for it"
        )
    with_bh = reset_mode == "recurrent-bias-after-multiplication"
    _check_params(params, ("W", "U", "b", "bh") if with_bh else ("W", "U", "b"), "the GRU")
    _check_sequence(x, params["W"])
    h = _zeros_state(x, params["U"].shape[0]) if h0 is None else h0
    bh = params["bh"] if with_bh else torch.zeros_like(params["b"])
    weights = [params["W"].T, params["U"].T, params["b"], bh]
    out, h_T = torch.gru(x, h[None], weights, True, 1, 0.0, False, False, True)
    return (out if return_sequences else out[:, -1]), h_T[0]

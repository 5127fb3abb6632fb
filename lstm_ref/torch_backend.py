"""PyTorch backend: the NumPy backend's cells with autograd, and fast wrappers.

Two forms of the same equations, both taking the parameter dicts of
``lstm_ref`` (layout in the package docstring: ``W (D, G*H)``, ``U (H, G*H)``,
``b (G*H,)``, gate order i, f, g, o for the LSTM and r, z, n for the GRU) as
torch tensors:

* the teaching form, written gate by gate so that every line is one equation
  of the course (``lstm_step``/``lstm_forward``, ``gru_step``/``gru_forward``,
  ``rnn_step``/``rnn_forward``); gradients come from autograd;
* the fast form (``lstm_forward_fast``, ``gru_forward_fast``,
  ``rnn_forward_fast``), thin wrappers over the fused kernels behind
  ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (``torch.lstm``, ``torch.gru``,
  ``torch.rnn_tanh``/``torch.rnn_relu``, cuDNN on CUDA) for the cells those
  kernels can express.

Both equal the NumPy backend to 1e-10 in float64 (tests/test_torch_backend.py).
Tensors are created on the input's device and dtype, so everything runs on
CUDA when the inputs live there and never requires it.

References: Hochreiter & Schmidhuber 1997; Gers et al. 2000 (forget gate);
Greff et al. 2017, "LSTM: A Search Space Odyssey" (variants);
Cho et al. 2014 (GRU); torch/nn/modules/rnn.py (the fused kernels' layout).
"""

from __future__ import annotations

import math
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


def _describe(a: object) -> str:
    if isinstance(a, torch.Tensor):
        return f"a {a.dtype} tensor of shape {tuple(a.shape)} on {a.device}"
    return f"{type(a).__name__} with shape {tuple(getattr(a, 'shape', ()))}"


def _check_input(x: object, dims: str) -> None:
    """x must be a non-empty floating-point tensor with the axes ``dims``, e.g. "(N, T, D)"."""
    if not isinstance(x, torch.Tensor) or x.ndim != dims.count(",") + 1 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch tensor of shape {dims}, got {_describe(x)}")
    if 0 in x.shape:
        raise ValueError(f"x must not be empty: shape {dims} = {tuple(x.shape)}")


def _check_sequence(x: object) -> None:
    """x must be a non-empty floating-point (N, T, D) tensor of finite values, as the NumPy backend's x.

    Checked once per sequence, not in the step functions, which the layers call at every step. A NaN
    or inf shows in x's extremes (aminmax propagates NaN): one pass over x, several times faster on
    the CPU than ``isfinite(x).all()``.
    """
    _check_input(x, "(N, T, D)")
    low, high = torch.aminmax(x.detach())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("x contains NaN or inf")


def _check_activations(**activations: object) -> None:
    """Each activation must be a function of a tensor, such as torch.tanh."""
    for name, fn in activations.items():
        if not callable(fn):
            raise TypeError(f"{name} must be a function of a tensor, such as torch.tanh or torch.relu, got {fn!r}")


def _check_params(params: Params, keys: tuple[str, ...], cell: str, x: Tensor, G: int) -> int:
    """Check ``params`` against x (N, [T,] D) and return H.

    ``params`` must hold exactly ``keys`` (a key the cell would ignore is an
    error, not dropped), as tensors of x's dtype and device shaped W (D, G*H),
    U (H, G*H), b and bh (G*H,), peepholes p_i, p_f, p_o (H,).
    """
    if not isinstance(params, Mapping) or sorted(params) != sorted(keys):
        found = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise ValueError(f"params for {cell} must hold exactly the keys {keys}, got {found}")
    U = params["U"]
    if not isinstance(U, torch.Tensor) or U.ndim != 2 or U.shape[1] != G * U.shape[0]:
        raise ValueError(f"params['U'] for {cell} must be a tensor of shape (H, {G}H), got {_describe(U)}")
    D, H = x.shape[-1], U.shape[0]
    W = params["W"]
    if isinstance(W, torch.Tensor) and W.ndim == 2 and W.shape[1] == G * H and W.shape[0] != D:
        raise ValueError(f"x has D = {D} features but params['W'] for {cell} has {W.shape[0]} rows")
    shapes = {"W": (D, G * H), "U": (H, G * H), "b": (G * H,), "bh": (G * H,)}
    for key in keys:
        value, shape = params[key], shapes.get(key, (H,))  # the peepholes are (H,)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            raise ValueError(f"params['{key}'] for {cell} must be a tensor of shape {shape} (D = {D}, H = {H}), "
                             f"got {_describe(value)}")
        if value.dtype != x.dtype or value.device != x.device:
            raise TypeError(f"params['{key}'] is {_describe(value)} but x is {_describe(x)}: "
                            "they must share dtype and device")
    return H


def _check_state(name: str, s: object, x: Tensor, size: int) -> Tensor:
    """s must be (N, size) with x's dtype and device (no broadcasting)."""
    same = isinstance(s, torch.Tensor) and (s.dtype, s.device) == (x.dtype, x.device)
    if not same or tuple(s.shape) != (x.shape[0], size):
        raise ValueError(f"{name} must be a tensor of shape ({x.shape[0]}, {size}) of x's dtype and device "
                         f"({x.dtype} on {x.device}), got {_describe(s)}")
    return s


def _initial_state(name: str, s: Tensor | None, x: Tensor, H: int) -> Tensor:
    """The checked initial state, zeros (N, H) when None."""
    return torch.zeros(x.shape[0], H, dtype=x.dtype, device=x.device) if s is None else _check_state(name, s, x, H)


def gate_projection(v: Tensor, M: Tensor, masks: Tensor | None = None) -> Tensor:
    """``v @ M`` (..., G*K), block k of M's columns reading ``v * masks[k]`` when masks (G, ..., J) are given.

    Keras' per-gate dropout (``keras.layers.LSTM(recurrent_dropout=...)``): each
    gate's block of ``x W`` or ``h U`` sees its own dropout mask of x or h.
    """
    if masks is None:
        return v @ M
    return torch.cat([(v * m) @ block for m, block in zip(masks, M.chunk(len(masks), dim=1))], dim=-1)


def _check_masks(masks: Tensor | None, h: Tensor, G: int) -> None:
    """Recurrent-dropout masks must be (G, N, H), one per gate block, of h's dtype and device."""
    if masks is None:
        return
    if tuple(masks.shape) != (G, *h.shape) or (masks.dtype, masks.device) != (h.dtype, h.device):
        raise ValueError(f"h_masks must be a tensor of shape ({G}, {h.shape[0]}, {h.shape[1]}) of h_prev's dtype and "
                         f"device, one mask per gate block, got {_describe(masks)}")


def _lstm_keys(variant: str) -> tuple[str, ...]:
    return ("W", "U", "b", "p_i", "p_f", "p_o") if variant == "peephole" else ("W", "U", "b")


def _gru_keys(reset_mode: str) -> tuple[str, ...]:
    return ("W", "U", "b", "bh") if reset_mode == "recurrent-bias-after-multiplication" else ("W", "U", "b")


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
    h_masks: Tensor | None = None,
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
        h_masks: optional recurrent-dropout masks (G, N, H): block k of
            ``h_prev U`` reads ``h_prev * h_masks[k]`` (``gate_projection``).
    Returns:
        h, c: (N, H) each.
    """
    _check_choice("variant", variant, LSTM_VARIANTS)
    _check_input(x, "(N, D)")
    G = len(LSTM_BLOCKS[variant])
    H = _check_params(params, _lstm_keys(variant), f"the {variant} LSTM", x, G)
    _check_state("h_prev", h_prev, x, H)
    _check_state("c_prev", c_prev, x, H)
    if xW is not None:
        _check_state("xW", xW, x, G * H)
    _check_masks(h_masks, h_prev, G)
    return _lstm_cell(x, h_prev, c_prev, params, variant, recurrent_activation, activation, xW, h_masks)


def _lstm_cell(x, h_prev, c_prev, params, variant, recurrent_activation, activation, xW,
               h_masks=None) -> tuple[Tensor, Tensor]:
    """The equations of ``lstm_step``, on checked arguments."""
    if xW is None:
        xW = x @ params["W"]
    z = xW + gate_projection(h_prev, params["U"], h_masks) + params["b"]  # (N, GH)
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
    _check_activations(recurrent_activation=recurrent_activation, activation=activation)
    _check_sequence(x)
    H = _check_params(params, _lstm_keys(variant), f"the {variant} LSTM", x, len(LSTM_BLOCKS[variant]))
    h, c = _initial_state("h0", h0, x, H), _initial_state("c0", c0, x, H)
    xW = x @ params["W"]  # (N, T, GH): the input projection of every step at once
    hs = []
    for t in range(x.shape[1]):
        h, c = _lstm_cell(x[:, t], h, c, params, variant, recurrent_activation, activation, xW[:, t])
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
    h_masks: Tensor | None = None,
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
        [, bh (3H,)]; xW: optional precomputed ``x @ W`` (N, 3H); h_masks:
        optional recurrent-dropout masks (3, N, H) for blocks r, z, n: each
        block's ``h_prev U`` (before-multiplication: ``(r * h_prev) U_n``)
        reads ``h_prev * h_masks[k]``, the update ``z * h_prev`` the unmasked
        h_prev (Keras' GRUCell).
    Returns:
        h: (N, H).
    """
    _check_choice("reset_mode", reset_mode, GRU_RESET_MODES)
    _check_input(x, "(N, D)")
    H = _check_params(params, _gru_keys(reset_mode), f"the {reset_mode} GRU", x, 3)
    _check_state("h_prev", h_prev, x, H)
    if xW is not None:
        _check_state("xW", xW, x, 3 * H)
    _check_masks(h_masks, h_prev, 3)
    return _gru_cell(x, h_prev, params, reset_mode, recurrent_activation, activation, xW, h_masks)


def _gru_cell(x, h_prev, params, reset_mode, recurrent_activation, activation, xW, h_masks=None) -> Tensor:
    """The equations of ``gru_step``, on checked arguments."""
    if xW is None:
        xW = x @ params["W"]
    x_r, x_z, x_n = (xW + params["b"]).chunk(3, dim=1)  # (N, H) each
    U_r, U_z, U_n = params["U"].chunk(3, dim=1)  # (H, H) each
    if reset_mode == "before-multiplication":
        h_r, h_z, h_n = (h_prev,) * 3 if h_masks is None else h_prev * h_masks  # h_prev as each block reads it
        r = recurrent_activation(x_r + h_r @ U_r)
        z = recurrent_activation(x_z + h_z @ U_z)
        n = activation(x_n + (r * h_n) @ U_n)
    else:
        hU = gate_projection(h_prev, params["U"], h_masks)  # (N, 3H)
        if "bh" in params:
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
    _check_activations(recurrent_activation=recurrent_activation, activation=activation)
    _check_sequence(x)
    h = _initial_state("h0", h0, x, _check_params(params, _gru_keys(reset_mode), f"the {reset_mode} GRU", x, 3))
    xW = x @ params["W"]  # (N, T, 3H)
    hs = []
    for t in range(x.shape[1]):
        h = _gru_cell(x[:, t], h, params, reset_mode, recurrent_activation, activation, xW[:, t])
        hs.append(h)
    return (torch.stack(hs, dim=1) if return_sequences else h), h


def rnn_step(
    x: Tensor, h_prev: Tensor, params: Params, *, activation: Activation = torch.tanh,
    xW: Tensor | None = None, h_masks: Tensor | None = None,
) -> Tensor:
    """One vanilla RNN step: ``h = tanh(x W + h_prev U + b)``, (N, H).

    params: W (D, H), U (H, H), b (H,); xW: optional precomputed ``x @ W``
    (N, H); h_masks: optional recurrent-dropout mask (1, N, H), h_prev U then
    reading ``h_prev * h_masks[0]``.
    """
    _check_input(x, "(N, D)")
    H = _check_params(params, ("W", "U", "b"), "the RNN", x, 1)
    _check_state("h_prev", h_prev, x, H)
    if xW is None:
        xW = x @ params["W"]
    _check_state("xW", xW, x, H)
    _check_masks(h_masks, h_prev, 1)
    return activation(xW + gate_projection(h_prev, params["U"], h_masks) + params["b"])  # (N, H)


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
    _check_activations(activation=activation)
    _check_sequence(x)
    h = _initial_state("h0", h0, x, _check_params(params, ("W", "U", "b"), "the RNN", x, 1))
    hs = []
    for t in range(x.shape[1]):
        h = activation(x[:, t] @ params["W"] + h @ params["U"] + params["b"])  # rnn_step's equation
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
    _check_sequence(x)
    H = _check_params(params, ("W", "U", "b"), "the standard LSTM", x, 4)
    h, c = _initial_state("h0", h0, x, H), _initial_state("c0", c0, x, H)
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
    reset_mode: str = "after-multiplication",
    return_sequences: bool = True,
) -> tuple[Tensor, Tensor]:
    """The GRU through the fused kernel of ``nn.GRU``.

    ``nn.GRU`` computes ``recurrent-bias-after-multiplication`` (``bias_ih = b``,
    ``bias_hh = bh``); ``after-multiplication`` is the same with ``bh = 0``.
    ``before-multiplication`` has no fused kernel: use ``gru_forward``. Same
    arguments, defaults and results as ``gru_forward``.
    """
    choices = ("after-multiplication", "recurrent-bias-after-multiplication")
    if reset_mode not in choices:
        raise ValueError(
            f"reset_mode must be one of {choices} for the fused GRU (nn.GRU "
            f"cannot apply the reset gate before the multiplication), got "
            f"{reset_mode!r}; use gru_forward for it"
        )
    _check_sequence(x)
    h = _initial_state("h0", h0, x, _check_params(params, _gru_keys(reset_mode), f"the {reset_mode} GRU", x, 3))
    bh = params["bh"] if "bh" in params else torch.zeros_like(params["b"])
    weights = [params["W"].T, params["U"].T, params["b"], bh]
    out, h_T = torch.gru(x, h[None], weights, True, 1, 0.0, False, False, True)
    return (out if return_sequences else out[:, -1]), h_T[0]


RNN_NONLINEARITIES = {"tanh": torch.rnn_tanh, "relu": torch.rnn_relu}  # nn.RNN's nonlinearity -> fused kernel


def rnn_forward_fast(
    x: Tensor,
    params: Params,
    h0: Tensor | None = None,
    *,
    nonlinearity: str = "tanh",
    return_sequences: bool = True,
) -> tuple[Tensor, Tensor]:
    """The vanilla RNN through the fused kernel of ``nn.RNN`` (``torch.rnn_tanh``/``torch.rnn_relu``).

    ``nn.RNN`` stores ``weight_ih = W.T``, ``weight_hh = U.T`` and two biases
    of which only the sum matters; here ``bias_ih = b`` and ``bias_hh = 0``.
    ``nonlinearity`` is "tanh" or "relu" (the two ``nn.RNN`` has); other
    activations: ``rnn_forward``. Same arguments and results as
    ``rnn_forward(activation=torch.tanh or torch.relu)``.
    """
    _check_choice("nonlinearity", nonlinearity, tuple(RNN_NONLINEARITIES))
    _check_sequence(x)
    h = _initial_state("h0", h0, x, _check_params(params, ("W", "U", "b"), "the RNN", x, 1))
    weights = [params["W"].T, params["U"].T, params["b"], torch.zeros_like(params["b"])]
    out, h_T = RNN_NONLINEARITIES[nonlinearity](x, h[None], weights, True, 1, 0.0, False, False, True)
    return (out if return_sequences else out[:, -1]), h_T[0]  # out (N, T, H); h_T (1, N, H)

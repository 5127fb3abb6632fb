"""Lossless weight conversion between lstm_ref, PyTorch, Keras and MATLAB.

lstm_ref's layout (package docstring): W (D, G*H), U (H, G*H), b (G*H,),
GRU recurrent bias bh (3H,) in 'recurrent-bias-after-multiplication' only.
Gate order i, f, g, o (LSTM) and r, z, n (GRU). The standard LSTM, the GRU
and the tanh RNN convert; the other LSTM variants have no framework layer.

=================  ====================================  ===================================  ==================================
                   PyTorch (nn.LSTM / nn.GRU / nn.RNN)    Keras 3 (layer.get_weights())        MATLAB (lstmLayer / gruLayer)
=================  ====================================  ===================================  ==================================
input weights      weight_ih (G*H, D) = W.T               kernel (D, G*H) = W                  InputWeights (G*H, D) = W.T
recurrent weights  weight_hh (G*H, H) = U.T               recurrent_kernel (H, G*H) = U        RecurrentWeights (G*H, H) = U.T
LSTM bias          b = bias_ih + bias_hh                  bias (4H,) = b                       Bias (4H, 1) = b
GRU gate order     r, z, n                                z, r, h (blocks 0 and 1 swapped)     r, z, h~
GRU biases         bias_ih = b, bias_hh = bh              reset_after=True: bias (2, 3H) =     Bias (3H, 1) = b, or (6H, 1) =
                                                          [b; bh]; reset_after=False: (3H,)    [b; bh] (recurrent-bias mode)
=================  ====================================  ===================================  ==================================

GRU reset modes map as: 'recurrent-bias-after-multiplication' = nn.GRU =
Keras reset_after=True; 'after-multiplication' = the same with the recurrent
bias zero (PyTorch's bias_hh and Keras' bias row 1 written as zeros; reading
them back requires their n block to be zero, the r and z blocks fold into b);
'before-multiplication' = Keras reset_after=False, with no nn.GRU equivalent.

Every converter copies (never returns a view of its input) and keeps the
dtype. params -> framework -> params round trips are exact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._gru import GRU_RESET_MODES, gru_param_dims
from ._layers import CELLS
from ._lstm import lstm_param_dims
from ._rnn import rnn_param_dims
from ._validate import check_choice, check_dtype, check_params, infer_hidden_size

if TYPE_CHECKING:
    import torch

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
_RECURRENT_BIAS = "recurrent-bias-after-multiplication"


def _param_dims(cell: str, D: int, H: int, reset_mode: str | None):
    if cell == "lstm":
        return lstm_param_dims(D, H, "standard")
    if cell == "gru":
        return gru_param_dims(D, H, reset_mode)
    return rnn_param_dims(D, H)


def _gru_mode(params: Mapping, reset_mode: str | None) -> str:
    """The GRU reset mode of ``params``: given, or read off the presence of bh."""
    if reset_mode is None:
        return _RECURRENT_BIAS if "bh" in params else "after-multiplication"
    return check_choice("reset_mode", reset_mode, GRU_RESET_MODES)


def _checked(params: object, cell: str, reset_mode: str | None) -> tuple[dict[str, np.ndarray], str | None]:
    """Validate lstm_ref ``params`` of ``cell``; return copies and the GRU mode."""
    check_choice("cell", cell, CELLS)
    H = infer_hidden_size("params", params)
    W = params.get("W")
    dtype = check_dtype("params['W']", W)
    if W.ndim != 2:
        raise ValueError(f"params['W'] must have shape (D, {_GATES[cell]}H), got {W.shape}")
    mode = _gru_mode(params, reset_mode) if cell == "gru" else None
    p = check_params("params", params, _param_dims(cell, W.shape[0], H, mode), dtype)
    return {k: v.copy() for k, v in p.items()}, mode


def _swap_rz(a: np.ndarray) -> np.ndarray:
    """Swap the first two gate blocks on the last axis: [r|z|n] <-> [z|r|n] (a copy)."""
    H = a.shape[-1] // 3
    return np.concatenate([a[..., H : 2 * H], a[..., :H], a[..., 2 * H :]], axis=-1)


def _array(name: str, a: object) -> np.ndarray:
    """A framework weight (numpy array or torch tensor) as a float numpy copy."""
    if hasattr(a, "detach"):  # a torch tensor or parameter
        a = a.detach().cpu().numpy()
    a = np.array(a, copy=True)
    check_dtype(name, a)
    return a


def _fold_recurrent_bias(b: np.ndarray, bh: np.ndarray, reset_mode: str, source: str) -> dict[str, np.ndarray]:
    """GRU biases (b, bh) from a framework as lstm_ref bias entries for ``reset_mode``."""
    if reset_mode == _RECURRENT_BIAS:
        return {"b": b, "bh": bh}
    if reset_mode == "before-multiplication":
        raise ValueError(f"{source} is a reset-after GRU; it has no 'before-multiplication' form")
    H = b.shape[0] // 3
    if np.any(bh[2 * H :] != 0):
        raise ValueError(
            f"{source} has a non-zero recurrent bias in its candidate (n) block, which reset_mode "
            f"'after-multiplication' cannot hold; use reset_mode={_RECURRENT_BIAS!r}"
        )
    b = b.copy()
    b[: 2 * H] += bh[: 2 * H]  # r and z see b + bh only as a sum
    return {"b": b}


# --------------------------------------------------------------------------- PyTorch


def to_torch(params: dict, cell: str = "lstm", *, reset_mode: str | None = None) -> dict[str, np.ndarray]:
    """lstm_ref params -> PyTorch's per-layer arrays weight_ih, weight_hh, bias_ih, bias_hh.

    For the LSTM and RNN, and the GRU in 'after-multiplication' mode,
    bias_ih = b and bias_hh = 0. A 'before-multiplication' GRU raises ValueError.
    ``reset_mode`` defaults to the one read off ``params`` (bh present or not).
    """
    p, mode = _checked(params, cell, reset_mode)
    if mode == "before-multiplication":
        raise ValueError("a 'before-multiplication' GRU has no nn.GRU equivalent (nn.GRU applies r after U)")
    return {
        "weight_ih": p["W"].T.copy(),
        "weight_hh": p["U"].T.copy(),
        "bias_ih": p["b"],
        "bias_hh": p["bh"] if mode == _RECURRENT_BIAS else np.zeros_like(p["b"]),
    }


def from_torch(state: Mapping, cell: str = "lstm", *, reset_mode: str | None = None) -> dict[str, np.ndarray]:
    """PyTorch's weight_ih, weight_hh, bias_ih, bias_hh (arrays or tensors) -> lstm_ref params.

    LSTM and RNN: b = bias_ih + bias_hh. GRU: ``reset_mode`` defaults to
    'recurrent-bias-after-multiplication' (b = bias_ih, bh = bias_hh);
    'after-multiplication' requires bias_hh's n block to be zero.
    """
    check_choice("cell", cell, CELLS)
    missing = [k for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if k not in state]
    if missing:
        raise ValueError(f"state must hold weight_ih, weight_hh, bias_ih and bias_hh; missing {missing}")
    W, U = _array("weight_ih", state["weight_ih"]).T.copy(), _array("weight_hh", state["weight_hh"]).T.copy()
    b_ih, b_hh = _array("bias_ih", state["bias_ih"]), _array("bias_hh", state["bias_hh"])
    if cell == "gru":
        mode = check_choice("reset_mode", reset_mode or _RECURRENT_BIAS, GRU_RESET_MODES)
        params = {"W": W, "U": U, **_fold_recurrent_bias(b_ih, b_hh, mode, "this nn.GRU state")}
    else:
        mode, params = None, {"W": W, "U": U, "b": b_ih + b_hh}
    return _checked(params, cell, mode)[0]


def _torch_cell(module: torch.nn.Module) -> str:
    import torch

    if isinstance(module, torch.nn.LSTM):
        if module.proj_size:
            raise ValueError("nn.LSTM with proj_size > 0 has no lstm_ref equivalent")
        cell = "lstm"
    elif isinstance(module, torch.nn.GRU):
        cell = "gru"
    elif isinstance(module, torch.nn.RNN):
        if module.nonlinearity != "tanh":
            raise ValueError(f"only nn.RNN(nonlinearity='tanh') converts, got {module.nonlinearity!r}")
        cell = "rnn"
    else:
        raise TypeError(f"module must be a torch.nn.LSTM, nn.GRU or nn.RNN, got {type(module).__name__}")
    if not module.bias:
        raise ValueError(f"{type(module).__name__}(bias=False) has no lstm_ref equivalent (lstm_ref always has b)")
    return cell


def _torch_names(module, layer: int, reverse: bool) -> dict[str, str]:
    if not 0 <= layer < module.num_layers:
        raise ValueError(f"layer must be in [0, {module.num_layers}) for this module, got {layer}")
    if reverse and not module.bidirectional:
        raise ValueError("reverse=True needs a bidirectional module")
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    return {k: k + suffix for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def params_from_torch_module(
    module: torch.nn.Module, *, layer: int = 0, reverse: bool = False, reset_mode: str | None = None
) -> dict[str, np.ndarray]:
    """The params of one layer and direction of an nn.LSTM / nn.GRU / nn.RNN (float copies)."""
    cell = _torch_cell(module)
    names = _torch_names(module, layer, reverse)
    return from_torch({k: getattr(module, name) for k, name in names.items()}, cell, reset_mode=reset_mode)


def params_to_torch_module(
    params: dict, module: torch.nn.Module, *, layer: int = 0, reverse: bool = False, reset_mode: str | None = None
) -> None:
    """Copy params into one layer and direction of an nn.LSTM / nn.GRU / nn.RNN, in place.

    Shapes must match the module's; values are cast to the module's dtype.
    """
    import torch

    cell = _torch_cell(module)
    names = _torch_names(module, layer, reverse)
    arrays = to_torch(params, cell, reset_mode=reset_mode)
    with torch.no_grad():
        for k, name in names.items():
            target = getattr(module, name)
            if tuple(target.shape) != arrays[k].shape:
                raise ValueError(f"{name} of the module has shape {tuple(target.shape)}, params give {arrays[k].shape}")
            target.copy_(torch.from_numpy(arrays[k]))


def stacked_params_from_torch_module(module: torch.nn.Module, *, reset_mode: str | None = None) -> list:
    """All layers of a module as ``stacked_forward``'s ``layers`` (pairs when bidirectional)."""
    _torch_cell(module)

    def get(layer, reverse):
        return params_from_torch_module(module, layer=layer, reverse=reverse, reset_mode=reset_mode)

    if module.bidirectional:
        return [(get(k, False), get(k, True)) for k in range(module.num_layers)]
    return [get(k, False) for k in range(module.num_layers)]


def stacked_params_to_torch_module(layers: Sequence, module: torch.nn.Module, *, reset_mode: str | None = None) -> None:
    """Copy ``stacked_forward``'s ``layers`` into every layer of a module, in place."""
    _torch_cell(module)
    if len(layers) != module.num_layers:
        raise ValueError(f"layers has {len(layers)} entries, the module has num_layers={module.num_layers}")
    for k, entry in enumerate(layers):
        directions = entry if module.bidirectional else (entry,)
        if len(directions) != 1 + module.bidirectional:
            raise ValueError(f"layers[{k}] must be a pair (params_fw, params_bw) for a bidirectional module")
        for reverse, params in enumerate(directions):
            params_to_torch_module(params, module, layer=k, reverse=bool(reverse), reset_mode=reset_mode)


# --------------------------------------------------------------------------- Keras


def to_keras(params: dict, cell: str = "lstm", *, reset_mode: str | None = None) -> list[np.ndarray]:
    """lstm_ref params -> the list of a Keras LSTM / GRU / SimpleRNN layer's ``get_weights()``.

    [kernel (D, G*H), recurrent_kernel (H, G*H), bias]. GRU blocks reordered
    to z, r, h; bias (2, 3H) for reset_after=True ('after-multiplication',
    row 1 zero, or 'recurrent-bias-after-multiplication'), (3H,) for
    reset_after=False ('before-multiplication').
    """
    p, mode = _checked(params, cell, reset_mode)
    if cell != "gru":
        return [p["W"], p["U"], p["b"]]
    if mode == "before-multiplication":
        bias = _swap_rz(p["b"])
    else:
        bias = _swap_rz(np.stack([p["b"], p.get("bh", np.zeros_like(p["b"]))]))
    return [_swap_rz(p["W"]), _swap_rz(p["U"]), bias]


def from_keras(weights: Sequence, cell: str = "lstm", *, reset_mode: str | None = None) -> dict[str, np.ndarray]:
    """A Keras layer's ``get_weights()`` list -> lstm_ref params.

    GRU: a (3H,) bias means reset_after=False ('before-multiplication'); a
    (2, 3H) bias means reset_after=True, read as ``reset_mode`` (default
    'recurrent-bias-after-multiplication'; 'after-multiplication' requires
    the recurrent bias's h block to be zero).
    """
    check_choice("cell", cell, CELLS)
    if not isinstance(weights, Sequence) or len(weights) != 3:
        raise ValueError("weights must be [kernel, recurrent_kernel, bias] as from layer.get_weights() (use_bias=True)")
    W, U, bias = (_array(name, a) for name, a in zip(("kernel", "recurrent_kernel", "bias"), weights))
    if cell != "gru":
        return _checked({"W": W, "U": U, "b": bias}, cell, None)[0]
    W, U, bias = _swap_rz(W), _swap_rz(U), _swap_rz(bias)
    if bias.ndim == 1:
        mode = check_choice("reset_mode", reset_mode or "before-multiplication", GRU_RESET_MODES)
        if mode != "before-multiplication":
            raise ValueError("a Keras GRU with a (3H,) bias is reset_after=False: 'before-multiplication' only")
        return _checked({"W": W, "U": U, "b": bias}, cell, mode)[0]
    if bias.ndim != 2 or bias.shape[0] != 2:
        raise ValueError(f"a Keras GRU bias must have shape (3H,) or (2, 3H), got {bias.shape}")
    mode = check_choice("reset_mode", reset_mode or _RECURRENT_BIAS, GRU_RESET_MODES)
    params = {"W": W, "U": U, **_fold_recurrent_bias(bias[0], bias[1], mode, "this Keras GRU (reset_after=True)")}
    return _checked(params, cell, mode)[0]


# --------------------------------------------------------------------------- MATLAB


def to_matlab(params: dict, cell: str = "lstm", *, reset_mode: str | None = None) -> dict[str, np.ndarray]:
    """lstm_ref params -> MATLAB's InputWeights (G*H, D), RecurrentWeights (G*H, H), Bias (G*H, 1).

    GRU 'recurrent-bias-after-multiplication' has Bias (6H, 1) = [b; bh].
    """
    p, mode = _checked(params, cell, reset_mode)
    bias = np.concatenate([p["b"], p["bh"]]) if mode == _RECURRENT_BIAS else p["b"]
    return {"InputWeights": p["W"].T.copy(), "RecurrentWeights": p["U"].T.copy(), "Bias": bias[:, None].copy()}


def from_matlab(weights: Mapping, cell: str = "lstm", *, reset_mode: str | None = None) -> dict[str, np.ndarray]:
    """MATLAB's InputWeights, RecurrentWeights, Bias -> lstm_ref params.

    GRU: a 6H bias means 'recurrent-bias-after-multiplication'; a 3H bias
    means ``reset_mode`` (default 'after-multiplication', MATLAB's default).
    """
    check_choice("cell", cell, CELLS)
    missing = [k for k in ("InputWeights", "RecurrentWeights", "Bias") if k not in weights]
    if missing:
        raise ValueError(f"weights must hold InputWeights, RecurrentWeights and Bias; missing {missing}")
    W = _array("InputWeights", weights["InputWeights"]).T.copy()
    U = _array("RecurrentWeights", weights["RecurrentWeights"]).T.copy()
    bias = _array("Bias", weights["Bias"])
    if bias.ndim == 2 and 1 in bias.shape:
        bias = bias.reshape(-1)  # MATLAB's column (or row) vector
    mode = None
    if cell == "gru":
        H = U.shape[0] if U.ndim == 2 else 0
        inferred = _RECURRENT_BIAS if bias.shape == (6 * H,) else "after-multiplication"
        mode = check_choice("reset_mode", reset_mode or inferred, GRU_RESET_MODES)
        if (mode == _RECURRENT_BIAS) != (bias.shape == (6 * H,)):
            raise ValueError(
                f"reset_mode {mode!r} needs a Bias of {'6H' if mode == _RECURRENT_BIAS else '3H'} = "
                f"{(6 if mode == _RECURRENT_BIAS else 3) * H} rows, got shape {bias.shape}"
            )
    params = {"W": W, "U": U, "b": bias}
    if mode == _RECURRENT_BIAS:
        params = {"W": W, "U": U, "b": bias[: bias.size // 2], "bh": bias[bias.size // 2 :]}
    return _checked(params, cell, mode)[0]


def load_matlab_mat(
    path: str | os.PathLike, cell: str = "lstm", *, reset_mode: str | None = None
) -> dict[str, np.ndarray]:
    """Read InputWeights, RecurrentWeights and Bias from a MATLAB .mat file into params.

    The file is what ``save(path, "InputWeights", "RecurrentWeights", "Bias")``
    writes after ``InputWeights = net.Layers(2).InputWeights`` etc. (v5/v7
    format, read with scipy.io.loadmat; v7.3 HDF5 files are not supported).
    """
    from scipy.io import loadmat

    contents = loadmat(os.fspath(path))
    return from_matlab({k: v for k, v in contents.items() if not k.startswith("__")}, cell, reset_mode=reset_mode)

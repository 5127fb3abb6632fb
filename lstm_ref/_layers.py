"""Bidirectional and stacked layers over any of the three cells, NumPy backend.

A *state* is what a cell carries between steps: ``(h, c)`` for ``"lstm"``,
``h`` for ``"gru"`` and ``"rnn"``, each (N, H). Cell options (``variant`` for
the LSTM, ``reset_mode`` for the GRU) pass through as keyword arguments.

Bidirectional: the backward direction reads the sequence reversed, and its
outputs are put back in input time order; directions are concatenated on the
feature axis, [forward | backward], as in PyTorch, Keras (merge_mode
'concat') and MATLAB's bilstmLayer::

    out[:, t] = [h_fw(t) | h_bw(t)]                    # (N, T, 2H)

With ``return_sequences=False`` the output is each direction's final state,
[h_fw(T-1) | h_bw(0)] (N, 2H), as in Keras' Bidirectional; note that
``out[:, -1]`` of the full sequence output differs (its backward half has
seen only the last step).

Stacked: layer k > 0 reads the full output sequence of layer k-1, as
``nn.LSTM(num_layers=L)`` does (without dropout between layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._gru import gru_backward, gru_forward
from ._lstm import lstm_backward, lstm_forward
from ._rnn import rnn_backward, rnn_forward
from ._validate import check_cache, check_choice, infer_hidden_size

CELLS = ("lstm", "gru", "rnn")
State = np.ndarray | tuple[np.ndarray, np.ndarray]  # h, or (h, c) for the LSTM


def _pair(name: str, value) -> tuple:
    """(forward, backward) from None or a pair; anything else is an error naming ``name``."""
    if value is None:
        return None, None
    if not (isinstance(value, tuple) and len(value) == 2):
        raise TypeError(f"{name} must be None or a pair (forward, backward) when bidirectional=True, "
                        f"got {type(value).__name__}")
    return value


def _lstm_state(name: str, state):
    if state is None:
        return None, None
    if not (isinstance(state, tuple) and len(state) == 2):
        raise TypeError(f"{name} of an LSTM must be a tuple (h, c) of (N, H) arrays or None, got {type(state).__name__}")
    return state


def _sequence_forward(cell, x, params, state0, return_sequences, options):
    """One direction of one layer: (out, final state, cache)."""
    if cell == "lstm":
        h0, c0 = _lstm_state("initial state", state0)
        return lstm_forward(x, params, h0, c0, return_sequences=return_sequences, **options)
    run = gru_forward if cell == "gru" else rnn_forward
    return run(x, params, state0, return_sequences=return_sequences, **options)


def _sequence_backward(cell, dout, cache, dstate):
    """Backward of ``_sequence_forward``: (dx, d initial state, grads)."""
    if cell == "lstm":
        dh_T, dc_T = _lstm_state("final-state gradient", dstate)
        dx, dh0, dc0, grads = lstm_backward(dout, cache, dh_T, dc_T)
        return dx, (dh0, dc0), grads
    dx, dh0, grads = (gru_backward if cell == "gru" else rnn_backward)(dout, cache, dstate)
    return dx, dh0, grads


class BidirectionalCache(NamedTuple):
    """What ``bidirectional_backward`` needs from the forward pass."""

    cell: str  #: "lstm", "gru" or "rnn"
    forward: tuple  #: cache of the forward direction
    backward: tuple  #: cache of the backward direction (on the reversed sequence)
    hidden_size: int  #: H of the forward direction
    return_sequences: bool  #: whether the output was every step or the final states


def bidirectional_forward(
    cell: str,
    x: np.ndarray,
    params_fw: dict,
    params_bw: dict,
    state0_fw: State | None = None,
    state0_bw: State | None = None,
    *,
    return_sequences: bool = True,
    **options,
) -> tuple[np.ndarray, tuple, BidirectionalCache]:
    """A bidirectional layer of ``cell`` (module docstring).

    Args:
        cell: "lstm", "gru" or "rnn".
        x: inputs (N, T, D).
        params_fw, params_bw: parameters of each direction (the cell's layout).
        state0_fw, state0_bw: initial states of each direction; zeros when None.
        return_sequences: output (N, T, 2H) at every step, or (N, 2H) final states.
        **options: ``variant=`` (LSTM) or ``reset_mode=`` (GRU).

    Returns:
        (out, (state_fw, state_bw), cache): final states of each direction and
        a ``BidirectionalCache``.
    """
    check_choice("cell", cell, CELLS)
    H_fw, H_bw = infer_hidden_size("params_fw", params_fw), infer_hidden_size("params_bw", params_bw)
    if H_fw != H_bw:
        raise ValueError(f"params_fw and params_bw must have the same hidden size H, got {H_fw} and {H_bw}")
    out_fw, s_fw, c_fw = _sequence_forward(cell, x, params_fw, state0_fw, return_sequences, options)
    out_bw, s_bw, c_bw = _sequence_forward(cell, x[:, ::-1], params_bw, state0_bw, return_sequences, options)
    if return_sequences:
        out_bw = out_bw[:, ::-1]  # back to input time order
    out = np.concatenate([out_fw, out_bw], axis=-1)  # (N, T, 2H) or (N, 2H)
    return out, (s_fw, s_bw), BidirectionalCache(cell, c_fw, c_bw, out_fw.shape[-1], return_sequences)


def bidirectional_backward(
    dout: np.ndarray, cache: BidirectionalCache, dstate_fw: State | None = None, dstate_bw: State | None = None
) -> tuple[np.ndarray, tuple, tuple[dict, dict]]:
    """Backward of ``bidirectional_forward``.

    Args:
        dout: upstream gradient of ``out``, (N, T, 2H) or (N, 2H).
        cache: the ``BidirectionalCache``.
        dstate_fw, dstate_bw: upstream gradients of each final state; zeros when None.

    Returns:
        (dx (N, T, D), (dstate0_fw, dstate0_bw), (grads_fw, grads_bw)).
    """
    check_cache(cache, BidirectionalCache, "bidirectional_forward")
    H = cache.hidden_size
    expected = 2 * H
    if not isinstance(dout, np.ndarray) or dout.shape[-1:] != (expected,):
        got = getattr(dout, "shape", type(dout).__name__)
        raise ValueError(f"dout must have a last dimension of 2H = {expected} ([forward | backward]), got {got}")
    dout_bw = dout[..., H:]
    if cache.return_sequences:
        dout_bw = dout_bw[:, ::-1]  # into the backward direction's time order
    dx_fw, ds_fw, g_fw = _sequence_backward(cache.cell, dout[..., :H], cache.forward, dstate_fw)
    dx_bw, ds_bw, g_bw = _sequence_backward(cache.cell, dout_bw, cache.backward, dstate_bw)
    return dx_fw + dx_bw[:, ::-1], (ds_fw, ds_bw), (g_fw, g_bw)


class StackedCache(NamedTuple):
    """What ``stacked_backward`` needs from the forward pass."""

    cell: str  #: "lstm", "gru" or "rnn"
    layers: list  #: per-layer caches, bottom first
    bidirectional: bool  #: whether each layer is bidirectional


def _per_layer(name: str, values, L: int) -> list:
    if values is None:
        return [None] * L
    if not isinstance(values, Sequence) or len(values) != L:
        raise ValueError(f"{name} must be None or a list with one entry per layer ({L}), got {values!r:.80}")
    return list(values)


def stacked_forward(
    cell: str,
    x: np.ndarray,
    layers: Sequence,
    initial_states: Sequence | None = None,
    *,
    bidirectional: bool = False,
    return_sequences: bool = True,
    **options,
) -> tuple[np.ndarray, list, StackedCache]:
    """A stack of L layers of ``cell``; layer k > 0 reads layer k-1's output sequence.

    Args:
        cell: "lstm", "gru" or "rnn".
        x: inputs (N, T, D).
        layers: L parameter dicts, bottom first; with ``bidirectional=True``,
            L pairs (params_fw, params_bw). Layer k > 0 has input size H
            (2H when bidirectional).
        initial_states: None, or one initial state per layer (a pair
            (state_fw, state_bw) when bidirectional; None entries mean zeros).
        bidirectional: whether every layer is bidirectional.
        return_sequences: for the top layer: every step, or the last
            (the final states when bidirectional).
        **options: ``variant=`` (LSTM) or ``reset_mode=`` (GRU).

    Returns:
        (out, final_states, cache): out (N, T, H) / (N, H) (2H when
        bidirectional), one final state per layer (pairs when bidirectional).
    """
    check_choice("cell", cell, CELLS)
    if not isinstance(layers, Sequence) or len(layers) == 0:
        raise ValueError("layers must be a non-empty list of parameter dicts (pairs when bidirectional)")
    L = len(layers)
    states0 = _per_layer("initial_states", initial_states, L)
    caches, finals = [], []
    out = x
    for k, (params, s0) in enumerate(zip(layers, states0)):
        seq = return_sequences or k < L - 1
        try:
            if bidirectional:
                if not (isinstance(params, Sequence) and len(params) == 2):
                    raise ValueError("must be a pair (params_fw, params_bw) when bidirectional=True")
                s_fw, s_bw = _pair("its initial state", s0)
                out, state, cache = bidirectional_forward(cell, out, *params, s_fw, s_bw, return_sequences=seq,
                                                          **options)
            else:
                out, state, cache = _sequence_forward(cell, out, params, s0, seq, options)
        except (TypeError, ValueError) as e:  # say which layer (layer k > 0 reads layer k-1's output)
            raise type(e)(f"layers[{k}]: {e}") from e
        caches.append(cache)
        finals.append(state)
    return out, finals, StackedCache(cell, caches, bidirectional)


def stacked_backward(
    dout: np.ndarray, cache: StackedCache, dfinal_states: Sequence | None = None
) -> tuple[np.ndarray, list, list]:
    """Backward of ``stacked_forward``.

    Args:
        dout: upstream gradient of the top layer's ``out``.
        cache: the ``StackedCache``.
        dfinal_states: None, or one upstream final-state gradient per layer
            (pairs when bidirectional; None entries mean zeros).

    Returns:
        (dx (N, T, D), per-layer initial-state gradients, per-layer grads
        (pairs (grads_fw, grads_bw) when bidirectional)).
    """
    check_cache(cache, StackedCache, "stacked_forward")
    L = len(cache.layers)
    dfinals = _per_layer("dfinal_states", dfinal_states, L)
    dstates0, grads = [None] * L, [None] * L
    d = dout
    for k in reversed(range(L)):
        if cache.bidirectional:
            ds_fw, ds_bw = _pair(f"dfinal_states[{k}]", dfinals[k])
            d, dstates0[k], grads[k] = bidirectional_backward(d, cache.layers[k], ds_fw, ds_bw)
        else:
            d, dstates0[k], grads[k] = _sequence_backward(cache.cell, d, cache.layers[k], dfinals[k])
    return d, dstates0, grads

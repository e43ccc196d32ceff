#!/usr/bin/env python3
"""Golden fixtures for recur's LSTM, GRU and RNN layers, from PyTorch.

For every cell (LSTM, GRU, RNN-tanh, RNN-relu) x {1, 2 layers} x {uni,
bidirectional} x {batch_first or not} x {with or without initial state}, at
I=7, H=19, B=3, T=11 (and a T=1 set), builds the torch module with a fixed
seed and saves tests/fixtures/rnn/<cell>_<config>.safetensors (each well
under 200 KB) holding:

    x, h0, c0              inputs (h0/c0 only with initial state)
    param.<name>           every parameter, PyTorch names (weight_ih_l0, ...)
    out, h_n, c_n          forward results
    w_out, w_h, w_c        weights of the scalar loss
                           L = sum(out*w_out) + sum(h_n*w_h) + sum(c_n*w_c)
    grad.x, grad.h0, grad.c0, grad.<name>
                           dL/d of each input and parameter

Run: /opt/venv/bin/python tools/make_rnn_fixtures.py   (torch, safetensors)
"""
import itertools
import os

import torch
from safetensors.torch import save_file

I, H, B, T = 7, 19, 3, 11
CELLS = {
    "lstm": lambda **kw: torch.nn.LSTM(**kw),
    "gru": lambda **kw: torch.nn.GRU(**kw),
    "rnn_tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
}


def config_name(layers, bidir, batch_first, state, t):
    return f"L{layers}_{'bi' if bidir else 'uni'}_{'bf' if batch_first else 'tm'}_{'state' if state else 'nostate'}_T{t}"


def make(cell, layers, bidir, batch_first, state, t, seed):
    torch.manual_seed(seed)
    m = CELLS[cell](input_size=I, hidden_size=H, num_layers=layers, bidirectional=bidir, batch_first=batch_first).double()
    d = 2 if bidir else 1
    x = torch.randn(*((B, t, I) if batch_first else (t, B, I)), dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(layers * d, B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(layers * d, B, H, dtype=torch.float64, requires_grad=True)
    lstm = cell == "lstm"
    if state:
        out, hc = m(x, (h0, c0) if lstm else h0)
    else:
        out, hc = m(x)
    h_n, c_n = hc if lstm else (hc, None)
    w_out = torch.randn_like(out)
    w_h = torch.randn_like(h_n)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    tensors = {"x": x, "out": out, "h_n": h_n, "w_out": w_out, "w_h": w_h}
    if lstm:
        w_c = torch.randn_like(c_n)
        loss = loss + (c_n * w_c).sum()
        tensors.update({"c_n": c_n, "w_c": w_c})
    loss.backward()
    tensors["grad.x"] = x.grad
    if state:
        tensors.update({"h0": h0, "grad.h0": h0.grad})
        if lstm:
            tensors.update({"c0": c0, "grad.c0": c0.grad})
    for name, p in m.named_parameters():
        tensors[f"param.{name}"] = p
        tensors[f"grad.{name}"] = p.grad
    return {k: v.detach().float().contiguous() for k, v in tensors.items()}


def main():
    out_dir = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "rnn")
    os.makedirs(out_dir, exist_ok=True)
    for ci, cell in enumerate(CELLS):
        seed = 1000 * ci
        configs = [(l, bi, bf, st, T) for l, bi, bf, st in itertools.product([1, 2], [False, True], [False, True], [False, True])]
        configs += [(1, False, False, True, 1), (2, True, False, True, 1)]
        total = 0
        for layers, bidir, batch_first, state, t in configs:
            seed += 1
            blob = make(cell, layers, bidir, batch_first, state, t, seed)
            path = os.path.join(out_dir, f"{cell}_{config_name(layers, bidir, batch_first, state, t)}.safetensors")
            save_file(blob, path, metadata={"generator": "tools/make_rnn_fixtures.py", "torch": torch.__version__})
            total += os.path.getsize(path)
        print(f"{cell}: {len(configs)} fixtures, {total // 1024} KiB")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixtures for recur's minGRU and minLSTM, from a PyTorch
implementation written from the paper's equations (Feng et al. 2024, "Were
RNNs all we needed?", appendix: log-space parallel mode, Heinsen 2023), in
float64 with a sequential loop so that no scan code is shared with recur.

tests/fixtures/min_rnn.safetensors, for each of mingru, minlstm at I=7,
H=11, B=3, T=13 (batch-first):
    <name>.x, <name>.h0 (positive), parameters (linear_z.* or linear_f.*,
    linear_i.*; linear_h.*), <name>.out (every h_t), <name>.last,
    <name>.w_out, <name>.w_last, and <name>.grad.* of
    L = sum(out * w_out) + sum(last * w_last) for x, h0 and every parameter.

Run: /opt/venv/bin/python tools/make_min_rnn_fixtures.py
"""
import os

import torch
from safetensors.torch import save_file

I, H, B, T = 7, 11, 3, 13


def g(x):
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


class MinGRU(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear_z = torch.nn.Linear(I, H)
        self.linear_h = torch.nn.Linear(I, H)

    def forward(self, x, h):
        outs = []
        for t in range(x.shape[1]):
            z = torch.sigmoid(self.linear_z(x[:, t]))
            h = (1 - z) * h + z * g(self.linear_h(x[:, t]))
            outs.append(h)
        return torch.stack(outs, 1), h


class MinLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear_f = torch.nn.Linear(I, H)
        self.linear_i = torch.nn.Linear(I, H)
        self.linear_h = torch.nn.Linear(I, H)

    def forward(self, x, h):
        outs = []
        for t in range(x.shape[1]):
            f = torch.sigmoid(self.linear_f(x[:, t]))
            i = torch.sigmoid(self.linear_i(x[:, t]))
            fp, ip = f / (f + i), i / (f + i)
            h = fp * h + ip * g(self.linear_h(x[:, t]))
            outs.append(h)
        return torch.stack(outs, 1), h


def main():
    out = {}
    for seed, (name, cls) in enumerate([("mingru", MinGRU), ("minlstm", MinLSTM)]):
        torch.manual_seed(100 + seed)
        m = cls().double()
        x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
        h0 = (torch.rand(B, H, dtype=torch.float64) + 0.1).requires_grad_(True)
        y, last = m(x, h0)
        w_out, w_last = torch.randn_like(y), torch.randn_like(last)
        ((y * w_out).sum() + (last * w_last).sum()).backward()
        t = {"x": x, "h0": h0, "out": y, "last": last, "w_out": w_out, "w_last": w_last,
             "grad.x": x.grad, "grad.h0": h0.grad}
        for n, p in m.named_parameters():
            t[n] = p
            t[f"grad.{n}"] = p.grad
        out.update({f"{name}.{k}": v.detach().float().contiguous() for k, v in t.items()})
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "min_rnn.safetensors")
    save_file(out, path)
    print(f"wrote {len(out)} tensors, {os.path.getsize(path)} bytes to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()

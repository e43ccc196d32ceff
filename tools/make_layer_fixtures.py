#!/usr/bin/env python3
"""Golden fixtures for recur-nn's layers and autograd, from PyTorch.

Writes tests/fixtures/layers.safetensors (float32; ids stored as floats)
with one group per case, each holding inputs, parameters (PyTorch
state_dict names), outputs and the gradients of a fixed scalar loss:

    linear.*      nn.Linear(7, 5) on (2, 3, 7);   L = sum(y * w_y)
    layer_norm.*  nn.LayerNorm(13) (random affine) on (4, 5, 13)
    rms_norm.*    nn.RMSNorm(13, eps=1e-6) (random weight) on (4, 5, 13)
    embedding.*   nn.Embedding(11, 6) at ids (3, 4)
    mse.*         F.mse_loss(pred, target) on (4, 3)
    seq.*         nn.Sequential(Linear(5, 8), LayerNorm(8), Linear(8, 3),
                  RMSNorm(3)) on (6, 5)
    model.*       embedding(11, 6) -> LSTM(6, 9, 2 layers, batch_first)
                  -> LayerNorm(9) -> Linear(9, 11), cross-entropy against
                  targets with ignore_index 0: the loss and every gradient

Run: /opt/venv/bin/python tools/make_layer_fixtures.py   (torch, safetensors)
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(7)
out = {}


def put(prefix, **tensors):
    for k, v in tensors.items():
        out[f"{prefix}.{k}"] = v.detach().float().contiguous()


def weighted(prefix, module, x, params_prefix=""):
    """Forward, L = sum(y * w_y), backward; saves x, y, w_y, params, grads."""
    x = x.clone().requires_grad_(True)
    y = module(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    put(prefix, x=x, y=y, w_y=w, **{"grad.x": x.grad})
    for name, p in module.named_parameters():
        put(prefix, **{name: p, f"grad.{name}": p.grad})


def randomise(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.dim() == 1 else 0.0))


lin = torch.nn.Linear(7, 5)
weighted("linear", lin, torch.randn(2, 3, 7))

ln = torch.nn.LayerNorm(13)
randomise(ln)
weighted("layer_norm", ln, torch.randn(4, 5, 13) * 2 + 0.5)

rms = torch.nn.RMSNorm(13, eps=1e-6)
randomise(rms)
weighted("rms_norm", rms, torch.randn(4, 5, 13) * 2 + 0.5)

emb = torch.nn.Embedding(11, 6)
ids = torch.randint(0, 11, (3, 4))
y = emb(ids)
w = torch.randn_like(y)
(y * w).sum().backward()
put("embedding", ids=ids.float(), weight=emb.weight, y=y, w_y=w, **{"grad.weight": emb.weight.grad})

pred = torch.randn(4, 3, requires_grad=True)
target = torch.randn(4, 3, requires_grad=True)
loss = F.mse_loss(pred, target)
loss.backward()
put("mse", pred=pred, target=target, loss=loss.reshape(()), **{"grad.pred": pred.grad, "grad.target": target.grad})

seq = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3), torch.nn.RMSNorm(3, eps=1e-6))
randomise(seq[1])
randomise(seq[3])
weighted("seq", seq, torch.randn(6, 5))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(11, 6)
        self.rnn = torch.nn.LSTM(6, 9, num_layers=2, batch_first=True)
        self.norm = torch.nn.LayerNorm(9)
        self.out = torch.nn.Linear(9, 11)

    def forward(self, ids):
        h, _ = self.rnn(self.embedding(ids))
        return self.out(self.norm(h))


model = Model()
randomise(model.norm)
ids = torch.randint(0, 11, (3, 5))
targets = torch.randint(0, 11, (3, 5))
targets[0, 0] = 0  # at least one ignored target
logits = model(ids)
loss = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=0)
loss.backward()
put("model", ids=ids.float(), targets=targets.float(), logits=logits, loss=loss.reshape(()))
for name, p in model.named_parameters():
    put("model", **{name: p, f"grad.{name}": p.grad})

path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "layers.safetensors")
save_file(out, path)
print(f"wrote {len(out)} tensors, {os.path.getsize(path)} bytes to {os.path.normpath(path)}")

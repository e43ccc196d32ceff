#!/usr/bin/env python3
"""Golden trajectories for recur's fused optimizers, from torch.optim.

For each configuration, a (7, 5) parameter and a (13,) parameter take three
steps with fixed random gradients; with `clip`, torch.nn.utils.clip_grad_norm_
(max_norm=1.0) runs before each step. Saves tests/fixtures/optim.safetensors:

    <config>/p0.<k>            initial parameter k
    <config>/grad.<step>.<k>   gradient fed at step (0-based)
    <config>/p.<step>.<k>      parameter after that step
    <config>/norm.<step>       total norm clip_grad_norm_ returned (clip only)

Run: /opt/venv/bin/python tools/make_optim_fixtures.py   (torch, safetensors)
"""
import os

import torch
from safetensors.torch import save_file

CONFIGS = {
    "adam": (lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01), False),
    "adamw_clip": (lambda ps: torch.optim.AdamW(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), True),
    "sgd_nesterov": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), False),
    "sgd_dampening_clip": (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.1), True),
    "sgd_plain": (lambda ps: torch.optim.SGD(ps, lr=0.3), False),
}


def main():
    out = {}
    for ci, (name, (make, clip)) in enumerate(CONFIGS.items()):
        torch.manual_seed(100 + ci)
        params = [torch.randn(7, 5, requires_grad=True), torch.randn(13, requires_grad=True)]
        for k, p in enumerate(params):
            out[f"{name}/p0.{k}"] = p.detach().clone()
        opt = make(params)
        for step in range(3):
            for k, p in enumerate(params):
                g = torch.randn_like(p) * (3.0 if clip else 1.0)
                p.grad = g.clone()
                out[f"{name}/grad.{step}.{k}"] = g
            if clip:
                out[f"{name}/norm.{step}"] = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0).reshape(1)
            opt.step()
            for k, p in enumerate(params):
                out[f"{name}/p.{step}.{k}"] = p.detach().clone()
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "optim.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata={"generator": "tools/make_optim_fixtures.py"})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()

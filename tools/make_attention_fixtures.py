#!/usr/bin/env python3
"""Golden fixtures for recur's linear-attention layers, from plain-recurrence
PyTorch transcriptions written from the papers' equations (not from any
chunked implementation):

- linear attention (Katharopoulos et al. 2020): phi = elu + 1, the normaliser
  z_t = sum phi(k_s), o_t = S_t^T q_t / (z_t . q_t + 1e-6);
- RetNet's multi-scale retention (Sun et al. 2023) in flash-linear-attention's
  layer form: rotary q and k (rotate-half, base 10000), gamma_h = 1 - 2^(-5-h),
  q scaled by d_k^-1/2, per-head RMSNorm times weight times silu(g);
- GLA (Yang et al. 2024) in flash-linear-attention's layer form: low-rank
  gate, log alpha = logsigmoid(.) / 16 per key index, the same output gate.

Each layer runs S_t = diag(alpha_t) S_{t-1} + k_t v_t^T one step at a time in
float64 over x (2, 11, 16) with 2 heads, from a random initial state.
tests/fixtures/attention/<layer>.safetensors holds every parameter under
recur's (= flash-linear-attention's) names, `x`, `h0`, `y`, `state` (the
final state; linear attention's has z as an extra last column), the loss
weights `w_y`, `w_state` of L = sum(y * w_y) + sum(state * w_state), and
`grad.<name>` for every parameter, x and h0.

Run: /opt/venv/bin/python tools/make_attention_fixtures.py
"""
import math
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "attention")
B, T, D, H = 2, 11, 16, 2
DT = torch.float64


def recurrence(q, k, v, log_decay, h0):
    """q, k (B, T, H, dk), v (B, T, H, dv), log_decay (B, T, H, dk) or None."""
    s = h0
    outs = []
    for t in range(q.shape[1]):
        if log_decay is not None:
            s = s * torch.exp(log_decay[:, t])[..., None]
        s = s + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], s))
    return torch.stack(outs, 1), s


def linear(shape_out, shape_in, bias=False):
    bound = 1 / math.sqrt(shape_in)
    p = {"weight": (torch.rand(shape_out, shape_in, dtype=DT) * 2 - 1) * bound}
    if bias:
        p["bias"] = (torch.rand(shape_out, dtype=DT) * 2 - 1) * bound
    return p


def heads(x):
    return x.view(x.shape[0], x.shape[1], H, -1)


def rms_gate(o, g, w, eps=1e-5):
    n = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + eps) * w
    return n * F.silu(g)


def rope(x, base=10000.0):
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, dtype=DT) / d)
    ang = torch.arange(x.shape[1], dtype=DT)[:, None] * inv[None]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[None, :, None]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[None, :, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def lin(p, name, x):
    y = x @ p[name + ".weight"].T
    if name + ".bias" in p:
        y = y + p[name + ".bias"]
    return y


def linear_attention(p, x, h0):
    q = F.elu(heads(lin(p, "q_proj", x))) + 1
    k = F.elu(heads(lin(p, "k_proj", x))) + 1
    v = heads(lin(p, "v_proj", x))
    s0, z0 = h0[..., :-1], h0[..., -1]
    num, s = recurrence(q, k, v, None, s0)
    z = z0[:, None] + torch.cumsum(k, 1)
    den = (q * z).sum(-1, keepdim=True)
    o = (num / (den + 1e-6)).reshape(B, T, -1)
    return lin(p, "o_proj", o), torch.cat([s, z[:, -1, ..., None]], -1)


def retention(p, x, h0):
    dk = D // H
    q = rope(heads(lin(p, "q_proj", x))) * dk ** -0.5
    k = rope(heads(lin(p, "k_proj", x)))
    v = heads(lin(p, "v_proj", x))
    gamma = torch.log(1 - 2.0 ** (-5 - torch.arange(H, dtype=DT)))
    o, s = recurrence(q, k, v, gamma[None, None, :, None].expand_as(q), h0)
    g = heads(lin(p, "g_proj", x))
    o = rms_gate(o, g, p["g_norm_swish_gate.weight"]).reshape(B, T, -1)
    return lin(p, "o_proj", o), s


def gla(p, x, h0):
    dk = D // 2 // H
    q = heads(lin(p, "q_proj", x)) * dk ** -0.5
    k = heads(lin(p, "k_proj", x))
    v = heads(lin(p, "v_proj", x))
    gk = heads(F.logsigmoid(lin(p, "gk_proj.1", lin(p, "gk_proj.0", x))) / 16)
    o, s = recurrence(q, k, v, gk, h0)
    g = heads(lin(p, "g_proj", x))
    o = rms_gate(o, g, p["g_norm_swish_gate.weight"]).reshape(B, T, -1)
    return lin(p, "o_proj", o), s


def params(layer):
    p = {}
    if layer == "linear":
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            p.update({f"{n}.{k}": v for k, v in linear(D, D).items()})
    elif layer == "retention":
        for n, (o, i) in {"q_proj": (D, D), "k_proj": (D, D), "v_proj": (2 * D, D),
                          "g_proj": (2 * D, D), "o_proj": (D, 2 * D)}.items():
            p.update({f"{n}.{k}": v for k, v in linear(o, i).items()})
        p["g_norm_swish_gate.weight"] = 1 + 0.1 * torch.randn(2 * D // H, dtype=DT)
    else:
        for n, (o, i) in {"q_proj": (D // 2, D), "k_proj": (D // 2, D), "v_proj": (D, D),
                          "g_proj": (D, D), "o_proj": (D, D)}.items():
            p.update({f"{n}.{k}": v for k, v in linear(o, i).items()})
        p.update({f"gk_proj.0.{k}": v for k, v in linear(16, D).items()})
        p.update({f"gk_proj.1.{k}": v for k, v in linear(D // 2, 16, bias=True).items()})
        p["g_norm_swish_gate.weight"] = 1 + 0.1 * torch.randn(D // H, dtype=DT)
    return p


def main():
    from safetensors.torch import save_file

    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for layer, fn, state in (
        ("linear", linear_attention, (B, H, D // H, D // H + 1)),
        ("retention", retention, (B, H, D // H, 2 * D // H)),
        ("gla", gla, (B, H, D // 2 // H, D // H)),
    ):
        p = params(layer)
        x = torch.randn(B, T, D, dtype=DT)
        h0 = 0.3 * torch.randn(*state, dtype=DT)
        if layer == "linear":
            h0[..., -1] = h0[..., -1].abs() + 0.5  # a normaliser is positive
        leaves = {**p, "x": x, "h0": h0}
        for v in leaves.values():
            v.requires_grad_(True)
        y, s = fn(p, x, h0)
        w_y, w_s = torch.randn_like(y), torch.randn_like(s)
        ((y * w_y).sum() + (s * w_s).sum()).backward()
        out = {k: v.detach() for k, v in leaves.items()}
        out.update(y=y.detach(), state=s.detach(), w_y=w_y, w_state=w_s)
        out.update({"grad." + k: v.grad for k, v in leaves.items()})
        path = os.path.join(OUT, f"{layer}.safetensors")
        save_file({k: v.float().contiguous() for k, v in out.items()}, path)
        print("wrote", path, sorted(p))


if __name__ == "__main__":
    main()

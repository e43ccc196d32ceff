#!/usr/bin/env python3
"""The peer of `recur-bench attention`: the chunked form of decayed linear
attention in PyTorch on the CPU (float32, autograd for the backward), the
way flash-linear-attention's and mamba_ssm's reference chunked PyTorch code
computes it: per chunk of 64, causal scores (Q Kᵀ ⊙ decay mask) V as batched
matmuls, the state passed chunk to chunk, the inter-chunk term Q S. Decays:
none (linear), fixed per head (retnet), per head and step (ssd), per key
index (gla; the intra-chunk term factored as (Q ⊙ e^b)(K ⊙ e^−b)ᵀ, fine for
the mild decays benchmarked). Median after a warm-up; same shapes as recur.

    /opt/venv/bin/python tools/torch_chunked_attention_bench.py [--threads 2] [--quick] [--json out.json]
"""
import argparse
import json
import math
import time

import torch


def chunked(q, k, v, g, chunk=64):
    """q, k (B, H, T, dk), v (B, H, T, dv), g (B, H, T, dk) log-decays or None."""
    b, h, t, dk = q.shape
    dv = v.shape[-1]
    n = t // chunk
    q, k, v = (x.reshape(b, h, n, chunk, -1) for x in (q, k, v))
    mask = torch.tril(torch.ones(chunk, chunk, dtype=torch.bool))
    if g is None:
        cum = None
    else:
        cum = torch.cumsum(g.reshape(b, h, n, chunk, -1), dim=3)
    if cum is None:
        att = (q @ k.transpose(-1, -2)).masked_fill(~mask, 0)
        qi, kd = q, k
    elif cum.shape[-1] == 1:
        c = cum[..., 0]
        decay = torch.exp((c[..., :, None] - c[..., None, :]).masked_fill(~mask, -math.inf))
        att = (q @ k.transpose(-1, -2)) * decay
        qi, kd = q * torch.exp(cum), k * torch.exp(cum[..., -1:, :] - cum)
    else:
        qi = q * torch.exp(cum)
        att = (qi @ (k * torch.exp(-cum)).transpose(-1, -2)).masked_fill(~mask, 0)
        kd = k * torch.exp(cum[..., -1:, :] - cum)
    intra = att @ v
    s = q.new_zeros(b, h, dk, dv)
    outs = []
    # The chunks split once (unbind): indexing chunk i out of the whole
    # tensors would make autograd fill a whole-tensor gradient per chunk.
    totals = [None] * n if cum is None else torch.exp(cum[:, :, :, -1]).unbind(2)
    for a, qc, kc, vc, tot in zip(intra.unbind(2), qi.unbind(2), kd.unbind(2), v.unbind(2), totals):
        outs.append(a + qc @ s)
        s = (s if tot is None else tot[..., None] * s) + kc.transpose(-1, -2) @ vc
    return torch.stack(outs, 2).reshape(b, h, t, dv), s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    records = []
    for t in [2048] + ([] if args.quick else [8192]):
        b, h, dk, dv = 4, 8, 64, 64
        for name in ("linear", "retnet", "ssd", "gla"):
            q = torch.rand(b, h, t, dk) * 2 - 1
            k = torch.rand(b, h, t, dk) * 2 - 1
            v = torch.rand(b, h, t, dv) * 2 - 1
            if name == "linear":
                g = None
            elif name == "retnet":
                lg = torch.log(1 - 2.0 ** (-5 - torch.arange(h, dtype=torch.float32)))
                g = lg[None, :, None, None].expand(b, h, t, 1).contiguous()
            elif name == "ssd":
                g = -0.1 * torch.rand(b, h, t, 1)
            else:
                g = -0.1 * torch.rand(b, h, t, dk)
            for mode in ("fwd", "fwd+bwd"):
                grad = mode != "fwd"
                xs = [x.clone().requires_grad_(grad) for x in (q, k, v)]
                gg = None if g is None else g.clone().requires_grad_(grad and name in ("ssd", "gla"))
                times = []
                for i in range(4):
                    t0 = time.perf_counter()
                    if grad:
                        o, s = chunked(*xs, gg)
                        (o.sum() + s.sum()).backward()
                    else:
                        with torch.no_grad():
                            chunked(*xs, gg)
                    if i > 0:
                        times.append((time.perf_counter() - t0) * 1e3)
                ms = sorted(times)[len(times) // 2]
                print(f"PyTorch {torch.__version__} CPU {args.threads} threads {name}_chunked {mode} "
                      f"b={b} h={h} t={t} dk={dk} dv={dv}: {ms:.1f} ms, {b * t / ms * 1e3:.0f} tokens/s")
                records.append({"name": f"{name}_chunked", "mode": mode, "ms": ms,
                                "shape": {"b": b, "h": h, "t": t, "dk": dk, "dv": dv}})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The peer of `recur-bench mamba`: the selective scan written the way
mamba_ssm's `selective_scan_ref` computes it (discretise the whole sequence
with einsum, then a loop over time), in PyTorch on the CPU, forward and
forward+backward (autograd), float32, median after a warm-up; and the same
with the time steps split once (`unbind`) instead of indexed per step.

    /opt/venv/bin/python tools/torch_selective_scan_bench.py [--threads 2] [--json out.json]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def scan(u, delta, A, B, C, D, z, delta_bias, unbind=False):
    delta = F.softplus(delta + delta_bias[:, None])
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    # selective_scan_ref indexes step t out of the whole tensors; its
    # backward then fills a whole-sequence gradient per step (quadratic in
    # L). With `unbind` the steps are split once, as a tuned version would.
    steps = zip(dA.unbind(2), dBu.unbind(2), C.unbind(2)) if unbind else (
        (dA[:, :, t], dBu[:, :, t], C[:, :, t]) for t in range(u.shape[2]))
    for a_t, bu_t, c_t in steps:
        x = a_t * x + bu_t
        ys.append(torch.einsum("bdn,bn->bd", x, c_t))
    y = torch.stack(ys, dim=2) + u * D[:, None]
    return y * F.silu(z)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    records = []
    for b, d, n, l in [(8, 512, 16, 256)]:
        g = torch.Generator().manual_seed(1)
        r = lambda *s, lo=-1.0, hi=1.0: (torch.rand(*s, generator=g) * (hi - lo) + lo).requires_grad_(True)
        args_ = dict(u=r(b, d, l), delta=r(b, d, l, lo=-4.0, hi=-1.0), A=r(d, n, lo=-2.0, hi=-0.1),
                     B=r(b, n, l), C=r(b, n, l), D=r(d, lo=0.5, hi=1.5), z=r(b, d, l),
                     delta_bias=r(d, lo=-0.5, hi=0.5))
        dout = torch.rand(b, d, l, generator=g)
        for unbind in [False, True]:
            name = "torch_selective_scan_unbind" if unbind else "torch_selective_scan_ref"
            for mode in ["fwd", "fwd+bwd"]:
                times = []
                for i in range(6 if mode == "fwd" or unbind else 3):
                    t0 = time.perf_counter()
                    if mode == "fwd":
                        with torch.no_grad():
                            scan(**args_, unbind=unbind)
                    else:
                        (scan(**args_, unbind=unbind) * dout).sum().backward()
                    if i:
                        times.append((time.perf_counter() - t0) * 1e3)
                ms = sorted(times)[len(times) // 2]
                print(f"PyTorch {torch.__version__} CPU {args.threads} threads {name} {mode} "
                      f"b={b} d={d} n={n} l={l}: {ms:.1f} ms")
                records.append(dict(suite="mamba", name=name, mode=mode,
                                    shape=dict(b=b, d=d, n=n, l=l), ms_median=ms))
    if args.json:
        json.dump(records, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The PyTorch CUDA peer of `recur-bench`: the same shapes, in the same
record format, for `tools/bench_compare.py` to set side by side (one table
of ratios). Each record names the recur records it is the peer of
(`peers`). Timed by wall clock around `torch.cuda.synchronize()` (what a
user waits for; recur reports both its GPU time and its wall clock), median
of `--runs` after a warm-up; fp32 with TF32 off unless the record says f16.

Covers: copy bandwidth; GEMM fp32 (NN at 256³..4096³, the rnn suite's
weight-gradient shape, NT at 1024³) and fp16 (1024³, 4096³, the peer of
recur's cooperative-matrix kernel); nn.LSTM / nn.GRU (cuDNN) forward and
forward+backward at the rnn suite's shapes and the batch-1 latency shape;
the scan suite's log-space scan (cumsum + logcumsumexp) and minGRU; the
attention suite's chunked linear attention / RetNet / SSD / GLA; and the
char_lm training step (2×LSTM 256, 32×64 tokens, AdamW, clipping, loss read
back) as tokens/s.

    python3 tools/torch_cuda_bench.py --json torch_cuda.json [--quick]

`--device cpu` runs the same code on the CPU (a smoke test of the script).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_chunked_attention_bench import chunked  # noqa: E402

DEV = "cuda"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def device_name():
    if DEV == "cuda":
        return f"{torch.cuda.get_device_name()} (PyTorch {torch.__version__} CUDA {torch.version.cuda})"
    return f"CPU, {torch.get_num_threads()} threads (PyTorch {torch.__version__})"


def timed(fn, runs):
    fn()
    sync()
    samples = []
    for _ in range(max(runs, 3)):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return samples[len(samples) // 2], samples[0]


def record(suite, name, mode, shape, ms, peers, dtype="f32", gflops=0.0, gbps=0.0, tokens=None):
    med, lo = ms
    r = {
        "suite": suite, "name": name, "mode": mode, "shape": shape, "dtype": dtype,
        "ms_median": med, "wall_ms_median": med, "ms_min": lo,
        "gflops": gflops(med) if callable(gflops) else gflops,
        "gbps": gbps(med) if callable(gbps) else gbps,
        "device": device_name(),
        "peers": peers,
    }
    if tokens is not None:
        r["tokens_per_s"] = tokens / med * 1e3
    print(f"{suite:9} {name:24} {mode:8} {dtype} {shape}: {med:.3f} ms", flush=True)
    return r


def peak(runs):
    n = 16 << 20
    src = torch.rand(n, device=DEV)
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src), runs)
    return [record("peak", "torch_copy", "fwd", {"bytes": n * 4}, ms, ["copy_peak"],
                   gbps=lambda t: 2 * n * 4 / t / 1e6)]


def gemm(runs, quick):
    out = []
    cubes = [256, 1024] if quick else [256, 512, 1024, 2048, 4096]
    cases = [((s, s, s), False, torch.float32) for s in cubes]
    cases += [((1024, 1024, 1024), True, torch.float32)]
    cases += [((s, s, s), False, torch.float16) for s in ([1024] if quick else [1024, 4096])]
    if not quick:
        cases += [((4096, 1024, 256), False, torch.float32), ((1024, 256, 4096), "tn", torch.float32)]
    for (m, n, k), trans, dt in cases:
        a = torch.randn(k, m, device=DEV, dtype=dt).t() if trans == "tn" else torch.randn(m, k, device=DEV, dtype=dt)
        b = torch.randn(n, k, device=DEV, dtype=dt).t() if trans is True else torch.randn(k, n, device=DEV, dtype=dt)
        c = torch.empty(m, n, device=DEV, dtype=dt)
        ms = timed(lambda: torch.matmul(a, b, out=c), runs)
        suffix = {False: "", True: "_nt", "tn": "_tn"}[trans]
        if dt == torch.float16:
            name, peers, dtype = "torch_gemm_f16", ["gemm_coop_f16in" + suffix], "f16"
        else:
            name, peers, dtype = "torch_gemm" + suffix, [p + suffix for p in ("gemm_auto", "gemm_tiled", "gemm_wide", "gemm_blocked", "gemm_naive")], "f32"
        out.append(record("gemm", name, "fwd", {"m": m, "n": n, "k": k}, ms, peers, dtype,
                          gflops=lambda t: 2 * m * n * k / t / 1e6))
    return out


def rnn(runs, quick):
    out = []
    a, b, lat = (128, 256, 32, 128), (256, 512, 64, 256), (128, 256, 1, 128)
    cases = [(c, a) for c in ("lstm", "gru")] + [("lstm", lat)]
    if not quick:
        cases += [(c, b) for c in ("lstm", "gru")]
    for cell, (i, h, bs, t) in cases:
        m = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](i, h).to(DEV)
        x = torch.randn(t, bs, i, device=DEV, requires_grad=True)
        dout = torch.randn(t, bs, h, device=DEV)
        gates = 4 if cell == "lstm" else 3
        for backward in (False, True):
            def step():
                if backward:
                    y, _ = m(x)
                    y.backward(dout)
                else:
                    with torch.no_grad():
                        m(x)
            ms = timed(step, runs)
            fl = 2.0 * gates * h * (i + h) * bs * t * (3 if backward else 1)
            peers = [f"{cell}_fused", f"{cell}_fused_stepped", f"{cell}_fused_persistent"]
            out.append(record("rnn", f"torch_{cell}", "fwd+bwd" if backward else "fwd",
                              {"i": i, "h": h, "b": bs, "t": t}, ms, peers,
                              gflops=lambda tm: fl / tm / 1e6, tokens=bs * t))
    return out


def log_scan(log_a, x):
    """h_t = a_t h_{t−1} + x_t for positive x, in log space: cumsum of log a,
    then logcumsumexp (the usual PyTorch way to scan in parallel)."""
    a_star = torch.cumsum(log_a, dim=1)
    return torch.exp(a_star + torch.logcumsumexp(torch.log(x) - a_star, dim=1))


def scan(runs, quick):
    out = []
    shapes = [(2, 256, 4096)] if quick else [(2, 256, 4096), (2, 256, 65536), (8, 1536, 65536)]
    for b, d, t in shapes:
        log_a = -0.7 * torch.rand(b, t, d, device=DEV)
        x = torch.rand(b, t, d, device=DEV) + 0.1
        ms = timed(lambda: log_scan(log_a, x), runs)
        peers = [f"scan_{k}{v}" for k in ("linear", "log") for v in ("", "_chunked", "_tp")]
        out.append(record("scan", "torch_logcumsumexp_scan", "fwd", {"b": b, "d": d, "t": t}, ms, peers,
                          gbps=lambda tm: 3 * 4 * b * t * d / tm / 1e6, tokens=b * t))
    for t in [128] if quick else [128, 512, 2048]:
        i = h = 256
        bs = 64
        lin = torch.nn.Linear(i, 2 * h, bias=False).to(DEV)
        x = torch.rand(bs, t, i, device=DEV) * 2 - 1
        w = torch.rand(bs, t, h, device=DEV) * 2 - 1

        def step():
            k, ht = lin(x).chunk(2, dim=-1)
            log_z = -Fn.softplus(-k)
            log_coeff = -Fn.softplus(k)
            log_g = torch.where(ht >= 0, torch.log(Fn.relu(ht) + 0.5), -Fn.softplus(-ht))
            a_star = torch.cumsum(log_coeff, dim=1)
            hs = torch.exp(a_star + torch.logcumsumexp(log_z + log_g - a_star, dim=1))
            (hs * w).sum().backward()
        ms = timed(step, runs)
        out.append(record("scan", "torch_mingru", "fwd+bwd", {"i": i, "h": h, "b": bs, "t": t}, ms,
                          ["mingru"], gflops=lambda tm: 12.0 * h * i * bs * t / tm / 1e6, tokens=bs * t))
    return out


def attention(runs, quick):
    out = []
    b, h, dk, dv = 4, 8, 64, 64
    for t in [2048] if quick else [2048, 8192]:
        for name in ("linear", "retnet", "ssd", "gla"):
            q, k = (torch.rand(b, h, t, dk, device=DEV) * 2 - 1 for _ in range(2))
            v = torch.rand(b, h, t, dv, device=DEV) * 2 - 1
            g = {
                "linear": None,
                "retnet": torch.log(1 - 2.0 ** (-5 - torch.arange(h, dtype=torch.float32, device=DEV)))[None, :, None, None].expand(b, h, t, 1).contiguous(),
                "ssd": -0.1 * torch.rand(b, h, t, 1, device=DEV),
                "gla": -0.1 * torch.rand(b, h, t, dk, device=DEV),
            }[name]
            for mode in ("fwd", "fwd+bwd"):
                grad = mode != "fwd"
                xs = [x.clone().requires_grad_(grad) for x in (q, k, v)]
                gg = None if g is None else g.clone().requires_grad_(grad and name in ("ssd", "gla"))

                def step():
                    if grad:
                        o, s = chunked(*xs, gg)
                        (o.sum() + s.sum()).backward()
                    else:
                        with torch.no_grad():
                            chunked(*xs, gg)
                ms = timed(step, runs)
                out.append(record("attention", f"torch_{name}_chunked", mode,
                                  {"b": b, "h": h, "t": t, "dk": dk, "dv": dv}, ms,
                                  [f"{name}_chunked"], tokens=b * t))
    return out


def char_lm_step(runs):
    vocab, embed, hidden, bs, bptt = 65, 64, 256, 32, 64
    emb = torch.nn.Embedding(vocab, embed).to(DEV)
    lstm = torch.nn.LSTM(embed, hidden, num_layers=2, batch_first=True).to(DEV)
    head = torch.nn.Linear(hidden, vocab).to(DEV)
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    x = torch.randint(0, vocab, (bs, bptt), device=DEV)
    y = torch.randint(0, vocab, (bs, bptt), device=DEV)

    def step():
        opt.zero_grad()
        out, _ = lstm(emb(x))
        loss = Fn.cross_entropy(head(out).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss.item()
    ms = timed(step, runs)
    return [record("char_lm", "torch_char_lm_step", "train", {"layers": 2, "h": hidden, "b": bs, "t": bptt},
                   ms, ["char_lm_step"], tokens=bs * bptt)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = ap.parse_args()
    global DEV
    DEV = args.device
    if DEV == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_cuda_bench: no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    records = []
    for suite in (peak, gemm, rnn, scan, attention, char_lm_step):
        try:
            records += suite(args.runs) if suite in (peak, char_lm_step) else suite(args.runs, args.quick)
        except Exception as e:  # one suite's failure (e.g. memory) leaves the others
            print(f"{suite.__name__}: skipped: {e}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch CPU baseline for the `rnn` suite: nn.LSTM / nn.GRU forward and
forward+backward at the suite's shapes, 2 threads, median of several runs,
in recur-bench's JSON record format (names `torch_lstm`, `torch_gru`).

    /opt/venv/bin/python tools/torch_rnn_bench.py [--json PATH] [--threads 2]

Run it right after `recur-bench rnn` on the same machine to compare.
"""
import argparse
import json
import platform
import time

import torch


def bench(cell, i, h, b, t, backward, runs):
    torch.manual_seed(0)
    m = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](i, h)
    x = torch.randn(t, b, i, requires_grad=backward)
    dout = torch.randn(t, b, h)

    def step():
        if backward:
            out, _ = m(x)
            out.backward(dout)
        else:
            with torch.no_grad():
                m(x)

    step()
    samples = []
    for _ in range(max(runs, 5)):
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    med = samples[len(samples) // 2]
    gates = 4 if cell == "lstm" else 3
    flops = 2.0 * gates * h * (i + h) * b * t * (3 if backward else 1)
    return {
        "suite": "rnn",
        "name": f"torch_{cell}",
        "mode": "fwd+bwd" if backward else "fwd",
        "shape": {"i": i, "h": h, "b": b, "t": t},
        "dtype": "f32",
        "ms_median": med,
        "ms_min": samples[0],
        "ms_max": samples[-1],
        "gflops": flops / med / 1e6,
        "gbps": 0.0,
        "device": f"PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads ({platform.machine()})",
        "tokens_per_s": b * t / med * 1e3,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [(128, 256, 32, 128), (128, 256, 1, 128)]
    if not args.quick:
        shapes.append((256, 512, 64, 256))
    records = []
    for shape in shapes:
        for cell in ["lstm", "gru"]:
            for backward in [False, True]:
                r = bench(cell, *shape, backward, args.runs)
                records.append(r)
                s = r["shape"]
                print(f"{r['name']:<11} {r['mode']:<8} i={s['i']} h={s['h']} b={s['b']} t={s['t']}: "
                      f"{r['ms_median']:9.2f} ms {r['tokens_per_s']:10.0f} tokens/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()

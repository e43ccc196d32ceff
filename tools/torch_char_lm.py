#!/usr/bin/env python3
"""PyTorch CPU twin of examples/char_lm.rs, for a side-by-side training speed.

Same model (embedding 64 → 2-layer LSTM, H=128 → linear), same batch (16
streams × 64-step windows), AdamW with clipping at 1.0, state carried across
windows (detached), on the same bundled corpus (recur's own sources, read
from the repository). Prints tokens/s and the training loss.

    /opt/venv/bin/python tools/torch_char_lm.py [--steps 300] [--threads 2]
"""
import argparse
import os
import time

import torch

FILES = [
    "crates/recur-gpu/src/record.rs", "crates/recur-gpu/src/kernel.rs", "crates/recur-gpu/src/device.rs",
    "crates/recur-gpu/src/tensor.rs", "crates/recur-gpu/src/ops/rnn/mod.rs", "crates/recur-gpu/src/ops/rnn/backward.rs",
    "crates/recur-nn/src/recurrent.rs", "shaders/rnn.wgsl", "shaders/gemm.wgsl", "README.md",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bptt", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    root = os.path.join(os.path.dirname(__file__), "..")
    text = "".join(open(os.path.join(root, f), encoding="utf-8").read() for f in FILES)
    vocab = sorted(set(text))
    data = torch.tensor([vocab.index(c) for c in text])
    train = data[: len(data) * 9 // 10]
    per = len(train) // args.batch
    streams = train[: per * args.batch].view(args.batch, per).t().contiguous()  # (per, B)

    emb = torch.nn.Embedding(len(vocab), args.embed)
    lstm = torch.nn.LSTM(args.embed, args.hidden, num_layers=2)
    out = torch.nn.Linear(args.hidden, len(vocab))
    params = list(emb.parameters()) + list(lstm.parameters()) + list(out.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3)
    state, pos = None, 0
    t0 = time.perf_counter()
    for step in range(args.steps):
        if pos + args.bptt + 1 >= per:
            pos, state = 0, None
        x = streams[pos : pos + args.bptt]
        y = streams[pos + 1 : pos + args.bptt + 1]
        h, state = lstm(emb(x), state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(out(h).reshape(-1, len(vocab)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        pos += args.bptt
    dt = time.perf_counter() - t0
    tokens = args.steps * args.bptt * args.batch
    print(f"PyTorch {torch.__version__} CPU, {args.threads} threads: {args.steps} steps in {dt:.1f} s, "
          f"{tokens / dt:.0f} tokens/s, last training loss {loss.item():.3f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch CPU twin of examples/char_lm.rs, for a side-by-side training run.

Same model (embedding 64 → 2-layer LSTM, H=256 → linear), same batch (32
streams × 64-step windows, k1 = k2), AdamW with the same warm-up + cosine
schedule and clipping at 1.0, state carried across windows (detached), on
the same text: the bundled corpus (recur's own sources, read from the
repository) or --data PATH, with every tenth block of 2,048 characters held
out for validation (recur_nn::text::CharCorpus). Prints tokens/s, the training
loss, and with --eval the validation loss computed as char_lm does.

    /opt/venv/bin/python tools/torch_char_lm.py [--steps 300] [--threads 2]
    /opt/venv/bin/python tools/torch_char_lm.py --data ../shared/data/tinyshakespeare.txt --steps 1500 --eval
"""
import argparse
import math
import os
import time

import torch

FILES = [
    "crates/recur-gpu/src/record.rs", "crates/recur-gpu/src/kernel.rs", "crates/recur-gpu/src/device.rs",
    "crates/recur-gpu/src/tensor.rs", "crates/recur-gpu/src/ops/rnn/mod.rs", "crates/recur-gpu/src/ops/rnn/backward.rs",
    "crates/recur-nn/src/recurrent/mod.rs", "crates/recur-nn/src/recurrent/run.rs", "crates/recur-nn/src/autograd.rs", "shaders/rnn.wgsl", "shaders/gemm.wgsl",
    "README.md",
]


def factor(step, steps):
    """char_lm's LrSchedule::Cosine { warmup: steps / 20, total: steps, min_factor: 0.1 }."""
    warmup = steps // 20
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(steps - warmup, 1), 1.0)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="UTF-8 text (default: recur's sources)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval", action="store_true", help="validation loss at the end")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    root = os.path.join(os.path.dirname(__file__), "..")
    if args.data:
        text = open(args.data, encoding="utf-8").read()
    else:
        text = "".join(open(os.path.join(root, f), encoding="utf-8").read() for f in FILES)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    data = torch.tensor([index[c] for c in text])
    blocks = [data[k : k + 2048] for k in range(0, len(data), 2048)]
    held = [k % 10 == 9 and len(b) == 2048 for k, b in enumerate(blocks)]
    train = torch.cat([b for b, h in zip(blocks, held) if not h])
    val = torch.cat([b for b, h in zip(blocks, held) if h])
    per = len(train) // args.batch
    streams = train[: per * args.batch].view(args.batch, per).t().contiguous()  # (per, B)

    emb = torch.nn.Embedding(len(vocab), args.embed)
    lstm = torch.nn.LSTM(args.embed, args.hidden, num_layers=2)
    out = torch.nn.Linear(args.hidden, len(vocab))
    params = list(emb.parameters()) + list(lstm.parameters()) + list(out.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr)
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
        for g in opt.param_groups:
            g["lr"] = args.lr * factor(step, args.steps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        pos += args.bptt
    dt = time.perf_counter() - t0
    tokens = args.steps * args.bptt * args.batch
    print(f"PyTorch {torch.__version__} CPU, {args.threads} threads: {args.steps} steps in {dt:.1f} s, "
          f"{tokens / dt:.0f} tokens/s, last training loss {loss.item():.3f}")
    if args.eval:
        b = max(min(args.batch, len(val) // (args.bptt + 1)), 1)
        per_v = len(val) // b
        vs = val[: per_v * b].view(b, per_v).t().contiguous()
        total, count, state, pos = 0.0, 0, None, 0
        with torch.no_grad():
            while pos + 1 < per_v:
                t = min(args.bptt, per_v - 1 - pos)
                h, state = lstm(emb(vs[pos : pos + t]), state)
                logits = out(h).reshape(-1, len(vocab))
                total += torch.nn.functional.cross_entropy(logits, vs[pos + 1 : pos + t + 1].reshape(-1), reduction="sum").item()
                count += t * b
                pos += t
        v = total / count
        print(f"validation {v:.3f} nats/char ({v / math.log(2):.3f} bits/char)")


if __name__ == "__main__":
    main()

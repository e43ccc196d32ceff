#!/usr/bin/env python3
"""One table of recur against a peer: reads recur-bench JSON files and a
peer's (tools/torch_cuda_bench.py, whose records name the recur records
they are the peers of) and prints, for every peer record, each matching
recur record (same suite, mode and shape; f32 unless the peer's name says
f16 input) with both times and recur's speed as a fraction of the peer's:
peer ms / recur ms, by recur's GPU time and by its wall clock (what a user
waits for). Markdown, so it pastes into the README.

    python3 tools/bench_compare.py --peer torch_cuda.json recur-*.json [--md out.md]
"""
import argparse
import json


def shape_key(shape):
    return tuple(sorted((k, int(v)) for k, v in shape.items()))


def fmt_shape(shape):
    return ",".join(f"{k}={v}" for k, v in sorted(shape.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True)
    ap.add_argument("--md")
    ap.add_argument("recur", nargs="+")
    args = ap.parse_args()
    recur = []
    for path in args.recur:
        with open(path) as f:
            recur += json.load(f)
    with open(args.peer) as f:
        peers = json.load(f)
    index = {}
    for r in recur:
        key = (r["suite"], r["mode"], shape_key(r["shape"]), r["name"])
        index.setdefault(key, []).append(r)
    device = next((r["device"] for r in recur), "?")
    peer_device = next((p["device"] for p in peers), "?")
    lines = [
        f"recur: {device}; peer: {peer_device}",
        "",
        "| suite | work | shape | recur kernel | recur ms (wall) | peer ms | recur / peer (GPU time) | (wall) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    missing = []
    for p in peers:
        found = False
        for name in p["peers"]:
            for r in index.get((p["suite"], p["mode"], shape_key(p["shape"]), name), []):
                if r["dtype"] != "f32":
                    continue
                found = True
                gpu, wall, peer = r["ms_median"], r["wall_ms_median"], p["ms_median"]
                lines.append(
                    f"| {p['suite']} | {p['name']} {p['mode']} ({p['dtype']}) | {fmt_shape(p['shape'])} | {name} "
                    f"| {gpu:.3f} ({wall:.3f}) | {peer:.3f} | {100 * peer / gpu:.0f}% | {100 * peer / wall:.0f}% |"
                )
        if not found:
            missing.append(f"{p['suite']} {p['name']} {p['mode']} {fmt_shape(p['shape'])}: {p['ms_median']:.3f} ms")
    if missing:
        lines += ["", "Peer records without a recur record in these files:", ""]
        lines += [f"- {m}" for m in missing]
    text = "\n".join(lines)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

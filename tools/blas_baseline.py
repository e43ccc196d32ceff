#!/usr/bin/env python3
"""The CPU's own BLAS as the physical limit for GEMM on this machine.

Times numpy's float32 matmul (OpenBLAS on Debian/PyPI wheels) at the GEMM
suite's shapes, median of several runs after a warm-up, and prints the same
JSON record format as `recur-bench` (suite "gemm", name "numpy_blas").

    python3 tools/blas_baseline.py [--json PATH] [--threads N]

Run it in the same session as `recur-bench gemm` to compare side by side.
"""
import argparse
import json
import os
import platform
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    import numpy as np

    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(args.threads)
        blas = ", ".join(f"{i['internal_api']} {i.get('version', '')} {i.get('architecture', '')}" for i in threadpool_info())
    except ImportError:
        blas = "unknown BLAS"

    records = []
    for m, n, k in [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (4096, 1024, 256), (2048, 2048, 2048)]:
        rng = np.random.default_rng(1)
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        a @ b
        samples = []
        for _ in range(max(args.runs, 5)):
            t = time.perf_counter()
            a @ b
            samples.append((time.perf_counter() - t) * 1e3)
        samples.sort()
        med = samples[len(samples) // 2]
        records.append(
            {
                "suite": "gemm",
                "name": "numpy_blas",
                "mode": "fwd",
                "shape": {"m": m, "n": n, "k": k},
                "dtype": "f32",
                "ms_median": med,
                "ms_min": samples[0],
                "ms_max": samples[-1],
                "gflops": 2.0 * m * n * k / med / 1e6,
                "gbps": 4.0 * (m * k + k * n + m * n) / med / 1e6,
                "device": f"{platform.processor() or platform.machine()} {args.threads} threads ({blas})",
            }
        )
    for r in records:
        s = r["shape"]
        print(f"numpy_blas m={s['m']:<5} n={s['n']:<5} k={s['k']:<5} {r['ms_median']:9.3f} ms {r['gflops']:8.2f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()

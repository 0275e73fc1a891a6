#!/usr/bin/env python3
"""A backward key-block kernel's cost split into a per-tile part and a per-step part.

The key-block kernels run one tile per key block (of the n keys a tile
holds) and, in it, one step per block of queries. With seq_k, batch and heads
fixed, the tiles stay the same while seq_q sets the steps of each tile, so
the main backward kernel's time fits T(seq_q) = fixed + per_query_row * seq_q:
`fixed` is what every tile pays whatever its length (loading K and V,
filling and draining the step pipeline, storing dK and dV, the last dQ
reductions), in microseconds of the whole kernel. Short sequences are where
that part weighs: it is the gap the fwd+bwd benchmark shows at 1024 tokens.

Measured with torch.profiler (the largest kernel of a training step, the
backward's main kernel at these shapes) for flashjit's atomic-dQ backward
on its default tiles (asked for: the default takes the deterministic
kernels below 1024 queries, which would mix two kernels in one fit), its
persistent key-block tile and SDPA's cuDNN backend, in one process.

  python3 bench/backward_fixed_cost.py --dim 128 --seq-k 1024 --out results/NAME
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_kernels import attention_of, kernel_times  # noqa: E402


def fit_line(xs, ys):
    """Least squares y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seq-k", type=int, default=1024)
    ap.add_argument("--seq-qs", default="256,512,1024,2048,4096")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--impls", default="flashjit-atomic,flashjit-persistent,sdpa-cudnn")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", required=True, help="path stem for NAME.md and NAME.json")
    args = ap.parse_args()
    d, sk = args.dim, args.seq_k
    b, h = max(1, 16384 // sk), 2048 // d
    seqs = [int(x) for x in args.seq_qs.split(",")]
    gpu = torch.cuda.get_device_name()
    lines = [f"# Backward main kernel: fixed and per-row cost ({gpu}, bf16, d {d}, seq_k {sk}, "
             f"b {b}, h {h}, {'causal' if args.causal else 'non-causal'}; torch "
             f"{torch.__version__}, cuDNN {torch.backends.cudnn.version()})", "",
             "Main kernel microseconds (largest kernel of a training step) per seq_q:", "",
             "| impl | " + " | ".join(f"sq {s}" for s in seqs) +
             " | fixed us | us per 1024 query rows | kernel |",
             "| --- " * (len(seqs) + 4) + "|"]
    records = []
    for impl in args.impls.split(","):
        times, names = [], set()
        for sq in seqs:
            q = torch.randn(b, sq, h, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            k, v = (torch.randn(b, sk, h, d, device="cuda", dtype=torch.bfloat16,
                                requires_grad=True) for _ in range(2))
            grad_out = torch.randn(b, sq, h, d, device="cuda", dtype=torch.bfloat16)
            kernels, _, _ = kernel_times(attention_of(impl, args.causal, d), q, k, v, grad_out,
                                         args.steps)
            name, (_, us) = max(kernels.items(), key=lambda kv: kv[1][1])
            names.add(name)
            times.append(us)
            print(f"{impl} sq {sq}: {us:.1f} us ({name[:80]})", flush=True)
            del q, k, v, grad_out
        fixed, slope = fit_line(seqs, times)
        lines.append(f"| {impl} | " + " | ".join(f"{t:.1f}" for t in times) +
                     f" | {fixed:.1f} | {1024 * slope:.1f} | {' / '.join(n[:60] for n in names)} |")
        records.append({"impl": impl, "seq_q": seqs, "us": times, "fixed_us": fixed,
                        "us_per_1024_rows": 1024 * slope, "kernels": sorted(names)})
    print("\n".join(lines), flush=True)
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(args.out + ".json", "w") as f:
        json.dump({"gpu": gpu, "d": d, "seq_k": sk, "b": b, "h": h, "causal": args.causal,
                   "records": records}, f, indent=1)


if __name__ == "__main__":
    main()

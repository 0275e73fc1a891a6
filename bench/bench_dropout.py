#!/usr/bin/env python3
"""Dropout (issue #8): flashjit with dropout_p next to flashjit without it and
SDPA's backends that take dropout_p (FLASH_ATTENTION = FlashAttention-2,
EFFICIENT_ATTENTION, CUDNN_ATTENTION where this torch allows it), forward
and forward + backward, in one process on the same tensors. TFLOP/s count
the kept (query, key) pairs (4 d per pair; 2.5x for forward + backward),
dropped or not; times are CUDA-event medians (triton.testing.do_bench).
flashjit's dropout is first checked against a float32 PyTorch computation
with the mask flashjit.dropout_mask draws on the CPU.

  python3 bench/bench_dropout.py --out results/NAME   (writes NAME.md, NAME.json)
"""
import argparse
import math
import os
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_variants import (cell_text, gpu_header, kept_pairs, print_times,  # noqa: E402
                            publish, speedup_text, time_cells)
import flashjit  # noqa: E402  (bench_variants put python/ on the path)

PEERS = (("sdpa-flash (FA2)", SDPBackend.FLASH_ATTENTION),
         ("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION),
         ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION))
NAMES = ("flashjit", "flashjit p=0") + tuple(n for n, _ in PEERS)


def check_against_reference(p):
    """flashjit's dropout vs float32 attention with the CPU-drawn mask."""
    b, s, h, d = 1, 700, 2, 128
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out = flashjit.attention(q, k, v, causal=True, dropout_p=p, dropout_seed=99, dropout_offset=1)
    keep = torch.as_tensor(flashjit.dropout_mask(b, h, s, s, p, 99, 1), device="cuda")
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    sc = (qf @ kf.transpose(-1, -2)) / math.sqrt(d)
    sc = sc.masked_fill(torch.ones(s, s, device="cuda", dtype=torch.bool).triu(1), float("-inf"))
    threshold = math.floor(float(torch.tensor(p)) * 65536 + 0.5)
    probs = torch.softmax(sc, -1) * keep * (65536 / (65536 - threshold))
    ref = (probs @ vf).transpose(1, 2)
    err = ((out.float() - ref).norm() / ref.norm()).item()
    if not err < 1e-2:
        raise RuntimeError(f"flashjit's dropout is wrong: relative error {err}")
    return err


def run_row(b, s, h, d, causal, p, training):
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16,
                           requires_grad=training) for _ in range(3))
    grad = torch.randn_like(q)
    flops = (2.5 if training else 1.0) * 4.0 * b * h * d * kept_pairs(s, s, causal, (-1, -1))
    row = {"b": b, "s": s, "h": h, "d": d, "causal": causal, "p": p, "training": training,
           "variant": flashjit.variant(q, k, v, causal=causal, dropout_p=p)}

    def timed(fn):
        if not training:
            return fn
        return lambda: fn().backward(grad)
    cells = {"flashjit": timed(lambda: flashjit.attention(q, k, v, causal=causal, dropout_p=p)),
             "flashjit p=0": timed(lambda: flashjit.attention(q, k, v, causal=causal))}
    qt, kt, vt = (t.detach().transpose(1, 2).requires_grad_(training) for t in (q, k, v))
    gt = grad.transpose(1, 2)
    for label, backend in PEERS:
        def sdpa(backend=backend):
            with sdpa_kernel(backend):
                out = torch.nn.functional.scaled_dot_product_attention(
                    qt, kt, vt, is_causal=causal, dropout_p=p)
            if training:
                out.backward(gt)
            return out
        cells[label] = sdpa
    with torch.no_grad() if not training else torch.enable_grad():
        time_cells(row, cells, flops, ours=lambda label: label.startswith("flashjit"))
    print_times(f"{'fwd+bwd' if training else 'fwd'} s{s} causal={causal}", row, NAMES)
    return row


def render(header, rows):
    lines = [header, "",
             "ms (TFLOP/s over the kept pairs, dropped or not); flashjit with dropout vs each:",
             "", "| pass | b | s | h | d | causal | p | " + " | ".join(NAMES) +
             " | vs own p=0 | vs FA2 | variant |", "| --- " * (7 + len(NAMES) + 3) + "|"]
    for r in rows:
        lines.append(f"| {'fwd+bwd' if r['training'] else 'fwd'} | {r['b']} | {r['s']} | "
                     f"{r['h']} | {r['d']} | {r['causal']} | {r['p']} | " +
                     " | ".join(cell_text(r, n) for n in NAMES) +
                     f" | {speedup_text(r, 'flashjit p=0')} | "
                     f"{speedup_text(r, 'sdpa-flash (FA2)')} | {r['variant']} |")
    errors = {n: r[n]["error"] for r in rows for n in NAMES if "error" in r.get(n, {})}
    for n, e in errors.items():
        lines.append(f"\n{n}: n/a ({e})")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    header = gpu_header()
    err = check_against_reference(0.1)
    header += f"; dropout check vs float32 with the CPU mask: rel err {err:.1e}"
    rows = []
    for training in (False, True):
        for s, causal in ((4096, False), (4096, True), (16384, True)):
            rows.append(run_row(16384 // s, s, 16, 128, causal, 0.1, training))
    publish(args.out, render(header, rows), {"header": header, "rows": rows})


if __name__ == "__main__":
    main()

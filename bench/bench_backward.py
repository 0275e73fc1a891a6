#!/usr/bin/env python3
"""flashjit forward+backward (training step of the attention) vs PyTorch SDPA.

Same grid as bench_attention.py (b = 16384/s, h = 2048/d). Each implementation
runs out = attention(q, k, v); out.backward(dO) on the same tensors; FLOPs are
3.5x the forward's (forward 1 + backward 2.5, the FlashAttention convention).
Before timing, flashjit's dq, dk, dv are checked against SDPA's FLASH_ATTENTION
gradients (relative L2 < 2e-2). Times are medians of CUDA-event timings.
`flashjit` is the default backward (on sm_90a the atomic dQ where flashjit
picks it), `deterministic` the one with deterministic=True (sm_90a).

  python3 bench/bench_backward.py --dims 64,128 --seqs 512,...,16384 --out results/NAME
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import (add_grid_arguments, flashjit, median_ms, run_grid,  # noqa: E402
                             tflops)

# --alt-tiles: extra flashjit columns, {head dim: {name: (dq tile, dkv tile)}}.
ALT_TILES = {}
DETERMINISTIC = "deterministic"
DETERMINISTIC_COLUMN = False
PEERS = {"flash": ("sdpa-flash (FA2)", SDPBackend.FLASH_ATTENTION),
         "cudnn": ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION)}


def sdpa_attention(backend, causal):
    """SDPA on one backend, on flashjit's [batch, seq, heads, dim] layout."""
    def attend(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                is_causal=causal).transpose(1, 2)
    return attend


def training_step(attend, q, k, v, grad_out):
    def run():
        for t in (q, k, v):
            t.grad = None
        attend(q, k, v).backward(grad_out)
    return run


def run_case(dtype, d, s, causal, peers):
    b, h = max(1, 16384 // s), 2048 // d
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=dtype, requires_grad=True)
               for _ in range(3))
    grad_out = torch.randn(b, s, h, d, device="cuda", dtype=dtype)
    row = {"d": d, "s": s, "causal": causal, "b": b, "h": h}

    def sdpa(backend):
        return sdpa_attention(backend, causal)

    ours = lambda q, k, v: flashjit.attention(q, k, v, causal=causal)
    training_step(sdpa(SDPBackend.FLASH_ATTENTION), q, k, v, grad_out)()
    want = [t.grad.float() for t in (q, k, v)]
    training_step(ours, q, k, v, grad_out)()
    row["rel_err"] = max(((t.grad.float() - w).norm() / w.norm()).item()
                         for t, w in zip((q, k, v), want))
    if not row["rel_err"] < 2e-2:
        raise RuntimeError(f"flashjit gradients wrong at d={d} s={s} causal={causal}: "
                           f"relative error {row['rel_err']}")
    fwd_bwd = 3.5 * tflops(b, h, s, d, causal, 1.0)  # TFLOP/s at 1 ms; divide by the ms
    ms = median_ms(training_step(ours, q, k, v, grad_out))
    fwd_ms = median_ms(lambda: ours(q.detach(), k.detach(), v.detach()))
    row["flashjit"] = {"ms": ms, "tflops": fwd_bwd / ms, "bwd_ms": ms - fwd_ms}
    # The deterministic backward (sm_90a, where the default may be atomic), and hand-set tiles.
    others = {DETERMINISTIC: {"deterministic": True}} if DETERMINISTIC_COLUMN else {}
    # (A name starting with "atomic" runs them with atomic_dq=True; its dQ tile is (0, 0, 0, 0).)
    others.update({name: {"backward_tiles": tiles, "atomic_dq": name.startswith("atomic")}
                   for name, tiles in ALT_TILES.get(d, {}).items()})
    for name, options in others.items():
        alt = lambda q, k, v, options=options: flashjit.attention(q, k, v, causal=causal,
                                                                   **options)
        training_step(alt, q, k, v, grad_out)()
        err = max(((t.grad.float() - w).norm() / w.norm()).item() for t, w in zip((q, k, v), want))
        if not err < 2e-2:
            raise RuntimeError(f"flashjit {options} wrong: relative error {err}")
        ms = median_ms(training_step(alt, q, k, v, grad_out))
        row[name] = {"ms": ms, "tflops": fwd_bwd / ms}
    for key in peers:
        name, backend = PEERS[key]
        try:
            ms = median_ms(training_step(sdpa(backend), q, k, v, grad_out))
            row[name] = {"ms": ms, "tflops": fwd_bwd / ms}
        except (RuntimeError, torch.OutOfMemoryError) as e:
            row[name] = {"error": str(e).splitlines()[0][:120]}
    return row


def render(header, rows, names):
    lines = [header, "", "Forward+backward TFLOP/s (ratios: flashjit over the peer):", "",
             "| d | s | causal | " + " | ".join(names) +
             " | flashjit fwd+bwd ms | of which bwd ms | vs FA2 | vs cuDNN |",
             "| --- " * (3 + len(names) + 4) + "|"]
    for r in rows:
        t = lambda n: r.get(n, {}).get("tflops")
        ratio = lambda n: f"{t('flashjit') / t(n):.2f}" if t(n) else "n/a"
        lines.append(f"| {r['d']} | {r['s']} | {'yes' if r['causal'] else 'no'} | " +
                     " | ".join(f"{t(n):.0f}" if t(n) else "n/a" for n in names) +
                     f" | {r['flashjit']['ms']:.3f} | {r['flashjit']['bwd_ms']:.3f} | "
                     f"{ratio('sdpa-flash (FA2)')} | {ratio('sdpa-cudnn')} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    add_grid_arguments(ap, "flash,cudnn")
    ap.add_argument("--alt-tiles", default="",
                    help="extra flashjit backward tiles, 'NAME:D=m,n,w,s[,wgmma[,ws[,ps]]]/"
                         "m,n,w,s[,wgmma[,ws[,ps]]];...' (dQ/dKV; NAME atomic...: atomic dQ)")
    args = ap.parse_args()
    for item in filter(None, args.alt_tiles.split(";")):
        name, spec = item.split(":")
        d, tiles = spec.split("=")
        ALT_TILES.setdefault(int(d), {})[name] = tuple(
            tuple(int(x) for x in t.split(",")) for t in tiles.split("/"))
    peers = [p for p in args.peers.split(",") if p]
    alt_names = sorted({n for tiles in ALT_TILES.values() for n in tiles})
    global DETERMINISTIC_COLUMN
    DETERMINISTIC_COLUMN = torch.cuda.get_device_capability() == (9, 0)
    names = (["flashjit"] + ([DETERMINISTIC] if DETERMINISTIC_COLUMN else []) + alt_names +
             [PEERS[p][0] for p in peers])
    run_grid(args, lambda dtype, d, s, causal: run_case(dtype, d, s, causal, peers), render, names)

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""GQA decoding: flashjit with the group's heads packed into its tiles vs unpacked vs SDPA.

Llama-3-8B attention shapes (32 query heads, 8 KV heads, d 128, bf16) with a
few queries against a long KV cache (s_k 8192, bottom-right causal, as a
decode or speculative step sees it): flashjit's default (which packs a GQA
group's query heads into a tile's rows where that needs fewer tiles),
flashjit with packing off, and SDPA's CUDNN_ATTENTION and FLASH_ATTENTION
backends (enable_gqa), in the same process on the same tensors. Decoding is
bound by reading K and V, so the table gives GB/s of K/V read (each byte
once) next to the times. flashjit is first checked against float32 PyTorch.

  python3 bench/bench_pack_gqa.py --out results/NAME   (NAME.md, NAME.json)
"""
import argparse
import os
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402
from bench_variants import gpu_header, publish, time_cells  # noqa: E402

HQ, HK, D, SK = 32, 8, 128, 8192
PEERS = ("flashjit", "flashjit unpacked", "sdpa-cudnn", "sdpa-flash (FA2)")


def reference(q, k, v):
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    kf, vf = kf.repeat_interleave(HQ // HK, 1), vf.repeat_interleave(HQ // HK, 1)
    sq = qf.shape[2]
    i = torch.arange(sq, device="cuda")[:, None]
    j = torch.arange(SK, device="cuda")[None, :]
    s = (qf @ kf.transpose(-1, -2)) / D ** 0.5
    s = s.masked_fill(j > i + SK - sq, float("-inf"))
    return (torch.softmax(s, -1) @ vf).transpose(1, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write OUT.md and OUT.json")
    args = ap.parse_args()
    header = gpu_header()
    rows = []
    for b in (1, 8, 64):
        for sq in (1, 4, 16):
            q = torch.randn(b, sq, HQ, D, device="cuda", dtype=torch.bfloat16)
            k, v = (torch.randn(b, SK, HK, D, device="cuda", dtype=torch.bfloat16)
                    for _ in range(2))
            out = flashjit.attention(q, k, v, causal=True)
            ref = reference(q, k, v)
            rel = ((out.float() - ref).norm() / ref.norm()).item()
            assert rel < 1e-2, f"b {b} sq {sq}: relative L2 {rel}"
            qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))

            def sdpa(backend):
                def run():
                    with sdpa_kernel(backend):
                        return torch.nn.functional.scaled_dot_product_attention(
                            qt, kt, vt, enable_gqa=True)
                return run
            # SDPA's is_causal is top-left aligned (query i sees keys <= i),
            # not a decode step's mask: SDPA runs unmasked, which differs from
            # the bottom-right causal mask by < 16 of 8192 keys a query.
            cells = {"flashjit": lambda: flashjit.attention(q, k, v, causal=True),
                     "flashjit unpacked": lambda: flashjit.attention(q, k, v, causal=True,
                                                                     pack_gqa=False),
                     "sdpa-cudnn": sdpa(SDPBackend.CUDNN_ATTENTION),
                     "sdpa-flash (FA2)": sdpa(SDPBackend.FLASH_ATTENTION)}
            row = {"b": b, "sq": sq, "rel_l2": rel,
                   "variant": flashjit.variant(q, k, v, causal=True),
                   "kv_bytes": 2 * b * SK * HK * D * 2}
            time_cells(row, cells, 4.0 * b * HQ * sq * SK * D)
            rows.append(row)
            print(f"b {b} sq {sq}: " + ", ".join(
                f"{n} {row[n]['ms'] * 1e3:.1f} us" if "ms" in row[n] else f"{n} n/a"
                for n in PEERS), flush=True)
    lines = [f"# GQA decoding (h_q {HQ}, h_k {HK}, d {D}, s_k {SK}, causal, bf16)", "", header,
             "", "us (GB/s of K/V read); flashjit's speed-up over each:", "",
             "| b | s_q | " + " | ".join(PEERS) + " | vs unpacked | vs cuDNN | vs FA2 | variant |",
             "|---" * (2 + len(PEERS) + 4) + "|"]

    def cell(r, n):
        c = r.get(n, {})
        return f"{c['ms'] * 1e3:.1f} ({r['kv_bytes'] / c['ms'] / 1e6:.0f})" if "ms" in c else "n/a"

    def speedup(r, n):
        c = r.get(n, {})
        return f"{c['ms'] / r['flashjit']['ms']:.2f}" if "ms" in c else "n/a"
    for r in rows:
        lines.append(f"| {r['b']} | {r['sq']} | " + " | ".join(cell(r, n) for n in PEERS) +
                     f" | {speedup(r, 'flashjit unpacked')} | {speedup(r, 'sdpa-cudnn')} | "
                     f"{speedup(r, 'sdpa-flash (FA2)')} | {r['variant']} |")
    publish(args.out, lines, {"header": header, "rows": rows})


if __name__ == "__main__":
    main()

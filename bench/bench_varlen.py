#!/usr/bin/env python3
"""Packed variable-length batches (flash_attn_varlen_func) vs the peers.

A serving-like batch: sequences of random lengths (fixed seed) packed into
[total, heads, d]. flashjit runs the packed batch directly (with and without
its host-side check of cu_seqlens); SDPA's cuDNN and FA2 backends take the
padded batch [batch, longest, heads, d] (their varlen entry points are not
public in torch), which also computes the padding; torch's varlen_attn runs
when this torch has it; FlexAttention runs the packed tokens as one sequence
with a document mask (the FlexAttention recipe for packing). TFLOP/s count
only the real (query, key) pairs. flashjit's output is first checked against
a float32 computation of three sequences taken alone.

  python3 bench/bench_varlen.py --out results/NAME   (writes NAME.md, NAME.json)
"""
import argparse
import os
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402
from bench_variants import gpu_header, publish, reference_rows, time_cells  # noqa: E402

NAMES = ("flashjit varlen", "flashjit varlen (checked)", "sdpa-cudnn padded",
         "sdpa-flash (FA2) padded", "torch varlen_attn", "flex document mask")


def pairs(lengths, causal):
    return sum(n * (n + 1) // 2 if causal else n * n for n in lengths)


def run_row(name, lengths, h, d, causal):
    dtype = torch.bfloat16
    total, longest, batch = sum(lengths), max(lengths), len(lengths)
    cu = torch.tensor([0] + lengths, device="cuda").cumsum(0).to(torch.int32)
    q, k, v = (torch.randn(total, h, d, device="cuda", dtype=dtype) for _ in range(3))
    row = {"name": name, "batch": batch, "total": total, "longest": longest, "h": h, "d": d,
           "causal": causal}

    def ours(check):
        return lambda: flashjit.flash_attn_varlen_func(q, k, v, cu, cu, longest, longest,
                                                       causal=causal, check_seqlens=check)
    out = ours(True)()
    errors = []
    for b in (0, batch // 2, batch - 1):  # three sequences against float32, each alone
        r = slice(int(cu[b]), int(cu[b + 1]))
        rows = torch.arange(lengths[b], device="cuda")[:256]
        ref = reference_rows(q[r][None], k[r][None], v[r][None], rows, causal, (-1, -1), 0.0, None)
        got = out[r][rows].float()
        errors.append(((got - ref[0]).norm() / ref.norm()).item())
    row["rel_err"] = max(errors)
    if not row["rel_err"] < 1e-2:
        raise RuntimeError(f"flashjit wrong for {name}: relative error {row['rel_err']}")
    cells = {"flashjit varlen": ours(False), "flashjit varlen (checked)": ours(True)}

    padded = [torch.zeros(batch, longest, h, d, device="cuda", dtype=dtype) for _ in range(3)]
    for b, n in enumerate(lengths):
        for t, src in zip(padded, (q, k, v)):
            t[b, :n] = src[int(cu[b]):int(cu[b]) + n]
    qp, kp, vp = (t.transpose(1, 2) for t in padded)
    for label, backend in (("sdpa-cudnn padded", SDPBackend.CUDNN_ATTENTION),
                           ("sdpa-flash (FA2) padded", SDPBackend.FLASH_ATTENTION)):
        def sdpa(backend=backend):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(qp, kp, vp,
                                                                        is_causal=causal)
        cells[label] = sdpa
    try:
        import inspect
        from torch.nn.attention.varlen import varlen_attn
        params = inspect.signature(varlen_attn).parameters
        row["torch varlen_attn signature"] = str(inspect.signature(varlen_attn))[:300]
        # Its causal switch has had more than one spelling across torch versions.
        mask = ({"is_causal": causal} if "is_causal" in params else
                {"window_size": (-1, 0) if causal else (-1, -1)} if "window_size" in params
                else None)
        if mask is None and causal:
            raise ImportError("no causal switch in " + row["torch varlen_attn signature"])
        cells["torch varlen_attn"] = lambda: varlen_attn(q, k, v, cu, cu, longest, longest,
                                                         **(mask or {}))
    except ImportError as e:
        row["torch varlen_attn"] = {"error": f"not in this torch ({e})"[:120]}
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        doc = torch.repeat_interleave(torch.arange(batch, device="cuda"),
                                      torch.tensor(lengths, device="cuda"))

        def mask_mod(b, hh, qi, ki):
            keep = doc[qi] == doc[ki]
            return keep & (ki <= qi) if causal else keep
        # Compiled, so the total x total mask is never materialized.
        block_mask = create_block_mask(mask_mod, None, None, total, total, _compile=True)
        compiled = torch.compile(flex_attention, dynamic=False)
        qf, kf, vf = (t[None].transpose(1, 2) for t in (q, k, v))
        cells["flex document mask"] = lambda: compiled(qf, kf, vf, block_mask=block_mask)
    except Exception as e:
        row["flex document mask"] = {"error": str(e).splitlines()[0][:120]}
    time_cells(row, cells, 4.0 * h * d * pairs(lengths, causal),
               ours=lambda label: label.startswith("flashjit"))
    print(f"{name}: " + ", ".join(f"{n} {row.get(n, {}).get('ms', float('nan')):.3f} ms"
                                  for n in NAMES), flush=True)
    return row


def render(header, rows):
    lines = [header, "", "ms (TFLOP/s over the real query-key pairs); n/a: the peer cannot run "
             "it (reason in the JSON):", "",
             "| case | sequences | tokens | longest | h | d | " + " | ".join(NAMES) +
             " | padded cuDNN / flashjit |", "| --- " * (7 + len(NAMES)) + "|"]
    for r in rows:
        def cell(n):
            c = r.get(n, {})
            return f"{c['ms']:.3f} ({c['tflops']:.0f})" if "ms" in c else "n/a"
        cudnn = r.get("sdpa-cudnn padded", {})
        ratio = (f"{cudnn['ms'] / r['flashjit varlen']['ms']:.2f}" if "ms" in cudnn else "n/a")
        lines.append(f"| {r['name']} | {r['batch']} | {r['total']} | {r['longest']} | {r['h']} | "
                     f"{r['d']} | " + " | ".join(cell(n) for n in NAMES) + f" | {ratio} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    header = gpu_header()
    g = torch.Generator().manual_seed(8)
    serving = [int(x) for x in torch.randint(16, 8192, (32,), generator=g)]
    rows = []
    for causal in (False, True):
        c = " causal" if causal else ""
        rows.append(run_row(f"issue lengths 1, 7, 1000, 4097{c}", [1, 7, 1000, 4097], 16, 128,
                            causal))
        rows.append(run_row(f"32 random lengths in [16, 8192){c}", serving, 16, 128, causal))
    publish(args.out, render(header, rows), {"header": header, "rows": rows})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""flashjit's user score_mod / mask_mod expressions vs FlexAttention and the built-ins.

Each row times flashjit with a modifier written as an expression (compiled into
the kernel), FlexAttention (torch.compile'd) with the same modifier as Python,
and, where flashjit has the same thing built in (softcap, ALiBi), the built-in;
plain attention of the same shape is the first row. TFLOP/s count the kept
(query, key) pairs (4 d per pair; 2.5x that forward + backward). Every flashjit
result is first checked against float32 PyTorch on 256 random query rows.
flashjit derives its block mask from the mask_mod in the compiler (interval
evaluation per block, compiler/MaskIntervals.cpp): per call a small kernel lists
the key blocks each query tile may keep (included in the timing) and the
forward visits only those; "flashjit no lists" (mask_mod_block_lists=False)
trims empty blocks at a row's ends only. FlexAttention's block mask comes from
create_block_mask (made once, outside the timing).

  python3 bench/bench_user_modifiers.py --out results/NAME   (NAME.md, NAME.json)
"""
import argparse
import datetime
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402
from flashjit import modifiers as mods  # noqa: E402
from bench_variants import publish, time_cells  # noqa: E402

B, S, H, D = 4, 4096, 16, 128
PEERS = ("flashjit", "flashjit no lists", "flashjit built-in", "flexattention")


def torch_reference(q, k, v, rows, score_fn, mask_fn, causal):
    """float32 attention of query rows `rows` with the torch form of the modifiers."""
    s = torch.einsum("bihd,bjhd->bhij", q[:, rows].float(), k.float()) / math.sqrt(q.shape[-1])
    bi = torch.arange(q.shape[0], device="cuda")[:, None, None, None]
    hi = torch.arange(q.shape[2], device="cuda")[None, :, None, None]
    i = rows[None, None, :, None]
    j = torch.arange(k.shape[1], device="cuda")[None, None, None, :]
    if score_fn:
        s = score_fn(s, bi, hi, i, j)
    keep = torch.ones_like(s, dtype=torch.bool)
    if mask_fn:
        keep &= mask_fn(bi, hi, i, j)
    if causal:
        keep &= j <= i
    s = s.masked_fill(~keep, float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", torch.softmax(s, -1), v.float())


def kept_pairs(mask_fn, causal):
    i = torch.arange(S, device="cuda")[:, None]
    j = torch.arange(S, device="cuda")[None, :]
    keep = torch.ones(S, S, dtype=torch.bool, device="cuda")
    if mask_fn:
        keep &= mask_fn(torch.zeros((), device="cuda", dtype=torch.long),
                        torch.zeros((), device="cuda", dtype=torch.long), i, j)
    if causal:
        keep &= j <= i
    return int(keep.sum().item())


def flex(qt, kt, vt, score_fn, mask_fn, causal):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def mask_mod(b, h, qi, ki):
        keep = qi >= ki if causal else qi >= 0
        return keep & mask_fn(b, h, qi, ki) if mask_fn else keep
    block_mask = (create_block_mask(mask_mod, None, None, S, S) if (causal or mask_fn)
                  else None)
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda: compiled(qt, kt, vt, score_mod=score_fn, block_mask=block_mask)


def run_row(name, score_mod=None, score_fn=None, mask_mod=None, mask_fn=None, causal=False,
            builtin=None, training=False):
    q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16,
                           requires_grad=training) for _ in range(3))
    kwargs = dict(causal=causal, score_mod=score_mod, mask_mod=mask_mod)
    row = {"name": name, "score_mod": score_mod, "mask_mod": mask_mod, "causal": causal,
           "training": training, "variant": flashjit.variant(q, k, v, **kwargs)}
    if mask_mod and not training:
        row["variant without lists"] = flashjit.variant(q, k, v, mask_mod_block_lists=False,
                                                        **kwargs)
    with torch.no_grad():
        out = flashjit.attention(q, k, v, **kwargs)
        rows = torch.randperm(S, device="cuda")[:256].sort().values
        ref = torch_reference(q, k, v, rows, score_fn, mask_fn, causal)
        err = ((out[:, rows].float() - ref).norm() / ref.norm()).item()
        if mask_mod:  # and without the lists
            unlisted = flashjit.attention(q, k, v, mask_mod_block_lists=False, **kwargs)
            err = max(err, ((unlisted[:, rows].float() - ref).norm() / ref.norm()).item())
    row["rel_err"] = err
    if not err < 1e-2:
        raise RuntimeError(f"flashjit wrong for {name}: relative error {err}")
    flops = 4.0 * B * H * D * kept_pairs(mask_fn, causal) * (2.5 if training else 1.0)
    qt, kt, vt = (t.detach().transpose(1, 2).requires_grad_(training) for t in (q, k, v))
    flex_fn = flex(qt, kt, vt, score_fn, mask_fn, causal)
    grad = torch.randn_like(q)

    def timed(fn, g=grad):
        if not training:
            return fn
        return lambda: fn().backward(g)
    cells = {"flashjit": timed(lambda: flashjit.attention(q, k, v, **kwargs))}
    if mask_mod and not training:
        cells["flashjit no lists"] = lambda: flashjit.attention(q, k, v, mask_mod_block_lists=False,
                                                                **kwargs)
    if builtin is not None:
        cells["flashjit built-in"] = timed(lambda: flashjit.attention(q, k, v, causal=causal,
                                                                      **builtin))
    cells["flexattention"] = timed(flex_fn, grad.transpose(1, 2))
    time_cells(row, cells, flops, ours=lambda label: label.startswith("flashjit"))
    print(f"{name}{' fwd+bwd' if training else ''}: " +
          ", ".join(f"{n} {row[n].get('ms', float('nan')):.3f} ms" for n in cells), flush=True)
    return row


def render(header, rows):
    lines = [header, "",
             f"b = {B}, s = {S}, h = {H}, d = {D}, bf16. ms (TFLOP/s over the kept pairs):", "",
             "| case | pass | " + " | ".join(PEERS) + " | vs Flex | variant |",
             "| --- " * (4 + len(PEERS)) + "|"]
    for r in rows:
        cell = lambda n: (f"{r[n]['ms']:.3f} ({r[n]['tflops']:.0f})" if "ms" in r.get(n, {})
                          else "n/a")
        ratio = (f"{r['flexattention']['ms'] / r['flashjit']['ms']:.2f}"
                 if "ms" in r.get("flexattention", {}) else "n/a")
        lines.append(f"| {r['name']} | {'fwd+bwd' if r['training'] else 'fwd'} | " +
                     " | ".join(cell(n) for n in PEERS) + f" | {ratio} | {r['variant']} |")
    lines += ["", "Expressions:", ""]
    for r in rows:
        if r["score_mod"] or r["mask_mod"]:
            lines.append(f"- {r['name']}: score_mod `{r['score_mod']}`, mask_mod "
                         f"`{r['mask_mod']}`, causal {r['causal']}")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = 256
    props = torch.cuda.get_device_properties(0)
    header = (f"GPU: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}; "
              f"{datetime.date.today()}")
    print(header, flush=True)
    bias = lambda s, b, h, i, j: s - 0.02 * (i - j).abs()
    cap = lambda s, b, h, i, j: 30.0 * torch.tanh(s / 30.0)
    slopes = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)], device="cuda")
    alibi = lambda s, b, h, i, j: s - torch.exp2(-8.0 * (h + 1) / H) * (i - j).abs()
    chunk = lambda b, h, i, j: i // 1024 == j // 1024
    prefix = lambda b, h, i, j: (j < 1024) | (i >= j)
    sink = lambda b, h, i, j: (i >= j) & ((j < 64) | (i - j < 1024))
    strided = lambda b, h, i, j: ((j // 512) % 4 == 0) | (i - j < 512)
    rows = [
        run_row("plain"),
        run_row("relative bias", mods.relative_position_bias(0.02), bias),
        run_row("softcap 30", mods.softcap(30), cap, builtin=dict(softcap=30.0)),
        run_row("ALiBi causal", mods.alibi(H), alibi, causal=True,
                builtin=dict(alibi_slopes=slopes)),
        run_row("chunked 1024 causal (mask_mod)", mask_mod=mods.chunked(1024), mask_fn=chunk,
                causal=True),
        run_row("prefix-LM 1024 (mask_mod)", mask_mod=mods.prefix_lm(1024), mask_fn=prefix),
        run_row("sink 64 + window 1024 (mask_mod)", mask_mod=mods.attention_sink(64, 1024),
                mask_fn=sink),
        run_row("strided 512 / 4 + band 512 causal (mask_mod)",
                mask_mod="(kv_idx / 512) % 4 == 0 || q_idx - kv_idx < 512", mask_fn=strided,
                causal=True),
        run_row("relative bias", mods.relative_position_bias(0.02), bias, training=True),
        run_row("softcap 30", mods.softcap(30), cap, builtin=dict(softcap=30.0), training=True),
        run_row("chunked 1024 causal (mask_mod)", mask_mod=mods.chunked(1024), mask_fn=chunk,
                causal=True, training=True),
        run_row("prefix-LM 1024 (mask_mod)", mask_mod=mods.prefix_lm(1024), mask_fn=prefix,
                training=True),
        run_row("sink 64 + window 1024 (mask_mod)", mask_mod=mods.attention_sink(64, 1024),
                mask_fn=sink, training=True),
    ]
    publish(args.out, render(header, rows), {"header": header, "rows": rows})


if __name__ == "__main__":
    main()

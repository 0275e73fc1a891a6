#!/usr/bin/env python3
"""flashjit's attention variants vs the peers, in one process on the same tensors.

Rows (issue #8): causal + sliding window 4096 at s = 16384 next to full causal;
GQA 8:1 at Llama-3-8B shapes (32 query heads, 8 KV heads, d = 128); softcap and
ALiBi next to plain attention. Peers: SDPA's CUDNN_ATTENTION and
FLASH_ATTENTION (GQA through enable_gqa; neither takes a sliding window, a
softcap or ALiBi, so those cells say n/a) and FlexAttention (torch.compile'd)
with the same mask / score modifier. TFLOP/s count only the (query, key) pairs
the mask keeps (4 d per pair); times are CUDA-event medians
(triton.testing.do_bench). Every flashjit result is first checked against a
float32 PyTorch computation of the same formula on 256 random query rows.

  python3 bench/bench_variants.py --out results/NAME   (writes NAME.md, NAME.json)
"""
import argparse
import datetime
import json
import math
import os
import sys

if "--from-json" not in sys.argv:  # re-rendering needs neither torch nor a GPU
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from triton.testing import do_bench

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import flashjit  # noqa: E402


def median_ms(fn):
    return do_bench(fn, warmup=50, rep=300, return_mode="median")


def time_cells(row, cells, flops, ours=lambda label: label == "flashjit"):
    """row[label] = {ms, tflops} for each timed callable, or {error} for a peer
    that cannot run the case (flashjit's own cells must run)."""
    for label, fn in cells.items():
        try:
            fn()
            ms = median_ms(fn)
            row[label] = {"ms": ms, "tflops": flops / (ms * 1e-3) / 1e12}
        except Exception as e:  # a peer that cannot run this case: recorded, not fatal
            if ours(label):
                raise
            row[label] = {"error": str(e).splitlines()[0][:120]}
            torch.cuda.empty_cache()


def gpu_header(dtype="bf16"):
    """The results' first line: GPU, torch and cuDNN versions, date, dtype; printed."""
    props = torch.cuda.get_device_properties(0)
    header = (f"GPU: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
              f"cuDNN {torch.backends.cudnn.version()}; {datetime.date.today()}; {dtype}")
    print(header, flush=True)
    return header


def cell_text(row, name):
    """A table cell: "ms (TFLOP/s)", or n/a for a peer that could not run."""
    c = row.get(name, {})
    return f"{c['ms']:.3f} ({c['tflops']:.0f})" if "ms" in c else "n/a"


def speedup_text(row, name, ours="flashjit"):
    """How many times faster `ours` ran than `name` in this row, or n/a."""
    c = row.get(name, {})
    return f"{c['ms'] / row[ours]['ms']:.2f}" if "ms" in c else "n/a"


def print_times(title, row, names):
    print(f"{title}: " + ", ".join(f"{n} {row[n].get('ms', float('nan')):.3f} ms" for n in names),
          flush=True)


def publish(out, lines, data):
    """Prints the table (without the header) and, with --out, writes it."""
    print("\n".join(lines[2:]))
    if out:
        write_results(out, lines, data)


def write_results(out, lines, data):
    """OUT.md (the rendered table) and OUT.json (every measurement)."""
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(out + ".json", "w") as f:
        json.dump(data, f, indent=1)


def visible(i, j, sq, sk, causal, window):
    """Boolean mask of the (query i, key j) pairs kept (bottom-right aligned)."""
    diag = i + sk - sq
    keep = torch.ones_like(i + j, dtype=torch.bool)
    left, right = window
    if causal:
        right = 0
    if left >= 0:
        keep &= j >= diag - left
    if right >= 0:
        keep &= j <= diag + right
    return keep


def kept_pairs(sq, sk, causal, window):
    i = torch.arange(sq, device="cuda")[:, None]
    j = torch.arange(sk, device="cuda")[None, :]
    return int(visible(i, j, sq, sk, causal, window).sum().item())


def reference_rows(q, k, v, rows, causal, window, softcap, slopes):
    """float32 attention of the query rows `rows` (q, k, v: [b, s, h, d])."""
    b, sq, hq, d = q.shape
    sk, hk = k.shape[1], k.shape[2]
    kf = k.float().repeat_interleave(hq // hk, dim=2)
    vf = v.float().repeat_interleave(hq // hk, dim=2)
    s = torch.einsum("bihd,bjhd->bhij", q[:, rows].float(), kf) / math.sqrt(d)
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    i = rows[:, None]
    j = torch.arange(sk, device="cuda")[None, :]
    if slopes is not None:
        s = s - slopes[None, :, None, None] * (i + sk - sq - j).abs()[None, None].float()
    s = s.masked_fill(~visible(i, j, sq, sk, causal, window)[None, None], float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", torch.softmax(s, -1), vf)


def flex(q, k, v, causal, window, softcap, slopes, gqa):
    """FlexAttention with the same mask and score modifier, compiled; None if unsupported."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = 256
    sq, sk = q.shape[2], k.shape[2]
    left, right = window
    if causal:
        right = 0

    def mask_mod(b, h, qi, ki):
        diag = qi + (sk - sq)
        keep = qi >= 0
        if left >= 0:
            keep = keep & (ki >= diag - left)
        if right >= 0:
            keep = keep & (ki <= diag + right)
        return keep

    def score_mod(score, b, h, qi, ki):
        if softcap > 0:
            score = softcap * torch.tanh(score / softcap)
        if slopes is not None:
            score = score - slopes[h] * (qi + (sk - sq) - ki).abs()
        return score

    masked = causal or left >= 0 or right >= 0
    block_mask = create_block_mask(mask_mod, None, None, sq, sk) if masked else None
    modified = softcap > 0 or slopes is not None
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda: compiled(q, k, v, score_mod=score_mod if modified else None,
                            block_mask=block_mask, enable_gqa=gqa)


def run_row(name, b, sq, sk, hq, hk, d, causal=False, window=(-1, -1), softcap=0.0, alibi=False):
    dtype = torch.bfloat16
    q = torch.randn(b, sq, hq, d, device="cuda", dtype=dtype)
    k, v = (torch.randn(b, sk, hk, d, device="cuda", dtype=dtype) for _ in range(2))
    slopes = (torch.tensor([2 ** (-8 * (h + 1) / hq) for h in range(hq)], device="cuda")
              if alibi else None)
    kwargs = dict(causal=causal, window_size=window, softcap=softcap, alibi_slopes=slopes)
    row = {"name": name, "b": b, "sq": sq, "sk": sk, "hq": hq, "hk": hk, "d": d,
           "causal": causal, "window": list(window), "softcap": softcap, "alibi": alibi,
           "variant": flashjit.variant(q, k, v, **kwargs)}
    out = flashjit.attention(q, k, v, **kwargs)
    rows = torch.randperm(sq, device="cuda")[:256].sort().values
    ref = reference_rows(q, k, v, rows, causal, window, softcap, slopes)
    err = ((out[:, rows].float() - ref).norm() / ref.norm()).item()
    row["rel_err"] = err
    if not err < 1e-2:
        raise RuntimeError(f"flashjit wrong for {name}: relative error {err}")
    flops = 4.0 * b * hq * d * kept_pairs(sq, sk, causal, window)
    cells = {"flashjit": lambda: flashjit.attention(q, k, v, **kwargs)}
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gqa = hq != hk
    plain = window == (-1, -1) and softcap == 0.0 and not alibi
    for label, backend in (("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION),
                           ("sdpa-flash (FA2)", SDPBackend.FLASH_ATTENTION)):
        if plain:
            def sdpa(backend=backend):
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(
                        qt, kt, vt, is_causal=causal, enable_gqa=gqa)
            cells[label] = sdpa
        else:
            row[label] = {"error": "no sliding window / softcap / ALiBi in this backend"}
    cells["flexattention"] = flex(qt, kt, vt, causal, window, softcap, slopes, gqa)
    time_cells(row, cells, flops)
    print_times(name, row, ("flashjit", "sdpa-cudnn", "sdpa-flash (FA2)", "flexattention"))
    return row


NAMES = ("flashjit", "sdpa-cudnn", "sdpa-flash (FA2)", "flexattention")


def run_training_row(name, b, s, h, d, causal, window):
    """Forward + backward (autograd) of flashjit and FlexAttention; 2.5x the forward's FLOPs."""
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    grad = torch.randn_like(q)
    flops = 2.5 * 4.0 * b * h * d * kept_pairs(s, s, causal, window)
    row = {"name": name, "b": b, "s": s, "h": h, "d": d}

    def step(fn):
        def run():
            fn().backward(grad)
        return run
    cells = {"flashjit": step(lambda: flashjit.attention(q, k, v, causal=causal,
                                                         window_size=window))}
    qt, kt, vt = (t.detach().transpose(1, 2).requires_grad_(True) for t in (q, k, v))
    flex_fn = flex(qt, kt, vt, causal, window, 0.0, None, False)
    gt = grad.transpose(1, 2)
    cells["flexattention"] = lambda: flex_fn().backward(gt)
    time_cells(row, cells, flops)
    print_times(f"{name} fwd+bwd", row, cells)
    return row


def render(header, rows):
    lines = [header, "",
             "ms (TFLOP/s over the kept query-key pairs); flashjit's speed-up over each peer:", "",
             "| case | b | s_q | s_k | h_q/h_k | d | " + " | ".join(NAMES) +
             " | vs cuDNN | vs FA2 | vs Flex | variant |",
             "| --- " * (6 + len(NAMES) + 4) + "|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['b']} | {r['sq']} | {r['sk']} | {r['hq']}/{r['hk']} | "
                     f"{r['d']} | " + " | ".join(cell_text(r, n) for n in NAMES) +
                     f" | {speedup_text(r, 'sdpa-cudnn')} | {speedup_text(r, 'sdpa-flash (FA2)')} | "
                     f"{speedup_text(r, 'flexattention')} | {r['variant']} |")
    by_name = {r["name"]: r for r in rows}
    full, sliding = by_name.get("causal s16384"), by_name.get("causal + window 4096 s16384")
    if full and sliding:
        lines += ["", f"Sliding window 4096 vs full causal at s = 16384 (flashjit): "
                      f"{full['flashjit']['ms'] / sliding['flashjit']['ms']:.2f}x faster "
                      f"(it keeps {16384 * 4096 - 4096 * 4095 // 2} of "
                      f"{16384 * 16385 // 2} query-key pairs: at most "
                      f"{(16384 * 16385 // 2) / (16384 * 4096 - 4096 * 4095 // 2):.2f}x)."]
    return lines


def render_training(rows):
    lines = ["", "Forward + backward, ms (TFLOP/s over the kept pairs, 2.5x the forward's):", "",
             "| case | b | s | h | d | flashjit | flexattention | vs Flex |",
             "| --- " * 8 + "|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['b']} | {r['s']} | {r['h']} | {r['d']} | "
                     f"{cell_text(r, 'flashjit')} | {cell_text(r, 'flexattention')} | "
                     f"{speedup_text(r, 'flexattention')} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--from-json", default="")
    args = ap.parse_args()
    if args.from_json:
        data = json.load(open(args.from_json))
        print("\n".join(render(data["header"], data["rows"]) +
                        render_training(data.get("training", []))))
        return
    header = gpu_header()
    rows = [
        run_row("causal s16384", 1, 16384, 16384, 16, 16, 128, causal=True),
        run_row("causal + window 4096 s16384", 1, 16384, 16384, 16, 16, 128, causal=True,
                window=(4096, 0)),
        run_row("window (1024, 1024) s16384", 1, 16384, 16384, 16, 16, 128, window=(1024, 1024)),
    ]
    for s in (2048, 8192):
        for causal in (False, True):
            rows.append(run_row(f"GQA 8:1 (Llama-3-8B){' causal' if causal else ''} s{s}",
                                16384 // s, s, s, 32, 8, 128, causal=causal))
    rows += [
        run_row("plain s4096", 4, 4096, 4096, 16, 16, 128),
        run_row("softcap 50 s4096", 4, 4096, 4096, 16, 16, 128, softcap=50.0),
        run_row("ALiBi causal s4096", 4, 4096, 4096, 16, 16, 128, causal=True, alibi=True),
        run_row("causal s4096", 4, 4096, 4096, 16, 16, 128, causal=True),
    ]
    training = [run_training_row("causal s16384", 1, 16384, 16, 128, True, (-1, -1)),
                run_training_row("causal + window 4096 s16384", 1, 16384, 16, 128, True,
                                 (4096, 0))]
    publish(args.out, render(header, rows) + render_training(training),
            {"header": header, "rows": rows, "training": training})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""flashjit forward attention vs the peers, in one process on the same tensors.

Peers: PyTorch SDPA's FLASH_ATTENTION (FlashAttention-2 kernels), CUDNN_ATTENTION
and EFFICIENT_ATTENTION backends, FlexAttention (torch.compile'd, Triton) and
naive softmax(QK^T)V. Grid (FlashAttention-3 paper): 16k tokens per batch
(b = 16384/s), hidden 2048 (h = 2048/d). FLOPs 4*b*h*s*s*d (half when causal).
Times are medians of CUDA-event timings (triton.testing.do_bench); with
--rounds N every kernel of a cell is timed N times in turn and the median of
those is reported (each round's in the JSON), so clock drift between the
kernels of a cell evens out. Before it is
timed, every flashjit result is checked against SDPA (relative L2 < 1e-2).
Peak memory of one call (torch.cuda.max_memory_allocated above the inputs) is
recorded for flashjit and naive attention.

  python3 bench/bench_attention.py --dims 64,128 --seqs 512,...,16384 --dtype bf16 \
      [--peers flash,cudnn,efficient,flex,naive] [--rounds N] --out results/NAME
      (writes NAME.md, NAME.json)
"""
import argparse
import contextlib
import datetime
import json
import os
import statistics
import sys

if "--from-json" not in sys.argv:  # re-rendering needs neither torch nor a GPU
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from triton.testing import do_bench

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import flashjit  # noqa: E402

    PEERS = {
        "flash": ("sdpa-flash (FA2)", SDPBackend.FLASH_ATTENTION),
        "cudnn": ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION),
        "efficient": ("sdpa-efficient", SDPBackend.EFFICIENT_ATTENTION),
    }


def tflops(b, h, s, d, causal, ms):
    return 4 * b * h * s * s * d * (0.5 if causal else 1.0) / (ms * 1e-3) / 1e12


def median_ms(fn):
    return do_bench(fn, warmup=100, rep=400, return_mode="median")


def peak_bytes(fn):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


_flex = None
# --alt-tiles: extra flashjit columns, {head dim: {column name: tile}}.
ALT_TILES = {}


def flex_attention(q, k, v, causal):
    global _flex
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention as fa
    if _flex is None:
        # One compiled kernel per shape of the grid: raise dynamo's recompile limit
        # (default 8), past which flex_attention silently runs unfused.
        import torch._dynamo
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, 256)
        _flex = torch.compile(fa, dynamic=False)
    block_mask = None
    if causal:
        s = q.shape[2]
        block_mask = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, s, s)
    return lambda: _flex(q, k, v, block_mask=block_mask)


def naive(q, k, v, causal):
    scale = q.shape[-1] ** -0.5

    def run():
        s = (q @ k.transpose(-1, -2)) * scale
        if causal:
            n = q.shape[-2]
            s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1),
                              float("-inf"))
        return torch.softmax(s, -1) @ v
    return run


ROUNDS = 1  # --rounds: timings of each kernel, alternating, per cell


def under(backend):
    """SDPA restricted to `backend`, or no restriction for None."""
    return sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()


def time_alternating(fns):
    """{name: {"ms": median, "rounds_ms": every round's} or {"error": ...}} of
    {name: (function, SDPA backend or None, is a peer)}, each timed ROUNDS times
    in turn (SDPA's under its backend), so drift (clocks, temperature) lands on
    all; a peer's failure is recorded, flashjit's raises."""
    rounds, failed = {name: [] for name in fns}, {}
    for _ in range(ROUNDS):
        for name, (fn, backend, peer) in fns.items():
            if name in failed:
                continue
            try:
                with under(backend):
                    rounds[name].append(median_ms(fn))
            except (RuntimeError, torch.OutOfMemoryError) as e:
                if not peer:
                    raise
                failed[name] = {"error": str(e).splitlines()[0][:120]}
                torch.cuda.empty_cache()
    return {name: failed.get(name) or {"ms": statistics.median(ms), "rounds_ms": ms}
            for name, ms in rounds.items()}


def run_case(dtype, d, s, causal, peers):
    b, h = max(1, 16384 // s), 2048 // d
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=dtype) for _ in range(3))
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    row = {"d": d, "s": s, "causal": causal, "b": b, "h": h,
           "variant": flashjit.variant(q, k, v, causal=causal)}
    out = flashjit.attention(q, k, v, causal=causal)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal).transpose(1, 2)
    row["rel_err"] = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    if not row["rel_err"] < 1e-2:
        raise RuntimeError(f"flashjit result wrong at d={d} s={s} causal={causal}: "
                           f"relative error {row['rel_err']}")
    fj = lambda: flashjit.attention(q, k, v, causal=causal)
    timed = {"flashjit": (fj, None, False)}
    row["flashjit"] = {"peak_mib": peak_bytes(fj) / 2**20}
    # Other flashjit tiles on the same tensors, checked like the default one.
    for name, tile in ALT_TILES.get(d, {}).items():
        alt = flashjit.attention(q, k, v, causal=causal, tile=tile)
        err = ((alt.float() - ref.float()).norm() / ref.float().norm()).item()
        if not err < 1e-2:
            raise RuntimeError(f"flashjit tile {tile} wrong at d={d} s={s} causal={causal}: "
                               f"relative error {err}")
        timed[name] = (lambda tile=tile: flashjit.attention(q, k, v, causal=causal, tile=tile),
                       None, False)
        row[name] = {"variant": flashjit.variant(q, k, v, causal=causal, tile=tile)}
    for key in peers:
        name, backend = key, None
        try:
            if key in PEERS:
                name, backend = PEERS[key]
                fn = lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
            elif key == "flex":
                name, fn = "flexattention", flex_attention(qt, kt, vt, causal)
            elif key == "naive":
                name, fn = "naive", naive(qt, kt, vt, causal)
                row["naive_peak_mib"] = peak_bytes(fn) / 2**20
            else:
                continue
            # (compiles, or fails here for shapes a backend does not take)
            with under(backend):
                fn()
            timed[name] = (fn, backend, True)
        except (RuntimeError, torch.OutOfMemoryError) as e:
            row[name] = {"error": str(e).splitlines()[0][:120]}
            torch.cuda.empty_cache()
    for name, timing in time_alternating(timed).items():
        if "ms" in timing:
            timing["tflops"] = tflops(b, h, s, d, causal, timing["ms"])
            if ROUNDS == 1:
                del timing["rounds_ms"]
        row.setdefault(name, {}).update(timing)
    return row


def render(header, rows, names):
    """The Markdown table: TFLOP/s of every implementation, flashjit's time, ratios, memory."""
    lines = [header, "", "TFLOP/s (ratios: flashjit over the peer):", "",
             "| d | s | causal | " + " | ".join(names) + " | flashjit ms | vs FA2 | vs cuDNN | "
             "flashjit peak MiB | naive peak MiB | variant |",
             "| --- " * (3 + len(names) + 6) + "|"]
    for r in rows:
        t = lambda n: r.get(n, {}).get("tflops")
        ratio = lambda n: f"{t('flashjit') / t(n):.2f}" if t(n) else "n/a"
        naive_mib = r.get("naive_peak_mib")
        lines.append(
            f"| {r['d']} | {r['s']} | {'yes' if r['causal'] else 'no'} | " +
            " | ".join(f"{t(n):.0f}" if t(n) else "n/a" for n in names) +
            f" | {r['flashjit']['ms']:.3f} | {ratio('sdpa-flash (FA2)')} | {ratio('sdpa-cudnn')} | "
            f"{r['flashjit']['peak_mib']:.0f} | "
            f"{'n/a' if naive_mib is None else f'{naive_mib:.0f}'} | {r['variant']} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    add_grid_arguments(ap, "flash,cudnn,efficient,flex,naive")
    ap.add_argument("--from-json", default="", help="only re-render a saved JSON as Markdown")
    ap.add_argument("--alt-tiles", default="",
                    help="extra flashjit tiles, 'NAME:D=m,n,w,s,qk,pv,ws;...' (one per head dim)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="time every kernel of a cell this many times, in turn (median)")
    args = ap.parse_args()
    global ROUNDS
    ROUNDS = max(1, args.rounds)
    for item in filter(None, args.alt_tiles.split(";")):
        name, spec = item.split(":")
        d, tile = spec.split("=")
        ALT_TILES.setdefault(int(d), {})[name] = tuple(int(x) for x in tile.split(","))
    if args.from_json:
        data = json.load(open(args.from_json))
        names = [k for k in data["rows"][0] if isinstance(data["rows"][0][k], dict)]
        print("\n".join(render(data["header"], data["rows"], names)))
        return
    peers = [p for p in args.peers.split(",") if p]
    alt_names = sorted({n for tiles in ALT_TILES.values() for n in tiles})
    names = ["flashjit"] + alt_names + [PEERS[p][0] if p in PEERS else ("flexattention" if p == "flex" else p)
                            for p in peers]
    run_grid(args, lambda dtype, d, s, causal: run_case(dtype, d, s, causal, peers), render, names)


def add_grid_arguments(ap, peers):
    """The standard grid's options, shared with bench_backward.py."""
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--seqs", default="512,1024,2048,4096,8192,16384")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--causal", default="both")
    ap.add_argument("--peers", default=peers)
    ap.add_argument("--out", default="", help="path prefix for .md and .json")


def run_grid(args, run_case, render, names):
    """Runs run_case(dtype, d, s, causal) over the grid with progress, prints the
    rendered table and writes args.out + .md/.json."""
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    props = torch.cuda.get_device_properties(0)
    header = (f"GPU: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
              f"cuDNN {torch.backends.cudnn.version()}; {datetime.date.today()}; dtype {args.dtype}")
    print(header, flush=True)
    rows = []
    causals = [False, True] if args.causal == "both" else [args.causal == "yes"]
    for d in [int(x) for x in args.dims.split(",")]:
        for causal in causals:
            for s in [int(x) for x in args.seqs.split(",")]:
                row = run_case(dtype, d, s, causal)
                rows.append(row)
                cells = [f"{row[n]['tflops']:.0f}" if "tflops" in row.get(n, {}) else "n/a"
                         for n in names]
                print(f"d={d} s={s} causal={causal}: " + ", ".join(
                    f"{n} {c}" for n, c in zip(names, cells)), flush=True)
    lines = render(header, rows, names)
    print("\n".join(lines[2:]))
    if args.out:
        with open(args.out + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(args.out + ".json", "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)

if __name__ == "__main__":
    main()

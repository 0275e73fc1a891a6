"""flashjit.attention and FlashAttention-2 compatible functions."""
import math

from . import _library
from .block_mask import BlockMask
from ._validate import (check_dropout, check_expression, check_packed, check_qkv, check_score_modifiers,
                        not_implemented)


_TILE_FIELDS = ("tile_m", "tile_n", "tile_warps", "tile_stages", "tile_qk_wgmma",
                "tile_pv_wgmma", "tile_warp_specialized", "tile_persistent", "tile_tma_store")


def _set_tile(p, tile):
    """An explicit tile: (m, n, warps, stages[, qk_wgmma[, pv_wgmma[, warp_specialized
    [, persistent[, tma_store]]]]])."""
    if tile is None:
        return
    tile = tuple(int(x) for x in tile)
    if not 4 <= len(tile) <= len(_TILE_FIELDS):
        raise ValueError(f"flashjit: tile must be (m, n, warps, stages[, qk_wgmma[, pv_wgmma"
                         f"[, warp_specialized[, persistent[, tma_store]]]]]), got {tile}")
    for field, x in zip(_TILE_FIELDS, tile):
        setattr(p, field, x)


class Dropout:
    """Dropout of one call: p, and the Philox seed and offset that say which
    probabilities are dropped. A seed left None is drawn from torch's default
    generator (so torch.manual_seed makes runs reproducible); the forward's
    object travels to the backward, which drops the same ones."""

    def __init__(self, p=0.0, seed=None, offset=0):
        self.p, self.seed, self.offset = check_dropout(p, seed, offset)
        if self.p > 0.0 and self.seed is None:
            import torch
            self.seed = int(torch.randint(0, 2 ** 63 - 1, (), dtype=torch.int64).item())

    def apply(self, p):
        if self.p > 0.0:
            p.dropout_p, p.dropout_seed, p.dropout_offset = self.p, self.seed, self.offset


class ScoreModifiers:
    """Window, softcap and ALiBi of one call (FlashAttention-2's arguments), the
    user's score_mod / mask_mod expressions (flashjit.modifiers) and the call's
    dropout (a Dropout, None = off)."""

    def __init__(self, window_size=(-1, -1), softcap=0.0, alibi_slopes=None, score_mod=None,
                 mask_mod=None, dropout=None, block_mask=None, mask_mod_block_lists=True):
        self.window_size, self.softcap, self.alibi_slopes = window_size, softcap, alibi_slopes
        self.mask_mod_block_lists = bool(mask_mod_block_lists)
        self.score_mod = check_expression(score_mod, "score_mod")
        self.mask_mod = check_expression(mask_mod, "mask_mod")
        self.dropout = dropout
        if block_mask is not None and not isinstance(block_mask, BlockMask):
            if hasattr(block_mask, "kv_num_blocks"):  # torch's flex_attention BlockMask
                block_mask = BlockMask.from_flex(block_mask)
            else:
                raise TypeError("flashjit: block_mask must be a flashjit.BlockMask or a "
                                "flex_attention BlockMask")
        self.block_mask = block_mask

    def apply(self, p, b, hq, device):
        if self is _NO_MODIFIERS:  # (attention picks it for plain calls) the struct's zeros say so
            return
        left, right, softcap, stride = check_score_modifiers(
            self.window_size, self.softcap, self.alibi_slopes, b, hq, device)
        if left >= 0 or right >= 0:
            p.use_window, p.window_left, p.window_right = 1, left, right
        p.softcap = softcap
        if self.alibi_slopes is not None:
            p.alibi_slopes, p.alibi_batch_stride = self.alibi_slopes.data_ptr(), stride
        # The library parses them (errors name the position) and compiles one
        # kernel per distinct expression.
        p.score_mod, p.mask_mod = self.score_mod, self.mask_mod
        p.mask_mod_block_lists = 0 if self.mask_mod_block_lists else -1
        if self.dropout is not None:
            self.dropout.apply(p)
        if self.block_mask is not None:
            self.block_mask.apply(p, b, hq, device)


_NO_MODIFIERS = ScoreModifiers()


class Packing:
    """flash_attn_varlen_func's packed batch: q/k/v arrive as one batch of all
    rows, [1, total, heads, head_dim] views; the prefix sums say where each
    sequence's rows are. check: let the library verify the sums (one stream
    synchronization per call)."""

    def __init__(self, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, check=True):
        self.cu_seqlens_q, self.cu_seqlens_k = cu_seqlens_q, cu_seqlens_k
        self.max_seqlen_q, self.max_seqlen_k = int(max_seqlen_q), int(max_seqlen_k)
        self.check = check

    def apply(self, p, q, k):
        p.batch = self.cu_seqlens_q.shape[0] - 1
        p.seq_q, p.seq_k = self.max_seqlen_q, self.max_seqlen_k
        p.total_q, p.total_k = q.shape[1], k.shape[1]
        p.cu_seqlens_q, p.cu_seqlens_k = self.cu_seqlens_q.data_ptr(), self.cu_seqlens_k.data_ptr()
        p.seqlens_trusted = 0 if self.check else 1


def _set_tensors(p, q, k, v, out, lse):
    """The C struct's tensor addresses and strides."""
    p.q, p.k, p.v, p.o = q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr()
    p.lse = lse.data_ptr() if lse is not None else None
    p.q_stride[:], p.k_stride[:] = q.stride()[:3], k.stride()[:3]
    p.v_stride[:], p.o_stride[:] = v.stride()[:3], out.stride()[:3]


def _params(q, k, v, out, lse, causal, softmax_scale, modifiers=_NO_MODIFIERS, packing=None,
            checked=None):
    """The C struct of one forward call (shapes checked by check_qkv, or its
    result `checked` when the caller has it already)."""
    dtype, b, sq, sk, hq, hk, dqk, dv = checked or check_qkv(q, k, v)
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(dqk)
    if not softmax_scale > 0 or not math.isfinite(softmax_scale):
        raise ValueError(f"flashjit: softmax_scale must be a positive finite number, got "
                         f"{softmax_scale}")
    p = _library.AttentionParams()
    p.dtype = _library.DTYPE_F16 if dtype == "float16" else _library.DTYPE_BF16
    _set_tensors(p, q, k, v, out, lse)
    p.batch, p.seq_q, p.seq_k, p.heads_q, p.heads_k = b, sq, sk, hq, hk
    p.head_dim_qk, p.head_dim_v = dqk, dv
    p.causal = int(bool(causal))
    p.softmax_scale = float(softmax_scale)
    if packing is not None:
        packing.apply(p, q, k)
    modifiers.apply(p, p.batch, hq, q.device)
    return p


def _pack_gqa_flag(pack_gqa):
    """The C struct's pack_gqa: None (the library decides) 0, True 1, False -1."""
    return 0 if pack_gqa is None else (1 if pack_gqa else -1)


_raw_stream = None


def _current_stream(torch, index):
    """The raw handle of the device's current stream (torch's private accessor
    when it has one: the public one costs tens of microseconds a call)."""
    global _raw_stream
    if _raw_stream is None:
        _raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
            lambda i: torch.cuda.current_stream(i).cuda_stream)
    return _raw_stream(index)


def _run(device, call):
    """Runs call(lib, runtime, stream) on the device's current stream, with the
    device current (switched to only when another one is, or to create its
    runtime)."""
    import torch

    lib = _library.library()
    current = torch.cuda.current_device()
    index = device.index if device.index is not None else current
    rt = lib.runtimes.get(index)
    if rt is None or index != current:
        with torch.cuda.device(index):
            call(lib, lib.runtime(index), _current_stream(torch, index))
        return
    call(lib, rt, _current_stream(torch, index))


def _launch(q, k, v, causal, softmax_scale, return_lse, tile=None, modifiers=_NO_MODIFIERS,
            packing=None, pack_gqa=None):
    """out, lse and the C struct of one forward call."""
    import torch

    # Packed: b = 1 and sq = total_q here, so lse is [1, heads_q, total_q], the layout
    # the library writes for packed batches.
    checked = check_qkv(q, k, v)
    _, b, sq, _, hq, _, _, dv = checked
    out = torch.empty((b, sq, hq, dv), dtype=q.dtype, device=q.device)
    lse = torch.empty((b, hq, sq), dtype=torch.float32, device=q.device) if return_lse else None
    p = _params(q, k, v, out, lse, causal, softmax_scale, modifiers, packing, checked)
    _set_tile(p, tile)
    p.pack_gqa = _pack_gqa_flag(pack_gqa)
    _run(q.device, lambda lib, rt, stream: lib.attention(rt, p, stream))
    return out, lse, p


def _backward_tile(tile):
    tile = tuple(int(x) for x in tile)
    if len(tile) not in (4, 5, 6, 7):
        raise ValueError("flashjit: a backward tile is (m, n, warps, stages[, wgmma"
                         f"[, warp_specialized[, persistent]]]), got {tile}")
    return tile + (0,) * (7 - len(tile))


def _backward_params(forward, q, k, v, out, lse, grad_out, backward_tiles=None, atomic_dq=False,
                     deterministic=False):
    """The C struct of one backward call and its dq, dk, dv. forward: the
    forward call's C struct (_launch's), reused; the tensors' addresses are read
    again (saved-tensor hooks may have moved them)."""
    import torch

    if grad_out.dtype != q.dtype:  # e.g. a float32 gradient flowing back under autocast
        grad_out = grad_out.to(q.dtype)
    # dO is read with 16-byte loads: a contiguous copy when its layout is odd.
    go_stride = grad_out.stride()
    if go_stride[3] != 1 or go_stride[0] % 8 or go_stride[1] % 8 or go_stride[2] % 8 \
            or grad_out.data_ptr() % 16:
        grad_out = grad_out.contiguous()
        go_stride = grad_out.stride()
    dq, dk, dv = (torch.empty(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v))
    p = _library.AttentionBackwardParams()
    p.forward = forward
    _set_tensors(p.forward, q, k, v, out, lse)
    p.d_o, p.d_q, p.d_k, p.d_v = (grad_out.data_ptr(), dq.data_ptr(), dk.data_ptr(),
                                  dv.data_ptr())
    p.d_o_stride[:], p.d_q_stride[:] = go_stride[:3], dq.stride()[:3]
    p.d_k_stride[:], p.d_v_stride[:] = dk.stride()[:3], dv.stride()[:3]
    p.atomic_dq = 1 if atomic_dq else 0
    p.deterministic = 1 if deterministic else 0
    if backward_tiles is not None:
        p.tile_dq[:], p.tile_dkv[:] = (_backward_tile(t) for t in backward_tiles)
    # grad_out (perhaps a copy) lives as long as the struct that points to it.
    return p, grad_out, (dq, dk, dv)


def _launch_backward(forward, q, k, v, out, lse, grad_out, backward_tiles=None, atomic_dq=False,
                     deterministic=False):
    """dQ, dK, dV of one forward call (flashjit's backward kernels)."""
    p, grad_out, grads = _backward_params(forward, q, k, v, out, lse, grad_out, backward_tiles,
                                          atomic_dq, deterministic)
    _run(q.device, lambda lib, rt, stream: lib.attention_backward(rt, p, stream))
    return grads


class _Call:
    """A differentiable call's options besides q, k and v (one argument of the
    autograd Function, whose every argument costs time)."""
    __slots__ = ("causal", "softmax_scale", "return_lse", "tile", "backward_tiles", "modifiers",
                 "packing", "atomic_dq", "deterministic", "pack_gqa")

    def __init__(self, **options):
        for name, value in options.items():
            setattr(self, name, value)


def _autograd_function():
    import torch

    class Attention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, call):
            # The backward needs the LSE: always computed when gradients are wanted.
            out, lse, params = _launch(q, k, v, call.causal, call.softmax_scale, True, call.tile,
                                       call.modifiers, call.packing, call.pack_gqa)
            ctx.save_for_backward(q, k, v, out, lse)
            # The struct holds the modifiers' and packing's addresses: call keeps them alive.
            ctx.call, ctx.params = call, params
            if call.return_lse:
                ctx.mark_non_differentiable(lse)
                return out, lse
            return out

        @staticmethod
        def backward(ctx, grad_out, *unused_lse_grad):
            call = ctx.call
            dq, dk, dv = _launch_backward(ctx.params, *ctx.saved_tensors, grad_out,
                                          call.backward_tiles, call.atomic_dq, call.deterministic)
            return dq, dk, dv, None

    return Attention


_Attention = None


def attention(q, k, v, *, causal=False, softmax_scale=None, return_lse=False, tile=None,
              backward_tiles=None, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
              score_mod=None, mask_mod=None, dropout_p=0.0, dropout_seed=None, dropout_offset=0,
              atomic_dq=False, deterministic=False, block_mask=None, pack_gqa=None,
              mask_mod_block_lists=True, _packing=None):
    """softmax(scale * q k^T [+ mask, score modifiers]) v.

    q: [batch, seq_q, heads_q, head_dim]; k, v: [batch, seq_k, heads_k, head_dim(_v)],
    CUDA float16/bfloat16, last dimension contiguous (other strides free); heads_q a
    multiple of heads_k (GQA/MQA). causal is aligned to the bottom right (as
    FlashAttention 2): query i sees keys j <= i + seq_k - seq_q. Runs on the current
    stream. Returns out [batch, seq_q, heads_q, head_dim_v], and with return_lse the
    float32 log-sum-exp [batch, heads_q, seq_q] (natural log). tile: an explicit
    kernel configuration (m, n, warps, stages[, qk_wgmma[, pv_wgmma[, warp_specialized]]])
    instead of the tuned or default one, for sweeps and comparisons.

    Differentiable with respect to q, k and v (flashjit's backward kernels);
    the LSE is not differentiable. dQ is summed one of two ways: atomically
    (sm_90a: the key-block kernel also adds each step's dQ to an fp32
    accumulator by bulk reductions; five products instead of seven, dQ's last
    bits vary from run to run) or deterministically (a dQ kernel recomputes S
    and dP; bit-identical gradients). By default flashjit picks the atomic
    form where it was measured faster (plain or causal attention, head dims
    64..128, from 512 queries and keys (1024 causal), no backward_tiles, sm_90a; see
    flashjit.h), else the deterministic one;
    deterministic=True always takes the deterministic form, atomic_dq=True the
    atomic one (an error where there is none).
    backward_tiles: explicit (m, n, warps, stages[, wgmma[, warp_specialized[,
    persistent]]]) tiles of the backward's dQ kernel and dK/dV kernel(s), as a
    pair (wgmma = 1: every product on wgmma, sm_90a, with m = 16 * warps for
    dQ and n = 16 * warps for dK/dV; warp_specialized = 1: with a TMA producer
    warpgroup, 4 or 8 warps, two stages or more; persistent = 1, dK/dV only:
    as many blocks as the SMs hold, each walking many key blocks).

    FlashAttention-2's score modifiers (forward and backward): window_size
    (left, right) keeps the keys from left before to right after each query's
    diagonal (-1: unbounded; key blocks outside the window are skipped);
    softcap > 0 turns scores s = scale q.k into softcap * tanh(s / softcap);
    alibi_slopes (float32, (heads_q,) or (batch, heads_q)) adds
    -slope * |i + seq_k - seq_q - j| to the logit of query i, key j.
    (Packed variable-length batches: flash_attn_varlen_func.)

    User modifiers, compiled into the kernels (see flashjit.modifiers for the
    grammar and named ones): score_mod, an expression of score, b, h, q_idx,
    kv_idx giving the new logit, e.g. "score - 0.02 * abs(q_idx - kv_idx)";
    mask_mod, a condition of b, h, q_idx, kv_idx keeping a key, e.g.
    "q_idx / 1024 == kv_idx / 1024". Gradients flow through score_mod. With a
    mask_mod the forward first lists the key blocks the mask may keep (a small
    kernel) and skips every other block, also between kept ones (a sink plus a
    window, dilated masks); mask_mod_block_lists=False skips only those at a
    row's ends and saves that launch. The backward skips empty blocks anywhere.

    Dropout (FlashAttention-2's dropout_p): each probability is dropped with
    probability dropout_p (quantized to 1/65536) and the kept ones scaled by 1 /
    (1 - p); which ones depends only on (dropout_seed, dropout_offset) and the
    element's batch, head, query and key (Philox-4x32-10; flashjit.dropout_mask
    gives the mask). dropout_seed None draws one from torch's generator; the
    backward drops the same probabilities. The LSE is the whole softmax's.

    block_mask (flashjit.BlockMask, or a flex_attention BlockMask): only the
    (query block, key block) pairs it lists are visited, the others neither
    loaded nor computed, forward and backward; other masks still apply inside.

    pack_gqa (forward, GQA): True packs the query heads of each key/value
    head's group into the kernel tiles' rows (few queries, e.g. decoding, then
    fill a tile per group and K/V are read once per group), False never; None
    (default) packs where that needs fewer tiles.
    """
    import torch

    global _Attention
    if (type(window_size) is tuple and window_size == (-1, -1) and type(softcap) in (int, float)
            and softcap == 0 and alibi_slopes is None and score_mod is None
            and mask_mod is None and type(dropout_p) in (int, float) and dropout_p == 0
            and dropout_seed is None and dropout_offset == 0 and block_mask is None
            and mask_mod_block_lists is True):
        modifiers = _NO_MODIFIERS  # the common call: nothing to check or set
    else:
        modifiers = ScoreModifiers(window_size, softcap, alibi_slopes, score_mod, mask_mod,
                                   Dropout(dropout_p, dropout_seed, dropout_offset), block_mask,
                                   mask_mod_block_lists)
    if modifiers.block_mask is not None and modifiers.block_mask.partial_blocks and not (
            causal or mask_mod or tuple(window_size) != (-1, -1)):
        raise ValueError("flashjit: this flex_attention BlockMask keeps some blocks only in part "
                         "(its Python mask_mod), which flashjit cannot run: give the same mask as "
                         "causal=, window_size= or a mask_mod expression (flashjit.modifiers), or "
                         "a BlockMask whose listed blocks are kept whole")
    if torch.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in (q, k, v)):
        if _Attention is None:
            _Attention = _autograd_function()
        return _Attention.apply(q, k, v, _Call(
            causal=causal, softmax_scale=softmax_scale, return_lse=return_lse, tile=tile,
            backward_tiles=backward_tiles, modifiers=modifiers, packing=_packing,
            atomic_dq=atomic_dq, deterministic=deterministic, pack_gqa=pack_gqa))
    out, lse, _ = _launch(q, k, v, causal, softmax_scale, return_lse, tile, modifiers, _packing,
                          pack_gqa)
    return (out, lse) if return_lse else out


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                    window_size=(-1, -1), softcap=0.0, alibi_slopes=None, deterministic=False,
                    return_attn_probs=False, *, score_mod=None, mask_mod=None,
                    dropout_seed=None, dropout_offset=0, block_mask=None):
    """FlashAttention-2's flash_attn_func: same arguments, defaults and layout
    ([batch, seq, heads, head_dim]); returns out. Arguments whose feature is not
    built yet raise NotImplementedError. score_mod / mask_mod: flashjit's user
    modifiers (see attention and flashjit.modifiers); dropout_p as in attention,
    with dropout_seed / dropout_offset (the seed drawn from torch's generator
    when None)."""
    if return_attn_probs:
        not_implemented("return_attn_probs", "flashjit never materializes the attention matrix")
    return attention(q, k, v, causal=causal, softmax_scale=softmax_scale, window_size=window_size,
                     softcap=softcap, alibi_slopes=alibi_slopes, score_mod=score_mod,
                     mask_mod=mask_mod, dropout_p=dropout_p, dropout_seed=dropout_seed,
                     dropout_offset=dropout_offset, block_mask=block_mask,
                     deterministic=deterministic)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                           dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                           softcap=0.0, alibi_slopes=None, deterministic=False,
                           return_attn_probs=False, block_table=None, *, check_seqlens=True,
                           return_lse=False, tile=None, score_mod=None, mask_mod=None,
                           dropout_seed=None, dropout_offset=0):
    """FlashAttention-2's flash_attn_varlen_func: sequences of different lengths
    packed into q [total_q, heads_q, head_dim] and k, v [total_k, heads_k,
    head_dim]; sequence b owns rows cu_seqlens_q[b] : cu_seqlens_q[b + 1] (int32
    CUDA prefix sums, [batch + 1]), likewise for keys. Masks, window and ALiBi
    (slopes (heads_q,) or (batch, heads_q)) apply per sequence. Returns out
    [total_q, heads_q, head_dim_v] (and, with return_lse, the float32 LSE
    [heads_q, total_q]); differentiable like flash_attn_func.

    check_seqlens (default True): the library reads the prefix sums back and
    rejects ones that leave the tensors or exceed max_seqlen (one stream
    synchronization per call); pass False when they are known to be right.
    score_mod / mask_mod as in attention, with b the sequence's index and q_idx,
    kv_idx positions within the sequence. dropout_p as in attention (b the
    sequence's index, positions within it)."""
    if return_attn_probs:
        not_implemented("return_attn_probs", "flashjit never materializes the attention matrix")
    if block_table is not None:
        not_implemented("block_table", "paged KV caches are not built")
    check_packed(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    packing = Packing(cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, check_seqlens)
    result = attention(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), causal=causal,
                       softmax_scale=softmax_scale, return_lse=return_lse, tile=tile,
                       window_size=window_size, softcap=softcap, alibi_slopes=alibi_slopes,
                       score_mod=score_mod, mask_mod=mask_mod, dropout_p=dropout_p,
                       dropout_seed=dropout_seed, dropout_offset=dropout_offset,
                       deterministic=deterministic, _packing=packing)
    if return_lse:
        out, lse = result
        return out.squeeze(0), lse.squeeze(0)
    return result.squeeze(0)


def flash_attn_qkvpacked_func(qkv, dropout_p=0.0, softmax_scale=None, causal=False,
                              window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                              deterministic=False, return_attn_probs=False):
    """FlashAttention-2's packed form: qkv [batch, seq, 3, heads, head_dim]."""
    if len(qkv.shape) != 5 or qkv.shape[2] != 3:
        raise ValueError(f"flashjit: qkv must be [batch, seq, 3, heads, head_dim], got shape "
                         f"{tuple(qkv.shape)}")
    return flash_attn_func(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], dropout_p, softmax_scale,
                           causal, window_size, softcap, alibi_slopes, deterministic,
                           return_attn_probs)


def variant(q, k, v, *, causal=False, return_lse=False, tile=None, window_size=(-1, -1),
            softcap=0.0, alibi_slopes=None, score_mod=None, mask_mod=None, dropout_p=0.0,
            pack_gqa=None, mask_mod_block_lists=True):
    """The kernel variant flashjit would run for these tensors (for logs and benchmarks)."""
    import torch

    dtype, b, sq, sk, hq, hk, dqk, dv = check_qkv(q, k, v)
    p = _library.AttentionParams()
    p.dtype = _library.DTYPE_F16 if dtype == "float16" else _library.DTYPE_BF16
    p.q, p.k, p.v, p.o = q.data_ptr(), k.data_ptr(), v.data_ptr(), q.data_ptr()
    p.lse = q.data_ptr() if return_lse else None
    p.batch, p.seq_q, p.seq_k, p.heads_q, p.heads_k = b, sq, sk, hq, hk
    p.head_dim_qk, p.head_dim_v = dqk, dv
    p.causal = int(bool(causal))
    ScoreModifiers(window_size, softcap, alibi_slopes, score_mod, mask_mod,
                   Dropout(dropout_p, 0),
                   mask_mod_block_lists=mask_mod_block_lists).apply(p, b, hq, q.device)
    _set_tile(p, tile)
    p.pack_gqa = _pack_gqa_flag(pack_gqa)
    lib = _library.library()
    with torch.cuda.device(q.device):
        return lib.variant(lib.runtime(q.device.index), p)


def dropout_mask(batch, heads_q, seq_q, seq_k, dropout_p, dropout_seed, dropout_offset=0):
    """The keep mask flashjit's dropout draws, as a numpy bool array [batch,
    heads_q, seq_q, seq_k] (for varlen, batch indexes the sequences and the
    positions are within each), computed on the CPU (flashjit._philox)."""
    from ._philox import dropout_keep

    p, seed, offset = check_dropout(dropout_p, dropout_seed, dropout_offset)
    return dropout_keep(batch, heads_q, seq_q, seq_k, p, seed, offset)

//===- FlashOps.td - flash operations ----------------------*- tablegen -*-===//
#ifndef FLASH_OPS_TD
#define FLASH_OPS_TD

include "dialect/FlashAttrs.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Run-time values of the score modifiers, shared by the forward and the
// backward: the window bounds (with mask = window), the softcap and the ALiBi
// slopes ([batch or 1, heads_q] f32).
defvar ScoreModifierOperands = (ins
    Optional<I32>:$window_left,
    Optional<I32>:$window_right,
    Optional<F32>:$softcap,
    Arg<Optional<AnyMemRef>, "", [MemRead]>:$alibi_slopes);
defvar ScoreModifierFormat = [{
    (`window` `(` $window_left^ `,` $window_right `)`)? (`softcap` $softcap^)?
    (`alibi` `(` $alibi_slopes^ `:` type($alibi_slopes) `)`)?
}];
defvar ScoreModifierDescription = [{

    Score modifiers, applied to s = Q·Kᵀ before the mask: with `softcap` c,
    s ← c · tanh(scale · s / c) / scale (Gemma 2); with `alibi` slopes, the
    logit of query i and key j gains −slope[b, h] · |i + seqlen_k − seqlen_q − j|
    (BLOOM, MPT). `window(left, right)` (mask = window) keeps the keys from
    left before to right after each query's diagonal; key blocks no row of a
    block sees are skipped, not computed and masked.
}];
// User score and mask modifiers (FlexAttention's score_mod / mask_mod) as
// regions of arith and math ops, compiled into the kernel element by element.
defvar ModifierRegions = (region AnyRegion:$score_mod, AnyRegion:$mask_mod);
defvar ModifierRegionFormat = [{
    (`score_mod` $score_mod^)? (`mask_mod` $mask_mod^)?
}];
defvar ModifierRegionDescription = [{

    Modifier regions: `score_mod` takes `(%score: f32, %b: i32, %h: i32,
    %q_idx: i32, %kv_idx: i32)` and yields the new score (f32); `mask_mod`
    takes `(%b, %h, %q_idx, %kv_idx: i32)` and yields whether the key is kept
    (i1). `%score` is the logit, scale · q·k after the built-in modifiers;
    `%b`, `%h` are the batch and query head, `%q_idx`, `%kv_idx` positions in
    their sequences. The regions hold only side-effect-free `arith` ops on
    i1/i32/f32 and `math` tanh, exp, exp2, log, log2, sqrt, absf, absi, and
    end in `flash.yield`; they run on every score of every block visited (the
    mask after the built-in mask), and the backward differentiates
    `score_mod` with respect to `%score`.
}];
// Packed variable-length sequences (flash_attn_varlen_func): with
// `seqlens(%cu_q, %cu_k)` ([batch + 1] i32 prefix sums, on the device) the
// tensors are rank 3, [total, heads, dim], batch b owning rows
// [cu[b], cu[b + 1]), and the row statistics (lse, delta) are [heads, total_q].
defvar VarlenOperands = (ins
    Arg<Optional<AnyMemRef>, "", [MemRead]>:$cu_seqlens_q,
    Arg<Optional<AnyMemRef>, "", [MemRead]>:$cu_seqlens_k);
defvar VarlenFormat = [{
    (`seqlens` `(` $cu_seqlens_q^ `,` $cu_seqlens_k `:` type($cu_seqlens_q) `,`
     type($cu_seqlens_k) `)`)?
}];
defvar VarlenDescription = [{

    Variable length: with `seqlens(%cu_q, %cu_k)` ([batch + 1] i32 prefix
    sums of the sequence lengths) the tensors are packed, rank 3 [total,
    heads, dim], batch b owning rows [cu[b], cu[b + 1]); `lse` and `delta` are
    [heads, total_q]. Query blocks past a sequence's end exit at once.
}];
// Dropout on the probabilities (FlashAttention-2's dropout_p): with
// `dropout(%p, %seed, %offset)` each probability of row i, key j is dropped
// with probability %p and the kept ones scaled up, by Philox-4x32-10 bits
// keyed by %seed; forward and backward drop the same ones.
defvar DropoutOperands = (ins
    Optional<F32>:$dropout_p,
    Optional<I64>:$dropout_seed,
    Optional<I32>:$dropout_offset);
defvar DropoutFormat = [{
    (`dropout` `(` $dropout_p^ `,` $dropout_seed `,` $dropout_offset `)`)?
}];
defvar DropoutDescription = [{

    Dropout: with `dropout(%p, %seed, %offset)` the probabilities that
    multiply V (after the row sums: the LSE is that of the whole softmax) are
    dropped with probability %p (f32, quantized to 1/65536) and the kept ones
    multiplied by 1 / (1 − p) (of the quantized p). Element (b, h, i, j) takes
    16 bits of Philox-4x32-10 with key %seed (i64) and a counter built from
    its position and %offset (i32), so the backward drops the same elements
    and a new offset (or seed) draws a new mask.
}];
// A block mask given by the user (FlexAttention's BlockMask): the score
// matrix in blocks of %block_q queries x %block_k keys; row r of query
// blocks visits the %kv_counts[b][h][r] key blocks %kv_indices[b][h][r][..]
// (ascending), all others are skipped. The backward's key-block kernels read
// the transposed lists (%q_counts, %q_indices). b and h index dimensions of
// size 1 (shared) or batch / heads_q.
// Read by the attention; written by flash.attention {derive_block_mask}
// (declared both ways: the effects are per operand, not per attribute).
defvar BlockMaskOperands = (ins
    Arg<Optional<AnyMemRef>, "", [MemRead, MemWrite]>:$kv_counts,
    Arg<Optional<AnyMemRef>, "", [MemRead, MemWrite]>:$kv_indices,
    Optional<I32>:$block_q,
    Optional<I32>:$block_k);
defvar BlockMaskFormat = [{
    (`block_mask` `(` $kv_counts^ `,` $kv_indices `,` $block_q `,` $block_k `:`
     type($kv_counts) `,` type($kv_indices) `)`)?
}];
defvar TransposedBlockMaskOperands = (ins
    Arg<Optional<AnyMemRef>, "", [MemRead]>:$q_counts,
    Arg<Optional<AnyMemRef>, "", [MemRead]>:$q_indices);
defvar TransposedBlockMaskFormat = [{
    (`block_mask_t` `(` $q_counts^ `,` $q_indices `:` type($q_counts) `,` type($q_indices) `)`)?
}];
defvar BlockMaskDescription = [{

    Block mask: with `block_mask(%kv_counts, %kv_indices, %block_q,
    %block_k)` the score matrix is cut into blocks of %block_q x %block_k
    (i32, multiples of the tile's m and n); query block r of batch b, query
    head h visits only the %kv_counts[b][h][r] key blocks listed, ascending,
    in %kv_indices[b][h][r][..] (i32, [batches, heads, query blocks] and
    [batches, heads, query blocks, key blocks], batches 1 or the batch, heads
    1 or heads_q): the others are neither loaded nor computed. Elements of a
    visited block still get every other mask. The backward's key-block
    kernels take the same mask transposed, `block_mask_t(%q_counts,
    %q_indices)` ([.., key blocks] and [.., key blocks, query blocks]).
}];
def Flash_AttentionOp : Flash_Op<"attention", [AttrSizedOperandSegments, IsolatedFromAbove]> {
  let summary = "exact fused forward attention, one kernel variant";
  let description = !strconcat([{
    O = softmax(scale · Q Kᵀ + mask) V over memrefs in [batch, seq, heads, dim]
    layout with dynamic sizes and strides (last dimension contiguous). Query
    heads may outnumber key/value heads (GQA): query head h reads key/value
    head h / (heads_q / heads_k). The optional `lse` ([batch, heads, seq_q], f32)
    receives the natural-log sum-exp of each row; rows that see no key get an
    output of 0 and an LSE of -inf.

    With `pack_gqa` the query heads of each key/value head's group share a
    tile: its rows are (query, head) pairs, row r being query r / group of
    head r % group, so small seq_q (decoding) fills a tile per group, not per
    head, and K/V stream once per group. Not with ALiBi, the modifier
    regions, dropout, seqlens or a block mask (per-head or per-row data).

    With `derive_block_mask` the op computes no attention (Q, K, V and the
    output are not touched): it writes the block mask's lists, listing for
    every query block of the tile's m rows the key blocks of n keys that the
    mask, the sequence lengths and the `mask_mod` region may keep (block_q
    and block_k must be m and n). Launched before the same attention with
    those lists, it lets a mask_mod skip empty blocks anywhere in a row, not
    only at its ends. Not with seqlens or pack_gqa.

    ```mlir
    flash.attention %q, %k, %v -> %o scale %s window(%left, %right) softcap %cap
        {mask = #flash.mask<window>,
         tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
         target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
        : memref<?x?x?x128xbf16, strided<[?, ?, ?, 1]>>, ... -> ...
    ```
  }], ScoreModifierDescription, ModifierRegionDescription, VarlenDescription,
     DropoutDescription, BlockMaskDescription);
  let arguments = !con((ins
    Arg<AnyMemRef, "", [MemRead]>:$query,
    Arg<AnyMemRef, "", [MemRead]>:$key,
    Arg<AnyMemRef, "", [MemRead]>:$value,
    Arg<AnyMemRef, "", [MemWrite]>:$output,
    F32:$softmax_scale,
    Arg<Optional<AnyMemRef>, "", [MemWrite]>:$lse,
    Flash_MaskAttr:$mask,
    Flash_TileAttr:$tile,
    Flash_TargetAttr:$target,
    UnitAttr:$pack_gqa,
    UnitAttr:$derive_block_mask), ScoreModifierOperands, VarlenOperands, DropoutOperands,
    BlockMaskOperands);
  let regions = ModifierRegions;
  let assemblyFormat = !strconcat([{
    $query `,` $key `,` $value `->` $output (`,` `lse` $lse^)? `scale` $softmax_scale
  }], ScoreModifierFormat, VarlenFormat, DropoutFormat, BlockMaskFormat, ModifierRegionFormat, [{
    attr-dict `:` type($query) `,` type($key) `,` type($value) `->` type($output)
    (`,` type($lse)^)?
  }]);
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getHeadDimQK();
    int64_t getHeadDimV();
    ::mlir::Type getElementType();
    /// Where the kernel's tiles live in shared memory (the verifier checks
    /// it fits the target; the generator takes its offsets).
    SharedMemoryLayout getSharedMemoryLayout();
  }];
}

def Flash_AttentionBwdOp : Flash_Op<"attention_bwd", [AttrSizedOperandSegments,
                                                      IsolatedFromAbove]> {
  let summary = "exact fused attention backward, one kernel variant";
  let description = !strconcat([{
    Gradients of `flash.attention` (same layouts, mask and scale) from the
    forward's output `output`, its LSE `lse` ([batch, heads_q, seq_q], natural
    log) and the output gradient `grad_output`, recomputing P block by block
    (no seq_q x seq_k matrix in memory). One op is one kernel; which one is
    given by the gradients it writes:

    * `dq`: query blocks outer, key blocks streamed. It first writes
      `delta` = rowsum(dO∘O) ([batch, heads_q, seq_q], f32) for its rows.
    * `dk` and/or `dv`: key blocks outer, query blocks of every query head of
      the key/value head's group streamed, so GQA gradients are summed in
      registers, in a fixed order. They read `delta` and so run after `dq`.

    These are deterministic: the gradients are bit-identical from run to
    run. The atomic form (FlashAttention-3's) saves the dQ kernel's two
    recomputed products:

    * no gradient: `delta`, for the key-block kernel after it, and with
      `dq_accum` its rows zeroed for that kernel's reductions.
    * `dq_accum` with `dk` (and `dv`): the key-block kernel also forms
      dQᵀ = Kᵀ dSᵀ of each step over its keys (dS through shared memory) and
      adds it to `dq_accum` (f32, dQ's shape, zeroed by the delta kernel) by bulk
      reductions; the order of the adds, and so the last bits, vary from run
      to run. Each row of `dq_accum` is stored rotated by 8 · (row / 2 % 4)
      columns (row: the query's index in its sequence) for conflict-free
      staging: only the conversion below reads it back. Needs the wgmma tile
      (sm_90a).
    * `dq` with `dq_accum`: dQ = scale · `dq_accum`, in the element type.

    For the key block kernels the tile's `n` rows are owned by the warps and
    `m` query rows are streamed per step; for `dq` as in the forward. The
    two auxiliary kernels (no gradient; `dq` from `dq_accum`) walk blocks of
    `m` query rows and use no shared memory. On sm_90a the
    tile may set `qk_wgmma` and `pv_wgmma` (together: every shared tile feeds
    both kinds of product): all five products on wgmma from 128-byte
    swizzled tiles, one warpgroup per 64 owned rows (owned rows = 16 ·
    warps), at most 256 streamed rows; with `warp_specialized` a TMA
    producer warpgroup feeds them (Q, dO, K and V then come as tensor-map
    parameters; the key-block kernels' producer also stages each step's
    −lse·log2e and Δ in shared memory); `persistent` (warp-specialized
    key-block kernels): as many blocks as the SMs hold, each walking key
    blocks (causal: pairs j, last − j of a head, which weigh the same), its
    producer loading the next tile's V once the last step's dPᵀ has read
    it and K once the last products are done, while the consumers store
    dK and dV; `tma_store` is not available here.

    ```mlir
    flash.attention_bwd %q, %k, %v, %o, %do, lse %lse, delta %delta -> dk %dk dv %dv scale %s
        {mask = #flash.mask<causal>,
         tile = #flash.tile<m = 32, n = 64, warps = 4, stages = 2>,
         target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
        : !t, !t, !t, !t, !t, memref<?x?x?xf32>, memref<?x?x?xf32> -> dk !t dv !t
    ```
  }], ScoreModifierDescription, ModifierRegionDescription, VarlenDescription,
     DropoutDescription, BlockMaskDescription);
  let arguments = !con((ins
    Arg<AnyMemRef, "", [MemRead]>:$query,
    Arg<AnyMemRef, "", [MemRead]>:$key,
    Arg<AnyMemRef, "", [MemRead]>:$value,
    Arg<AnyMemRef, "", [MemRead]>:$output,
    Arg<AnyMemRef, "", [MemRead]>:$grad_output,
    Arg<AnyMemRef, "", [MemRead]>:$lse,
    Arg<AnyMemRef, "", [MemRead, MemWrite]>:$delta,
    Arg<Optional<AnyMemRef>, "", [MemWrite]>:$grad_query,
    Arg<Optional<AnyMemRef>, "", [MemWrite]>:$grad_key,
    Arg<Optional<AnyMemRef>, "", [MemWrite]>:$grad_value,
    Arg<Optional<AnyMemRef>, "", [MemRead, MemWrite]>:$grad_query_accum,
    F32:$softmax_scale,
    Flash_MaskAttr:$mask,
    Flash_TileAttr:$tile,
    Flash_TargetAttr:$target), ScoreModifierOperands, VarlenOperands, DropoutOperands,
    BlockMaskOperands, TransposedBlockMaskOperands);
  let regions = ModifierRegions;
  let assemblyFormat = !strconcat([{
    $query `,` $key `,` $value `,` $output `,` $grad_output `,` `lse` $lse `,` `delta` $delta
    `->` (`dq` $grad_query^)? (`dq_accum` $grad_query_accum^)? (`dk` $grad_key^)?
    (`dv` $grad_value^)? `scale` $softmax_scale
  }], ScoreModifierFormat, VarlenFormat, DropoutFormat, BlockMaskFormat,
      TransposedBlockMaskFormat, ModifierRegionFormat, [{
    attr-dict `:` type($query) `,` type($key) `,` type($value) `,` type($output) `,`
    type($grad_output) `,` type($lse) `,` type($delta) `->` (`dq` type($grad_query)^)?
    (`dq_accum` type($grad_query_accum)^)? (`dk` type($grad_key)^)? (`dv` type($grad_value)^)?
  }]);
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getHeadDimQK();
    int64_t getHeadDimV();
    ::mlir::Type getElementType();
    /// True for the kernels that walk query blocks: the dQ kernel and the
    /// two auxiliary ones (no gradient; dq from dq_accum).
    bool isQueryBlockKernel() { return !getGradKey() && !getGradValue(); }
  }];
}

def Flash_YieldOp : Flash_Op<"yield", [Pure, ReturnLike, Terminator,
    ParentOneOf<["AttentionOp", "AttentionBwdOp"]>]> {
  let summary = "the result of a score_mod or mask_mod region";
  let arguments = (ins AnyTypeOf<[F32, I1]>:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

#endif // FLASH_OPS_TD

//===- FlashOps.td - flash operations ----------------------*- tablegen -*-===//
#ifndef FLASH_OPS_TD
#define FLASH_OPS_TD

include "dialect/FlashAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Flash_AttentionOp : Flash_Op<"attention"> {
  let summary = "exact fused forward attention, one kernel variant";
  let description = [{
    O = softmax(scale · Q Kᵀ + mask) V over memrefs in [batch, seq, heads, dim]
    layout with dynamic sizes and strides (last dimension contiguous). Query
    heads may outnumber key/value heads (GQA): query head h reads key/value
    head h / (heads_q / heads_k). The optional `lse` ([batch, heads, seq_q], f32)
    receives the natural-log sum-exp of each row; rows that see no key get an
    output of 0 and an LSE of -inf.

    ```mlir
    flash.attention %q, %k, %v -> %o scale %s
        {mask = #flash.mask<causal>,
         tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
         target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
        : memref<?x?x?x128xbf16, strided<[?, ?, ?, 1]>>, ... -> ...
    ```
  }];
  let arguments = (ins
    Arg<AnyMemRef, "", [MemRead]>:$query,
    Arg<AnyMemRef, "", [MemRead]>:$key,
    Arg<AnyMemRef, "", [MemRead]>:$value,
    Arg<AnyMemRef, "", [MemWrite]>:$output,
    F32:$softmax_scale,
    Arg<Optional<AnyMemRef>, "", [MemWrite]>:$lse,
    Flash_MaskAttr:$mask,
    Flash_TileAttr:$tile,
    Flash_TargetAttr:$target);
  let assemblyFormat = [{
    $query `,` $key `,` $value `->` $output (`,` `lse` $lse^)? `scale` $softmax_scale
    attr-dict `:` type($query) `,` type($key) `,` type($value) `->` type($output)
    (`,` type($lse)^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getHeadDimQK();
    int64_t getHeadDimV();
    ::mlir::Type getElementType();
  }];
}

#endif // FLASH_OPS_TD

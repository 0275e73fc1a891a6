//===- FlashAttrs.td - flash attributes --------------------*- tablegen -*-===//
#ifndef FLASH_ATTRS_TD
#define FLASH_ATTRS_TD

include "dialect/FlashDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Flash_MaskNone   : I32EnumAttrCase<"None", 0, "none">;
// Bottom-right aligned causal mask (FlashAttention-2 convention): query i sees
// key j when j <= i + seqlen_k - seqlen_q.
def Flash_MaskCausal : I32EnumAttrCase<"Causal", 1, "causal">;
// Sliding window (FlashAttention-2's window_size): query i sees key j when
// i + seqlen_k - seqlen_q - left <= j <= i + seqlen_k - seqlen_q + right, with
// left and right the op's `window` operands (known at run time only); key
// blocks outside the window of every row of a block are skipped.
def Flash_MaskWindow : I32EnumAttrCase<"Window", 2, "window">;
def Flash_MaskKind : I32EnumAttr<"MaskKind", "attention mask",
    [Flash_MaskNone, Flash_MaskCausal, Flash_MaskWindow]> {
  let cppNamespace = "::flashjit::flash";
  let genSpecializedAttr = 0;
}
def Flash_MaskAttr : EnumAttr<Flash_Dialect, Flash_MaskKind, "mask"> {
  let assemblyFormat = "`<` $value `>`";
}

def Flash_TileAttr : AttrDef<Flash_Dialect, "Tile"> {
  let mnemonic = "tile";
  let summary = "tile configuration of one kernel variant";
  let description = [{
    `m`: query rows per thread block; `n`: keys per main-loop step;
    `warps`: warps per block (each owns m / warps query rows);
    `stages`: depth of the K/V shared-memory ring (1 = no prefetch);
    `qk_wgmma` (Hopper, sm_90a): S = Q Kᵀ on wgmma with Q and K in 128-byte
    swizzled shared memory, one warpgroup per 64 query rows (the backward:
    every product, with `pv_wgmma`; see flash.attention_bwd);
    `pv_wgmma` (Hopper, sm_90a): O += P V on wgmma, P from registers and V from
    128-byte swizzled shared memory read N-major;
    `warp_specialized` (Hopper, sm_90a, with both wgmma switches, two stages
    or more): one more warpgroup, a producer that loads Q, K and V with TMA
    (`cp.async.bulk.tensor`) into an mbarrier-guarded ring and gives its
    registers to the `warps` consumer warps (`setmaxnreg`; 4, 8 or 12 warps:
    one consumer warpgroup, two blocks an SM up to d = 128, or two or three
    (up to d = 128) taking turns on the tensor cores), which overlap the
    softmax of one key block
    with the P·V wgmma of the previous one (the backward kernels: resident
    and streamed tiles likewise, no block-wide barrier in the loop);
    `persistent` (with `warp_specialized`): the runtime launches as many
    blocks as the SMs hold and each walks many (query block, head, batch)
    tiles (causal: each next one from an atomic tile counter), loading the
    next tile's K/V and Q while it finishes the last, the Q into a second Q
    tile where the target's shared memory holds one (without it, one block
    a tile; the backward's key-block kernels: see flash.attention_bwd);
    `tma_store` (with `warp_specialized`): each consumer warpgroup writes its
    64 rows of O into the Q tile's shared memory (Q is not read again) and one
    thread stores them with TMA (`cp.async.bulk.tensor` to global, bounds
    clipped by the tensor map) instead of every thread storing its fragments.
  }];
  let parameters = (ins "int64_t":$m, "int64_t":$n, "int64_t":$warps,
                        "int64_t":$stages, DefaultValuedParameter<"bool", "false">:$qk_wgmma,
                        DefaultValuedParameter<"bool", "false">:$pv_wgmma,
                        DefaultValuedParameter<"bool", "false">:$warp_specialized,
                        DefaultValuedParameter<"bool", "false">:$persistent,
                        DefaultValuedParameter<"bool", "false">:$tma_store);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Flash_TargetAttr : AttrDef<Flash_Dialect, "Target"> {
  let mnemonic = "target";
  let summary = "GPU target of a kernel variant";
  let description = [{
    `arch`: `sm_80`, `sm_90a`, ...; `max_shared_memory`: bytes of dynamic shared
    memory one block may use on that target (read from the device by the runtime).
  }];
  let parameters = (ins StringRefParameter<>:$arch, "int64_t":$max_shared_memory);
  let assemblyFormat = "`<` struct(params) `>`";
}

#endif // FLASH_ATTRS_TD

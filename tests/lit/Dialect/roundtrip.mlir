// RUN: %flash-opt %s | %flash-opt | FileCheck %s

!qk = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!v = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>

// CHECK-LABEL: func.func @with_lse
// CHECK: flash.attention %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}}, lse %{{.*}} scale %{{.*}} {mask = #flash.mask<causal>, target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>, tile = #flash.tile<m = 128, n = 64, warps = 4, stages = 2>}
func.func @with_lse(%q: !qk, %k: !qk, %v: !v, %o: !v, %lse: memref<?x?x?xf32>, %s: f32) {
  flash.attention %q, %k, %v -> %o, lse %lse scale %s
      {mask = #flash.mask<causal>,
       tile = #flash.tile<m = 128, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !qk, !qk, !v -> !v, memref<?x?x?xf32>
  return
}

// CHECK-LABEL: func.func @without_lse
// CHECK: flash.attention %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} scale %{{.*}} {mask = #flash.mask<none>
// CHECK-SAME: tile = #flash.tile<m = 64, n = 32, warps = 2, stages = 3>
func.func @without_lse(%q: memref<?x?x?x40xf16, strided<[?, ?, ?, 1]>>, %o: memref<?x?x?x40xf16, strided<[?, ?, ?, 1]>>, %s: f32) {
  flash.attention %q, %q, %q -> %o scale %s
      {mask = #flash.mask<none>,
       tile = #flash.tile<m = 64, n = 32, warps = 2, stages = 3>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : memref<?x?x?x40xf16, strided<[?, ?, ?, 1]>>, memref<?x?x?x40xf16, strided<[?, ?, ?, 1]>>,
        memref<?x?x?x40xf16, strided<[?, ?, ?, 1]>> -> memref<?x?x?x40xf16, strided<[?, ?, ?, 1]>>
  return
}

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>

// CHECK-LABEL: func.func @backward_dq
// CHECK: flash.attention_bwd %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, lse %{{.*}}, delta %{{.*}} -> dq %{{.*}} scale %{{.*}} {mask = #flash.mask<causal>
// CHECK-SAME: tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>
func.func @backward_dq(%q: !t, %o: !t, %do: !t, %lse: !stats, %delta: !stats, %dq: !t, %s: f32) {
  flash.attention_bwd %q, %q, %q, %o, %do, lse %lse, delta %delta -> dq %dq scale %s
      {mask = #flash.mask<causal>,
       tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq !t
  return
}

// CHECK-LABEL: func.func @backward_dk_dv
// CHECK: flash.attention_bwd {{.*}} -> dk %{{.*}} dv %{{.*}} scale
// CHECK-SAME: tile = #flash.tile<m = 32, n = 64, warps = 4, stages = 2>
// CHECK: : {{.*}} -> dk memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>> dv memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @backward_dk_dv(%q: !t, %o: !t, %do: !t, %lse: !stats, %delta: !stats, %dk: !t, %dv: !t, %s: f32) {
  flash.attention_bwd %q, %q, %q, %o, %do, lse %lse, delta %delta -> dk %dk dv %dv scale %s
      {mask = #flash.mask<none>,
       tile = #flash.tile<m = 32, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dk !t dv !t
  return
}

// The score modifiers: run-time window bounds, softcap and ALiBi slopes.
// CHECK-LABEL: func.func @score_modifiers
// CHECK: flash.attention %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} scale %{{.*}} window(%{{.*}}, %{{.*}}) softcap %{{.*}} alibi(%{{.*}} : memref<?x?xf32>) {mask = #flash.mask<window>
// CHECK-SAME: : {{.*}}
// CHECK: flash.attention_bwd {{.*}} -> dk %{{.*}} dv %{{.*}} scale %{{.*}} softcap %{{.*}} {mask = #flash.mask<causal>
func.func @score_modifiers(%q: !t, %o: !t, %do: !t, %lse: !stats, %delta: !stats, %s: f32,
                           %left: i32, %right: i32, %cap: f32, %slopes: memref<?x?xf32>) {
  flash.attention %q, %q, %q -> %o scale %s window(%left, %right) softcap %cap alibi(%slopes : memref<?x?xf32>)
      {mask = #flash.mask<window>,
       tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  flash.attention_bwd %q, %q, %q, %o, %do, lse %lse, delta %delta -> dk %q dv %q scale %s softcap %cap
      {mask = #flash.mask<causal>,
       tile = #flash.tile<m = 32, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dk !t dv !t
  return
}

// A block mask: the lists of each direction and the block sizes.
!bt = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!counts = memref<?x?x?xi32>
!lists = memref<?x?x?x?xi32>
// CHECK-LABEL: func.func @block_mask
// CHECK: flash.attention {{.*}} block_mask(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : memref<?x?x?xi32>, memref<?x?x?x?xi32>) {mask
// CHECK: flash.attention_bwd {{.*}} block_mask(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : memref<?x?x?xi32>, memref<?x?x?x?xi32>) block_mask_t(%{{.*}}, %{{.*}} : memref<?x?x?xi32>, memref<?x?x?x?xi32>) {mask
func.func @block_mask(%q: !bt, %lse: memref<?x?x?xf32>, %s: f32, %c: !counts, %l: !lists,
                      %bq: i32, %bk: i32) {
  flash.attention %q, %q, %q -> %q scale %s block_mask(%c, %l, %bq, %bk : !counts, !lists)
      {mask = #flash.mask<causal>,
       tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !bt, !bt, !bt -> !bt
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dk %q dv %q scale %s
      block_mask(%c, %l, %bq, %bk : !counts, !lists) block_mask_t(%c, %l : !counts, !lists)
      {mask = #flash.mask<none>,
       tile = #flash.tile<m = 32, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !bt, !bt, !bt, !bt, !bt, memref<?x?x?xf32>, memref<?x?x?xf32> -> dk !bt dv !bt
  return
}

// The lists a mask_mod may keep, derived ahead of the attention that walks them.
// CHECK-LABEL: func.func @derive_block_mask
// CHECK: flash.attention {{.*}} block_mask({{.*}}) mask_mod {
// CHECK: } {derive_block_mask, mask = #flash.mask<causal>
func.func @derive_block_mask(%q: !bt, %s: f32, %c: !counts, %l: !lists, %bq: i32, %bk: i32) {
  flash.attention %q, %q, %q -> %q scale %s block_mask(%c, %l, %bq, %bk : !counts, !lists)
      mask_mod {
  ^bb0(%b: i32, %h: i32, %qi: i32, %ki: i32):
    %c64 = arith.constant 64 : i32
    %keep = arith.cmpi slt, %ki, %c64 : i32
    flash.yield %keep : i1
  } {derive_block_mask, mask = #flash.mask<causal>,
     tile = #flash.tile<m = 64, n = 64, warps = 1, stages = 1>,
     target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !bt, !bt, !bt -> !bt
  return
}

// Packed variable-length sequences: rank-3 [total, heads, dim] tensors, the
// prefix sums as operands, row statistics [heads, total_q].
!packed = memref<?x?x64xbf16, strided<[?, ?, 1]>>
!cu = memref<?xi32>
// CHECK-LABEL: func.func @varlen
// CHECK: flash.attention %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}}, lse %{{.*}} scale %{{.*}} seqlens(%{{.*}}, %{{.*}} : memref<?xi32>, memref<?xi32>) {mask = #flash.mask<causal>
// CHECK: flash.attention_bwd {{.*}} -> dq %{{.*}} scale %{{.*}} seqlens(%{{.*}}, %{{.*}} : memref<?xi32>, memref<?xi32>)
func.func @varlen(%q: !packed, %o: !packed, %lse: memref<?x?xf32>, %s: f32, %cuq: !cu, %cuk: !cu) {
  flash.attention %q, %q, %q -> %o, lse %lse scale %s seqlens(%cuq, %cuk : !cu, !cu)
      {mask = #flash.mask<causal>,
       tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !packed, !packed, !packed -> !packed, memref<?x?xf32>
  flash.attention_bwd %q, %q, %q, %o, %o, lse %lse, delta %lse -> dq %q scale %s seqlens(%cuq, %cuk : !cu, !cu)
      {mask = #flash.mask<causal>,
       tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !packed, !packed, !packed, !packed, !packed, memref<?x?xf32>, memref<?x?xf32> -> dq !packed
  return
}

// User modifiers: a score region (relative-position bias) and a mask region
// (chunked attention), on the forward and the backward.
// CHECK-LABEL: func.func @modifier_regions
// CHECK: flash.attention {{.*}} score_mod {
// CHECK-NEXT: ^bb0(%{{[^:]*}}: f32, %{{[^:]*}}: i32, %{{[^:]*}}: i32, %[[Q:arg[0-9]+]]: i32, %[[K:arg[0-9]+]]: i32):
// CHECK: arith.subi %[[Q]], %[[K]] : i32
// CHECK: math.tanh
// CHECK: flash.yield %{{.*}} : f32
// CHECK: } mask_mod {
// CHECK: arith.divsi
// CHECK: flash.yield %{{.*}} : i1
// CHECK: } {mask = #flash.mask<causal>
// CHECK: flash.attention_bwd {{.*}} score_mod {
// CHECK: flash.yield %{{.*}} : f32
func.func @modifier_regions(%q: !t, %o: !t, %do: !t, %lse: !stats, %delta: !stats, %dq: !t, %s: f32) {
  flash.attention %q, %q, %q -> %o scale %s score_mod {
  ^bb0(%score: f32, %b: i32, %h: i32, %qi: i32, %ki: i32):
    %d = arith.subi %qi, %ki : i32
    %df = arith.sitofp %d : i32 to f32
    %c = arith.constant 0.125 : f32
    %bias = arith.mulf %df, %c : f32
    %t = math.tanh %bias : f32
    %r = arith.addf %score, %t : f32
    flash.yield %r : f32
  } mask_mod {
  ^bb0(%b: i32, %h: i32, %qi: i32, %ki: i32):
    %c128 = arith.constant 128 : i32
    %qc = arith.divsi %qi, %c128 : i32
    %kc = arith.divsi %ki, %c128 : i32
    %same = arith.cmpi eq, %qc, %kc : i32
    flash.yield %same : i1
  } {mask = #flash.mask<causal>,
     tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
     target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  flash.attention_bwd %q, %q, %q, %o, %do, lse %lse, delta %delta -> dq %dq scale %s score_mod {
  ^bb0(%score: f32, %b: i32, %h: i32, %qi: i32, %ki: i32):
    %half = arith.constant 0.5 : f32
    %r = arith.mulf %score, %half : f32
    flash.yield %r : f32
  } {mask = #flash.mask<none>,
     tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
     target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq !t
  return
}

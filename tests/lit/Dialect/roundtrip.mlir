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

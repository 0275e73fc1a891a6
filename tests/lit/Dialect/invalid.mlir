// RUN: %flash-opt %s -split-input-file -verify-diagnostics

!t = memref<?x?x?x72xbf16, strided<[?, ?, ?, 1]>>
func.func @tile_too_large(%q: !t, %s: f32) {
  // expected-error @+1 {{needs 225280 bytes of shared memory, more than the 166912 that target sm_80 allows per block}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 256, n = 128, warps = 8, stages = 4>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x76xbf16, strided<[?, ?, ?, 1]>>
func.func @head_dim_not_multiple_of_8(%q: !t, %s: f32) {
  // expected-error @+1 {{head dim 76 is not supported (must be a multiple of 8 in [8, 256])}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x264xbf16, strided<[?, ?, ?, 1]>>
func.func @head_dim_too_large(%q: !t, %s: f32) {
  // expected-error @+1 {{head dim 264 is not supported}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @stages_zero(%q: !t, %s: f32) {
  // expected-error @+2 {{tile: stages must be in [1, 8], got 0}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 0>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @rows_not_whole_warp_tiles(%q: !t, %s: f32) {
  // expected-error @+1 {{tile: m = 96 must be a positive multiple of 16 * warps (64)}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 96, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @keys_not_multiple_of_16(%q: !t, %s: f32) {
  // expected-error @+2 {{tile: n = 40 must be a multiple of 16 in [16, 256]}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 40, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xf32, strided<[?, ?, ?, 1]>>
func.func @f32_elements(%q: !t, %s: f32) {
  // expected-error @+1 {{query: element type must be f16 or bf16, got 'f32'}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!u = memref<?x?x?x64xf16, strided<[?, ?, ?, 1]>>
func.func @mixed_elements(%q: !t, %k: !u, %s: f32) {
  // expected-error @+1 {{query, key, value and output must have the same element type}}
  flash.attention %q, %k, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !u, !t -> !t
  return
}

// -----

!t = memref<?x?x64x?xbf16>
func.func @dynamic_head_dim(%q: !t, %s: f32) {
  // expected-error @+1 {{query: the head dimension must be static}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @old_target(%q: !t, %s: f32) {
  // expected-error @+1 {{target arch 'sm_75' is not supported: the sm80 tier needs sm_80 or newer}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_75", max_shared_memory = 65536>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @lse_rank(%q: !t, %lse: memref<?x?xf32>, %s: f32) {
  // expected-error @+1 {{lse must be a rank-3 f32 memref [batch, heads, seq_q]}}
  flash.attention %q, %q, %q -> %q, lse %lse scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t, memref<?x?xf32>
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @wgmma_needs_whole_warpgroups(%q: !t, %s: f32) {
  // expected-error @+1 {{tile: qk_wgmma needs one 16-row tile a warp (m = 16 * warps, 64 rows a warpgroup), got m = 128, warps = 4}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 128, n = 64, warps = 4, stages = 2, qk_wgmma = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @warp_specialized_needs_both_wgmma(%q: !t, %s: f32) {
  // expected-error @+2 {{tile: warp_specialized needs qk_wgmma and pv_wgmma (its consumers run both GEMMs on wgmma)}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 128, n = 64, warps = 8, stages = 2, qk_wgmma = true, warp_specialized = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @warp_specialized_needs_two_stages(%q: !t, %s: f32) {
  // expected-error @+2 {{tile: warp_specialized needs stages >= 2 (the producer fills one slot while the consumers read another)}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 128, n = 64, warps = 8, stages = 1, qk_wgmma = true, pv_wgmma = true, warp_specialized = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @warp_specialized_one_to_three_consumers(%q: !t, %s: f32) {
  // expected-error @+2 {{tile: warp_specialized needs warps = 4, 8 or 12 (one to three consumer warpgroups beside the producer's), got 16}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 256, n = 64, warps = 16, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x256xbf16, strided<[?, ?, ?, 1]>>
func.func @three_consumers_up_to_head_dim_128(%q: !t, %s: f32) {
  // expected-error @+1 {{tile: three consumer warpgroups (warps = 12) hold O and S in 160 registers a thread, so head dims up to 128; got 256}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 192, n = 64, warps = 12, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @three_consumers_up_to_192_keys(%q: !t, %s: f32) {
  // expected-error @+1 {{tile: three consumer warpgroups (warps = 12) take n <= 192 (the scores' wgmma may use 128 registers a thread), got n = 208}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 192, n = 208, warps = 12, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_one_or_two_consumers(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: the warp-specialized backward takes one or two consumer warpgroups (warps = 4 or 8), got warps = 12}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dk %q dv %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 192, warps = 12, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dk !t dv !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @persistent_needs_warp_specialized(%q: !t, %s: f32) {
  // expected-error @+2 {{tile: persistent needs warp_specialized (only that kernel walks several tiles a block)}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 128, n = 64, warps = 8, stages = 2, qk_wgmma = true, pv_wgmma = true, persistent = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_writes_dq_and_dk(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{writes either grad_query (the query-block kernel), grad_key and/or grad_value}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq %q dk %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq !t dk !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_key_rows_not_whole_warp_tiles(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: n = 32 must be a positive multiple of 16 * warps (64)}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dk %q dv %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 32, n = 32, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dk !t dv !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_wgmma_switches_together(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: the backward kernels take qk_wgmma and pv_wgmma together}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2, qk_wgmma = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_wgmma_owns_one_tile_a_warp(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: qk_wgmma needs one 16-row tile a warp (n = 16 * warps, 64 rows a warpgroup), got n = 128, warps = 4}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dk %q dv %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 128, warps = 4, stages = 2, qk_wgmma = true, pv_wgmma = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dk !t dv !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_wgmma_needs_sm90a(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: qk_wgmma needs target sm_90a (wgmma), not sm_80}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2, qk_wgmma = true, pv_wgmma = true>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_delta_not_warp_specialized(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: the delta and dQ conversion kernels have no warp_specialized, persistent or tma_store form}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats ->
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_no_tma_store(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: the backward kernels have no tma_store form}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dk %q dv %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true, tma_store = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dk !t dv !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_dq_not_persistent(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: the dQ kernel has no persistent form (only the key-block kernels walk many tiles a block)}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true, persistent = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq !t
  return
}

!w = memref<?x?x?x40xbf16, strided<[?, ?, ?, 1]>>
func.func @backward_wgmma_head_dim(%q: !w, %lse: !stats, %s: f32) {
  // expected-error @+1 {{tile: the wgmma backward needs head dims that are multiples of 16 (the k-step of Q Kᵀ and dO Vᵀ), got 40 and 40}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2, qk_wgmma = true, pv_wgmma = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !w, !w, !w, !w, !w, !stats, !stats -> dq !w
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!h = memref<?x?x?x64xf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_mixed_types(%q: !t, %do: !h, %lse: !stats, %s: f32) {
  // expected-error @+1 {{grad_output must have the element type of query ('bf16')}}
  flash.attention_bwd %q, %q, %q, %q, %do, lse %lse, delta %lse -> dq %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !h, !stats, !stats -> dq !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @window_mask_without_bounds(%q: !t, %s: f32) {
  // expected-error @+1 {{window(left, right) operands go with mask = window, and only then}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<window>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @bounds_without_window_mask(%q: !t, %s: f32, %l: i32) {
  // expected-error @+1 {{window(left, right) operands go with mask = window, and only then}}
  flash.attention %q, %q, %q -> %q scale %s window(%l, %l)
      {mask = #flash.mask<causal>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @alibi_slopes_rank(%q: !t, %s: f32, %slopes: memref<?xf32>) {
  // expected-error @+1 {{alibi slopes must be a rank-2 f32 memref [batch or 1, heads]}}
  flash.attention %q, %q, %q -> %q scale %s alibi(%slopes : memref<?xf32>)
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @varlen_needs_packed_tensors(%q: !t, %s: f32, %cu: memref<?xi32>) {
  // expected-error @+1 {{query must be a rank-3 memref [total, heads, dim] (packed, seqlens given)}}
  flash.attention %q, %q, %q -> %q scale %s seqlens(%cu, %cu : memref<?xi32>, memref<?xi32>)
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  return
}

// -----

!p = memref<?x?x64xbf16, strided<[?, ?, 1]>>
func.func @varlen_prefix_sums_are_i32(%q: !p, %s: f32, %cu: memref<?xi64>) {
  // expected-error @+1 {{cu_seqlens must be rank-1 i32 memrefs [batch + 1]}}
  flash.attention %q, %q, %q -> %q scale %s seqlens(%cu, %cu : memref<?xi64>, memref<?xi64>)
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !p, !p, !p -> !p
  return
}

// -----

!p = memref<?x?x64xbf16, strided<[?, ?, 1]>>
func.func @varlen_lse_is_heads_by_total(%q: !p, %s: f32, %cu: memref<?xi32>, %lse: memref<?x?x?xf32>) {
  // expected-error @+1 {{lse must be a rank-2 f32 memref [heads, total_q]}}
  flash.attention %q, %q, %q -> %q, lse %lse scale %s seqlens(%cu, %cu : memref<?xi32>, memref<?xi32>)
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !p, !p, !p -> !p, memref<?x?x?xf32>
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @score_mod_arguments(%q: !t, %s: f32) {
  // expected-error @+1 {{score_mod takes (%score: f32, %b, %h, %q_idx, %kv_idx: i32)}}
  flash.attention %q, %q, %q -> %q scale %s score_mod {
  ^bb0(%score: f32, %qi: i32, %ki: i32):
    flash.yield %score : f32
  } {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
     target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @mask_mod_yields_i1(%q: !t, %s: f32) {
  flash.attention %q, %q, %q -> %q scale %s mask_mod {
  ^bb0(%b: i32, %h: i32, %qi: i32, %ki: i32):
    // expected-error @+1 {{mask_mod yields 'i1', not 'i32'}}
    flash.yield %qi : i32
  } {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
     target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @modifier_ops_are_arith_and_math(%q: !t, %s: f32) {
  flash.attention %q, %q, %q -> %q scale %s score_mod {
  ^bb0(%score: f32, %b: i32, %h: i32, %qi: i32, %ki: i32):
    // expected-error @+1 {{is not allowed in score_mod}}
    %c = math.cos %score : f32
    flash.yield %c : f32
  } {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
     target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @modifiers_see_no_outer_values(%q: !t, %s: f32) {
  // expected-note @+1 {{required by region isolation constraints}}
  flash.attention %q, %q, %q -> %q scale %s score_mod {
  ^bb0(%score: f32, %b: i32, %h: i32, %qi: i32, %ki: i32):
    // expected-error @+1 {{using value defined outside the region}}
    %r = arith.mulf %score, %s : f32
    flash.yield %r : f32
  } {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
     target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!a = memref<?x?x?x64xf32, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_atomic_dq_needs_wgmma(%q: !t, %acc: !a, %lse: !stats, %s: f32) {
  // expected-error @+1 {{dq_accum: the key-block kernel adds dQ only on the wgmma tile}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq_accum %acc dk %q dv %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 32, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq_accum !a dk !t dv !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!a = memref<?x?x?x64xf32, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_accumulator_without_dk(%q: !t, %acc: !a, %lse: !stats, %s: f32) {
  // expected-error @+1 {{dq from dq_accum, or no gradient (delta, and dq_accum zeroed where given)}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq_accum %acc dv %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 1>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq_accum !a dv !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!stats = memref<?x?x?xf32>
func.func @backward_accumulator_not_f32(%q: !t, %lse: !stats, %s: f32) {
  // expected-error @+1 {{dq_accum: element type must be f32, got 'bf16'}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq %q dq_accum %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 1>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t, !t, !t, !stats, !stats -> dq !t dq_accum !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @block_mask_lists_are_i32(%q: !t, %s: f32, %c: memref<?x?x?xi64>, %l: memref<?x?x?x?xi32>, %b: i32) {
  // expected-error @+1 {{block_mask: counts must be a rank-3 and indices a rank-4 i32 memref}}
  flash.attention %q, %q, %q -> %q scale %s block_mask(%c, %l, %b, %b : memref<?x?x?xi64>, memref<?x?x?x?xi32>)
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @block_mask_backward_needs_the_transpose(%q: !t, %lse: memref<?x?x?xf32>, %s: f32, %c: memref<?x?x?xi32>, %l: memref<?x?x?x?xi32>, %b: i32) {
  // expected-error @+1 {{the backward takes block_mask with its transpose, block_mask_t}}
  flash.attention_bwd %q, %q, %q, %q, %q, lse %lse, delta %lse -> dq %q scale %s
      block_mask(%c, %l, %b, %b : memref<?x?x?xi32>, memref<?x?x?x?xi32>)
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t, !t, !t, memref<?x?x?xf32>, memref<?x?x?xf32> -> dq !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @derive_block_mask_needs_the_lists(%q: !t, %s: f32) {
  // expected-error @+1 {{derive_block_mask: needs block_mask (the lists it writes), not with seqlens or pack_gqa}}
  flash.attention %q, %q, %q -> %q scale %s
      {derive_block_mask, mask = #flash.mask<causal>, tile = #flash.tile<m = 64, n = 64, warps = 1, stages = 1>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !t, !t, !t -> !t
  return
}

// -----

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
func.func @tma_store_needs_the_warp_specialized_kernel(%q: !t, %s: f32) {
  // expected-error @+2 {{tile: tma_store needs warp_specialized}}
  flash.attention %q, %q, %q -> %q scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 128, n = 64, warps = 8, stages = 2, qk_wgmma = true, pv_wgmma = true, tma_store = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t -> !t
  return
}

// -----

!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1]>>
!v = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1]>>
func.func @tma_store_stages_o_where_q_was(%q: !q, %v: !v, %s: f32) {
  // expected-error @+1 {{tile: tma_store stages O where Q was, which needs d_v <= d_qk (padded to 64), got d_qk 64, d_v 128}}
  flash.attention %q, %q, %v -> %v scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 128, n = 64, warps = 8, stages = 2, qk_wgmma = true, pv_wgmma = true, warp_specialized = true, tma_store = true>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !q, !q, !v -> !v
  return
}

// -----

!p = memref<?x?x64xbf16, strided<[?, ?, 1]>>
func.func @block_mask_not_on_packed_sequences(%q: !p, %s: f32, %cu: memref<?xi32>, %c: memref<?x?x?xi32>, %l: memref<?x?x?x?xi32>, %b: i32) {
  // expected-error @+1 {{block_mask is not available on packed sequences (seqlens)}}
  flash.attention %q, %q, %q -> %q scale %s seqlens(%cu, %cu : memref<?xi32>, memref<?xi32>)
      block_mask(%c, %l, %b, %b : memref<?x?x?xi32>, memref<?x?x?x?xi32>)
      {mask = #flash.mask<none>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>}
      : !p, !p, !p -> !p
  return
}

// RUN: %flash-opt %s -convert-flash-to-gpu | FileCheck %s

!t = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>

// The function becomes a kernel of the same name with the KernelABI.h parameters
// (the score modifiers' window, softcap and ALiBi values, the varlen
// cu_seqlens_q, cu_seqlens_k and total_q, dropout's seed, offset, threshold
// and scale, then the block mask's four lists and six sizes last).
// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.module @flashjit_kernels
// CHECK: llvm.mlir.global external @flashjit_smem() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
// CHECK: gpu.func @fwd(%{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, {{(%[^:]*: i64, )+(%[^:]*: i32, )+}}%{{.*}}: f32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: f32, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i64, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32, %{{.*}}: i64, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: f32, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK-NOT: func.func @fwd
// Prologue: Q and the first K/V block through cp.async with zero fill.
// CHECK: nvvm.cp.async.shared.global %{{.*}}, %{{.*}}, 16, cache = cg, %{{.*}}
// CHECK: nvvm.cp.async.commit.group
// The key-block loop carries O, the row maxima and the row sums.
// CHECK: scf.for
// CHECK: nvvm.cp.async.wait.group 1
// CHECK: gpu.barrier
// CHECK: nvvm.ldmatrix %{{.*}} {eltType = #nvvm.ld_st_matrix_elt_type<b16>, layout = #nvvm.mma_layout<row>, num = 4 : i32, shape = #nvvm.ld_st_matrix_shape<m = 8, n = 8>}
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// Boundary blocks are masked, then the online softmax uses quad shuffles and ex2.
// CHECK: scf.if
// CHECK: gpu.shuffle xor %{{.*}}, %{{.*}}, %{{.*}} : f32
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f"
// P V reads V transposed.
// CHECK: nvvm.ldmatrix %{{.*}} {eltType = #nvvm.ld_st_matrix_elt_type<b16>, layout = #nvvm.mma_layout<col>
// CHECK: scf.yield
// Epilogue: normalise and store.
// CHECK: nvvm.cp.async.wait.group 0
// CHECK: llvm.store %{{.*}}, %{{.*}} {alignment = 4 : i64} : i32, !llvm.ptr<1>
// CHECK: gpu.return
func.func @fwd(%q: !t, %k: !t, %v: !t, %o: !t, %s: f32) {
  flash.attention %q, %k, %v -> %o scale %s
      {mask = #flash.mask<causal>, tile = #flash.tile<m = 64, n = 64, warps = 4, stages = 2>,
       target = #flash.target<arch = "sm_80", max_shared_memory = 166912>} : !t, !t, !t -> !t
  return
}

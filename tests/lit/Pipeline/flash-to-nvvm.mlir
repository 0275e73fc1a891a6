// RUN: %flash-opt %s -flash-to-nvvm | FileCheck %s

!t = memref<?x?x?x128xf16, strided<[?, ?, ?, 1], offset: ?>>

// After the pipeline the kernel is LLVM/NVVM dialect only, ready for translation.
// CHECK: gpu.module @flashjit_kernels
// CHECK: llvm.func @fwd_f16_lse({{.*}}) attributes {gpu.kernel, gpu.known_block_size = array<i32: 128, 1, 1>, nvvm.kernel, nvvm.maxntid = array<i32: 128, 1, 1>}
// CHECK-NOT: scf.
// CHECK-NOT: gpu.barrier
// CHECK-NOT: arith.
// CHECK-NOT: llvm.call @__nv
// CHECK-DAG: nvvm.read.ptx.sreg.tid.x
// CHECK-DAG: nvvm.mma.sync {{.*}}shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-DAG: nvvm.shfl.sync bfly
// CHECK-DAG: nvvm.barrier0
// CHECK-DAG: llvm.call_intrinsic "llvm.nvvm.lg2.approx.f"
func.func @fwd_f16_lse(%q: !t, %k: !t, %v: !t, %o: !t, %lse: memref<?x?x?xf32>, %s: f32) {
  flash.attention %q, %k, %v -> %o, lse %lse scale %s
      {mask = #flash.mask<none>, tile = #flash.tile<m = 128, n = 64, warps = 4, stages = 3>,
       target = #flash.target<arch = "sm_90a", max_shared_memory = 232448>}
      : !t, !t, !t -> !t, memref<?x?x?xf32>
  return
}

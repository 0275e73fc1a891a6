//===- Passes.td - flashjit compiler passes ----------------*- tablegen -*-===//
#ifndef FLASHJIT_COMPILER_PASSES_TD
#define FLASHJIT_COMPILER_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertFlashToGPU : Pass<"convert-flash-to-gpu", "mlir::ModuleOp"> {
  let summary = "Generate a gpu.func kernel for each function holding a flash.attention or flash.attention_bwd op";
  let description = [{
    Each `func.func` whose body is one `flash.attention` (operands: the
    function's arguments) becomes a `gpu.func` kernel of the same name in the
    `gpu.module @flashjit_kernels`, built from scf/arith/gpu/nvvm/llvm ops, with
    the parameters of compiler/KernelABI.h.
  }];
  let dependentDialects = [
    "mlir::gpu::GPUDialect", "mlir::scf::SCFDialect", "mlir::arith::ArithDialect",
    "mlir::math::MathDialect", "mlir::LLVM::LLVMDialect", "mlir::NVVM::NVVMDialect",
    "mlir::vector::VectorDialect"
  ];
}

def AnnotateTensorMapParams : Pass<"annotate-tensor-map-params", "mlir::gpu::GPUModuleOp"> {
  let summary = "Pass the TMA tensor maps of lowered kernels by value as __grid_constant__";
  let description = [{
    Runs after convert-gpu-to-nvvm. The parameters a kernel lists in its
    `flashjit.tensor_map_args` attribute become 128-byte, 64-byte-aligned
    `byval` parameters marked `nvvm.grid_constant`, so the kernel hands TMA
    their parameter-space address and the host passes the CUtensorMap itself.
    Such kernels also get `nvvm.minctasm = 1`: `setmaxnreg` needs the register
    count at entry to be known, which that bound fixes.
  }];
  let dependentDialects = ["mlir::LLVM::LLVMDialect", "mlir::NVVM::NVVMDialect"];
}

#endif

//===- Passes.td - flashjit compiler passes ----------------*- tablegen -*-===//
#ifndef FLASHJIT_COMPILER_PASSES_TD
#define FLASHJIT_COMPILER_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertFlashToGPU : Pass<"convert-flash-to-gpu", "mlir::ModuleOp"> {
  let summary = "Generate a gpu.func kernel for each function holding a flash.attention op";
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

#endif

//===- NVPTXTarget.h - LLVM IR -> PTX in process ---------------*- C++ -*-===//
#ifndef FLASHJIT_COMPILER_NVPTXTARGET_H
#define FLASHJIT_COMPILER_NVPTXTARGET_H

#include "mlir/IR/Operation.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace llvm {
class LLVMContext;
class Module;
} // namespace llvm

namespace flashjit {

struct NVPTXOptions {
  std::string arch = "sm_80"; // sm_XX or sm_XXa
  unsigned ptxVersion = 80;   // PTX ISA 8.0: read by every driver since CUDA 12.0
  unsigned optLevel = 3;
};

/// Translates a gpu.module of LLVM/NVVM dialect ops to an LLVM module for NVPTX.
llvm::Expected<std::unique_ptr<llvm::Module>>
translateKernelsToLLVMIR(mlir::Operation *gpuModule, llvm::LLVMContext &context,
                         const NVPTXOptions &options);

/// Optimises `module` and emits PTX with a TargetMachine made for this call
/// (no global llvm::cl options are touched, so compilations may run in parallel).
llvm::Expected<std::string> emitPTX(llvm::Module &module, const NVPTXOptions &options);

} // namespace flashjit

#endif

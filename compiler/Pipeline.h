//===- Pipeline.h - the one flash -> NVVM pipeline builder -----*- C++ -*-===//
//
// Used by the runtime JIT, flash-opt (as `--flash-to-nvvm`) and flash-gen, so
// every path compiles a variant the same way (IREE's single pipeline builder).
//
#ifndef FLASHJIT_COMPILER_PIPELINE_H
#define FLASHJIT_COMPILER_PIPELINE_H

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"

namespace flashjit {

struct PipelineOptions {
  bool verifyEachPass = false;
};

/// flash dialect module -> gpu.module whose kernels are LLVM/NVVM dialect,
/// ready for translation to LLVM IR.
void buildFlashToNVVMPipeline(mlir::OpPassManager &pm, const PipelineOptions &options);

/// Registers the pipeline as `flash-to-nvvm` and the flash passes (for flash-opt).
void registerFlashPipelinesAndPasses();

/// The dialects and translations a flashjit compilation needs, and no others.
void registerFlashjitDialects(mlir::DialectRegistry &registry);

} // namespace flashjit

#endif

//===- AttentionKernelGenerator.h - flash.attention -> gpu.func -----*- C++ -*-===//
#ifndef FLASHJIT_COMPILER_ATTENTIONKERNELGENERATOR_H
#define FLASHJIT_COMPILER_ATTENTIONKERNELGENERATOR_H

#include "dialect/FlashDialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

namespace flashjit {

/// Emits the body of the sm80-tier forward kernel for `op` into `kernel`, whose
/// parameters follow compiler/KernelABI.h. `sharedMemory` is the address of the
/// module's dynamic shared-memory symbol.
mlir::LogicalResult generateAttentionKernel(flash::AttentionOp op, mlir::gpu::GPUFuncOp kernel,
                                            mlir::StringRef sharedMemorySymbol);

/// Emits one backward kernel (BackwardKernelGenerator.cpp): parameters per
/// compiler/KernelABI.h's bwd::ParamIndex.
mlir::LogicalResult generateAttentionBackwardKernel(flash::AttentionBwdOp op,
                                                    mlir::gpu::GPUFuncOp kernel,
                                                    mlir::StringRef sharedMemorySymbol);

} // namespace flashjit

#endif

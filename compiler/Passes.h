//===- Passes.h - flashjit compiler passes ----------------------*- C++ -*-===//
#ifndef FLASHJIT_COMPILER_PASSES_H
#define FLASHJIT_COMPILER_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace flashjit {

/// On a gpu.func (and the llvm.func lowered from it): the indices of the
/// parameters that are TMA tensor maps; see AnnotateTensorMapParams.
inline constexpr llvm::StringLiteral kTensorMapArgsAttrName = "flashjit.tensor_map_args";

#define GEN_PASS_DECL
#include "compiler/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "compiler/Passes.h.inc"

} // namespace flashjit

#endif

//===- BuildModifierRegion.h - modifier expression -> region ----*- C++ -*-===//
#ifndef FLASHJIT_COMPILER_BUILDMODIFIERREGION_H
#define FLASHJIT_COMPILER_BUILDMODIFIERREGION_H

#include "compiler/ModifierExpression.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Region.h"

namespace flashjit {

/// Fills the empty `region` with one block computing `tree`: arguments
/// (%score: f32,) %b, %h, %q_idx, %kv_idx: i32 and a flash.yield of the
/// result (f32 for score_mod, i1 for mask_mod).
void buildModifierRegion(mlir::OpBuilder &b, mlir::Location loc, mlir::Region &region,
                         const ModifierTree &tree, ModifierKind kind);

} // namespace flashjit

#endif

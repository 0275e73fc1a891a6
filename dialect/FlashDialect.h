//===- FlashDialect.h - the flash dialect -----------------------*- C++ -*-===//
#ifndef FLASHJIT_DIALECT_FLASHDIALECT_H
#define FLASHJIT_DIALECT_FLASHDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialect/SharedMemoryLayout.h"

#include "dialect/FlashDialect.h.inc"
#include "dialect/FlashEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/FlashAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialect/FlashOps.h.inc"

#endif

//===- FlashDialect.cpp - the flash dialect -------------------------------===//
#include "dialect/FlashDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace flashjit::flash;

#include "dialect/FlashDialect.cpp.inc"
#include "dialect/FlashEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/FlashAttrs.cpp.inc"

void FlashDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialect/FlashAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialect/FlashOps.cpp.inc"
      >();
}

//===- BuildAttentionModule.cpp - AttentionSpec -> flash dialect ----------===//
#include "compiler/Compiler.h"
#include "dialect/FlashDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"

using namespace mlir;

namespace flashjit {

OwningOpRef<ModuleOp> buildAttentionModule(const AttentionSpec &spec, MLIRContext &context) {
  context.loadDialect<flash::FlashDialect, func::FuncDialect, memref::MemRefDialect>();
  OpBuilder b(&context);
  Location loc = b.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());

  Type element = spec.dtype == DType::F16 ? Type(b.getF16Type()) : Type(b.getBF16Type());
  const int64_t dyn = ShapedType::kDynamic;
  auto strided4 = StridedLayoutAttr::get(&context, dyn, {dyn, dyn, dyn, 1});
  auto tensorType = [&](int64_t d) {
    return MemRefType::get({dyn, dyn, dyn, d}, element, strided4);
  };
  SmallVector<Type> args = {tensorType(spec.headDimQK), tensorType(spec.headDimQK),
                            tensorType(spec.headDimV), tensorType(spec.headDimV)};
  if (spec.withLse)
    args.push_back(MemRefType::get({dyn, dyn, dyn}, b.getF32Type()));
  args.push_back(b.getF32Type());

  auto func = func::FuncOp::create(b, loc, spec.variantName(), b.getFunctionType(args, {}));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);
  Value lse = spec.withLse ? body->getArgument(4) : Value();
  int64_t maxSmem = spec.maxSharedMemory ? spec.maxSharedMemory
                                         : documentedMaxSharedMemory(spec.arch);
  flash::AttentionOp::create(
      b, loc, body->getArgument(0), body->getArgument(1), body->getArgument(2),
      body->getArgument(3), body->getArguments().back(), lse,
      flash::MaskKindAttr::get(&context, spec.mask == Mask::Causal ? flash::MaskKind::Causal
                                                                   : flash::MaskKind::None),
      flash::TileAttr::get(&context, spec.tile.m, spec.tile.n, spec.tile.warps,
                           spec.tile.stages, spec.tile.qkWgmma, spec.tile.pvWgmma,
                           spec.tile.warpSpecialized, spec.tile.persistent),
      flash::TargetAttr::get(&context, spec.arch, maxSmem));
  func::ReturnOp::create(b, loc);
  return module;
}

} // namespace flashjit

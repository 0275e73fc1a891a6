//===- BuildAttentionModule.cpp - AttentionSpec -> flash dialect ----------===//
#include "compiler/BuildModifierRegion.h"
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
  // [batch, seq, heads, dim], or packed [total, heads, dim] (varlen).
  auto strided = spec.varlen ? StridedLayoutAttr::get(&context, dyn, {dyn, dyn, 1})
                             : StridedLayoutAttr::get(&context, dyn, {dyn, dyn, dyn, 1});
  auto tensorType = [&](int64_t d) {
    return spec.varlen ? MemRefType::get({dyn, dyn, d}, element, strided)
                       : MemRefType::get({dyn, dyn, dyn, d}, element, strided);
  };
  auto mask = flash::MaskKindAttr::get(
      &context, spec.mask == Mask::Causal   ? flash::MaskKind::Causal
                : spec.mask == Mask::Window ? flash::MaskKind::Window
                                            : flash::MaskKind::None);
  auto tile = flash::TileAttr::get(&context, spec.tile.m, spec.tile.n, spec.tile.warps,
                                   spec.tile.stages, spec.tile.qkWgmma, spec.tile.pvWgmma,
                                   spec.tile.warpSpecialized, spec.tile.persistent,
                                   spec.tile.tmaStore);
  auto target = flash::TargetAttr::get(&context, spec.arch, spec.targetMaxSharedMemory());
  // [batch, heads, seq_q], or [heads, total_q] (varlen).
  auto rowStats = spec.varlen ? MemRefType::get({dyn, dyn}, b.getF32Type())
                              : MemRefType::get({dyn, dyn, dyn}, b.getF32Type());

  // After the scale, the run-time values of the variant's score modifiers:
  // window (left, right), softcap, ALiBi slopes [batch or 1, heads_q]; then
  // the varlen prefix sums.
  auto appendModifierTypes = [&](SmallVector<Type> &args) {
    if (spec.mask == Mask::Window)
      args.append({b.getI32Type(), b.getI32Type()});
    if (spec.softcap)
      args.push_back(b.getF32Type());
    if (spec.alibi)
      args.push_back(MemRefType::get({dyn, dyn}, b.getF32Type()));
    if (spec.varlen) // cu_seqlens_q, cu_seqlens_k
      args.append(2, MemRefType::get({dyn}, b.getI32Type()));
    if (spec.dropout) // p, seed, offset
      args.append({b.getF32Type(), b.getI64Type(), b.getI32Type()});
    if (spec.blockMask) { // counts, indices, block_q, block_k (backward: and the transpose)
      auto counts = MemRefType::get({dyn, dyn, dyn}, b.getI32Type());
      auto indices = MemRefType::get({dyn, dyn, dyn, dyn}, b.getI32Type());
      args.append({counts, indices, b.getI32Type(), b.getI32Type()});
      if (spec.backward())
        args.append({counts, indices});
    }
  };
  struct Modifiers {
    Value windowLeft, windowRight, softcap, alibi, cuSeqlensQ, cuSeqlensK;
    Value dropoutP, dropoutSeed, dropoutOffset;
    Value kvCounts, kvIndices, blockQ, blockK, qCounts, qIndices;
  };
  // The user modifiers' regions, from their expressions (already checked by
  // the runtime; flash-gen's reach here unchecked).
  ModifierTree scoreMod, maskMod;
  for (auto [text, tree, kind] :
       {std::tuple{&spec.scoreMod, &scoreMod, ModifierKind::Score},
        std::tuple{&spec.maskMod, &maskMod, ModifierKind::Mask}}) {
    std::string error;
    if (!text->empty() && !(*tree = parseModifier(*text, kind, error))) {
      emitError(loc) << error;
      return nullptr;
    }
  }
  auto fillRegions = [&](Region &scoreRegion, Region &maskRegion) {
    if (scoreMod)
      buildModifierRegion(b, loc, scoreRegion, scoreMod, ModifierKind::Score);
    if (maskMod)
      buildModifierRegion(b, loc, maskRegion, maskMod, ModifierKind::Mask);
  };
  auto modifierValues = [&](Block *body, unsigned next) {
    Modifiers m;
    if (spec.mask == Mask::Window) {
      m.windowLeft = body->getArgument(next++);
      m.windowRight = body->getArgument(next++);
    }
    if (spec.softcap)
      m.softcap = body->getArgument(next++);
    if (spec.alibi)
      m.alibi = body->getArgument(next++);
    if (spec.varlen) {
      m.cuSeqlensQ = body->getArgument(next++);
      m.cuSeqlensK = body->getArgument(next++);
    }
    if (spec.dropout) {
      m.dropoutP = body->getArgument(next++);
      m.dropoutSeed = body->getArgument(next++);
      m.dropoutOffset = body->getArgument(next++);
    }
    if (spec.blockMask) {
      for (Value *x : {&m.kvCounts, &m.kvIndices, &m.blockQ, &m.blockK})
        *x = body->getArgument(next++);
      if (spec.backward()) {
        m.qCounts = body->getArgument(next++);
        m.qIndices = body->getArgument(next++);
      }
    }
    return m;
  };

  if (spec.backward()) {
    // q, k, v, o, dO, lse, delta, then the gradients this kernel writes, then the scale.
    const KernelKind k = spec.kind;
    bool dq = k == KernelKind::BackwardDQ || k == KernelKind::BackwardConvertDQ;
    // (The delta kernel zeroes the accumulator that the key-block kernel adds to.)
    bool accum = k == KernelKind::BackwardConvertDQ || k == KernelKind::BackwardDelta ||
                 addsQueryGradient(k);
    bool dk = k == KernelKind::BackwardDKV || k == KernelKind::BackwardDK ||
              k == KernelKind::BackwardDKVQ || k == KernelKind::BackwardDKQ;
    bool dv = k == KernelKind::BackwardDKV || k == KernelKind::BackwardDV ||
              k == KernelKind::BackwardDKVQ;
    SmallVector<Type> args = {tensorType(spec.headDimQK), tensorType(spec.headDimQK),
                              tensorType(spec.headDimV),  tensorType(spec.headDimV),
                              tensorType(spec.headDimV),  rowStats, rowStats};
    if (dq)
      args.push_back(tensorType(spec.headDimQK));
    if (dk)
      args.push_back(tensorType(spec.headDimQK));
    if (dv)
      args.push_back(tensorType(spec.headDimV));
    if (accum) // f32 with dQ's shape
      args.push_back(MemRefType::get(cast<MemRefType>(tensorType(spec.headDimQK)).getShape(),
                                     b.getF32Type(), strided));
    args.push_back(b.getF32Type());
    const unsigned scaleIndex = args.size() - 1;
    appendModifierTypes(args);
    auto func = func::FuncOp::create(b, loc, spec.variantName(), b.getFunctionType(args, {}));
    Block *body = func.addEntryBlock();
    b.setInsertionPointToStart(body);
    unsigned next = 7;
    auto gradient = [&](bool present) { return present ? body->getArgument(next++) : Value(); };
    Value gradQuery = gradient(dq), gradKey = gradient(dk), gradValue = gradient(dv),
          gradQueryAccum = gradient(accum);
    Modifiers m = modifierValues(body, scaleIndex + 1);
    auto op = flash::AttentionBwdOp::create(b, loc, body->getArgument(0), body->getArgument(1),
                                  body->getArgument(2), body->getArgument(3), body->getArgument(4),
                                  body->getArgument(5), body->getArgument(6), gradQuery, gradKey,
                                  gradValue, gradQueryAccum, body->getArgument(scaleIndex), mask,
                                  tile, target,
                                  m.windowLeft, m.windowRight, m.softcap, m.alibi,
                                  m.cuSeqlensQ, m.cuSeqlensK, m.dropoutP, m.dropoutSeed,
                                  m.dropoutOffset, m.kvCounts, m.kvIndices, m.blockQ, m.blockK,
                                  m.qCounts, m.qIndices);
    fillRegions(op.getScoreMod(), op.getMaskMod());
    func::ReturnOp::create(b, loc);
    return module;
  }

  SmallVector<Type> args = {tensorType(spec.headDimQK), tensorType(spec.headDimQK),
                            tensorType(spec.headDimV), tensorType(spec.headDimV)};
  if (spec.withLse)
    args.push_back(rowStats);
  args.push_back(b.getF32Type());
  const unsigned scaleIndex = args.size() - 1;
  appendModifierTypes(args);

  auto func = func::FuncOp::create(b, loc, spec.variantName(), b.getFunctionType(args, {}));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);
  Value lse = spec.withLse ? body->getArgument(4) : Value();
  Modifiers m = modifierValues(body, scaleIndex + 1);
  auto op = flash::AttentionOp::create(b, loc, body->getArgument(0), body->getArgument(1),
                             body->getArgument(2), body->getArgument(3),
                             body->getArgument(scaleIndex), lse, mask, tile, target,
                             spec.packGQA ? b.getUnitAttr() : UnitAttr(),
                             spec.kind == KernelKind::ForwardBlockLists ? b.getUnitAttr()
                                                                        : UnitAttr(),
                             m.windowLeft,
                             m.windowRight, m.softcap, m.alibi, m.cuSeqlensQ, m.cuSeqlensK,
                             m.dropoutP, m.dropoutSeed, m.dropoutOffset, m.kvCounts,
                             m.kvIndices, m.blockQ, m.blockK);
  fillRegions(op.getScoreMod(), op.getMaskMod());
  func::ReturnOp::create(b, loc);
  return module;
}

} // namespace flashjit

//===- GradientAuxiliaryKernels.cpp - the atomic form's first and last ----===//
//
// The two small kernels around the atomic-dQ key-block kernel, both one
// block per `m` query rows of a head and bound by memory bandwidth:
//   * BackwardDelta, first: Δ = rowsum(dO ∘ O) of its rows for the key-block
//     kernel and, given dq_accum, those rows of the fp32 accumulator zeroed
//     for its reductions (stores beside the loads instead of a separate
//     memset pass: cuDNN's Δ kernel does the same);
//   * BackwardConvertDQ, last: dQ = scale · accumulator, in the element type.
// A warp reads a row at a time, a lane a pair of elements, so each load
// instruction covers 128 contiguous bytes and a thread has every load of its
// rows in flight at once.
//
//===----------------------------------------------------------------------===//
#include "compiler/BackwardGeneratorImpl.h"
#include "compiler/KernelABI.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;

namespace flashjit::detail {

void BackwardGenerator::emitDeltaKernel() {
  using namespace abi::bwd;
  oBase = tensorBase(kOStride0, head, /*querySide=*/true);
  doBase = tensorBase(kDOStride0, head, /*querySide=*/true);
  if (v.zeroesGradQueryAccum)
    zeroGradQueryAccumulator(e.minsi(e.i32(v.m), e.sub(seqQ, firstQueryRow)));

  const int64_t pairs = v.headDimV / 2, rowsPerWarp = v.m / v.warps;
  for (int64_t r = 0; r < rowsPerWarp; ++r) {
    Value row = e.add(firstQueryRow, e.add(e.mul(e.i32(r), e.i32(v.warps)), warp));
    Value valid = e.cmpi(CmpIPredicate::slt, row, seqQ);
    Value safeRow = e.select(valid, row, firstQueryRow);
    Value oRow = e.add(oBase, e.mul(e.toI64(safeRow), arg(kOStride0 + 1)));
    Value dORow = e.add(doBase, e.mul(e.toI64(safeRow), arg(kDOStride0 + 1)));
    Value sum = e.f32(0.0);
    for (int64_t first = 0; first < pairs; first += 32) {
      Value pair = e.add(lane, e.i32(first));
      Value inRow = first + 32 <= pairs ? Value()
                                        : e.cmpi(CmpIPredicate::ult, pair, e.i32(pairs));
      Value column = e.toI64(e.mul(inRow ? e.select(inRow, pair, e.i32(0)) : pair, e.i32(2)));
      auto o = e.loadGlobalPair(v.elementType, e.globalElementPtr(arg(kO), e.add(oRow, column),
                                                                  v.elementType));
      auto dO = e.loadGlobalPair(v.elementType, e.globalElementPtr(arg(kDO),
                                                                   e.add(dORow, column),
                                                                   v.elementType));
      Value part = e.fma(o[0], dO[0], e.fmul(o[1], dO[1]));
      sum = e.fadd(sum, inRow ? e.select(inRow, part, e.f32(0.0)) : part);
    }
    for (int64_t mask : {16, 8, 4, 2, 1})
      sum = e.fadd(sum, e.shuffleXor(sum, mask));
    emitIf(arith::AndIOp::create(b, loc, valid, e.cmpi(CmpIPredicate::eq, lane, e.i32(0))), [&] {
      e.store(sum, e.globalElementPtr(arg(kDelta), rowStatsOffset(head, row), b.getF32Type()), 4);
    });
  }
}

// The block's `rows` accumulator rows of this head, 16 bytes a store (rows
// are d_qk floats, a multiple of 8, from a 256-byte aligned workspace).
void BackwardGenerator::zeroGradQueryAccumulator(Value rows) {
  using namespace abi::bwd;
  Value base = e.add(tensorBase(kDQAccumStride0, head, /*querySide=*/true),
                     e.mul(e.toI64(firstQueryRow), arg(kDQAccumStride0 + 1)));
  auto quadType = VectorType::get({4}, b.getF32Type());
  Value zero = arith::ConstantOp::create(b, loc, cast<TypedAttr>(b.getZeroAttr(quadType)));
  const int64_t quadsPerRow = v.headDimQK / 4;
  Value quads = e.mul(rows, e.i32(quadsPerRow));
  OpBuilder::InsertionGuard guard(b);
  auto loop = scf::ForOp::create(b, loc, tid, quads, e.i32(v.warps * 32));
  b.setInsertionPoint(loop.getBody()->getTerminator());
  Value index = loop.getInductionVar();
  Value row = e.divui(index, e.i32(quadsPerRow));
  Value column = e.mul(e.remui(index, e.i32(quadsPerRow)), e.i32(4));
  Value at = e.add(base, e.add(e.mul(e.toI64(row), arg(kDQAccumStride0 + 1)), e.toI64(column)));
  e.store(zero, e.globalElementPtr(arg(kDQAccum), at, b.getF32Type()), 16);
}

// Consecutive threads take consecutive column pairs: coalesced fp32 reads.
void BackwardGenerator::emitConvertDQ() {
  using namespace abi::bwd;
  Value accumBase = tensorBase(kDQAccumStride0, head, /*querySide=*/true);
  dqBase = tensorBase(kDQStride0, head, /*querySide=*/true);
  const int64_t pairsPerRow = v.headDimQK / 2, total = v.m * pairsPerRow, threads = v.warps * 32;
  for (int64_t first = 0; first < total; first += threads) {
    Value index = e.add(tid, e.i32(first));
    Value row = e.add(firstQueryRow, e.divui(index, e.i32(pairsPerRow)));
    Value column = e.mul(e.remui(index, e.i32(pairsPerRow)), e.i32(2));
    Value inside = e.cmpi(CmpIPredicate::slt, row, seqQ);
    if (first + threads > total)
      inside = arith::AndIOp::create(b, loc, inside,
                                     e.cmpi(CmpIPredicate::ult, index, e.i32(total)));
    emitIf(inside, [&] {
      // The key-block kernels stored the row rotated (gradQueryColumn; pairs stay together).
      Value stored = e.toI64(gradQueryColumn(row, column));
      Value from = e.add(accumBase, e.add(e.mul(e.toI64(row), arg(kDQAccumStride0 + 1)), stored));
      Value lo = e.loadGlobalF32(e.globalElementPtr(arg(kDQAccum), from, b.getF32Type()));
      Value hi = e.loadGlobalF32(
          e.globalElementPtr(arg(kDQAccum), e.add(from, e.i64(1)), b.getF32Type()));
      Value to = e.add(dqBase, e.add(e.mul(e.toI64(row), arg(kDQStride0 + 1)), e.toI64(column)));
      e.store(e.packPair(v.elementType, e.fmul(lo, arg(kScale)), e.fmul(hi, arg(kScale))),
                    e.globalElementPtr(arg(kDQ), to, v.elementType), 4);
    });
  }
}

} // namespace flashjit::detail

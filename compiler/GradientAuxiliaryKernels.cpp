//===- GradientAuxiliaryKernels.cpp - the atomic form's first and last ----===//
//
// The two small kernels around the atomic-dQ key-block kernel, both one
// block per `m` query rows of a head and bound by memory bandwidth:
//   * BackwardDelta, first: Δ = rowsum(dO ∘ O) of its rows for the key-block
//     kernel and, given dq_accum, those rows of the fp32 accumulator zeroed
//     for its reductions (stores beside the loads instead of a separate
//     memset pass: cuDNN's Δ kernel does the same);
//   * BackwardConvertDQ, last: dQ = scale · accumulator, in the element type.
// A lane moves 16 bytes a load where the rows are 16-byte aligned (O and dQ
// are only promised 4: a uniform test picks the path), and a thread issues a
// batch of loads before it uses the first: at 4-byte loads, with ptxas
// keeping few in flight, both kernels drew 3.2-3.3 TB/s (H200, ncu).
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
  // dO is an input (16-byte aligned rows, ValidateParams); O's contract is
  // 4 bytes: 16-byte loads of it where its rows allow them.
  emitAlignedOrNot(rowsAligned16(kO, kOStride0), [&](unsigned oAlignment) {
    emitDeltaRows(oAlignment);
  });
}

// A lane takes 8 elements (16 bytes) of a row, a row `lanesPerRow` lanes, a
// warp `rowsAtOnce` rows a load and its block's rows in groups of those;
// every load of a batch of groups is issued before the first product.
void BackwardGenerator::emitDeltaRows(unsigned oAlignment) {
  using namespace abi::bwd;
  const int64_t octets = v.headDimV / 8, lanesPerRow = int64_t(llvm::PowerOf2Ceil(octets));
  const int64_t rowsAtOnce = 32 / lanesPerRow, rowsPerWarp = v.m / v.warps;
  const int64_t groups = (rowsPerWarp + rowsAtOnce - 1) / rowsAtOnce, batchGroups = 8;
  Value octet = e.andi(lane, e.i32(lanesPerRow - 1));
  Value rowOfLane = e.divui(lane, e.i32(lanesPerRow));
  Value inRow = octets == lanesPerRow ? Value() : e.cmpi(CmpIPredicate::ult, octet, e.i32(octets));
  Value column = e.toI64(e.mul(inRow ? e.select(inRow, octet, e.i32(0)) : octet, e.i32(8)));
  Value firstOfWarp = e.add(firstQueryRow, e.mul(warp, e.i32(rowsPerWarp)));
  for (int64_t first = 0; first < groups; first += batchGroups) {
    struct Row {
      Value row, valid;
      std::vector<Value> o, dO;
    };
    std::vector<Row> rows;
    for (int64_t g = first; g < std::min(groups, first + batchGroups); ++g) {
      Value inWarp = e.add(e.i32(g * rowsAtOnce), rowOfLane);
      Row r;
      r.row = e.add(firstOfWarp, inWarp);
      r.valid = e.cmpi(CmpIPredicate::slt, r.row, seqQ);
      if (rowsPerWarp % rowsAtOnce != 0)
        r.valid = arith::AndIOp::create(b, loc, r.valid,
                                        e.cmpi(CmpIPredicate::ult, inWarp, e.i32(rowsPerWarp)));
      Value safeRow = e.toI64(e.select(r.valid, r.row, firstQueryRow));
      Value oAt = e.add(e.add(oBase, e.mul(safeRow, arg(kOStride0 + 1))), column);
      Value dOAt = e.add(e.add(doBase, e.mul(safeRow, arg(kDOStride0 + 1))), column);
      r.o = e.loadGlobalWidened(v.elementType, e.globalElementPtr(arg(kO), oAt, v.elementType),
                                8, oAlignment);
      r.dO = e.loadGlobalWidened(v.elementType,
                                 e.globalElementPtr(arg(kDO), dOAt, v.elementType), 8, 16);
      rows.push_back(std::move(r));
    }
    for (const Row &r : rows) {
      Value sum = e.fmul(r.o[0], r.dO[0]);
      for (int64_t i = 1; i < 8; ++i)
        sum = e.fma(r.o[i], r.dO[i], sum);
      if (inRow)
        sum = e.select(inRow, sum, e.f32(0.0));
      for (int64_t mask = lanesPerRow / 2; mask >= 1; mask /= 2)
        sum = e.fadd(sum, e.shuffleXor(sum, mask));
      Value leadLane = e.cmpi(CmpIPredicate::eq, octet, e.i32(0));
      emitIf(arith::AndIOp::create(b, loc, r.valid, leadLane), [&] {
        e.store(sum, e.globalElementPtr(arg(kDelta), rowStatsOffset(head, r.row),
                                        b.getF32Type()), 4);
      });
    }
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

// A thread takes 8 columns of a row: two 16-byte loads of the accumulator
// (rows of d_qk floats from a 256-byte aligned workspace; the rotation moves
// whole octets) and one 16-byte store of dQ where its rows allow it (its
// contract is 4 bytes). All loads of a batch before the first store.
void BackwardGenerator::emitConvertDQ() {
  using namespace abi::bwd;
  emitAlignedOrNot(rowsAligned16(kDQ, kDQStride0), [&](unsigned dqAlignment) {
    emitConvertRows(dqAlignment);
  });
}

void BackwardGenerator::emitConvertRows(unsigned dqAlignment) {
  using namespace abi::bwd;
  Value accumBase = tensorBase(kDQAccumStride0, head, /*querySide=*/true);
  dqBase = tensorBase(kDQStride0, head, /*querySide=*/true);
  const int64_t octetsPerRow = v.headDimQK / 8, total = v.m * octetsPerRow;
  const int64_t threads = v.warps * 32, batch = 8 * threads;
  for (int64_t firstOfBatch = 0; firstOfBatch < total; firstOfBatch += batch) {
    struct Octet {
      Value row, column, inside;
      std::vector<Value> values;
    };
    std::vector<Octet> octets;
    for (int64_t first = firstOfBatch; first < std::min(total, firstOfBatch + batch);
         first += threads) {
      Value index = e.add(tid, e.i32(first));
      Octet o;
      o.row = e.add(firstQueryRow, e.divui(index, e.i32(octetsPerRow)));
      o.column = e.mul(e.remui(index, e.i32(octetsPerRow)), e.i32(8));
      o.inside = e.cmpi(CmpIPredicate::slt, o.row, seqQ);
      if (first + threads > total)
        o.inside = arith::AndIOp::create(b, loc, o.inside,
                                         e.cmpi(CmpIPredicate::ult, index, e.i32(total)));
      Value safeRow = e.select(o.inside, o.row, firstQueryRow);
      // The key-block kernels stored the row rotated (gradQueryColumn).
      Value stored = e.toI64(gradQueryColumn(safeRow, o.column));
      Value from =
          e.add(accumBase, e.add(e.mul(e.toI64(safeRow), arg(kDQAccumStride0 + 1)), stored));
      for (int64_t half = 0; half < 2; ++half) {
        auto four = e.loadGlobalWidened(
            b.getF32Type(),
            e.globalElementPtr(arg(kDQAccum), e.add(from, e.i64(4 * half)), b.getF32Type()), 4,
            16);
        o.values.insert(o.values.end(), four.begin(), four.end());
      }
      octets.push_back(std::move(o));
    }
    for (const Octet &o : octets) {
      SmallVector<Value, 4> words;
      for (int64_t i = 0; i < 4; ++i)
        words.push_back(e.packPair(v.elementType, e.fmul(o.values[2 * i], arg(kScale)),
                                   e.fmul(o.values[2 * i + 1], arg(kScale))));
      emitIf(o.inside, [&] {
        Value to = e.add(dqBase, e.add(e.mul(e.toI64(o.row), arg(kDQStride0 + 1)),
                                       e.toI64(o.column)));
        e.storeWords(words, e.globalElementPtr(arg(kDQ), to, v.elementType), dqAlignment);
      });
    }
  }
}

} // namespace flashjit::detail

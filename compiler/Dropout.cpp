//===- Dropout.cpp - dropout on the probabilities, Philox-4x32-10 ---------===//
//
// Each element (b, h, i, j) of P (batch or packed sequence b, query head h,
// query i, key j, positions within the sequences) takes 16 random bits from
// Philox-4x32-10 (Salmon et al., Random123) with key = the 64-bit seed and
//
//   counter = ((j >> 4) * 4 + ((j & 7) >> 1),   (i >> 4) * 8 + (i & 7),
//              b * heads_q + h,                 offset),
//
// word 2 · ((i >> 3) & 1) + ((j >> 3) & 1) of the result, bits 16 · (j & 1)
// up; it is dropped when they are below the threshold. The eight elements
// of one counter are rows {i, i + 8} x columns {j, j + 1, j + 8, j + 9}:
// exactly what one thread holds of two 8-column tiles in the mma.sync and
// wgmma accumulator layouts, so the forward draws each counter once. The
// backward's key-block kernels hold the transposed block (rows {j, j + 8} x
// columns {i, i + 1, i + 8, i + 9}), half of two counters' elements.
//
// The forward zeroes dropped probabilities after the row sums (so the LSE is
// that of the whole softmax) and folds 1 / (1 − p) into the epilogue's 1 / l;
// the backward multiplies dP (and, for dV, P) by keep · 1 / (1 − p).
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;
using arith::CmpIPredicate;

namespace flashjit::detail {

Value Generator::dropoutArg(int which) {
  return kernelArg(abi::kDropout0 + which, abi::bwd::kDropout0 + which);
}

std::array<Value, 4> Generator::philox(std::array<Value, 4> c) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  Value seed = dropoutArg(abi::kDropoutSeedParam);
  Value key0 = e.truncToI32(seed), key1 = e.truncToI32(e.shrui(seed, 32));
  for (int round = 0; round < 10; ++round) {
    if (round) {
      key0 = e.add(key0, e.u32(kWeyl0));
      key1 = e.add(key1, e.u32(kWeyl1));
    }
    auto [lo0, hi0] = e.mulWideU32(e.u32(kMul0), c[0]);
    auto [lo1, hi1] = e.mulWideU32(e.u32(kMul1), c[2]);
    c = {e.xori(e.xori(hi1, c[1]), key0), lo1, e.xori(e.xori(hi0, c[3]), key1), lo0};
  }
  return c;
}

void Generator::forEachDropoutKeep(const ScorePlacement &at, size_t rowTiles, size_t columnTiles,
                                   llvm::function_ref<void(size_t, size_t, int64_t, Value)> f) {
  assert(columnTiles % 2 == 0 && "blocks span whole 16-column counters");
  Value threshold = dropoutArg(abi::kDropoutThresholdParam);
  Value offset = dropoutArg(abi::kDropoutOffsetParam);
  Value headsQ = kernelArg(abi::kHeadsQ, abi::bwd::kHeadsQ);
  Value batchHead = e.add(e.mul(batch, headsQ), at.head);
  auto counterOfQuery = [&](Value i) {
    return e.add(e.mul(e.shrui(i, 4), e.i32(8)), e.andi(i, e.i32(7)));
  };
  auto counterOfKey = [&](Value j) {
    return e.add(e.mul(e.shrui(j, 4), e.i32(4)), e.shrui(e.andi(j, e.i32(7)), 1));
  };
  auto kept = [&](Value word, Value shift) {
    Value bits = e.andi(arith::ShRUIOp::create(b, loc, word, shift), e.i32(0xffff));
    return e.cmpi(CmpIPredicate::uge, bits, threshold);
  };
  for (size_t i = 0; i < rowTiles; ++i) {
    // Fragment row (i, 0) is 16-aligned plus < 8 (row (i, 1) is 8 further);
    // so is the pair's first column, columnBase + 16 u (plus 8 for t odd).
    Value row = at.rows[2 * i];
    for (size_t u = 0; u < columnTiles / 2; ++u) {
      Value column = e.add(at.columnBase, e.i32(int64_t(16 * u)));
      if (!at.transposed) { // rows are queries: one counter for the 8 elements
        auto words = philox({counterOfKey(column), counterOfQuery(row), batchHead, offset});
        for (int64_t tt = 0; tt < 2; ++tt)
          for (int64_t c = 0; c < 4; ++c)
            f(i, 2 * u + tt, c, kept(words[2 * (c / 2) + tt], e.i32(16 * (c & 1))));
        continue;
      }
      // Rows are keys (this thread's two are j and j + 8), columns queries.
      Value shift = e.mul(e.andi(row, e.i32(1)), e.i32(16));
      for (int64_t odd = 0; odd < 2; ++odd) {
        Value query = e.add(column, e.i32(odd));
        auto words = philox({counterOfKey(row), counterOfQuery(query), batchHead, offset});
        for (int64_t tt = 0; tt < 2; ++tt)
          for (int64_t h = 0; h < 2; ++h)
            f(i, 2 * u + tt, 2 * h + odd, kept(words[2 * tt + h], shift));
      }
    }
  }
}

Tiles Generator::dropoutKeeps(const ScorePlacement &at, size_t rowTiles, size_t columnTiles) {
  Tiles keep(rowTiles, std::vector<Fragment>(columnTiles));
  forEachDropoutKeep(at, rowTiles, columnTiles,
                     [&](size_t i, size_t t, int64_t c, Value kept) { keep[i][t][c] = kept; });
  return keep;
}

Value Generator::keptOrZero(Value keep, Value x, Value scale) {
  return e.select(keep, scale ? e.fmul(x, scale) : x, e.f32(0.0));
}

void Generator::applyDropout(Tiles &x, const ScorePlacement &at, Value scale) {
  forEachDropoutKeep(at, x.size(), x[0].size(), [&](size_t i, size_t t, int64_t c, Value keep) {
    x[i][t][c] = keptOrZero(keep, x[i][t][c], scale);
  });
}

void Generator::applyDropout(Tiles &x, const Tiles &keep, Value scale) {
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t t = 0; t < x[i].size(); ++t)
      for (int64_t c = 0; c < 4; ++c)
        x[i][t][c] = keptOrZero(keep[i][t][c], x[i][t][c], scale);
}

Value Generator::dropoutKeepScale() { return dropoutArg(abi::kDropoutKeepScaleParam); }

} // namespace flashjit::detail

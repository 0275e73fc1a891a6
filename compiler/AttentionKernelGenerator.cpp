//===- AttentionKernelGenerator.cpp - the forward kernel generator --------===//
//
// Setup, masking, online softmax, epilogue and the all-warps main loop; the
// Hopper switches swap in wgmma for either GEMM (this file) or the whole main
// loop for the warp-specialized one (WarpSpecializedMainLoop.cpp).
//
// The all-warps main loop is a FlashAttention-2 style pass on mma.sync:
//   * one thread block per (query block of `m` rows, query head, batch);
//   * each warp owns m / warps query rows (whole 16-row mma tiles), so the
//     online softmax needs only quad shuffles, never shared memory;
//   * Q is staged once, K/V stream through a `stages`-deep cp.async ring;
//   * S = Q Kᵀ and O += P V use ldmatrix + mma.sync m16n8k16; P is reused
//     straight from the S accumulators (their layout is the A-operand layout);
//   * out-of-range rows and padded head-dim columns are zero-filled by
//     cp.async (src-size 0), so any sequence length and head dim % 8 == 0 work.
//
// Register fragments are C++ vectors of SSA values: the loops over tiles run in
// the generator (full unroll), the loop over key blocks is an scf.for.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionKernelGenerator.h"

#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

#include <cmath>

using namespace mlir;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

namespace flashjit {
namespace detail {

// Copies a [rows, paddedHeadDim] tile starting at `firstRow` of a [seq, dim]
// slice (row r at srcBase + rowOffset(r)) into shared memory with 16-byte
// cp.async; each thread takes every (threads)-th 16-byte chunk. Rows >=
// rowLimit and columns >= headDim are zeros.
// `swizzled`: the 128-byte-swizzled block layout of SharedMemoryLayout.
void Generator::emitTileLoad(int64_t dstOffsetBytes, Value dstSlotOffset, int64_t rows,
                             int64_t pitch, int64_t paddedHeadDim, int64_t headDim, Value src,
                             Value srcBase, const RowOffset &rowOffset, Value firstRow,
                             Value rowLimit, bool swizzled) {
  const int64_t threads = v.warps * 32;
  const int64_t chunksPerRow = paddedHeadDim / 8;
  const int64_t validChunks = headDim / 8;
  const int64_t total = rows * chunksPerRow;
  for (int64_t first = 0; first < total; first += threads) {
    auto body = [&] {
      Value chunk = e.add(tid, e.i32(first));
      Value row = e.divui(chunk, e.i32(chunksPerRow));
      Value col = e.remui(chunk, e.i32(chunksPerRow));
      Value globalRow = e.add(firstRow, row);
      Value valid = e.cmpi(CmpIPredicate::slt, globalRow, rowLimit);
      if (validChunks < chunksPerRow)
        valid = arith::AndIOp::create(b, loc, valid,
                                      e.cmpi(CmpIPredicate::ult, col, e.i32(validChunks)));
      Value safeRow = e.select(valid, globalRow, e.i32(0));
      Value elementOffset =
          e.add(srcBase, e.add(rowOffset(safeRow), e.toI64(e.mul(col, e.i32(8)))));
      Value srcPtr = e.globalElementPtr(src, elementOffset, v.elementType);
      Value dstOffset;
      if (swizzled) {
        // Block col / 8 holds rows of 8 chunks; chunk (col % 8) ^ (row % 8).
        Value block = e.shrui(col, 3);
        Value chunk = arith::XOrIOp::create(b, loc, e.andi(col, e.i32(7)), e.andi(row, e.i32(7)));
        dstOffset = e.add(e.mul(block, e.i32(rows * 128)),
                          e.add(e.mul(row, e.i32(128)), e.mul(chunk, e.i32(16))));
      } else {
        dstOffset = e.add(e.mul(row, e.i32(pitch)), e.mul(col, e.i32(16)));
      }
      dstOffset = e.add(dstOffset, e.i32(dstOffsetBytes));
      if (dstSlotOffset)
        dstOffset = e.add(dstOffset, dstSlotOffset);
      e.cpAsync16(sharedAt(dstOffset), srcPtr, valid);
    };
    if (first + threads <= total)
      body();
    else
      emitIf(e.cmpi(CmpIPredicate::ult, e.add(tid, e.i32(first)), e.i32(total)), body);
  }
}

// Loads key/value block `block` into ring slot block % stages.
void Generator::emitKeyValueLoad(Value block) {
  Value slot = v.stages == 1 ? e.i32(0) : e.remui(block, e.i32(v.stages));
  Value slotOffset = e.mul(slot, e.i32(v.smem.stageBytes));
  Value firstKey = keyBlockStart(block);
  emitTileLoad(v.smem.queryBytes, slotOffset, v.n, v.smem.pitchQK, v.smem.paddedHeadDimQK,
               v.headDimQK, arg(abi::kK), kBase, stridedRows(arg(abi::kKStride0 + 1)), firstKey,
               seqK, v.qkWgmma);
  emitTileLoad(v.smem.queryBytes + v.smem.keyBytes, slotOffset, v.n, v.smem.pitchV,
               v.smem.paddedHeadDimV, v.headDimV, arg(abi::kV), vBase,
               stridedRows(arg(abi::kVStride0 + 1)), firstKey, seqK, v.pvWgmma);
}

// C = A Bᵀ for this warp's 16 * mTiles rows of A (from row `aFirstRow` of
// the A tile, `aPitch` bytes a row) and nTiles * 8 rows of B (the B tile at
// `bTile`): both tiles hold their rows with the k dimension contiguous, so
// ldmatrix reads both untransposed. kSteps of 16 along k.
std::vector<std::vector<Fragment>> Generator::warpGemmABt(Value aTile, Value aFirstRow,
                                                          int64_t aPitch, Value bTile,
                                                          int64_t bPitch, int64_t mTiles,
                                                          int64_t nTiles, int64_t kSteps) {
  Value zero = e.f32(0.0);
  std::vector<std::vector<Fragment>> c(mTiles, std::vector<Fragment>(nTiles, {zero, zero, zero, zero}));
  // ldmatrix lane addresses. A: lanes 0-15 rows 0-15 at k, lanes 16-31 at k+8.
  // B (non-transposed): matrices (rows 0-7,k) (rows 0-7,k+8) (rows 8-15,k) (rows 8-15,k+8).
  Value aLane = e.add(e.mul(e.add(aFirstRow, e.andi(lane, e.i32(15))), e.i32(aPitch)),
                      e.mul(e.shrui(lane, 4), e.i32(16)));
  if (aTile)
    aLane = e.add(aLane, aTile);
  Value bRow = e.add(e.andi(lane, e.i32(7)), e.mul(e.shrui(lane, 4), e.i32(8)));
  Value bCol = e.mul(e.andi(e.shrui(lane, 3), e.i32(1)), e.i32(16));
  Value bLane = e.add(e.add(e.mul(bRow, e.i32(bPitch)), bCol), bTile);
  for (int64_t kk = 0; kk < kSteps; ++kk) {
    std::vector<std::array<Value, 4>> aFrag;
    for (int64_t i = 0; i < mTiles; ++i)
      aFrag.push_back(
          e.ldmatrixX4(sharedAt(e.add(aLane, e.i32(i * 16 * aPitch + kk * 32))), false));
    for (int64_t p = 0; p < nTiles / 2; ++p) {
      auto bFrag = e.ldmatrixX4(sharedAt(e.add(bLane, e.i32(p * 16 * bPitch + kk * 32))), false);
      for (int64_t i = 0; i < mTiles; ++i) {
        c[i][2 * p] = e.mma16816(v.elementType, aFrag[i], {bFrag[0], bFrag[1]}, c[i][2 * p]);
        c[i][2 * p + 1] =
            e.mma16816(v.elementType, aFrag[i], {bFrag[2], bFrag[3]}, c[i][2 * p + 1]);
      }
    }
  }
  return c;
}

// S = Q Kᵀ for this warp's rows and the `n` keys of the current slot.
std::vector<std::vector<Fragment>> Generator::emitScores(Value slotOffset) {
  return warpGemmABt(Value(), e.mul(warp, e.i32(16 * v.mTilesPerWarp)), v.smem.pitchQK,
                     e.add(slotOffset, e.i32(v.smem.queryBytes)), v.smem.pitchQK,
                     v.mTilesPerWarp, v.nTilesS, v.kStepsQK);
}

// C = A Bᵀ on wgmma: each warpgroup multiplies its 64 rows of the A tile by
// the bRows rows of the B tile, both read by the tensor cores from swizzled
// shared memory (tiles at byte offsets from the aligned base, `rows` rows to a
// 64-column block); k-steps of 16 walk a block 32 bytes at a time. The
// accumulator layout per warp equals mma.sync's, so masking, softmax and the
// products after it are shared with the mma.sync path.
std::vector<Value> Generator::issueWgmmaABt(Value aTile, int64_t aRows, Value bTile,
                                            int64_t bRows, int64_t kSteps, bool fence,
                                            int64_t bColumns) {
  std::vector<Value> acc; // the first k-step starts from nothing
  Value warpgroup = e.shrui(warp, 2);
  Value aWarpgroupRows = e.add(smemBase32, e.mul(warpgroup, e.i32(64 * 128)));
  if (aTile)
    aWarpgroupRows = e.add(aWarpgroupRows, aTile);
  Value bRowsStart = e.add(smemBase32, bTile);
  if (fence)
    e.wgmmaFence();
  for (int64_t kk = 0; kk < kSteps; ++kk) {
    int64_t block = kk / 4, within = (kk % 4) * 32;
    Value descA =
        e.wgmmaDescriptorSwizzled128(e.add(aWarpgroupRows, e.i32(block * aRows * 128 + within)));
    Value descB =
        e.wgmmaDescriptorSwizzled128(e.add(bRowsStart, e.i32(block * bRows * 128 + within)));
    acc = e.wgmmaSS(v.elementType, bColumns ? bColumns : bRows, descA, descB, acc);
  }
  e.wgmmaCommit();
  return acc;
}

// S = Q Kᵀ: this warpgroup's query rows (of the tile's Q slot, if it has
// several) by the n keys of the slot.
std::vector<Value> Generator::issueScoresWgmma(Value slotOffset, int64_t keys) {
  return issueWgmmaABt(queryTile, v.m, e.add(slotOffset, e.i32(v.smem.queryBytes)), v.n,
                       v.kStepsQK, /*fence=*/true, keys);
}

std::vector<std::vector<Fragment>> Generator::emitScoresWgmma(Value slotOffset) {
  return toFragments(e.wgmmaWaitFor(0, issueScoresWgmma(slotOffset)), v.nTilesS);
}

// wgmma's accumulator layout per warp equals mma.sync's: fragment t of the
// warp's 16 rows is registers 4t..4t+3. Flat lists hold the 16-row tiles one
// after another (one tile on wgmma; the backward's mma.sync tiles may hold more).
std::vector<std::vector<Fragment>> Generator::toFragments(const std::vector<Value> &acc,
                                                          int64_t tiles) {
  const size_t rowTiles = acc.size() / size_t(4 * tiles);
  std::vector<std::vector<Fragment>> f(rowTiles, std::vector<Fragment>(size_t(tiles)));
  size_t next = 0;
  for (auto &row : f)
    for (Fragment &frag : row)
      for (Value &x : frag)
        x = acc[next++];
  return f;
}

std::vector<Value> Generator::fromFragments(const std::vector<std::vector<Fragment>> &f) {
  std::vector<Value> acc;
  for (const auto &row : f)
    for (const Fragment &frag : row)
      acc.insert(acc.end(), frag.begin(), frag.end());
  return acc;
}

Value Generator::rowOf(int64_t mTile, int64_t half) {
  Value inBlock = e.add(e.mul(warp, e.i32(16 * v.mTilesPerWarp)),
                        e.add(quadRow, e.i32(mTile * 16 + half * 8)));
  return e.add(firstQueryRow, inBlock);
}

ScorePlacement Generator::queryRowPlacement(Value kvStart, int64_t columns) {
  ScorePlacement at;
  for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
    for (int64_t h = 0; h < 2; ++h)
      at.rows.push_back(positionOfRow(rowOf(i, h))); // the masks see queries
  at.head = head;
  at.columnBase = e.add(kvStart, e.mul(quadCol, e.i32(2)));
  at.firstRow = firstQueryPosition;
  at.lastRow = lastQueryPosition;
  at.firstColumn = kvStart;
  at.columns = columns ? columns : v.n;
  at.transposed = false;
  return at;
}

SoftmaxUpdate Generator::emitProbabilities(std::vector<std::vector<Fragment>> &s, Value kvStart,
                                           std::vector<Value> &rowMax,
                                           std::vector<Value> &rowSum, int64_t columns,
                                           double lazyRescale) {
  ScorePlacement at = queryRowPlacement(kvStart, columns);
  emitScoreModifiers(s, at);
  emitPlacedMask(s, at);
  SoftmaxUpdate update = emitOnlineSoftmax(s, rowMax, rowSum, lazyRescale);
  if (v.dropout) // after the row sums; 1 / (1 − p) waits for the epilogue
    applyDropout(s, at, Value());
  return update;
}

Value Generator::quadReduce(Value x, bool isMax) {
  for (int64_t mask : {1, 2}) {
    Value other = e.shuffleXor(x, mask);
    x = isMax ? e.fmax(x, other) : e.fadd(x, other);
  }
  return x;
}

// Online softmax in the log2 domain: s' = s * scale * log2(e). Rows keep their
// running max m (already scaled) and a thread-partial running sum l; O is to be
// rescaled by alpha = exp2(m_old - m_new). Turns S into P in place.
SoftmaxUpdate Generator::emitOnlineSoftmax(std::vector<std::vector<Fragment>> &s,
                                           std::vector<Value> &rowMax,
                                           std::vector<Value> &rowSum, double lazyRescale) {
  Value scaleLog2 = softmaxScaleLog2();
  Value zero = e.f32(0.0);
  Value minusInf = e.negInf();
  // Fragment row (i, h)'s running max with this block's scores.
  auto maxWithBlock = [&](int64_t i, int64_t h) {
    const int64_t tiles = int64_t(s[i].size()); // (n / 8, or fewer: narrowed blocks)
    Value mx = s[i][0][2 * h];
    for (int64_t t = 0; t < tiles; ++t)
      for (int64_t c = 2 * h; c < 2 * h + 2; ++c)
        if (t || c != 2 * h)
          mx = e.fmax(mx, s[i][t][c]);
    mx = quadReduce(mx, /*isMax=*/true);
    return e.fmax(rowMax[size_t(2 * i + h)], e.fmul(mx, scaleLog2));
  };
  SoftmaxUpdate update;
  Value anyMoved; // lazy: does a row of this thread move its max
  for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
    for (int64_t h = 0; h < 2; ++h) {
      const int64_t tiles = int64_t(s[i].size());
      Value &m = rowMax[2 * i + h];
      Value mNew = maxWithBlock(i, h);
      if (lazyRescale > 0) { // the row keeps its max unless the block's outgrows it
        Value moved = e.cmpf(CmpFPredicate::OGT, mNew, e.fadd(m, e.f32(lazyRescale)));
        mNew = e.select(moved, mNew, m);
        anyMoved = anyMoved ? arith::OrIOp::create(b, loc, anyMoved, moved).getResult() : moved;
      }
      // A row that has seen only masked keys keeps m = -inf; subtract 0 then so
      // exp2 gets -inf (giving 0) rather than NaN.
      Value mUse = e.select(e.cmpf(CmpFPredicate::OEQ, mNew, minusInf), zero, mNew);
      Value alpha = e.exp2Approx(arith::SubFOp::create(b, loc, m, mUse));
      Value negM = arith::NegFOp::create(b, loc, mUse);
      Value sum = zero;
      for (int64_t t = 0; t < tiles; ++t)
        for (int64_t c = 2 * h; c < 2 * h + 2; ++c) {
          Value p = e.exp2Approx(e.fma(s[i][t][c], scaleLog2, negM));
          s[i][t][c] = p;
          sum = e.fadd(sum, p);
        }
      rowSum[2 * i + h] = e.fma(rowSum[2 * i + h], alpha, sum);
      update.alpha.push_back(alpha);
      m = mNew;
    }
  if (anyMoved)
    update.rescaled = arith::ExtUIOp::create(b, loc, b.getI32Type(), anyMoved);
  return update;
}

void Generator::rescale(std::vector<std::vector<Fragment>> &o, const std::vector<Value> &alpha) {
  for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
    for (int64_t t = 0; t < v.nTilesO; ++t)
      for (int64_t c = 0; c < 4; ++c)
        o[i][t][c] = e.fmul(o[i][t][c], alpha[size_t(2 * i + c / 2)]);
}

// P as mma A fragments: the accumulator tiles 2kk and 2kk+1 of a 16-row tile
// are exactly the A fragment of k-step kk, so P never leaves registers.
std::vector<std::array<Value, 4>> Generator::packP(const std::vector<Fragment> &p) {
  std::vector<std::array<Value, 4>> pFrag;
  for (size_t kk = 0; 2 * kk + 1 < p.size(); ++kk) {
    const Fragment &lo = p[2 * kk], &hi = p[2 * kk + 1];
    pFrag.push_back({e.packPair(v.elementType, lo[0], lo[1]),
                     e.packPair(v.elementType, lo[2], lo[3]),
                     e.packPair(v.elementType, hi[0], hi[1]),
                     e.packPair(v.elementType, hi[2], hi[3])});
  }
  return pFrag;
}

std::vector<std::vector<std::array<Value, 4>>>
Generator::packTiles(const std::vector<std::vector<Fragment>> &p) {
  std::vector<std::vector<std::array<Value, 4>>> frags;
  for (const auto &tiles : p)
    frags.push_back(packP(tiles));
  return frags;
}

// C += P B with P in registers (A fragments per 16-row tile and k-step) and B
// the tile at `bTile` whose rows are the k dimension (`bPitch` bytes a row,
// read transposed by ldmatrix); C has nTilesOut columns of 8.
void Generator::warpGemmPB(const std::vector<std::vector<std::array<Value, 4>>> &pFrag,
                           Value bTile, int64_t bPitch, std::vector<std::vector<Fragment>> &c) {
  const int64_t kSteps = int64_t(pFrag[0].size());
  const int64_t nTilesOut = int64_t(c[0].size());
  // B (transposed): matrices (k 0-7,d) (k 8-15,d) (k 0-7,d+8) (k 8-15,d+8).
  Value bRow = e.add(e.andi(lane, e.i32(7)), e.mul(e.andi(e.shrui(lane, 3), e.i32(1)), e.i32(8)));
  Value bCol = e.mul(e.shrui(lane, 4), e.i32(16));
  Value bLane = e.add(e.add(e.mul(bRow, e.i32(bPitch)), bCol), bTile);
  for (int64_t kk = 0; kk < kSteps; ++kk)
    for (int64_t dd = 0; dd < (nTilesOut + 1) / 2; ++dd) {
      auto bFrag = e.ldmatrixX4(sharedAt(e.add(bLane, e.i32(kk * 16 * bPitch + dd * 32))), true);
      for (size_t i = 0; i < c.size(); ++i) {
        c[i][2 * dd] = e.mma16816(v.elementType, pFrag[i][kk], {bFrag[0], bFrag[1]}, c[i][2 * dd]);
        if (2 * dd + 1 < nTilesOut)
          c[i][2 * dd + 1] =
              e.mma16816(v.elementType, pFrag[i][kk], {bFrag[2], bFrag[3]}, c[i][2 * dd + 1]);
      }
    }
}

// O += P V.
void Generator::emitPV(const std::vector<std::vector<Fragment>> &p,
                       std::vector<std::vector<Fragment>> &o, Value slotOffset) {
  warpGemmPB(packTiles(p), e.add(slotOffset, e.i32(v.smem.queryBytes + v.smem.keyBytes)),
             v.smem.pitchV, o);
}

// O += P V on wgmma: P (this warp's 16 rows, the mma.sync A layout, which is
// also wgmma's register-A layout) times the slot's V tile read N-major from
// swizzled blocks; one m64n(d_v)k16 per 16 keys.
void Generator::emitPVWgmma(const std::vector<std::vector<Fragment>> &p,
                            std::vector<std::vector<Fragment>> &o, Value slotOffset) {
  std::vector<std::array<Value, 4>> pFrag = packP(p[0]);
  e.wgmmaFence();
  o = toFragments(e.wgmmaWaitFor(0, issuePVWgmma(pFrag, fromFragments(o), slotOffset)),
                  v.nTilesO);
}

std::vector<Value> Generator::issuePVWgmma(const std::vector<std::array<Value, 4>> &pFrag,
                                           std::vector<Value> acc, Value slotOffset) {
  return issueWgmmaPB(pFrag, std::move(acc),
                      e.add(slotOffset, e.i32(v.smem.queryBytes + v.smem.keyBytes)), v.n,
                      v.headDimV);
}

// C += P B on wgmma: one m64nNk16 per 16 rows of the B tile, read N-major
// from its swizzled blocks (`bRows` rows to a block, the leading byte offset).
std::vector<Value> Generator::issueWgmmaPB(const std::vector<std::array<Value, 4>> &pFrag,
                                           std::vector<Value> acc, Value bTile, int64_t bRows,
                                           int64_t n) {
  Value bRowsStart = e.add(smemBase32, bTile);
  for (size_t kk = 0; kk < pFrag.size(); ++kk) {
    Value descB = e.wgmmaDescriptorSwizzled128MN(e.add(bRowsStart, e.i32(int64_t(kk) * 16 * 128)),
                                                 bRows * 128);
    acc = e.wgmmaRS(v.elementType, n, pFrag[kk], descB, acc);
  }
  e.wgmmaCommit();
  return acc;
}

void Generator::emitEpilogue(const std::vector<std::vector<Fragment>> &o,
                             const std::vector<Value> &rowMax, const std::vector<Value> &rowSum) {
  Value zero = e.f32(0.0);
  for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
    for (int64_t h = 0; h < 2; ++h) {
      Value l = quadReduce(rowSum[2 * i + h], /*isMax=*/false);
      Value seen = e.cmpf(CmpFPredicate::OGT, l, zero);
      Value inv = e.select(seen, e.reciprocal(l), zero);
      if (v.dropout)
        inv = e.fmul(inv, dropoutKeepScale());
      Value row = rowOf(i, h);
      Value stored = e.cmpi(CmpIPredicate::slt, row, queryRowsTotal());
      if (v.packGQA) // the rows past the tile's whole queries are the next tile's
        stored = arith::AndIOp::create(
            b, loc, stored,
            e.cmpi(CmpIPredicate::slt, row, e.add(firstQueryRow, tileRows())));
      if (v.tmaStore) // every row: the tensor map clips those past seq_q
        stageOutputRow(o, i, h, inv);
      emitIf(stored, [&] {
        if (!v.tmaStore) {
          Value rowOffset = e.add(oBase, queryRowOffset(abi::kOStride0, row));
          Value colOffset = e.toI64(e.mul(quadCol, e.i32(2)));
          for (int64_t t = 0; t < v.nTilesO; ++t) {
            Value packed = e.packPair(v.elementType, e.fmul(o[i][t][2 * h], inv),
                                      e.fmul(o[i][t][2 * h + 1], inv));
            Value off = e.add(rowOffset, e.add(colOffset, e.i64(t * 8)));
            e.store(packed, e.globalElementPtr(arg(abi::kO), off, v.elementType), 4);
          }
        }
        if (v.hasLse)
          emitIf(e.cmpi(CmpIPredicate::eq, quadCol, e.i32(0)), [&] {
            // lse = ln(sum) + max in natural-log units; -inf for rows that saw nothing.
            Value lse = e.fmul(e.fadd(rowMax[2 * i + h], e.log2Approx(l)), e.f32(M_LN2));
            lse = e.select(seen, lse, e.negInf());
            Value at = rowStatsOffset(headOfRow(row), positionOfRow(row));
            e.store(lse, e.globalElementPtr(arg(abi::kLse), at, b.getF32Type()), 4);
          });
      });
    }
  if (v.tmaStore)
    storeStagedOutput();
}

void Generator::emit() {
  emitSetup();
  if (v.warpSpecialized) // its tile loop skips tiles past their sequence itself
    emitWarpSpecializedMainLoop();
  else
    emitInsideSequence(firstQueryRow, seqQ, [&] { emitSynchronousMainLoop(); });
  gpu::ReturnOp::create(b, loc);
}

// Values every main loop uses: aligned shared-memory base, thread geometry,
// and (one tile a block) this block's (query block, head, batch).
void Generator::emitSetup() {
  emitThreadGeometry();
  if (v.warpSpecialized)
    return; // persistent: the tile loop sets the block coordinates
  // Reverse block order: for causal masks the last query blocks do the most work.
  GridTile tile = gridTile();
  emitTileCoordinates(e.sub(e.sub(e.gridDim(0), e.i32(1)), tile.rank), tile.head, tile.batch);
}

void Generator::emitThreadGeometry() {
  Block &entry = kernel.getBody().front();
  b.setInsertionPointToStart(&entry);
  auto smemPtrType = LLVM::LLVMPointerType::get(b.getContext(), 3);
  smemBase = LLVM::AddressOfOp::create(b, loc, smemPtrType, smemSymbol);
  smemBase32 = e.sharedAddress32(smemBase);
  if (v.smem.alignment > 16) {
    // Swizzled tiles need 1024-byte-aligned bases; the window is 16-aligned.
    Value aligned = e.andi(e.add(smemBase32, e.i32(v.smem.alignment - 1)),
                           e.i32(~(v.smem.alignment - 1)));
    smemBase = e.sharedPtr(smemBase, e.sub(aligned, smemBase32));
    smemBase32 = aligned;
  }
  tid = e.threadIdX();
  lane = e.andi(tid, e.i32(31));
  warp = e.shrui(tid, 5);
  quadRow = e.shrui(lane, 2);
  quadCol = e.andi(lane, e.i32(3));
  bool backward = isBackwardKind(v.kind);
  seqQ = arg(backward ? int(abi::bwd::kSeqQ) : int(abi::kSeqQ));
  seqK = arg(backward ? int(abi::bwd::kSeqK) : int(abi::kSeqK));
}

// The Q/K/V/O offsets, first query row and key-block count of one tile.
// Packed GQA tiles: `headIndex` is the key/value head, `head` its group's first.
void Generator::emitTileCoordinates(Value queryBlock, Value headIndex, Value batchIndex) {
  batch = batchIndex;
  headK = v.packGQA ? headIndex : e.divui(headIndex, groupSize());
  head = v.packGQA ? e.mul(headIndex, groupSize()) : headIndex;
  emitSequenceBounds();
  qBase = tensorBase(abi::kQStride0, head, /*querySide=*/true);
  kBase = tensorBase(abi::kKStride0, headK, /*querySide=*/false);
  vBase = tensorBase(abi::kVStride0, headK, /*querySide=*/false);
  oBase = tensorBase(abi::kOStride0, head, /*querySide=*/true);
  firstQueryRow = e.mul(queryBlock, tileRows());
  firstQueryPosition = positionOfRow(firstQueryRow);
  lastQueryPosition = positionOfRow(e.sub(e.add(firstQueryRow, tileRows()), e.i32(1)));
  // The key blocks some row of this query block sees.
  emitKeyBlockRange(firstQueryPosition, lastQueryPosition);
  if (v.alibi)
    alibiCoef = alibiCoefficient(head);
}

// Every warp loads (cp.async ring) and computes; block barriers between steps.
void Generator::emitSynchronousMainLoop() {
  // Prologue: Q, then the first stages-1 K/V blocks, one commit group each.
  emitTileLoad(0, Value(), v.m, v.smem.pitchQK, v.smem.paddedHeadDimQK, v.headDimQK, arg(abi::kQ),
               qBase, [&](Value row) { return queryRowOffset(abi::kQStride0, row); },
               firstQueryRow, queryRowsTotal(), v.qkWgmma);
  e.cpAsyncCommit();
  for (int64_t s = 0; s + 1 < v.stages; ++s) {
    Value block = e.i32(s);
    emitIf(e.cmpi(CmpIPredicate::slt, block, numBlocks), [&] { emitKeyValueLoad(block); });
    e.cpAsyncCommit();
  }

  // Loop-carried state: O fragments, per-row max and partial sum.
  Value zero = e.f32(0.0);
  std::vector<std::vector<Fragment>> o(v.mTilesPerWarp,
                                       std::vector<Fragment>(v.nTilesO, {zero, zero, zero, zero}));
  std::vector<Value> rowMax(2 * v.mTilesPerWarp, e.negInf());
  std::vector<Value> rowSum(2 * v.mTilesPerWarp, zero);
  auto eachCarried = [&](auto &&f) {
    eachValue(o, f);
    for (auto *stats : {&rowMax, &rowSum})
      for (Value &x : *stats)
        f(x);
  };
  auto flatten = [&] { return flattenCarried(eachCarried); };
  auto unflatten = [&](ValueRange flat) { unflattenCarried(eachCarried, flat); };

  scf::ForOp loop;
  {
    OpBuilder::InsertionGuard guard(b);
    loop = openLoop(b, loc, e.i32(0), numBlocks, e.i32(1), flatten());
    unflatten(loop.getRegionIterArgs());
    Value j = loop.getInductionVar();

    // Prefetch block j + stages - 1 into the slot freed at the end of the last step.
    Value ahead = e.add(j, e.i32(v.stages - 1));
    if (v.stages == 1)
      emitKeyValueLoad(ahead);
    else
      emitIf(e.cmpi(CmpIPredicate::slt, ahead, numBlocks), [&] { emitKeyValueLoad(ahead); });
    e.cpAsyncCommit();
    e.cpAsyncWait(v.stages - 1); // block j (and Q) have landed
    if (v.qkWgmma || v.pvWgmma)
      e.fenceProxyAsyncShared(); // cp.async wrote them; wgmma reads through the async proxy
    e.barrier();

    Value slot = v.stages == 1 ? e.i32(0) : e.remui(j, e.i32(v.stages));
    Value slotOffset = e.mul(slot, e.i32(v.smem.stageBytes));
    auto s = v.qkWgmma ? emitScoresWgmma(slotOffset) : emitScores(slotOffset);
    rescale(o, emitProbabilities(s, keyBlockStart(j), rowMax, rowSum).alpha);
    if (v.pvWgmma)
      emitPVWgmma(s, o, slotOffset);
    else
      emitPV(s, o, slotOffset);
    e.barrier(); // every warp is done with this slot before it is refilled
    scf::YieldOp::create(b, loc, flatten());
  }
  unflatten(loop.getResults());
  e.cpAsyncWait(0);
  emitEpilogue(o, rowMax, rowSum);
}

} // namespace detail

LogicalResult generateAttentionKernel(flash::AttentionOp op, gpu::GPUFuncOp kernel,
                                      StringRef sharedMemorySymbol) {
  using namespace detail;
  flash::TileAttr tile = op.getTile();
  Variant v = variantOf(op);
  if (op.getDeriveBlockMask()) { // writes the lists, walks ranges: no block mask to read
    v.kind = KernelKind::ForwardBlockLists;
    v.blockMask = false;
    OpBuilder b(kernel.getContext());
    Generator(b, op.getLoc(), v, kernel, sharedMemorySymbol).emitBlockLists();
    return success();
  }
  v.hasLse = static_cast<bool>(op.getLse());
  v.mTilesPerWarp = v.m / (16 * v.warps);
  v.nTilesS = v.n / 8;
  v.nTilesO = v.headDimV / 8;
  v.qkWgmma = tile.getQkWgmma();
  v.pvWgmma = tile.getPvWgmma();
  v.warpSpecialized = tile.getWarpSpecialized();
  v.persistent = tile.getPersistent();
  v.tmaStore = tile.getTmaStore();
  v.packGQA = op.getPackGqa();
  v.smem = op.getSharedMemoryLayout();
  v.kStepsQK = v.smem.paddedHeadDimQK / 16;

  OpBuilder b(kernel.getContext());
  Generator(b, op.getLoc(), v, kernel, sharedMemorySymbol).emit();
  return success();
}

} // namespace flashjit

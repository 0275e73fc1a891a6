//===- BackwardKernelGenerator.cpp - the backward kernels -----------------===//
//
// FlashAttention-2's backward without atomics: two kernels (three above
// d = 128), each recomputing P = exp(scale · S − LSE) block by block from the
// forward's LSE, on the forward's GEMMs: warp-level mma.sync on padded rows,
// or (the Hopper switches, sm_90a) wgmma on swizzled tiles, one warpgroup per
// 64 owned rows, with the two products of a step that do not depend on each
// other in flight together.
//
//   dQ kernel (query blocks outer, like the forward): the warps own the query
//     rows; Q and dO stay in shared memory, K/V stream through the cp.async
//     ring. Per key block: S = Q Kᵀ, P, dP = dO Vᵀ, dS = P ∘ (dP − Δ),
//     dQ += dS K. It first writes Δ = rowsum(dO ∘ O) for its rows.
//   With dropout, dP (and P for dV) is multiplied by keep / (1 − p) of
//   the forward's mask (Dropout.cpp), drawn again from the same counters.
//   dK/dV kernel (key blocks outer): the warps own the key rows; K and V stay,
//     Q and dO of every query head of the GQA group stream. Per query block:
//     Sᵀ = K Qᵀ, Pᵀ, dV += Pᵀ dO, dPᵀ = V dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − Δ),
//     dK += dSᵀ Q. The transposed products keep every operand in the layout
//     the forward's GEMMs read (P from the accumulators, B from ldmatrix).
//
// With a mask region, a step whose block the region keeps nothing of (by
// interval evaluation, MaskIntervals.cpp) is neither loaded nor computed,
// wherever it lies in the range (the dQ kernel's key range is also trimmed
// at both ends, as the forward's).
//
// Every gradient element is summed by one thread in a fixed order, so the
// result is bit-identical from run to run; the price against the atomic dQ
// of FlashAttention-2 is recomputing S and dP in the dQ kernel.
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
namespace {


class BackwardGenerator : public Generator {
public:
  using Generator::Generator;
  void emitBackward();

private:
  bool computesDK() const {
    return v.kind == KernelKind::BackwardDKV || v.kind == KernelKind::BackwardDK;
  }
  bool computesDV() const {
    return v.kind == KernelKind::BackwardDKV || v.kind == KernelKind::BackwardDV;
  }
  bool wgmma() const { return v.qkWgmma; } // the verifier makes both switches go together
  int64_t ownedRows() const { return v.kind == KernelKind::BackwardDQ ? v.m : v.n; }
  int64_t streamedRows() const { return v.kind == KernelKind::BackwardDQ ? v.n : v.m; }
  /// Issues C = A Bᵀ (wgmma, in flight until waitFor) or computes it
  /// (mma.sync): the warps' owned rows of the resident tile at `aTile` (null:
  /// 0) times the streamed tile at `bTile`, kSteps of 16 along the head dim.
  std::vector<Value> issueABt(Value aTile, int64_t aPitch, Value bTile, int64_t bPitch,
                              int64_t kSteps, bool fence = true) {
    if (wgmma())
      return issueWgmmaABt(aTile, ownedRows(), bTile, streamedRows(), kSteps, fence);
    Value warpRow = e.mul(warp, e.i32(16 * v.mTilesPerWarp));
    Tiles c = warpGemmABt(aTile, warpRow, aPitch, bTile, bPitch, v.mTilesPerWarp,
                          streamedRows() / 8, kSteps);
    return fromFragments(c);
  }
  /// Issues C += P B (wgmma: fence, then in flight until waitFor) or
  /// computes it (mma.sync): P in registers, B the streamed tile at `bTile`
  /// (its rows the k dimension).
  std::vector<Value> issuePB(const Tiles &p, Value bTile, int64_t bPitch, const Tiles &c) {
    if (wgmma()) {
      e.wgmmaFence(); // P and C were written by ordinary instructions
      return issueWgmmaPB(packP(p[0]), fromFragments(c), bTile, streamedRows(),
                          int64_t(c[0].size()) * 8);
    }
    Tiles out = c;
    warpGemmPB(packTiles(p), bTile, bPitch, out);
    return fromFragments(out);
  }
  /// An issued product's `columnTiles`-wide tiles, once at most `pending`
  /// later wgmma groups may still run (mma.sync: already there).
  Tiles waitFor(int64_t pending, const std::vector<Value> &issued, int64_t columnTiles) {
    return toFragments(wgmma() ? e.wgmmaWaitFor(pending, issued) : issued, columnTiles);
  }
  Tiles zeros(int64_t rowTiles, int64_t colTiles) {
    Value z = e.f32(0.0);
    return Tiles(rowTiles, std::vector<Fragment>(colTiles, {z, z, z, z}));
  }
  /// Loads the `rows` x head dim tile of a streamed or resident operand.
  void loadTile(int64_t dstOffset, Value slotOffset, int64_t rows, bool valueWide, int ptrArg,
                int strideArg, Value base, Value firstRow, Value rowLimit) {
    emitTileLoad(dstOffset, slotOffset, rows, valueWide ? v.smem.pitchV : v.smem.pitchQK,
                 valueWide ? v.smem.paddedHeadDimV : v.smem.paddedHeadDimQK,
                 valueWide ? v.headDimV : v.headDimQK, arg(ptrArg), base, arg(strideArg + 1),
                 firstRow, rowLimit, /*swizzled=*/wgmma());
  }
  /// exp2(s · scale·log2e − lse·log2e) in place; `negLse(i, h, t, c)` gives
  /// −lse·log2e of element (i, t, c) (−inf where the row or column is void).
  template <typename NegLse> void exponentiate(Tiles &s, NegLse &&negLse) {
    Value scaleLog2 = softmaxScaleLog2();
    for (size_t i = 0; i < s.size(); ++i)
      for (size_t t = 0; t < s[i].size(); ++t)
        for (int64_t c = 0; c < 4; ++c)
          s[i][t][c] = e.exp2Approx(e.fma(s[i][t][c], scaleLog2, negLse(i, t, c)));
  }
  /// dS = P ∘ (dP − Δ), into dP, times the modifiers' `slope` (softcap's
  /// tanh, the score region's derivative) where emitScoreModifiers gave one.
  template <typename Delta>
  void gradScores(const Tiles &p, Tiles &dP, Delta &&delta, const Tiles &slope) {
    for (size_t i = 0; i < p.size(); ++i)
      for (size_t t = 0; t < p[i].size(); ++t)
        for (int64_t c = 0; c < 4; ++c) {
          Value ds = e.fmul(p[i][t][c], arith::SubFOp::create(b, loc, dP[i][t][c],
                                                              delta(i, t, c)));
          if (!slope.empty())
            ds = e.fmul(ds, slope[i][t][c]);
          dP[i][t][c] = ds;
        }
  }
  /// −lse·log2e for a row: −inf for rows past seq_q or that saw no key
  /// (lse = −inf), so their P is 0.
  Value loadRowStat(int ptrArg, Value headIndex, Value row, Value &valid);
  Value negLseLog2(Value headIndex, Value row);
  Value deltaOf(Value headIndex, Value row);
  /// Stores `c` · scale (rows `rowOf(i, h)` below `rowLimit`) in the element type.
  template <typename RowOf>
  void storeRows(const Tiles &c, RowOf &&rowOfFragment, Value rowLimit, int ptrArg, int strideArg,
                 Value base, Value scale);

  /// i1: whether the mask region may keep any pair of queries [q0, q0 +
  /// rows) and keys [k0, k0 + columns) of query head `headIndex`.
  Value blockMayKeep(Value headIndex, Value q0, int64_t rows, Value k0, int64_t columns) {
    return userMaskOverBlock(headIndex, q0, e.add(q0, e.i32(rows - 1)), k0,
                             e.add(k0, e.i32(columns - 1)))
        .mayKeep;
  }
  /// With a mask region, opens `if (mayKeep)` around the rest of a step:
  /// blocks the region keeps nothing of are skipped wherever they lie (the
  /// key range is trimmed only at its ends). The accumulators `each` visits
  /// pass through the else branch; closeSkippable yields and reads them back.
  template <typename Each> scf::IfOp openSkippable(Value mayKeep, Each &&each) {
    if (!v.maskMod)
      return nullptr;
    SmallVector<Value> unchanged = flattenCarried(each);
    auto ifOp = scf::IfOp::create(b, loc, ValueRange(unchanged).getTypes(), mayKeep,
                                  /*withElseRegion=*/true);
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, unchanged);
    b.setInsertionPointToStart(ifOp.thenBlock());
    return ifOp;
  }
  template <typename Each> void closeSkippable(scf::IfOp ifOp, Each &&each) {
    if (!ifOp)
      return;
    scf::YieldOp::create(b, loc, flattenCarried(each));
    b.setInsertionPointAfter(ifOp);
    unflattenCarried(each, ifOp.getResults());
  }

  void emitQueryBlockKernel();
  void emitQueryBlockMainLoop();
  /// Δ = rowsum(dO ∘ O) of this thread's fragment rows (0 past seq_q); also
  /// written to `delta` for the key-block kernels.
  std::vector<Value> emitDelta(Value headIndex);
  void emitKeyBlockKernel();
  void emitKeyBlockMainLoop(Value firstKey);

  Value doBase, dqBase, dkBase, dvBase;
};

// Row `row`'s entry of the fp32 row statistic `ptrArg`
// (lse or delta); `valid` says whether the row exists (else row 0 is read).
Value BackwardGenerator::loadRowStat(int ptrArg, Value headIndex, Value row, Value &valid) {
  valid = e.cmpi(CmpIPredicate::slt, row, seqQ);
  Value safeRow = e.select(valid, row, e.i32(0));
  return e.loadGlobalF32(
      e.globalElementPtr(arg(ptrArg), rowStatsOffset(headIndex, safeRow), b.getF32Type()));
}

Value BackwardGenerator::negLseLog2(Value headIndex, Value row) {
  Value valid;
  Value lse = loadRowStat(abi::bwd::kLse, headIndex, row, valid);
  Value minusInf = e.negInf();
  Value neg = arith::NegFOp::create(b, loc, e.fmul(lse, e.f32(M_LOG2E)));
  Value seen = arith::AndIOp::create(b, loc, valid, e.cmpf(CmpFPredicate::ONE, lse, minusInf));
  return e.select(seen, neg, minusInf);
}

Value BackwardGenerator::deltaOf(Value headIndex, Value row) {
  Value valid;
  Value d = loadRowStat(abi::bwd::kDelta, headIndex, row, valid);
  return e.select(valid, d, e.f32(0.0));
}

template <typename RowOf>
void BackwardGenerator::storeRows(const Tiles &c, RowOf &&rowOfFragment, Value rowLimit,
                                  int ptrArg, int strideArg, Value base, Value scale) {
  for (size_t i = 0; i < c.size(); ++i)
    for (int64_t h = 0; h < 2; ++h) {
      Value row = rowOfFragment(int64_t(i), h);
      emitIf(e.cmpi(CmpIPredicate::slt, row, rowLimit), [&] {
        Value rowOffset = e.add(base, e.mul(e.toI64(row), arg(strideArg + 1)));
        Value colOffset = e.toI64(e.mul(quadCol, e.i32(2)));
        for (size_t t = 0; t < c[i].size(); ++t) {
          Value lo = c[i][t][2 * h], hi = c[i][t][2 * h + 1];
          if (scale) {
            lo = e.fmul(lo, scale);
            hi = e.fmul(hi, scale);
          }
          Value off = e.add(rowOffset, e.add(colOffset, e.i64(int64_t(t) * 8)));
          e.storeGlobal(e.packPair(v.elementType, lo, hi),
                        e.globalElementPtr(arg(ptrArg), off, v.elementType), 4);
        }
      });
    }
}

void BackwardGenerator::emitBackward() {
  emitThreadGeometry();
  if (v.kind == KernelKind::BackwardDQ)
    emitQueryBlockKernel();
  else
    emitKeyBlockKernel();
  gpu::ReturnOp::create(b, loc);
}

// Each thread sums O ∘ dO over the columns of its accumulator fragments
// (read straight from global memory: the prologue is O(m · d) against the
// main loop's O(m · seq_k · d)), then a quad reduction gives the row.
std::vector<Value> BackwardGenerator::emitDelta(Value headIndex) {
  std::vector<Value> rows;
  for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
    for (int64_t h = 0; h < 2; ++h) {
      Value row = rowOf(i, h);
      Value valid = e.cmpi(CmpIPredicate::slt, row, seqQ);
      Value safeRow = e.select(valid, row, e.i32(0));
      Value oRow = e.add(oBase, e.mul(e.toI64(safeRow), arg(abi::bwd::kOStride0 + 1)));
      Value dORow = e.add(doBase, e.mul(e.toI64(safeRow), arg(abi::bwd::kDOStride0 + 1)));
      Value col = e.toI64(e.mul(quadCol, e.i32(2)));
      Value sum = e.f32(0.0);
      for (int64_t t = 0; t < v.headDimV / 8; ++t) {
        Value off = e.add(col, e.i64(t * 8));
        auto o = e.loadGlobalPair(
            v.elementType, e.globalElementPtr(arg(abi::bwd::kO), e.add(oRow, off), v.elementType));
        auto dO = e.loadGlobalPair(v.elementType, e.globalElementPtr(arg(abi::bwd::kDO),
                                                                     e.add(dORow, off),
                                                                     v.elementType));
        sum = e.fma(o[0], dO[0], e.fma(o[1], dO[1], sum));
      }
      sum = quadReduce(sum, /*isMax=*/false);
      emitIf(arith::AndIOp::create(b, loc, valid, e.cmpi(CmpIPredicate::eq, quadCol, e.i32(0))),
             [&] {
               e.storeGlobal(sum, e.globalElementPtr(arg(abi::bwd::kDelta),
                                                     rowStatsOffset(headIndex, row),
                                                     b.getF32Type()),
                             4);
             });
      rows.push_back(e.select(valid, sum, e.f32(0.0)));
    }
  return rows;
}

void BackwardGenerator::emitQueryBlockKernel() {
  using namespace abi::bwd;
  // Grid: x = query blocks (last first: causal rows near the end see the most keys).
  Value queryBlock = e.sub(e.sub(e.gridDim(0), e.i32(1)), e.blockId(0));
  head = e.blockId(1);
  batch = e.blockId(2);
  headK = e.divui(head, arg(kGroupSize));
  emitSequenceBounds();
  firstQueryRow = e.mul(queryBlock, e.i32(v.m));
  emitInsideSequence(firstQueryRow, seqQ, [&] { emitQueryBlockMainLoop(); });
}

void BackwardGenerator::emitQueryBlockMainLoop() {
  using namespace abi::bwd;
  qBase = tensorBase(kQStride0, head, /*querySide=*/true);
  kBase = tensorBase(kKStride0, headK, /*querySide=*/false);
  vBase = tensorBase(kVStride0, headK, /*querySide=*/false);
  oBase = tensorBase(kOStride0, head, /*querySide=*/true);
  doBase = tensorBase(kDOStride0, head, /*querySide=*/true);
  dqBase = tensorBase(kDQStride0, head, /*querySide=*/true);
  emitKeyBlockRange(firstQueryRow, e.add(firstQueryRow, e.i32(v.m - 1)));
  if (v.alibi)
    alibiCoef = alibiCoefficient(head);

  // Resident Q and dO, then the first stages-1 K/V blocks.
  loadTile(0, Value(), v.m, false, kQ, kQStride0, qBase, firstQueryRow, seqQ);
  loadTile(v.smem.residentSecondOffset, Value(), v.m, true, kDO, kDOStride0, doBase,
           firstQueryRow, seqQ);
  e.cpAsyncCommit();
  auto loadKeyValue = [&](Value block) {
    Value slotOffset = e.mul(e.remui(block, e.i32(v.stages)), e.i32(v.smem.stageBytes));
    Value firstKey = keyBlockStart(block);
    loadTile(v.smem.queryBytes, slotOffset, v.n, false, kK, kKStride0, kBase, firstKey, seqK);
    loadTile(v.smem.queryBytes + v.smem.keyBytes, slotOffset, v.n, true, kV, kVStride0, vBase,
             firstKey, seqK);
  };
  auto blockNeeded = [&](Value block) -> Value { // in the range, not empty under the mask region
    Value inside = e.cmpi(CmpIPredicate::slt, block, numBlocks);
    if (!v.maskMod)
      return inside;
    return arith::AndIOp::create(b, loc, inside,
                                 blockMayKeep(head, firstQueryRow, v.m, keyBlockStart(block), v.n));
  };
  for (int64_t s = 0; s + 1 < v.stages; ++s) { // one commit group per block, as the loop waits
    emitIf(blockNeeded(e.i32(s)), [&] { loadKeyValue(e.i32(s)); });
    e.cpAsyncCommit();
  }

  // Per fragment row: Δ and −lse·log2e.
  std::vector<Value> delta = emitDelta(head), negLse;
  for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
    for (int64_t h = 0; h < 2; ++h)
      negLse.push_back(negLseLog2(head, rowOf(i, h)));

  Tiles dQ = zeros(v.mTilesPerWarp, v.headDimQK / 8);
  auto eachCarried = [&](auto &&f) { eachValue(dQ, f); };
  scf::ForOp loop;
  {
    OpBuilder::InsertionGuard guard(b);
    loop = openLoop(b, loc, e.i32(0), numBlocks, e.i32(1), flattenCarried(eachCarried));
    unflattenCarried(eachCarried, loop.getRegionIterArgs());
    Value j = loop.getInductionVar();
    Value ahead = e.add(j, e.i32(v.stages - 1));
    emitIf(blockNeeded(ahead), [&] { loadKeyValue(ahead); });
    e.cpAsyncCommit();
    e.cpAsyncWait(v.stages - 1);
    if (wgmma())
      e.fenceProxyAsyncShared(); // cp.async wrote the tiles; wgmma reads through the async proxy
    e.barrier();

    scf::IfOp skippable = openSkippable(blockNeeded(j), eachCarried);
    Value slotOffset = e.mul(e.remui(j, e.i32(v.stages)), e.i32(v.smem.stageBytes));
    Value kTile = e.add(slotOffset, e.i32(v.smem.queryBytes));
    Value vTile = e.add(slotOffset, e.i32(v.smem.queryBytes + v.smem.keyBytes));
    // S = Q Kᵀ, and dP = dO Vᵀ: on wgmma both in flight at once, P computed
    // while dP runs.
    auto issueDP = [&] { // on wgmma right after S, under S's fence
      return issueABt(e.i32(v.smem.residentSecondOffset), v.smem.pitchV, vTile, v.smem.pitchV,
                      v.kStepsV, /*fence=*/!wgmma());
    };
    std::vector<Value> sIssued = issueABt(Value(), v.smem.pitchQK, kTile, v.smem.pitchQK,
                                          v.kStepsQK);
    std::vector<Value> dPIssued = wgmma() ? issueDP() : std::vector<Value>();
    Tiles p = waitFor(wgmma() ? 1 : 0, sIssued, v.nTilesS);
    ScorePlacement at = queryRowPlacement(keyBlockStart(j));
    Tiles slope;
    emitScoreModifiers(p, at, &slope);
    emitPlacedMask(p, at);
    exponentiate(p, [&](size_t i, size_t, int64_t c) { return negLse[2 * i + c / 2]; });
    if (!wgmma())
      dPIssued = issueDP();
    Tiles dS = waitFor(0, dPIssued, v.nTilesS);
    if (v.dropout) // dP of the dropped P: dO Vᵀ · keep / (1 − p)
      applyDropout(dS, at, dropoutKeepScale());
    gradScores(p, dS, [&](size_t i, size_t, int64_t c) { return delta[2 * i + c / 2]; },
               slope);
    dQ = waitFor(0, issuePB(dS, kTile, v.smem.pitchQK, dQ), v.headDimQK / 8);
    closeSkippable(skippable, eachCarried);
    e.barrier(); // every warp is done with this slot before it is refilled
    scf::YieldOp::create(b, loc, flattenCarried(eachCarried));
  }
  unflattenCarried(eachCarried, loop.getResults());
  e.cpAsyncWait(0);
  storeRows(dQ, [&](int64_t i, int64_t h) { return rowOf(i, h); }, seqQ, kDQ, kDQStride0, dqBase,
            arg(kScale));
}

void BackwardGenerator::emitKeyBlockKernel() {
  using namespace abi::bwd;
  // Grid: x = key blocks, y = key/value heads, z = batch.
  Value keyBlock = e.blockId(0);
  headK = e.blockId(1);
  batch = e.blockId(2);
  emitSequenceBounds();
  Value firstKey = e.mul(keyBlock, e.i32(v.n));
  emitInsideSequence(firstKey, seqK, [&] { emitKeyBlockMainLoop(firstKey); });
}

void BackwardGenerator::emitKeyBlockMainLoop(Value firstKey) {
  using namespace abi::bwd;
  Value group = arg(kGroupSize);
  kBase = tensorBase(kKStride0, headK, /*querySide=*/false);
  vBase = tensorBase(kVStride0, headK, /*querySide=*/false);
  dkBase = tensorBase(kDKStride0, headK, /*querySide=*/false);
  dvBase = tensorBase(kDVStride0, headK, /*querySide=*/false);

  // Query blocks that see any of these keys: from the one holding the first
  // query that sees the first key to the one holding the last query that
  // sees the last key (visible queries grow with the key).
  Value lastKey = e.add(firstKey, e.i32(v.n - 1));
  Value queryBlocks = e.ceilDiv(e.maxsi(visibleColumns(lastKey, /*transposed=*/true).hi, e.i32(0)),
                                v.m);
  Value firstQueryBlock = e.i32(0);
  if (Value lo = visibleColumns(firstKey, /*transposed=*/true).lo)
    firstQueryBlock = e.divui(e.maxsi(lo, e.i32(0)), e.i32(v.m));
  Value blocksPerHead = e.maxsi(e.sub(queryBlocks, firstQueryBlock), e.i32(0));
  Value steps = e.mul(group, blocksPerHead);
  // Step t: query head headK * group + t / blocksPerHead, its query block
  // firstQueryBlock + t % blocksPerHead (only evaluated when steps > 0).
  auto headOf = [&](Value t) {
    return e.add(e.mul(headK, group), e.divui(t, blocksPerHead));
  };
  auto firstQueryOf = [&](Value t) {
    return e.mul(e.add(firstQueryBlock, e.remui(t, blocksPerHead)), e.i32(v.m));
  };

  loadTile(0, Value(), v.n, false, kK, kKStride0, kBase, firstKey, seqK);
  loadTile(v.smem.residentSecondOffset, Value(), v.n, true, kV, kVStride0, vBase, firstKey, seqK);
  e.cpAsyncCommit();
  auto loadQueryStep = [&](Value t) {
    Value slotOffset = e.mul(e.remui(t, e.i32(v.stages)), e.i32(v.smem.stageBytes));
    Value h = headOf(t), firstQuery = firstQueryOf(t);
    loadTile(v.smem.queryBytes, slotOffset, v.m, false, kQ, kQStride0,
             tensorBase(kQStride0, h, /*querySide=*/true), firstQuery, seqQ);
    loadTile(v.smem.queryBytes + v.smem.keyBytes, slotOffset, v.m, true, kDO, kDOStride0,
             tensorBase(kDOStride0, h, /*querySide=*/true), firstQuery, seqQ);
  };
  auto stepNeeded = [&](Value t) -> Value { // in the range, not empty under the mask region
    Value inside = e.cmpi(CmpIPredicate::slt, t, steps);
    if (!v.maskMod)
      return inside;
    return arith::AndIOp::create(b, loc, inside,
                                 blockMayKeep(headOf(t), firstQueryOf(t), v.m, firstKey, v.n));
  };
  for (int64_t s = 0; s + 1 < v.stages; ++s) { // one commit group per step, as the loop waits
    emitIf(stepNeeded(e.i32(s)), [&] { loadQueryStep(e.i32(s)); });
    e.cpAsyncCommit();
  }

  auto keyOf = [&](int64_t i, int64_t h) { // the key of this thread's fragment row (i, h)
    return e.add(firstKey, e.add(e.mul(warp, e.i32(16 * v.mTilesPerWarp)),
                                 e.add(quadRow, e.i32(i * 16 + h * 8))));
  };
  Tiles dK = zeros(computesDK() ? v.mTilesPerWarp : 0, v.headDimQK / 8);
  Tiles dV = zeros(computesDV() ? v.mTilesPerWarp : 0, v.headDimV / 8);
  auto eachCarried = [&](auto &&f) {
    eachValue(dK, f);
    eachValue(dV, f);
  };
  scf::ForOp loop;
  {
    OpBuilder::InsertionGuard guard(b);
    loop = openLoop(b, loc, e.i32(0), steps, e.i32(1), flattenCarried(eachCarried));
    unflattenCarried(eachCarried, loop.getRegionIterArgs());
    Value t = loop.getInductionVar();
    Value ahead = e.add(t, e.i32(v.stages - 1));
    emitIf(stepNeeded(ahead), [&] { loadQueryStep(ahead); });
    e.cpAsyncCommit();

    // This step's query head and rows; −lse·log2e and Δ per accumulator
    // column (query), loaded while the tiles land.
    Value h = headOf(t), firstQuery = firstQueryOf(t);
    Value colBase = e.add(firstQuery, e.mul(quadCol, e.i32(2)));
    std::vector<Value> negLse, delta; // index 2 t + (c & 1)
    for (int64_t col = 0; col < v.nTilesS; ++col)
      for (int64_t c = 0; c < 2; ++c) {
        Value query = e.add(colBase, e.i32(col * 8 + c));
        negLse.push_back(negLseLog2(h, query));
        if (computesDK())
          delta.push_back(deltaOf(h, query));
      }
    e.cpAsyncWait(v.stages - 1);
    if (wgmma())
      e.fenceProxyAsyncShared(); // cp.async wrote the tiles; wgmma reads through the async proxy
    e.barrier();

    scf::IfOp skippable = openSkippable(stepNeeded(t), eachCarried);
    Value slotOffset = e.mul(e.remui(t, e.i32(v.stages)), e.i32(v.smem.stageBytes));
    Value qTile = e.add(slotOffset, e.i32(v.smem.queryBytes));
    Value dOTile = e.add(slotOffset, e.i32(v.smem.queryBytes + v.smem.keyBytes));
    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (wgmma: in flight at once), then dV += Pᵀ dO
    // (wgmma: in flight while dSᵀ is formed) and dK += dSᵀ Q.
    auto issueDP = [&](bool fence) {
      return issueABt(e.i32(v.smem.residentSecondOffset), v.smem.pitchV, dOTile, v.smem.pitchV,
                      v.kStepsV, fence);
    };
    const bool dPEarly = wgmma() && computesDK();
    std::vector<Value> sIssued = issueABt(Value(), v.smem.pitchQK, qTile, v.smem.pitchQK,
                                          v.kStepsQK);
    std::vector<Value> dPIssued = dPEarly ? issueDP(/*fence=*/false) : std::vector<Value>();
    Tiles p = waitFor(dPEarly ? 1 : 0, sIssued, v.nTilesS);
    ScorePlacement at;
    for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
      for (int64_t h = 0; h < 2; ++h)
        at.rows.push_back(keyOf(i, h));
    at.head = h;
    at.columnBase = colBase;
    at.firstRow = firstKey;
    at.lastRow = lastKey;
    at.firstColumn = firstQuery;
    at.columns = v.m;
    at.transposed = true;
    if (v.alibi)
      alibiCoef = alibiCoefficient(h);
    Tiles slope;
    emitScoreModifiers(p, at, &slope);
    emitPlacedMask(p, at);
    exponentiate(p, [&](size_t, size_t col, int64_t c) { return negLse[2 * col + (c & 1)]; });
    Tiles keep = v.dropout ? dropoutKeeps(at, p.size(), p[0].size()) : Tiles();
    std::vector<Value> dVIssued, dKIssued;
    if (computesDV()) { // dV += (P · keep / (1 − p))ᵀ dO
      Tiles dropped = p;
      if (v.dropout)
        applyDropout(dropped, keep, dropoutKeepScale());
      dVIssued = issuePB(dropped, dOTile, v.smem.pitchV, dV);
    }
    if (computesDK()) {
      if (!dPEarly)
        dPIssued = issueDP(/*fence=*/true);
      Tiles dS = waitFor(wgmma() && computesDV() ? 1 : 0, dPIssued, v.nTilesS);
      if (v.dropout)
        applyDropout(dS, keep, dropoutKeepScale());
      gradScores(p, dS, [&](size_t, size_t col, int64_t c) { return delta[2 * col + (c & 1)]; },
                 slope);
      dKIssued = issuePB(dS, qTile, v.smem.pitchQK, dK);
    }
    // One wait for both accumulators.
    std::vector<Value> issued = dVIssued;
    issued.insert(issued.end(), dKIssued.begin(), dKIssued.end());
    if (wgmma())
      issued = e.wgmmaWaitFor(0, issued);
    if (computesDV())
      dV = toFragments(std::vector<Value>(issued.begin(), issued.begin() + dVIssued.size()),
                     v.headDimV / 8);
    if (computesDK())
      dK = toFragments(std::vector<Value>(issued.begin() + dVIssued.size(), issued.end()),
                     v.headDimQK / 8);
    closeSkippable(skippable, eachCarried);
    e.barrier(); // every warp is done with this slot before it is refilled
    scf::YieldOp::create(b, loc, flattenCarried(eachCarried));
  }
  unflattenCarried(eachCarried, loop.getResults());
  e.cpAsyncWait(0);
  if (computesDK())
    storeRows(dK, keyOf, seqK, kDK, kDKStride0, dkBase, arg(kScale));
  if (computesDV())
    storeRows(dV, keyOf, seqK, kDV, kDVStride0, dvBase, Value());
}

} // namespace
} // namespace detail

LogicalResult generateAttentionBackwardKernel(flash::AttentionBwdOp op, gpu::GPUFuncOp kernel,
                                              StringRef sharedMemorySymbol) {
  using namespace detail;
  Variant v = variantOf(op);
  bool dq = static_cast<bool>(op.getGradQuery());
  bool dk = static_cast<bool>(op.getGradKey()), dv = static_cast<bool>(op.getGradValue());
  v.kind = dq ? KernelKind::BackwardDQ
              : (dk && dv ? KernelKind::BackwardDKV
                          : (dk ? KernelKind::BackwardDK : KernelKind::BackwardDV));
  v.hasLse = true;
  v.qkWgmma = v.pvWgmma = op.getTile().getQkWgmma(); // the verifier: both or neither
  v.warpSpecialized = v.persistent = false;
  // The warps own the query rows (dQ) or the key rows (dK, dV); the others stream.
  int64_t ownedRows = dq ? v.m : v.n, streamedRows = dq ? v.n : v.m;
  v.mTilesPerWarp = ownedRows / (16 * v.warps);
  v.nTilesS = streamedRows / 8;
  v.nTilesO = v.headDimV / 8;
  int64_t elementBytes = v.elementType.getIntOrFloatBitWidth() / 8;
  v.smem = flash::SharedMemoryLayout::computeBackward(v.headDimQK, v.headDimV, elementBytes,
                                                      ownedRows, streamedRows, v.stages,
                                                      v.qkWgmma);
  v.kStepsQK = v.smem.paddedHeadDimQK / 16;
  v.kStepsV = v.smem.paddedHeadDimV / 16;

  OpBuilder b(kernel.getContext());
  BackwardGenerator(b, op.getLoc(), v, kernel, sharedMemorySymbol).emitBackward();
  return success();
}

} // namespace flashjit

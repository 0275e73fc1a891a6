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
// With the tile switch `warp_specialized` (sm_90a) the same steps run in the
// loops of WarpSpecializedBackwardLoops.cpp: a TMA producer warpgroup feeds
// the tiles (and the key-block kernels' LSE and Δ) through an mbarrier ring,
// the consumer warpgroups compute with no block-wide barrier.
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
// The atomic form (wgmma tiles): a delta kernel (Δ alone), then the key-block
// kernel also forms each step's dQ over the block's keys from its dS in
// shared memory and adds it to a zeroed fp32 accumulator by one bulk
// reduction (AtomicQueryGradient.cpp); a conversion kernel scales that into
// dQ. Five products a block pair.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionKernelGenerator.h"

#include "compiler/BackwardGeneratorImpl.h"
#include "compiler/KernelABI.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

#include <cmath>

using namespace mlir;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

namespace flashjit {
namespace detail {


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

// Whether `ptrArg`'s tensor has 16-byte aligned rows at every index (base
// and the three element strides): a uniform test, made once.
Value BackwardGenerator::rowsAligned16(int ptrArg, int strideArg) {
  Value address = LLVM::PtrToIntOp::create(b, loc, b.getI64Type(), arg(ptrArg));
  Value bits = e.andi(address, e.i64(15));
  for (int i = 0; i < 3; ++i) // 16 bytes = 8 16-bit elements
    bits = arith::OrIOp::create(b, loc, bits, e.andi(arg(strideArg + i), e.i64(7)));
  return e.cmpi(CmpIPredicate::eq, bits, e.i64(0));
}

// The kernel body twice: with `wide` (16-byte accesses) and without.
void BackwardGenerator::emitAlignedOrNot(Value wide, llvm::function_ref<void(unsigned)> body) {
  auto ifOp = scf::IfOp::create(b, loc, wide, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  body(16);
  b.setInsertionPoint(ifOp.elseBlock()->getTerminator());
  body(4);
}

template <typename RowOf>
void BackwardGenerator::storeRows(const Tiles &c, RowOf &&rowOfFragment, Value rowLimit,
                                  int ptrArg, int strideArg, Value base, Value scale) {
  // A quad holds a row, a lane two adjacent columns of each 8: where the
  // rows are 16-byte aligned (the gradients' contract is 4 bytes), a quad
  // transpose gives each lane 8 adjacent columns and one 16-byte store
  // covers them (4-byte stores left the consumers throttled on the LSU
  // queue: 10% of their time in the d 128 key-block kernel, ncu).
  emitAlignedOrNot(rowsAligned16(ptrArg, strideArg), [&](unsigned alignment) {
    const int64_t wideColumns = alignment == 16 ? int64_t(c.empty() ? 0 : c[0].size()) / 4 * 4
                                                : 0; // (in 8-column groups)
    for (size_t i = 0; i < c.size(); ++i)
      for (int64_t h = 0; h < 2; ++h) {
        std::vector<Value> words;
        for (size_t t = 0; t < c[i].size(); ++t) {
          Value lo = c[i][t][2 * h], hi = c[i][t][2 * h + 1];
          if (scale) {
            lo = e.fmul(lo, scale);
            hi = e.fmul(hi, scale);
          }
          words.push_back(e.packPair(v.elementType, lo, hi));
        }
        // Every lane shuffles (outside the row test below).
        std::vector<std::array<Value, 4>> octets;
        for (int64_t t = 0; t < wideColumns; t += 4)
          octets.push_back(e.transposeAcrossQuad({words[t], words[t + 1], words[t + 2],
                                                  words[t + 3]},
                                                 quadCol));
        Value row = rowOfFragment(int64_t(i), h);
        emitIf(e.cmpi(CmpIPredicate::slt, row, rowLimit), [&] {
          Value rowOffset = e.add(base, e.mul(e.toI64(row), arg(strideArg + 1)));
          auto at = [&](Value column) {
            return e.globalElementPtr(arg(ptrArg), e.add(rowOffset, e.toI64(column)),
                                      v.elementType);
          };
          for (size_t o = 0; o < octets.size(); ++o) { // columns 8 (4 o + quadCol) ..
            Value column = e.mul(e.add(quadCol, e.i32(int64_t(o) * 4)), e.i32(8));
            e.storeWords(octets[o], at(column), 16);
          }
          for (size_t t = wideColumns; t < words.size(); ++t)
            e.store(words[t], at(e.add(e.mul(quadCol, e.i32(2)), e.i32(int64_t(t) * 8))), 4);
        });
      }
  });
}

void BackwardGenerator::emitBackward() {
  emitThreadGeometry();
  if (isQueryBlockKind(v.kind))
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
               e.store(sum, e.globalElementPtr(arg(abi::bwd::kDelta),
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
  GridTile tile = gridTile();
  Value queryBlock = e.sub(e.sub(e.gridDim(0), e.i32(1)), tile.rank);
  head = tile.head;
  batch = tile.batch;
  headK = e.divui(head, arg(kGroupSize));
  emitSequenceBounds();
  firstQueryRow = firstQueryPosition = e.mul(queryBlock, e.i32(v.m));
  lastQueryPosition = e.add(firstQueryRow, e.i32(v.m - 1));
  emitInsideSequence(firstQueryRow, seqQ, [&] {
    if (v.kind == KernelKind::BackwardDelta) {
      emitDeltaKernel();
    } else if (v.kind == KernelKind::BackwardConvertDQ) {
      emitConvertDQ();
    } else {
      planQueryBlockSteps();
      if (v.warpSpecialized)
        emitQueryBlockWarpSpecialized();
      else
        emitQueryBlockMainLoop();
    }
  });
}

void BackwardGenerator::planQueryBlockSteps() {
  using namespace abi::bwd;
  qBase = tensorBase(kQStride0, head, /*querySide=*/true);
  kBase = tensorBase(kKStride0, headK, /*querySide=*/false);
  vBase = tensorBase(kVStride0, headK, /*querySide=*/false);
  oBase = tensorBase(kOStride0, head, /*querySide=*/true);
  doBase = tensorBase(kDOStride0, head, /*querySide=*/true);
  dqBase = tensorBase(kDQStride0, head, /*querySide=*/true);
  emitKeyBlockRange(firstQueryPosition, lastQueryPosition);
  if (v.alibi)
    alibiCoef = alibiCoefficient(head);
}

// A block mask's list entry: j is kept inside the list, steps past it are
// looked at too.
Value BackwardGenerator::queryStepKey(Value block) {
  if (!v.blockMask)
    return keyBlockStart(block);
  return keyBlockStart(e.select(e.cmpi(CmpIPredicate::slt, block, numBlocks), block, e.i32(0)));
}

Value BackwardGenerator::queryStepNeeded(Value block, Value firstKey) {
  Value inside = e.cmpi(CmpIPredicate::slt, block, numBlocks);
  if (!v.maskMod)
    return inside;
  return arith::AndIOp::create(b, loc, inside,
                               blockMayKeep(head, firstQueryRow, v.m, firstKey, v.n));
}

BackwardGenerator::QueryRowStats BackwardGenerator::loadQueryRowStats() {
  QueryRowStats stats;
  stats.delta = emitDelta(head);
  for (int64_t i = 0; i < v.mTilesPerWarp; ++i)
    for (int64_t h = 0; h < 2; ++h)
      stats.negLse.push_back(negLseLog2(head, rowOf(i, h)));
  return stats;
}

// S = Q Kᵀ, and dP = dO Vᵀ: on wgmma both in flight at once, P computed
// while dP runs; then dS and dQ += dS K.
void BackwardGenerator::emitQueryBlockStep(Value firstKey, Value slotOffset,
                                           const QueryRowStats &stats, Tiles &dQ) {
  Value kTile = e.add(slotOffset, e.i32(v.smem.queryBytes));
  Value vTile = e.add(slotOffset, e.i32(v.smem.queryBytes + v.smem.keyBytes));
  auto issueDP = [&] { // on wgmma right after S, under S's fence
    return issueABt(e.i32(v.smem.residentSecondOffset), v.smem.pitchV, vTile, v.smem.pitchV,
                    v.kStepsV, /*fence=*/!wgmma());
  };
  std::vector<Value> sIssued = issueABt(Value(), v.smem.pitchQK, kTile, v.smem.pitchQK,
                                        v.kStepsQK);
  std::vector<Value> dPIssued = wgmma() ? issueDP() : std::vector<Value>();
  Tiles p = waitFor(wgmma() ? 1 : 0, sIssued, v.nTilesS);
  ScorePlacement at = queryRowPlacement(firstKey);
  Tiles slope;
  emitScoreModifiers(p, at, &slope);
  emitPlacedMask(p, at);
  exponentiate(p, [&](size_t i, size_t, int64_t c) { return stats.negLse[2 * i + c / 2]; });
  if (!wgmma())
    dPIssued = issueDP();
  Tiles dS = waitFor(0, dPIssued, v.nTilesS);
  if (v.dropout) // dP of the dropped P: dO Vᵀ · keep / (1 − p)
    applyDropout(dS, at, dropoutKeepScale());
  gradScores(p, dS, [&](size_t i, size_t, int64_t c) { return stats.delta[2 * i + c / 2]; },
             slope);
  dQ = waitFor(0, issuePB(dS, kTile, v.smem.pitchQK, dQ), v.headDimQK / 8);
}

void BackwardGenerator::storeQueryGradient(const Tiles &dQ) {
  using namespace abi::bwd;
  storeRows(dQ, [&](int64_t i, int64_t h) { return rowOf(i, h); }, seqQ, kDQ, kDQStride0, dqBase,
            arg(kScale));
}

void BackwardGenerator::emitQueryBlockMainLoop() {
  using namespace abi::bwd;
  // Resident Q and dO, then the first stages-1 K/V blocks.
  loadTile(0, Value(), v.m, false, kQ, kQStride0, qBase, firstQueryRow, seqQ);
  loadTile(v.smem.residentSecondOffset, Value(), v.m, true, kDO, kDOStride0, doBase,
           firstQueryRow, seqQ);
  e.cpAsyncCommit();
  auto loadKeyValue = [&](Value block, Value firstKey) {
    Value slotOffset = ringSlotOffset(block);
    loadTile(v.smem.queryBytes, slotOffset, v.n, false, kK, kKStride0, kBase, firstKey, seqK);
    loadTile(v.smem.queryBytes + v.smem.keyBytes, slotOffset, v.n, true, kV, kVStride0, vBase,
             firstKey, seqK);
  };
  // With a block mask a step's first key is a list load: looked up `stages`
  // steps early, the starts of steps j .. j + stages - 1 ride in the loop.
  std::vector<Value> window;
  if (v.blockMask)
    for (int64_t s = 0; s < v.stages; ++s)
      window.push_back(queryStepKey(e.i32(s)));
  for (int64_t s = 0; s + 1 < v.stages; ++s) { // one commit group per block, as the loop waits
    Value block = e.i32(s), firstKey = v.blockMask ? window[s] : queryStepKey(block);
    emitIf(queryStepNeeded(block, firstKey), [&] { loadKeyValue(block, firstKey); });
    e.cpAsyncCommit();
  }

  // Per fragment row: Δ and −lse·log2e.
  QueryRowStats stats = loadQueryRowStats();
  Tiles dQ = zeros(v.mTilesPerWarp, v.headDimQK / 8);
  auto eachCarried = [&](auto &&f) { eachValue(dQ, f); };
  auto eachLoopValue = [&](auto &&f) { // dQ and the window's starts
    eachCarried(f);
    for (Value &start : window)
      f(start);
  };
  scf::ForOp loop;
  {
    OpBuilder::InsertionGuard guard(b);
    loop = openLoop(b, loc, e.i32(0), numBlocks, e.i32(1), flattenCarried(eachLoopValue));
    unflattenCarried(eachLoopValue, loop.getRegionIterArgs());
    Value j = loop.getInductionVar();
    Value ahead = e.add(j, e.i32(v.stages - 1));
    Value next = v.blockMask ? queryStepKey(e.add(j, e.i32(v.stages))) : Value();
    Value aheadKey = v.blockMask ? window.back() : queryStepKey(ahead);
    emitIf(queryStepNeeded(ahead, aheadKey), [&] { loadKeyValue(ahead, aheadKey); });
    e.cpAsyncCommit();
    Value firstKey = v.blockMask ? window.front() : queryStepKey(j);
    if (v.blockMask) { // the window moves on by a step
      window.erase(window.begin());
      window.push_back(next);
    }
    e.cpAsyncWait(v.stages - 1);
    if (wgmma())
      e.fenceProxyAsyncShared(); // cp.async wrote the tiles; wgmma reads through the async proxy
    e.barrier();

    scf::IfOp skippable =
        openSkippable(v.maskMod ? queryStepNeeded(j, firstKey) : Value(), eachCarried);
    emitQueryBlockStep(firstKey, ringSlotOffset(j),
                       stats, dQ);
    closeSkippable(skippable, eachCarried);
    e.barrier(); // every warp is done with this slot before it is refilled
    scf::YieldOp::create(b, loc, flattenCarried(eachLoopValue));
  }
  unflattenCarried(eachLoopValue, loop.getResults());
  e.cpAsyncWait(0);
  storeQueryGradient(dQ);
}

void BackwardGenerator::emitKeyBlockKernel() {
  using namespace abi::bwd;
  if (v.persistent) // (warp-specialized) each role walks the block's tiles: eachKeyTile
    return emitKeyBlockWarpSpecialized();
  // Grid: x = key blocks (the first see the most queries under a causal
  // mask), y = key/value heads, z = batch.
  GridTile tile = gridTile();
  Value keyBlock = tile.rank;
  headK = tile.head;
  batch = tile.batch;
  emitSequenceBounds();
  Value firstKey = e.mul(keyBlock, e.i32(v.n));
  emitInsideSequence(firstKey, seqK, [&] {
    planKeyBlockSteps(firstKey);
    if (v.warpSpecialized)
      emitKeyBlockWarpSpecialized();
    else
      emitKeyBlockMainLoop();
  });
}

// Query blocks that see any of these keys: from the one holding the first
// query that sees the first key to the one holding the last query that sees
// the last key (visible queries grow with the key). With a block mask, each
// query head's list of them instead: every head gets as many steps as the
// group's longest list, those past its own are skipped.
void BackwardGenerator::planKeyBlockSteps(Value firstKey) {
  using namespace abi::bwd;
  Value group = arg(kGroupSize);
  kBase = tensorBase(kKStride0, headK, /*querySide=*/false);
  vBase = tensorBase(kVStride0, headK, /*querySide=*/false);
  dkBase = tensorBase(kDKStride0, headK, /*querySide=*/false);
  dvBase = tensorBase(kDVStride0, headK, /*querySide=*/false);
  keys.first = firstKey;
  keys.last = e.add(firstKey, e.i32(v.n - 1));
  keys.firstQueryBlock = e.i32(0);
  Value blocksPerHead;
  if (v.blockMask) {
    blocksPerHead = e.i32(0);
    OpBuilder::InsertionGuard guard(b);
    scf::ForOp longest = openLoop(b, loc, e.i32(0), group, e.i32(1), ValueRange{blocksPerHead});
    Value h = e.add(e.mul(headK, group), longest.getInductionVar());
    scf::YieldOp::create(b, loc, ValueRange{e.maxsi(longest.getRegionIterArgs()[0],
                                                    listedBlocks(h, firstKey, true).tiles)});
    b.setInsertionPointAfter(longest);
    blocksPerHead = longest.getResult(0);
  } else {
    Value queryBlocks = e.ceilDiv(
        e.maxsi(visibleColumns(keys.last, /*transposed=*/true).hi, e.i32(0)), v.m);
    if (Value lo = visibleColumns(firstKey, /*transposed=*/true).lo)
      keys.firstQueryBlock = e.divui(e.maxsi(lo, e.i32(0)), e.i32(v.m));
    blocksPerHead = e.maxsi(e.sub(queryBlocks, keys.firstQueryBlock), e.i32(0));
  }
  keys.steps = e.mul(group, blocksPerHead);
  // (Steps past the end are looked at too: dividing by at least 1 keeps a
  // block mask's lookups inside the lists, and no division is by 0.)
  keys.perHead = e.maxsi(blocksPerHead, e.i32(1));
}

// Step t: query head headK * group + t / blocksPerHead, its query block
// firstQueryBlock + t % blocksPerHead, or the (t % blocksPerHead)-th tile
// of that head's list.
Value BackwardGenerator::keyStepHead(Value t) {
  return e.add(e.mul(headK, arg(abi::bwd::kGroupSize)), e.divui(t, keys.perHead));
}

BackwardGenerator::KeyStep BackwardGenerator::keyStepAt(Value t) {
  KeyStep step{keyStepHead(t), Value(), e.cmpi(CmpIPredicate::slt, t, keys.steps)};
  Value position = e.remui(t, keys.perHead);
  if (v.blockMask) {
    ListedBlocks l = listedBlocks(step.head, keys.first, /*keyRows=*/true);
    Value start = listedTileStart(l, position); // position / tiles a block < listed blocks
    Value listed = arith::AndIOp::create(b, loc, e.cmpi(CmpIPredicate::slt, position, l.tiles),
                                         e.cmpi(CmpIPredicate::slt, start, seqQ));
    step.needed = arith::AndIOp::create(b, loc, step.needed, listed);
    step.firstQuery = e.select(listed, start, e.i32(0));
  } else {
    step.firstQuery = e.mul(e.add(keys.firstQueryBlock, position), e.i32(v.m));
  }
  if (v.maskMod)
    step.needed = arith::AndIOp::create(
        b, loc, step.needed, blockMayKeep(step.head, step.firstQuery, v.m, keys.first, v.n));
  return step;
}

Value BackwardGenerator::keyOf(int64_t i, int64_t h) {
  return e.add(keys.first, e.add(e.mul(warp, e.i32(16 * v.mTilesPerWarp)),
                                 e.add(quadRow, e.i32(i * 16 + h * 8))));
}

BackwardGenerator::StepStats BackwardGenerator::loadStepStats(const KeyStep &step) {
  StepStats stats;
  Value colBase = e.add(step.firstQuery, e.mul(quadCol, e.i32(2)));
  for (int64_t col = 0; col < v.nTilesS; ++col)
    for (int64_t c = 0; c < 2; ++c) {
      Value query = e.add(colBase, e.i32(col * 8 + c));
      stats.negLse.push_back(negLseLog2(step.head, query));
      if (computesDK())
        stats.delta.push_back(deltaOf(step.head, query));
    }
  return stats;
}

Value BackwardGenerator::stepStat(const StepStats &stats, int64_t which, int64_t index,
                                 std::vector<Value> &read) {
  if (!stats.staged)
    return (which == 0 ? stats.negLse : stats.delta)[index];
  read.resize(2 * v.nTilesS);
  if (!read[index]) {
    const int64_t column = index / 2 * 8 + index % 2;
    Value at = e.add(stats.staged, e.add(e.i32((which * v.m + column) * 4), e.mul(quadCol, e.i32(8))));
    read[index] = e.loadSharedF32(sharedAt(at));
  }
  return read[index];
}

// Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (wgmma: in flight at once), then dV += Pᵀ dO
// (wgmma: in flight while dSᵀ is formed) and dK += dSᵀ Q.
void BackwardGenerator::emitKeyBlockStep(const KeyStep &step, const StepStats &stats,
                                         Value slotOffset, Tiles &dK, Tiles &dV,
                                         Value gradScoreBuffer,
                                         llvm::function_ref<void()> valueRead) {
  Value h = step.head, firstQuery = step.firstQuery;
  Value qTile = e.add(slotOffset, e.i32(v.smem.queryBytes));
  Value dOTile = e.add(slotOffset, e.i32(v.smem.queryBytes + v.smem.keyBytes));
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
    for (int64_t r = 0; r < 2; ++r)
      at.rows.push_back(keyOf(i, r));
  at.head = h;
  at.columnBase = e.add(firstQuery, e.mul(quadCol, e.i32(2)));
  at.firstRow = keys.first;
  at.lastRow = keys.last;
  at.firstColumn = firstQuery;
  at.columns = v.m;
  at.transposed = true;
  if (v.alibi)
    alibiCoef = alibiCoefficient(h);
  Tiles slope;
  emitScoreModifiers(p, at, &slope);
  emitPlacedMask(p, at);
  std::vector<Value> negLse, delta;
  exponentiate(p, [&](size_t, size_t col, int64_t c) {
    return stepStat(stats, 0, 2 * col + (c & 1), negLse);
  });
  Tiles keep = v.dropout ? dropoutKeeps(at, p.size(), p[0].size()) : Tiles();
  std::vector<Value> dVIssued, dKIssued, dQIssued;
  // This warpgroup's share of dQᵀ = Kᵀ dSᵀ (wgmma only: the verifier):
  // `atOnce` chunks in flight with dV, issued before dK's product so that
  // staging them overlaps dK (the consumers waited for both before; H200
  // fwd+bwd +0-3%), the rest one at a time after them (registers).
  const GradQueryShare share = addsDQ() ? gradQueryShare() : GradQueryShare{0, 0, true, 0};
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
    if (valueRead)
      valueRead();
    if (v.dropout)
      applyDropout(dS, keep, dropoutKeepScale());
    gradScores(p, dS,
               [&](size_t, size_t col, int64_t c) {
                 return stepStat(stats, 1, 2 * col + (c & 1), delta);
               },
               slope);
    if (addsDQ()) { // dS to shared memory, visible to wgmma (the async proxy) in every warp
      if (!gradScoreBuffer)
        gradScoreBuffer = e.i32(0);
      storeGradScores(dS, gradScoreBuffer);
      e.fenceProxyAsyncShared();
      if (!v.warpSpecialized) // the last step's reduction has read the staged dQ rows
        emitIf(firstThread(), [&] { e.bulkWait(0, /*readOnly=*/true); });
      syncGradScores();
      e.wgmmaFence(); // registers written since dV's product
      dQIssued = issueGradQuery(gradScoreBuffer, 0, share.atOnce);
    }
    dKIssued = issuePB(dS, qTile, v.smem.pitchQK, dK);
  }
  if (addsDQ()) { // dV and dQ's share done, dK's product (the last group) still running
    std::vector<Value> issued = dVIssued;
    issued.insert(issued.end(), dQIssued.begin(), dQIssued.end());
    issued = e.wgmmaWaitFor(1, issued);
    if (computesDV())
      dV = toFragments(std::vector<Value>(issued.begin(), issued.begin() + dVIssued.size()),
                       v.headDimV / 8);
    awaitGradQueryStaging();
    stageGradQuery(std::vector<Value>(issued.begin() + dVIssued.size(), issued.end()), 0,
                   firstQuery);
    for (int64_t c = share.atOnce; c < share.chunks; ++c) { // the rest, one at a time
      e.wgmmaFence(); // orders the registers' earlier uses
      stageGradQuery(e.wgmmaWaitFor(0, issueGradQuery(gradScoreBuffer, c, 1)), c, firstQuery);
    }
    releaseGradQueryStaging(h, firstQuery);
    dK = waitFor(0, dKIssued, v.headDimQK / 8);
    return;
  }
  // One wait for every accumulator.
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
}

void BackwardGenerator::storeKeyBlockGradients(const Tiles &dK, const Tiles &dV) {
  using namespace abi::bwd;
  // The reductions are done before the block's shared memory goes (the
  // warp-specialized writer warp waits for its own).
  if (addsDQ() && !v.warpSpecialized)
    emitIf(firstThread(), [&] { e.bulkWait(0, /*readOnly=*/false); });
  auto keyRow = [&](int64_t i, int64_t h) { return keyOf(i, h); };
  if (computesDK())
    storeRows(dK, keyRow, seqK, kDK, kDKStride0, dkBase, arg(kScale));
  if (computesDV())
    storeRows(dV, keyRow, seqK, kDV, kDVStride0, dvBase, Value());
}

void BackwardGenerator::emitKeyBlockMainLoop() {
  using namespace abi::bwd;
  loadTile(0, Value(), v.n, false, kK, kKStride0, kBase, keys.first, seqK);
  loadTile(v.smem.residentSecondOffset, Value(), v.n, true, kV, kVStride0, vBase, keys.first,
           seqK);
  e.cpAsyncCommit();
  auto loadQueryStep = [&](Value t, const KeyStep &step) {
    emitIf(step.needed, [&] {
      Value slotOffset = ringSlotOffset(t);
      loadTile(v.smem.queryBytes, slotOffset, v.m, false, kQ, kQStride0,
               tensorBase(kQStride0, step.head, /*querySide=*/true), step.firstQuery, seqQ);
      loadTile(v.smem.queryBytes + v.smem.keyBytes, slotOffset, v.m, true, kDO, kDOStride0,
               tensorBase(kDOStride0, step.head, /*querySide=*/true), step.firstQuery, seqQ);
    });
    e.cpAsyncCommit(); // one commit group per step, as the loop waits
  };
  // With a block mask a step's entry costs two list loads: they are issued
  // `stages` steps early and the entries of steps t .. t + stages - 1 ride in
  // the loop, so neither the prefetch nor the step waits on them.
  std::vector<KeyStep> window;
  if (v.blockMask)
    for (int64_t s = 0; s < v.stages; ++s)
      window.push_back(keyStepAt(e.i32(s)));
  for (int64_t s = 0; s + 1 < v.stages; ++s)
    loadQueryStep(e.i32(s), v.blockMask ? window[s] : keyStepAt(e.i32(s)));

  Tiles dK = zeros(computesDK() ? v.mTilesPerWarp : 0, v.headDimQK / 8);
  Tiles dV = zeros(computesDV() ? v.mTilesPerWarp : 0, v.headDimV / 8);
  auto eachCarried = [&](auto &&f) {
    eachValue(dK, f);
    eachValue(dV, f);
  };
  auto eachLoopValue = [&](auto &&f) { // the accumulators and the window's entries
    eachCarried(f);
    for (KeyStep &step : window) {
      f(step.firstQuery);
      f(step.needed);
    }
  };
  scf::ForOp loop;
  {
    OpBuilder::InsertionGuard guard(b);
    loop = openLoop(b, loc, e.i32(0), keys.steps, e.i32(1), flattenCarried(eachLoopValue));
    unflattenCarried(eachLoopValue, loop.getRegionIterArgs());
    Value t = loop.getInductionVar();
    Value ahead = e.add(t, e.i32(v.stages - 1));
    auto fromWindow = [&](Value u, const KeyStep &entry) {
      return KeyStep{keyStepHead(u), entry.firstQuery, entry.needed};
    };
    KeyStep next = v.blockMask ? keyStepAt(e.add(t, e.i32(v.stages))) : KeyStep();
    loadQueryStep(ahead, v.blockMask ? fromWindow(ahead, window.back()) : keyStepAt(ahead));

    // This step's query head and rows; −lse·log2e and Δ per accumulator
    // column (query), loaded while the tiles land.
    const KeyStep step = v.blockMask ? fromWindow(t, window.front()) : keyStepAt(t);
    StepStats stats = loadStepStats(step);
    if (v.blockMask) { // the window moves on by a step
      window.erase(window.begin());
      window.push_back(next);
    }
    e.cpAsyncWait(v.stages - 1);
    if (wgmma())
      e.fenceProxyAsyncShared(); // cp.async wrote the tiles; wgmma reads through the async proxy
    e.barrier();

    scf::IfOp skippable = openSkippable(v.maskMod || v.blockMask ? step.needed : Value(),
                                        eachCarried);
    emitKeyBlockStep(step, stats, ringSlotOffset(t),
                     dK, dV);
    closeSkippable(skippable, eachCarried);
    e.barrier(); // every warp is done with this slot before it is refilled
    scf::YieldOp::create(b, loc, flattenCarried(eachLoopValue));
  }
  unflattenCarried(eachLoopValue, loop.getResults());
  e.cpAsyncWait(0);
  storeKeyBlockGradients(dK, dV);
}

} // namespace detail

LogicalResult generateAttentionBackwardKernel(flash::AttentionBwdOp op, gpu::GPUFuncOp kernel,
                                              StringRef sharedMemorySymbol) {
  using namespace detail;
  Variant v = variantOf(op);
  bool dq = static_cast<bool>(op.getGradQuery()), accum = static_cast<bool>(op.getGradQueryAccum());
  bool dk = static_cast<bool>(op.getGradKey()), dv = static_cast<bool>(op.getGradValue());
  if (!dk && !dv) { // the query-block kernels (verifier: dq, dq from dq_accum, or the delta)
    v.kind = !dq ? KernelKind::BackwardDelta
                 : (accum ? KernelKind::BackwardConvertDQ : KernelKind::BackwardDQ);
    v.zeroesGradQueryAccum = !dq && accum;
  } else if (accum)
    v.kind = dv ? KernelKind::BackwardDKVQ : KernelKind::BackwardDKQ;
  else
    v.kind = dk && dv ? KernelKind::BackwardDKV
                      : (dk ? KernelKind::BackwardDK : KernelKind::BackwardDV);
  v.hasLse = true;
  v.qkWgmma = v.pvWgmma = op.getTile().getQkWgmma(); // the verifier: both or neither
  v.warpSpecialized = op.getTile().getWarpSpecialized(); // not the auxiliary kinds (the verifier)
  v.persistent = op.getTile().getPersistent(); // key-block kernels only (the verifier)
  // The warps own the query rows (dQ) or the key rows (dK, dV); the others stream.
  const bool queryBlocks = isQueryBlockKind(v.kind);
  int64_t ownedRows = queryBlocks ? v.m : v.n, streamedRows = queryBlocks ? v.n : v.m;
  v.mTilesPerWarp = ownedRows / (16 * v.warps);
  v.nTilesS = streamedRows / 8;
  v.nTilesO = v.headDimV / 8;
  int64_t elementBytes = v.elementType.getIntOrFloatBitWidth() / 8;
  v.smem = flash::SharedMemoryLayout::computeBackward(v.headDimQK, v.headDimV, elementBytes,
                                                      ownedRows, streamedRows, v.stages,
                                                      v.qkWgmma, addsQueryGradient(v.kind),
                                                      v.warpSpecialized,
                                                      v.warpSpecialized && !queryBlocks,
                                                      v.persistent);
  v.kStepsQK = v.smem.paddedHeadDimQK / 16;
  v.kStepsV = v.smem.paddedHeadDimV / 16;

  OpBuilder b(kernel.getContext());
  BackwardGenerator(b, op.getLoc(), v, kernel, sharedMemorySymbol).emitBackward();
  return success();
}

} // namespace flashjit

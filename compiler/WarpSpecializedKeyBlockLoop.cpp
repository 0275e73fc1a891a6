//===- WarpSpecializedKeyBlockLoop.cpp - the backward's TMA key-block loop ===//
//
// The key-block kernels (dK/dV, and the atomic form's dQ) with the tile
// switch `warp_specialized`, as the forward's main loop
// (WarpSpecializedMainLoop.cpp):
//   * warpgroup 0 is the producer: it gives up registers (setmaxnreg); one
//     thread loads the resident K and V tiles once, then each step's Q and
//     dO tiles with TMA into a `stages`-deep ring, and its second warp puts
//     the step's −lse·log2e and Δ (0 and −inf past seq_q) beside them. A
//     slot is full when the tiles have landed and every lane of that warp
//     has arrived; it is refilled once its "empty" mbarrier saw every
//     consumer warp arrive;
//   * warpgroups 1.. are consumers (64 key rows each, more registers): the
//     step's five (atomic: six) products as in the cp.async loop, with no
//     block-wide barrier: the atomic form's dS and staged dQ tiles are per
//     warpgroup and sync on its own named barrier.
// Every step takes a slot, also those the masks skip (the producer arrives
// without loading, the consumers wait and release without computing): the
// k-th use of slot s then always waits for parity k & 1.
// Rows past seq_q (or past the sequence, packed) come in as zeros or as the
// next sequence's rows; their P is 0 (their lse is −inf), so they add nothing.
//
//===----------------------------------------------------------------------===//
#include "compiler/BackwardGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;

namespace flashjit::detail {

namespace {
// A slot's barriers among the four SharedMemoryLayout keeps a stage.
enum : int64_t { kStepFull = 0, kStepEmpty = 2 };
} // namespace

void BackwardGenerator::emitKeyBlockWarpSpecialized() {
  using namespace abi::bwd;
  const int64_t consumerWarps = v.warps;
  Value residentFull = barrierAt(v.smem.barrierOffset);
  emitIf(e.cmpi(CmpIPredicate::eq, tid, e.i32(0)), [&] {
    e.mbarrierInit(residentFull, 1);
    for (int64_t s = 0; s < v.stages; ++s) {
      // The TMA thread and each lane of the stats warp (each releases its own stores).
      e.mbarrierInit(stageBarrier(e.i32(s), kStepFull), 1 + 32);
      e.mbarrierInit(stageBarrier(e.i32(s), kStepEmpty), consumerWarps);
    }
    e.fenceMbarrierInit(); // visible to the async proxy (TMA) too
  });
  e.barrier(); // the last block-wide barrier: the roles never meet again

  const abi::WarpSpecializedRegisters registers =
      abi::warpSpecializedRegisters(v.warps, std::max(v.headDimQK, v.headDimV));
  auto parityOf = [&](Value t) { return e.andi(e.divui(t, e.i32(v.stages)), e.i32(1)); };
  auto slotOffsetOf = [&](Value t) {
    return e.mul(e.remui(t, e.i32(v.stages)), e.i32(v.smem.stageBytes));
  };
  auto slotBarrier = [&](Value t, int64_t kind) {
    return stageBarrier(e.remui(t, e.i32(v.stages)), kind);
  };
  auto statsOf = [&](Value t) { // the slot's row statistics (byte offset)
    return e.add(e.i32(v.smem.stepStatsOffset),
                 e.mul(e.remui(t, e.i32(v.stages)), e.i32(2 * v.m * 4)));
  };
  // A fresh barrier passes a wait for the parity before its first phase.
  auto waitEmpty = [&](Value t) {
    e.mbarrierWait(slotBarrier(t, kStepEmpty),
                   arith::XOrIOp::create(b, loc, parityOf(t), e.i32(1)));
  };
  auto roles = scf::IfOp::create(b, loc, e.cmpi(CmpIPredicate::ult, tid, e.i32(128)),
                                 /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);

  // The producer.
  b.setInsertionPoint(roles.thenBlock()->getTerminator());
  e.setMaxRegisters(registers.producer, /*increase=*/false);
  emitIf(e.cmpi(CmpIPredicate::eq, tid, e.i32(0)), [&] {
    const int64_t residentBytes = (v.smem.paddedHeadDimQK + v.smem.paddedHeadDimV) * v.n * 2;
    e.mbarrierArriveExpectTx(residentFull, residentBytes);
    emitTensorLoad(kTensorMapK, /*query=*/false, v.n, 0, Value(), v.headDimQK, keys.first, headK,
                   residentFull);
    emitTensorLoad(kTensorMapV, /*query=*/false, v.n, v.smem.residentSecondOffset, Value(),
                   v.headDimV, keys.first, headK, residentFull);

    const int64_t stepBytes = (v.smem.paddedHeadDimQK + v.smem.paddedHeadDimV) * v.m * 2;
    auto loop = scf::ForOp::create(b, loc, e.i32(0), keys.steps, e.i32(1));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value t = loop.getInductionVar();
    KeyStep step = keyStepAt(t);
    waitEmpty(t);
    Value full = slotBarrier(t, kStepFull);
    auto load = scf::IfOp::create(b, loc, step.needed, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard branchGuard(b);
    b.setInsertionPoint(load.thenBlock()->getTerminator());
    e.mbarrierArriveExpectTx(full, stepBytes);
    Value slot = slotOffsetOf(t);
    emitTensorLoad(kTensorMapQ, /*query=*/true, v.m, v.smem.queryBytes, slot, v.headDimQK,
                   step.firstQuery, step.head, full);
    emitTensorLoad(kTensorMapDO, /*query=*/true, v.m, v.smem.queryBytes + v.smem.keyBytes, slot,
                   v.headDimV, step.firstQuery, step.head, full);
    b.setInsertionPoint(load.elseBlock()->getTerminator());
    e.mbarrierArrive(full); // nothing to load: the phase still completes
  });
  // Warp 1: the row statistics of each step's queries, a lane a query.
  emitIf(e.cmpi(CmpIPredicate::eq, e.shrui(tid, 5), e.i32(1)), [&] {
    OpBuilder::InsertionGuard guard(b);
    auto loop = scf::ForOp::create(b, loc, e.i32(0), keys.steps, e.i32(1));
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value t = loop.getInductionVar();
    KeyStep step = keyStepAt(t);
    waitEmpty(t);
    emitIf(step.needed, [&] {
      Value stats = statsOf(t);
      for (int64_t r = 0; r < v.m; r += 32) {
        Value row = e.add(lane, e.i32(r));
        auto at = [&](int64_t which) {
          return sharedAt(e.add(stats, e.mul(e.add(row, e.i32(which * v.m)), e.i32(4))));
        };
        Value query = e.add(step.firstQuery, row);
        auto store = [&] {
          e.store(negLseLog2(step.head, query), at(0), 4);
          if (computesDK())
            e.store(deltaOf(step.head, query), at(1), 4);
        };
        if (r + 32 <= v.m)
          store();
        else // m = 16: half the warp
          emitIf(e.cmpi(CmpIPredicate::ult, row, e.i32(v.m)), store);
      }
    });
    e.mbarrierArrive(slotBarrier(t, kStepFull));
  });

  // The consumers.
  b.setInsertionPoint(roles.elseBlock()->getTerminator());
  e.setMaxRegisters(registers.consumer, /*increase=*/true);
  warp = e.sub(e.shrui(tid, 5), e.i32(4)); // consumer warps count from 0
  Tiles dK = zeros(computesDK() ? v.mTilesPerWarp : 0, v.headDimQK / 8);
  Tiles dV = zeros(computesDV() ? v.mTilesPerWarp : 0, v.headDimV / 8);
  auto eachCarried = [&](auto &&f) {
    eachValue(dK, f);
    eachValue(dV, f);
  };
  e.mbarrierWait(residentFull, e.i32(0));
  scf::ForOp loop;
  {
    OpBuilder::InsertionGuard guard(b);
    loop = openLoop(b, loc, e.i32(0), keys.steps, e.i32(1), flattenCarried(eachCarried));
    unflattenCarried(eachCarried, loop.getRegionIterArgs());
    Value t = loop.getInductionVar();
    const KeyStep step = keyStepAt(t);
    StepStats stats;
    stats.staged = statsOf(t);
    e.mbarrierWait(slotBarrier(t, kStepFull), parityOf(t));
    scf::IfOp skippable = openSkippable(v.maskMod || v.blockMask ? step.needed : Value(),
                                        eachCarried);
    emitKeyBlockStep(step, stats, slotOffsetOf(t), dK, dV);
    closeSkippable(skippable, eachCarried);
    // Every product reading the slot has been waited for: hand it back.
    emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)),
           [&] { e.mbarrierArrive(slotBarrier(t, kStepEmpty)); });
    scf::YieldOp::create(b, loc, flattenCarried(eachCarried));
  }
  unflattenCarried(eachCarried, loop.getResults());
  storeKeyBlockGradients(dK, dV);
}

} // namespace flashjit::detail

//===- WarpSpecializedBackwardLoops.cpp - the backward's TMA main loops ---===//
//
// The backward kernels with the tile switch `warp_specialized`, as the
// forward's main loop (WarpSpecializedMainLoop.cpp):
//   * warpgroup 0 is the producer: it gives up registers (setmaxnreg); one
//     thread loads the resident tiles once (K and V in the key-block kernels,
//     Q and dO in the dQ kernel) and each step's streamed pair (Q and dO, or
//     K and V) with TMA into a `stages`-deep ring. In the key-block kernels
//     its second warp puts the step's −lse·log2e and Δ (−inf and 0 past
//     seq_q) beside them. A slot is full when the tiles have landed (and
//     every lane of that warp has arrived); it is refilled once its "empty"
//     mbarrier saw every consumer warp (key-block kernels: every consumer
//     thread, each releasing its own reads of the statistics) arrive;
//   * warpgroups 1.. are consumers (64 owned rows each, more registers): the
//     step's products as in the cp.async loops, with no block-wide barrier:
//     the atomic form's dS and staged dQ sync on the consumers' named
//     barriers, and the producer's third warp issues the dQ reductions
//     (AtomicQueryGradient.cpp).
// Every step takes a slot, also those the masks skip (the producer arrives
// without loading, the consumers wait and release without computing): the
// k-th use of slot s then always waits for parity k & 1.
// Persistent key-block kernels (eachKeyTile): every role walks the block's
// tiles, the ring's steps counting on across them; K and V get full and
// empty barriers of their own: V is handed back in the tile's last step
// once its dPᵀ is done (after the tile where a mask may skip that step), so
// the next tile's V loads while the last step finishes, K once the last
// products are done, while the consumers store dK and dV.
// Rows past the sequence come in as zeros (or, packed, as the next
// sequence's rows): keys past seq_k are masked, queries past seq_q have P = 0
// (their lse is −inf), so they add nothing, and their gradients are not stored.
//
//===----------------------------------------------------------------------===//
#include "compiler/BackwardGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;

namespace flashjit::detail {

Value BackwardGenerator::ringParity(Value t) {
  return e.andi(e.divui(t, e.i32(v.stages)), e.i32(1));
}

Value BackwardGenerator::ringSlotOffset(Value t) {
  return e.mul(e.remui(t, e.i32(v.stages)), e.i32(v.smem.stageBytes));
}

Value BackwardGenerator::ringBarrier(Value t, int64_t kind) {
  return stageBarrier(e.remui(t, e.i32(v.stages)), kind);
}

// A fresh barrier passes a wait for the parity before its first phase.
void BackwardGenerator::waitRingEmpty(Value t) {
  e.mbarrierWait(ringBarrier(t, kRingEmpty),
                 arith::XOrIOp::create(b, loc, ringParity(t), e.i32(1)));
}

void BackwardGenerator::emitWarpSpecializedRoles(int64_t fullArrivals, int64_t emptyArrivals,
                                                 llvm::function_ref<void()> producer,
                                                 llvm::function_ref<void()> consumer) {
  emitIf(e.cmpi(CmpIPredicate::eq, tid, e.i32(0)), [&] {
    if (!v.persistent) {
      e.mbarrierInit(residentFullBarrier(), 1);
    } else { // every consumer thread releases its own reads of a resident tile
      e.mbarrierInit(residentKeyBarrier(0), 1);
      e.mbarrierInit(residentKeyBarrier(1), v.warps * 32);
      e.mbarrierInit(residentValueBarrier(0), 1);
      e.mbarrierInit(residentValueBarrier(1), v.warps * 32);
    }
    for (int64_t s = 0; s < v.stages; ++s) {
      e.mbarrierInit(stageBarrier(e.i32(s), kRingFull), fullArrivals);
      e.mbarrierInit(stageBarrier(e.i32(s), kRingEmpty), emptyArrivals);
    }
    e.fenceMbarrierInit(); // visible to the async proxy (TMA) too
  });
  e.barrier(); // the last block-wide barrier: the roles never meet again

  const abi::WarpSpecializedRegisters registers =
      abi::warpSpecializedRegisters(v.warps, std::max(v.headDimQK, v.headDimV), v.persistent);
  auto roles = scf::IfOp::create(b, loc, e.cmpi(CmpIPredicate::ult, tid, e.i32(128)),
                                 /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(roles.thenBlock()->getTerminator());
  e.setMaxRegisters(registers.producer, /*increase=*/false);
  producer();
  b.setInsertionPoint(roles.elseBlock()->getTerminator());
  e.setMaxRegisters(registers.consumer, /*increase=*/true);
  warp = consumerWarpIndex();
  consumer();
}

// The producer's TMA thread: the resident pair (K and V, or Q and dO) once
// onto the resident barrier, then each step's streamed pair into its slot;
// a step not needed (neededAt, asked once the slot is free) completes its
// slot's phase without loading.
void BackwardGenerator::emitTmaProducer(
    bool streamQueries, Value residentRow, Value residentHead, Value steps,
    llvm::function_ref<RingStep(Value)> stepAt,
    llvm::function_ref<Value(Value, const RingStep &)> neededAt, Value tilesDone,
    Value stepsDone) {
  using namespace abi::bwd;
  struct Pair {
    int first, second; // tensor maps (Q/K-wide, then V-wide)
    bool query;
    int64_t rows;
  };
  const Pair queries{kTensorMapQ, kTensorMapDO, true, v.m}, keyPair{kTensorMapK, kTensorMapV,
                                                                     false, v.n};
  const Pair &resident = streamQueries ? keyPair : queries;
  const Pair &streamed = streamQueries ? queries : keyPair;
  auto pairBytes = [&](const Pair &p) {
    return (v.smem.paddedHeadDimQK + v.smem.paddedHeadDimV) * p.rows * 2;
  };
  auto loadResident = [&](bool second, Value barrier) { // the Q/K-wide tile, or the V-wide one
    emitTensorLoad(second ? resident.second : resident.first, resident.query, resident.rows,
                   second ? v.smem.residentSecondOffset : 0, Value(),
                   second ? v.headDimV : v.headDimQK, residentRow, residentHead, barrier);
  };
  if (!tilesDone) { // one tile a block: the pair once
    Value residentFull = residentFullBarrier();
    e.mbarrierArriveExpectTx(residentFull, pairBytes(resident));
    loadResident(false, residentFull);
    loadResident(true, residentFull);
  } else {
    // Persistent key blocks: V once the last tile's dPᵀ products are done
    // with it (during its last step, or after it), K once its last products
    // are.
    Value emptyParity = e.xori(tileParity(tilesDone), e.i32(1));
    e.mbarrierWait(residentValueBarrier(1), emptyParity);
    e.mbarrierArriveExpectTx(residentValueBarrier(0), v.smem.paddedHeadDimV * resident.rows * 2);
    loadResident(true, residentValueBarrier(0));
    e.mbarrierWait(residentKeyBarrier(1), emptyParity);
    e.mbarrierArriveExpectTx(residentKeyBarrier(0), v.smem.paddedHeadDimQK * resident.rows * 2);
    loadResident(false, residentKeyBarrier(0));
  }

  auto loop = scf::ForOp::create(b, loc, e.i32(0), steps, e.i32(1));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  Value t = loop.getInductionVar(), ring = ringIndex(stepsDone, t);
  RingStep step = stepAt(t);
  waitRingEmpty(ring);
  Value full = ringBarrier(ring, kRingFull);
  auto load = scf::IfOp::create(b, loc, neededAt(t, step), /*withElseRegion=*/true);
  b.setInsertionPoint(load.thenBlock()->getTerminator());
  e.mbarrierArriveExpectTx(full, pairBytes(streamed));
  Value slot = ringSlotOffset(ring);
  emitTensorLoad(streamed.first, streamed.query, streamed.rows, v.smem.queryBytes, slot,
                 v.headDimQK, step.firstRow, step.headIndex, full);
  emitTensorLoad(streamed.second, streamed.query, streamed.rows,
                 v.smem.queryBytes + v.smem.keyBytes, slot, v.headDimV, step.firstRow,
                 step.headIndex, full);
  b.setInsertionPoint(load.elseBlock()->getTerminator());
  e.mbarrierArrive(full); // nothing to load: the phase still completes
}

void BackwardGenerator::emitKeyBlockWarpSpecialized() {
  using namespace abi::bwd;
  auto statsOf = [&](Value ring) { // the slot's row statistics (byte offset)
    return e.add(e.i32(v.smem.stepStatsOffset),
                 e.mul(e.remui(ring, e.i32(v.stages)), e.i32(2 * v.m * 4)));
  };
  // Steps a mask may skip: the consumers compute them where `needed`.
  const bool skippable = v.maskMod || v.blockMask;
  auto computed = [&](const KeyStep &step) { return skippable ? step.needed : Value(); };
  auto producer = [&] {
    emitIf(e.cmpi(CmpIPredicate::eq, tid, e.i32(0)), [&] {
      eachKeyTile({}, [&](Value tilesDone, Value stepsDone, ValueRange) {
        emitTmaProducer(
            /*streamQueries=*/true, keys.first, headK, keys.steps,
            [&](Value t) {
              KeyStep step = keyStepAt(t);
              return RingStep{step.firstQuery, step.head, step.needed};
            },
            [](Value, const RingStep &step) { return step.needed; },
            v.persistent ? tilesDone : Value(), stepsDone);
        return SmallVector<Value>();
      });
    });
    // Warp 1: the row statistics of each step's queries, a lane a query.
    emitIf(e.cmpi(CmpIPredicate::eq, e.shrui(tid, 5), e.i32(1)), [&] {
      eachKeyTile({}, [&](Value, Value stepsDone, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        auto loop = scf::ForOp::create(b, loc, e.i32(0), keys.steps, e.i32(1));
        b.setInsertionPoint(loop.getBody()->getTerminator());
        Value t = loop.getInductionVar(), ring = ringIndex(stepsDone, t);
        KeyStep step = keyStepAt(t);
        waitRingEmpty(ring);
        emitIf(step.needed, [&] {
          Value stats = statsOf(ring);
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
        e.mbarrierArrive(ringBarrier(ring, kRingFull)); // each lane releases its own stores
        return SmallVector<Value>();
      });
    });
    if (addsDQ()) // warp 2: the bulk reductions of the consumers' dQ
      emitIf(e.cmpi(CmpIPredicate::eq, e.shrui(tid, 5), e.i32(2)), [&] {
        eachKeyTile({}, [&](Value, Value, ValueRange) {
          emitGradQueryWriter(computed);
          return SmallVector<Value>();
        });
        // The reductions are done before the block (and its shared memory) goes.
        emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)),
               [&] { e.bulkWait(0, /*readOnly=*/false); });
      });
  };

  auto consumer = [&] {
    // The dS buffer of the next computed step (alternating, also from tile
    // to tile: a warpgroup's first dS of a tile may not overwrite the
    // buffer the others still read for the last tile's last dQ).
    SmallVector<Value> buffer;
    if (addsDQ())
      buffer.push_back(e.i32(0));
    eachKeyTile(buffer, [&](Value tilesDone, Value stepsDone, ValueRange carried) {
      Tiles dK = zeros(computesDK() ? v.mTilesPerWarp : 0, v.headDimQK / 8);
      Tiles dV = zeros(computesDV() ? v.mTilesPerWarp : 0, v.headDimV / 8);
      Value gradScoreBuffer = addsDQ() ? carried[0] : Value();
      auto eachCarried = [&](auto &&f) {
        eachValue(dK, f);
        eachValue(dV, f);
        if (gradScoreBuffer)
          f(gradScoreBuffer);
      };
      // V is released in the last step once its dPᵀ is done, where every
      // step computes dPᵀ (no mask skips one), else after the tile.
      const bool valueLeavesEarly = v.persistent && !skippable && computesDK();
      if (!v.persistent) {
        e.mbarrierWait(residentFullBarrier(), e.i32(0));
      } else {
        e.mbarrierWait(residentKeyBarrier(0), tileParity(tilesDone));
        e.mbarrierWait(residentValueBarrier(0), tileParity(tilesDone));
      }
      scf::ForOp loop;
      {
        OpBuilder::InsertionGuard guard(b);
        loop = openLoop(b, loc, e.i32(0), keys.steps, e.i32(1), flattenCarried(eachCarried));
        unflattenCarried(eachCarried, loop.getRegionIterArgs());
        Value t = loop.getInductionVar(), ring = ringIndex(stepsDone, t);
        const KeyStep step = keyStepAt(t);
        StepStats stats;
        stats.staged = statsOf(ring);
        e.mbarrierWait(ringBarrier(ring, kRingFull), ringParity(ring));
        scf::IfOp skip = openSkippable(computed(step), eachCarried);
        auto releaseValue = [&] { // (in the tile's last step)
          emitIf(e.cmpi(CmpIPredicate::eq, t, e.sub(keys.steps, e.i32(1))),
                 [&] { e.mbarrierArrive(residentValueBarrier(1)); });
        };
        emitKeyBlockStep(step, stats, ringSlotOffset(ring), dK, dV, gradScoreBuffer,
                         valueLeavesEarly ? llvm::function_ref<void()>(releaseValue) : nullptr);
        if (gradScoreBuffer)
          gradScoreBuffer = e.xori(gradScoreBuffer, e.i32(1));
        closeSkippable(skip, eachCarried);
        // Every product reading the slot has been waited for: hand it back.
        // Every thread read the slot's row statistics, so each releases its own reads.
        e.mbarrierArrive(ringBarrier(ring, kRingEmpty));
        scf::YieldOp::create(b, loc, flattenCarried(eachCarried));
      }
      unflattenCarried(eachCarried, loop.getResults());
      // Persistent: the next tile's K and V may land while dK and dV leave
      // (from registers).
      if (v.persistent) {
        e.mbarrierArrive(residentKeyBarrier(1));
        if (!valueLeavesEarly)
          e.mbarrierArrive(residentValueBarrier(1));
        else // (a tile without steps never reached its last one)
          emitIf(e.cmpi(CmpIPredicate::eq, keys.steps, e.i32(0)),
                 [&] { e.mbarrierArrive(residentValueBarrier(1)); });
      }
      storeKeyBlockGradients(dK, dV);
      return gradScoreBuffer ? SmallVector<Value>{gradScoreBuffer} : SmallVector<Value>();
    });
  };
  emitWarpSpecializedRoles(/*fullArrivals=*/1 + 32, /*emptyArrivals=*/v.warps * 32, producer,
                           consumer);
}

// Persistent: each role walks units u = blockIdx.x + k gridDim.x of [batch]
// [key/value head][unit of the head] -- consecutive units of a head run on
// neighbouring blocks at once, so its Q and dO stay in L2 -- each unit one
// key block, or with a causal mask the pair j, last - j (a heavy block with
// a light one, so units weigh the same; where the count is odd the middle
// block is a unit alone). The tiles and ring steps done so far count the
// barriers' phases.
SmallVector<Value> BackwardGenerator::eachKeyTile(ValueRange carried, KeyTileBody body) {
  using namespace abi::bwd;
  if (!v.persistent)
    return body(e.i32(0), Value(), carried);
  Value keyBlocks = e.ceilDiv(arg(kSeqK), v.n); // (varlen: of the longest sequence)
  Value perHead = v.causal ? e.ceilDiv(keyBlocks, 2) : keyBlocks;
  Value headsK = e.divui(arg(kHeadsQ), arg(kGroupSize));
  Value units = e.mul(e.mul(perHead, headsK), arg(kBatch));
  // One loop over this block's tiles (a unit's one or two), everything
  // derived from its index: few values stay live beside the step loops.
  const int64_t tilesAUnit = v.causal ? 2 : 1;
  Value ownUnits = e.ceilDiv(e.maxsi(e.sub(units, e.blockId(0)), e.i32(0)), e.gridDim(0));
  SmallVector<Value> init = {e.i32(0), e.i32(0)};
  init.append(carried.begin(), carried.end());
  OpBuilder::InsertionGuard guard(b);
  scf::ForOp loop =
      openLoop(b, loc, e.i32(0), e.mul(ownUnits, e.i32(tilesAUnit)), e.i32(1), init);
  Value slot = loop.getInductionVar();
  Value unit = e.add(e.blockId(0), e.mul(e.divui(slot, e.i32(tilesAUnit)), e.gridDim(0)));
  Value inHead = e.remui(unit, perHead), headBatch = e.divui(unit, perHead);
  headK = e.remui(headBatch, headsK);
  batch = e.divui(headBatch, headsK);
  emitSequenceBounds();
  Value keyBlock = inHead, runs; // (null: every tile runs)
  if (v.causal) { // the pair's second: its first where the key blocks are odd in number
    Value first = e.cmpi(CmpIPredicate::eq, e.andi(slot, e.i32(1)), e.i32(0));
    Value mirrored = e.sub(e.sub(keyBlocks, e.i32(1)), inHead);
    keyBlock = e.select(first, inHead, mirrored);
    runs = arith::OrIOp::create(b, loc, first, e.cmpi(CmpIPredicate::ne, mirrored, inHead));
  }
  Value firstKey = e.mul(keyBlock, e.i32(v.n));
  if (v.varlen) { // tiles past their sequence's keys
    Value inside = e.cmpi(CmpIPredicate::slt, firstKey, seqK);
    runs = runs ? arith::AndIOp::create(b, loc, runs, inside).getResult() : inside;
  }
  ValueRange before = loop.getRegionIterArgs();
  scf::IfOp ifOp;
  if (runs) {
    ifOp = scf::IfOp::create(b, loc, before.getTypes(), runs, /*withElseRegion=*/true);
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, before);
    b.setInsertionPointToStart(ifOp.thenBlock());
  }
  planKeyBlockSteps(firstKey);
  SmallVector<Value> after = {e.add(before[0], e.i32(1)), e.add(before[1], keys.steps)};
  SmallVector<Value> results = body(before[0], before[1], before.drop_front(2));
  after.append(results.begin(), results.end());
  if (ifOp) {
    scf::YieldOp::create(b, loc, after);
    b.setInsertionPointAfter(ifOp);
    after.assign(ifOp.getResults().begin(), ifOp.getResults().end());
  }
  scf::YieldOp::create(b, loc, after);
  b.setInsertionPointAfter(loop);
  return SmallVector<Value>(loop.getResults().drop_front(2));
}

void BackwardGenerator::emitQueryBlockWarpSpecialized() {
  using namespace abi::bwd;
  Value residentFull = residentFullBarrier();
  auto producer = [&] {
    emitIf(e.cmpi(CmpIPredicate::eq, tid, e.i32(0)), [&] {
      emitTmaProducer(
          /*streamQueries=*/false, firstQueryRow, head, numBlocks,
          [&](Value j) { return RingStep{queryStepKey(j), headK, Value()}; },
          [&](Value j, const RingStep &step) { return queryStepNeeded(j, step.firstRow); });
    });
  };

  auto consumer = [&] {
    // Δ (from O and dO in global memory) and −lse·log2e while the tiles land.
    QueryRowStats stats = loadQueryRowStats();
    Tiles dQ = zeros(v.mTilesPerWarp, v.headDimQK / 8);
    auto eachCarried = [&](auto &&f) { eachValue(dQ, f); };
    e.mbarrierWait(residentFull, e.i32(0));
    scf::ForOp loop;
    {
      OpBuilder::InsertionGuard guard(b);
      loop = openLoop(b, loc, e.i32(0), numBlocks, e.i32(1), flattenCarried(eachCarried));
      unflattenCarried(eachCarried, loop.getRegionIterArgs());
      Value j = loop.getInductionVar();
      Value firstKey = queryStepKey(j);
      e.mbarrierWait(ringBarrier(j, kRingFull), ringParity(j));
      scf::IfOp skippable =
          openSkippable(v.maskMod ? queryStepNeeded(j, firstKey) : Value(), eachCarried);
      emitQueryBlockStep(firstKey, ringSlotOffset(j), stats, dQ);
      closeSkippable(skippable, eachCarried);
      emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)),
             [&] { e.mbarrierArrive(ringBarrier(j, kRingEmpty)); });
      scf::YieldOp::create(b, loc, flattenCarried(eachCarried));
    }
    unflattenCarried(eachCarried, loop.getResults());
    storeQueryGradient(dQ);
  };
  // Only wgmma reads the slots: a lane a consumer warp hands them back.
  emitWarpSpecializedRoles(/*fullArrivals=*/1, /*emptyArrivals=*/v.warps, producer, consumer);
}

} // namespace flashjit::detail

//===- BackwardGeneratorImpl.h - the backward-kernel generator -*- C++ -*-===//
//
// Private to compiler/: the BackwardGenerator shared by the backward's main
// loops (BackwardKernelGenerator.cpp: the kernels, the math and the cp.async
// loops; WarpSpecializedBackwardLoops.cpp: both kernels' TMA producer and
// wgmma consumers; AtomicQueryGradient.cpp and GradientAuxiliaryKernels.cpp:
// the atomic dQ form's parts).
//
#ifndef FLASHJIT_COMPILER_BACKWARDGENERATORIMPL_H
#define FLASHJIT_COMPILER_BACKWARDGENERATORIMPL_H

#include "compiler/AttentionGeneratorImpl.h"

namespace flashjit::detail {

using arith::CmpIPredicate;

class BackwardGenerator : public Generator {
public:
  using Generator::Generator;
  void emitBackward();

private:
  bool computesDK() const {
    return v.kind == KernelKind::BackwardDKV || v.kind == KernelKind::BackwardDK ||
           addsQueryGradient(v.kind);
  }
  bool computesDV() const {
    return v.kind == KernelKind::BackwardDKV || v.kind == KernelKind::BackwardDV ||
           v.kind == KernelKind::BackwardDKVQ;
  }
  bool addsDQ() const { return addsQueryGradient(v.kind); }
  bool wgmma() const { return v.qkWgmma; } // the verifier makes both switches go together
  int64_t ownedRows() const { return isQueryBlockKind(v.kind) ? v.m : v.n; }
  int64_t streamedRows() const { return isQueryBlockKind(v.kind) ? v.n : v.m; }
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
                 valueWide ? v.headDimV : v.headDimQK, arg(ptrArg), base,
                 stridedRows(arg(strideArg + 1)), firstRow, rowLimit, /*swizzled=*/wgmma());
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
  /// Opens `if (mayKeep)` around the rest of a step (mayKeep null: no if):
  /// blocks a mask region keeps nothing of (or steps past a head's block
  /// list) are skipped wherever they lie (the key range is trimmed only at
  /// its ends). The accumulators `each` visits
  /// pass through the else branch; closeSkippable yields and reads them back.
  template <typename Each> scf::IfOp openSkippable(Value mayKeep, Each &&each) {
    if (!mayKeep) // nothing to skip
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
  // The dQ kernel's steps: the key blocks of the query block (emitKeyBlockRange).
  /// Sets the bases, the key-block range and ALiBi's coefficient.
  void planQueryBlockSteps();
  Value queryStepKey(Value block);                   // the step's first key
  Value queryStepNeeded(Value block, Value firstKey); // in range, not emptied by mask_mod
  /// Δ (written for the key-block kernels) and −lse·log2e of this thread's rows.
  struct QueryRowStats {
    std::vector<Value> delta, negLse;
  };
  QueryRowStats loadQueryRowStats();
  /// One step's products on the ring slot at `slotOffset` (its K and V tiles).
  void emitQueryBlockStep(Value firstKey, Value slotOffset, const QueryRowStats &stats,
                          Tiles &dQ);
  void storeQueryGradient(const Tiles &dQ);
  /// cp.async: every warp loads the ring's next tiles, then computes.
  void emitQueryBlockMainLoop();
  /// TMA producer warpgroup and wgmma consumers (WarpSpecializedBackwardLoops.cpp).
  void emitQueryBlockWarpSpecialized();
  /// The atomic form's auxiliary kernels (GradientAuxiliaryKernels.cpp):
  /// BackwardDelta writes Δ of this block's rows and zeroes their dQ
  /// accumulator rows; BackwardConvertDQ: dQ = scale · dQAccum.
  void emitDeltaKernel();
  void emitDeltaRows(unsigned oAlignment);
  void zeroGradQueryAccumulator(Value rows);
  void emitConvertDQ();
  void emitConvertRows(unsigned dqAlignment);
  Value rowsAligned16(int ptrArg, int strideArg);
  void emitAlignedOrNot(Value wide, llvm::function_ref<void(unsigned)> body);
  /// Δ = rowsum(dO ∘ O) of this thread's fragment rows (0 past seq_q); also
  /// written to `delta` for the key-block kernels.
  std::vector<Value> emitDelta(Value headIndex);
  void emitKeyBlockKernel();

  // The key-block kernels' steps: step t visits one tile of queries of one
  // query head of the group (keyStepAt), `needed` when it exists and the
  // masks may keep some of it.
  struct KeyStep {
    Value head, firstQuery, needed;
  };
  struct KeyBlockSteps {
    Value first, last;      // the block's keys
    Value steps, perHead;   // steps in all, a head (at least 1)
    Value firstQueryBlock;  // of every head (without a block mask)
  } keys;
  /// Sets `keys` (and the key-side bases) for the block starting at firstKey.
  void planKeyBlockSteps(Value firstKey);
  Value keyStepHead(Value t);
  KeyStep keyStepAt(Value t);
  Value keyOf(int64_t i, int64_t h); // the key of this thread's fragment row (i, h)
  /// −lse·log2e and Δ of this thread's accumulator columns (queries):
  /// index 2 t + (c & 1); or, warp-specialized, `staged` (the slot's rows
  /// in shared memory, −lse·log2e then Δ, m each), read where they are used.
  struct StepStats {
    std::vector<Value> negLse, delta;
    Value staged;
  };
  StepStats loadStepStats(const KeyStep &step);
  /// Entry `index` (2 · column tile + (c & 1)) of array `which` (0:
  /// −lse·log2e, 1: Δ) of `stats` for this thread's columns. Staged entries
  /// are read from shared memory at their first use (kept in `read`), so few
  /// are live at once.
  Value stepStat(const StepStats &stats, int64_t which, int64_t index, std::vector<Value> &read);

  // The atomic dQ of the key-block kernels (AtomicQueryGradient.cpp): each
  // step's dSᵀ of every consumer warpgroup to shared memory; dQᵀ = Kᵀ dSᵀ over
  // the block's keys (wgmma: A the resident K tile read M-major, B the dS
  // tiles), shared among the warpgroups; staged as f32 rows and added to
  // dQAccum by one bulk reduction a step.
  /// This kernel's flashjit::gradQueryShare.
  GradQueryShare gradQueryShare() const {
    return flashjit::gradQueryShare(v.headDimQK, v.warps, v.m, v.dropout);
  }
  /// dSᵀ (this warp's fragments) to its warpgroup's K-major swizzled
  /// [step queries x 64 keys] tile of dS buffer `buffer` (i32).
  void storeGradScores(const Tiles &dS, Value buffer);
  /// Every consumer warp has stored its dS: the block's barrier, or
  /// (warp-specialized) the consumers' named barrier.
  void syncGradScores();
  /// Issues this warpgroup's chunks [first, first + count) of its share (in
  /// flight, committed).
  std::vector<Value> issueGradQuery(Value buffer, int64_t first, int64_t count);
  /// Stores them to the staged [step queries x d_qk] f32 rows (the step's
  /// first query `firstQuery`).
  void stageGradQuery(const std::vector<Value> &acc, int64_t first, Value firstQuery);
  /// Where dQ column `column` of (sequence-local) query row `row` lives in
  /// the accumulator's row: rotated by 8 · (row / 2 % 4) columns, so a warp's
  /// staging stores (8 columns x 4 rows 2 apart) hit 32 distinct banks.
  Value gradQueryColumn(Value row, Value column);
  /// Before staging: the last step's bulk reduction has read the rows
  /// (warp-specialized: the writer warp says so).
  void awaitGradQueryStaging();
  /// After staging: the rows go to query head `h`'s accumulator from
  /// `firstQuery` (the block's first thread after a block barrier, or the
  /// writer warp).
  void releaseGradQueryStaging(Value h, Value firstQuery);
  /// One bulk reduction of the staged rows that exist (this thread issues it).
  void reduceStagedGradQuery(Value h, Value firstQuery);
  /// Warp-specialized: the producer's third warp adds each computed step's
  /// staged rows of the tile (`computed(step)`: whether the consumers
  /// computed it); the caller waits for the last before the block ends.
  void emitGradQueryWriter(llvm::function_ref<Value(const KeyStep &)> computed);
  Value firstThread() { return e.cmpi(CmpIPredicate::eq, tid, e.i32(0)); }
  // Named barriers of the warp-specialized key-block kernels' consumers
  // (the staging ones with the writer warp too).
  static constexpr int64_t kGradScoresReady = 1, kStagingFree = 2, kStagingFull = 3;
  int64_t stagingThreads() const { return v.warps * 32 + 32; }

  /// One step's products on the ring slot at `slotOffset` (its Q and dO
  /// tiles): dK and dV accumulate, dQ (atomic form, its dS in buffer
  /// `gradScoreBuffer`, null: 0) is added to dQAccum.
  /// `valueRead` (if any) runs once the step's last product reading the
  /// resident V tile (dPᵀ = V dOᵀ) is done.
  void emitKeyBlockStep(const KeyStep &step, const StepStats &stats, Value slotOffset,
                        Tiles &dK, Tiles &dV, Value gradScoreBuffer = Value(),
                        llvm::function_ref<void()> valueRead = nullptr);
  void storeKeyBlockGradients(const Tiles &dK, const Tiles &dV);
  /// cp.async: every warp loads the ring's next tiles, then computes.
  void emitKeyBlockMainLoop();
  /// TMA producer warpgroup and wgmma consumers
  /// (WarpSpecializedBackwardLoops.cpp).
  void emitKeyBlockWarpSpecialized();
  /// The warp-specialized loops' frame: initializes the resident-tile and
  /// ring barriers (a slot is full after `fullArrivals`, free again after
  /// `emptyArrivals`), splits the block
  /// into the producer warpgroup (fewer registers) and the consumers (more;
  /// `warp` counts them from 0) and emits each role's code.
  void emitWarpSpecializedRoles(int64_t fullArrivals, int64_t emptyArrivals,
                                llvm::function_ref<void()> producer,
                                llvm::function_ref<void()> consumer);
  /// A ring step of the producer: the streamed pair's first row and head
  /// (and, where stepAt knows it, whether it is loaded).
  struct RingStep {
    Value firstRow, headIndex, needed;
  };
  /// Persistent key-block kernels: `tilesDone` (waits until the consumers
  /// released the last tile's resident pair) and `stepsDone` (where this
  /// tile's steps start on the ring); null: one tile a block.
  void emitTmaProducer(bool streamQueries, Value residentRow, Value residentHead, Value steps,
                       llvm::function_ref<RingStep(Value)> stepAt,
                       llvm::function_ref<Value(Value, const RingStep &)> neededAt,
                       Value tilesDone = Value(), Value stepsDone = Value());
  /// The key-block tiles this block runs, walked alike by every role of the
  /// warp-specialized kernel: one tile a block (emitKeyBlockKernel set it
  /// up; tilesDone 0, stepsDone null), or persistent, units blockIdx.x +
  /// k gridDim.x (abi::keyBlockUnitsPerHead). `body` runs a tile with its
  /// coordinates and steps planned (planKeyBlockSteps), given the tiles and
  /// ring steps the block did before and the role's `carried` values, and
  /// returns them after the tile; eachKeyTile returns the last ones.
  using KeyTileBody =
      llvm::function_ref<SmallVector<Value>(Value tilesDone, Value stepsDone, ValueRange carried)>;
  SmallVector<Value> eachKeyTile(ValueRange carried, KeyTileBody body);
  /// Ring step t of a tile whose steps start after `stepsDone` (null: 0).
  Value ringIndex(Value stepsDone, Value t) { return stepsDone ? e.add(stepsDone, t) : t; }
  /// The resident pair's barrier (one tile a block: K and V landed).
  Value residentFullBarrier() { return barrierAt(v.smem.barrierOffset); }
  /// Persistent key-block kernels (SharedMemoryLayout's words): K's and
  /// V's full (which 0) and empty (1) barriers; every consumer thread
  /// empties them. Tile number `tilesDone` waits for parity tileParity.
  Value residentKeyBarrier(int64_t which) { return queryBarrier(e.i32(0), which); }
  Value residentValueBarrier(int64_t which) { return queryBarrier(e.i32(which), 2); }
  Value tileParity(Value tilesDone) { return e.andi(tilesDone, e.i32(1)); }
  // The ring: slot t % stages, its k-th use waits for parity k & 1.
  Value ringParity(Value t);
  Value ringSlotOffset(Value t);            // byte offset of the slot's tiles
  Value ringBarrier(Value t, int64_t kind); // kind: kRingFull or kRingEmpty
  void waitRingEmpty(Value t); // the producer, before refilling the slot
  static constexpr int64_t kRingFull = 0, kRingEmpty = 2; // of a stage's four barriers

  Value doBase, dqBase, dkBase, dvBase;
};

} // namespace flashjit::detail

#endif

//===- AttentionGeneratorImpl.h - the forward-kernel generator's state -*- C++ -*-===//
//
// Private to compiler/: the Generator class shared by the two main loops of
// the forward kernel (AttentionKernelGenerator.cpp: setup, math and the
// cp.async loop; WarpSpecializedMainLoop.cpp: TMA producer and wgmma
// consumers) and, through BackwardGenerator, by the backward kernels
// (BackwardKernelGenerator.cpp).
//
#ifndef FLASHJIT_COMPILER_ATTENTIONGENERATORIMPL_H
#define FLASHJIT_COMPILER_ATTENTIONGENERATORIMPL_H

#include "compiler/AttentionSpec.h"
#include "compiler/KernelEmitter.h"
#include "dialect/FlashDialect.h"
#include "dialect/SharedMemoryLayout.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <functional>
#include <optional>

namespace flashjit::detail {

using namespace mlir;

using Fragment = std::array<Value, 4>; // one thread's share of a 16x8 f32 accumulator tile
using Tiles = std::vector<std::vector<Fragment>>; // [16-row tile][8-column tile]

/// Where this thread's share of a block of S lies: fragment row (i, h) is
/// row rows[2 i + h]; element (t, c) of it is column columnBase + 8 t + (c & 1).
/// Rows are queries and columns keys, or (`transposed`, the backward's
/// key-block kernels) rows are keys and columns queries. The block spans
/// rows [firstRow, lastRow] and columns [firstColumn, firstColumn + columns).
struct ScorePlacement {
  std::vector<Value> rows;
  Value head; // the query head (for the modifier regions)
  Value columnBase;
  Value firstRow, lastRow, firstColumn;
  int64_t columns;
  bool transposed;
};

/// The columns a row may see: [lo, hi); lo null when unbounded below.
struct VisibleColumns {
  Value lo, hi;
};

/// What one block's online softmax did to the running max: O is to be
/// rescaled by `alpha` (one per fragment row) where `rescaled` (i32, this
/// thread's rows) is non-zero; null `rescaled`: always.
struct SoftmaxUpdate {
  std::vector<Value> alpha;
  Value rescaled;
};

struct Variant {
  KernelKind kind = KernelKind::Forward;
  int64_t headDimQK, headDimV;
  Type elementType;
  bool causal, hasLse;
  bool window;             // sliding-window mask, bounds from the kernel parameters
  bool softcap, alibi;     // score modifiers (ScoreModifiers.cpp)
  bool varlen;             // packed variable-length sequences (VariableLength.cpp)
  Region *scoreMod = nullptr, *maskMod = nullptr; // user regions (ModifierRegions.cpp)
  bool dropout;            // dropout on P (Dropout.cpp)
  bool blockMask;          // user-given block mask: tiles walk its lists (BlockMask.cpp)
  bool packGQA = false;    // forward: a GQA group's heads share the tile's rows (PackedHeads.cpp)
  int64_t m, n, warps, stages;
  int64_t mTilesPerWarp;   // 16-row mma tiles per warp (of the rows the warps own)
  int64_t nTilesS;         // 8-column tiles of S (keys; backward: the streamed rows)
  int64_t nTilesO;         // 8-column tiles of O (value head dim)
  int64_t kStepsQK;        // 16-deep k-steps of Q Kᵀ
  int64_t kStepsV;         // 16-deep k-steps of dO Vᵀ (backward)
  bool qkWgmma;            // Q Kᵀ on wgmma from swizzled shared memory (sm_90a)
  bool pvWgmma;            // P V on wgmma, P from registers, V swizzled (sm_90a)
  bool warpSpecialized;    // TMA producer warpgroup + `warps` consumer warps (sm_90a)
  bool persistent;         // warp-specialized blocks walk many tiles (grid = SMs)
  bool tmaStore = false;   // warp-specialized: O through the Q tile's shared memory and TMA
  bool zeroesGradQueryAccum = false; // BackwardDelta given dq_accum: zeroes its rows
  flash::SharedMemoryLayout smem;
};

/// The fields every kernel of flash.attention / flash.attention_bwd reads
/// the same way off its op: head dims, element type, mask, score modifiers,
/// packing and the tile's sizes.
template <typename AttentionLikeOp> Variant variantOf(AttentionLikeOp op) {
  Variant v;
  flash::TileAttr tile = op.getTile();
  v.headDimQK = op.getHeadDimQK();
  v.headDimV = op.getHeadDimV();
  v.elementType = op.getElementType();
  v.causal = op.getMask() == flash::MaskKind::Causal;
  v.window = op.getMask() == flash::MaskKind::Window;
  v.softcap = static_cast<bool>(op.getSoftcap());
  v.alibi = static_cast<bool>(op.getAlibiSlopes());
  v.varlen = static_cast<bool>(op.getCuSeqlensQ());
  v.scoreMod = op.getScoreMod().empty() ? nullptr : &op.getScoreMod();
  v.maskMod = op.getMaskMod().empty() ? nullptr : &op.getMaskMod();
  v.dropout = static_cast<bool>(op.getDropoutP());
  v.blockMask = static_cast<bool>(op.getKvCounts());
  v.m = tile.getM();
  v.n = tile.getN();
  v.warps = tile.getWarps();
  v.stages = tile.getStages();
  return v;
}

class Generator {
public:
  Generator(OpBuilder &b, Location loc, const Variant &v, gpu::GPUFuncOp kernel,
            StringRef smemSymbol)
      : e(b, loc), b(b), loc(loc), v(v), kernel(kernel), smemSymbol(smemSymbol) {}

  void emit();
  /// The ForwardBlockLists kernel (BlockListsKernel.cpp): the block-mask
  /// lists of the key blocks each query tile's mask may keep.
  void emitBlockLists();

protected:
  // AttentionKernelGenerator.cpp: setup, the cp.async main loop, the math
  // shared by both main loops.
  void emitSetup();
  void emitThreadGeometry(); // shared-memory base, tid, lane, warp, quad, seq lengths
  void emitTileCoordinates(Value queryBlock, Value headIndex, Value batchIndex);
  void emitSynchronousMainLoop();
  Value arg(int index) { return kernel.getArgument(index); }
  /// The parameter the forward's and the backward's lists (KernelABI.h) hold
  /// at different indices: this kernel's.
  Value kernelArg(int forwardIndex, int backwardIndex) {
    return arg(isBackwardKind(v.kind) ? backwardIndex : forwardIndex);
  }
  Value sharedAt(Value byteOffset) { return e.sharedPtr(smemBase, byteOffset); }
  /// A warp-specialized consumer's warp, counted from 0 after the producer
  /// warpgroup; read from lane 0, so ptxas knows the warp agrees (what
  /// depends on it can live in uniform registers).
  Value consumerWarpIndex() { return e.broadcastLane0(e.sub(e.shrui(tid, 5), e.i32(4))); }

  template <typename Fn> void emitIf(Value cond, Fn &&body);
  /// Element offset of a tile row (i32) from the tile's base (i64).
  using RowOffset = std::function<Value(Value)>;
  RowOffset stridedRows(Value rowStride); // row · rowStride
  void emitTileLoad(int64_t dstOffsetBytes, Value dstSlotOffset, int64_t rows, int64_t pitch,
                    int64_t paddedHeadDim, int64_t headDim, Value src, Value srcBase,
                    const RowOffset &rowOffset, Value firstRow, Value rowLimit, bool swizzled);
  void emitKeyValueLoad(Value block);
  std::vector<std::vector<Fragment>> emitScores(Value slotOffset);
  std::vector<std::vector<Fragment>> emitScoresWgmma(Value slotOffset);
  /// The forward's placement of S for the key block starting at kvStart
  /// (its first `columns` keys; 0: all n).
  ScorePlacement queryRowPlacement(Value kvStart, int64_t columns = 0);
  /// First key of the j-th key block this tile visits.
  Value keyBlockStart(Value j);

  // ScoreModifiers.cpp: the mask, window, softcap and ALiBi of every kernel.
  Value modifierArg(int which); // a ScoreModifierParam of this kernel
  Value scaleLog2Arg();         // this kernel's scaleLog2 parameter (the runtime's)
  VisibleColumns visibleColumns(Value row, bool transposed);
  /// Sets the key blocks this query block visits: firstBlock (null = 0) and numBlocks.
  void emitKeyBlockRange(Value firstRow, Value lastRow);
  /// −slope · log2(e) / scaleLog2 for query head `headIndex` of this batch:
  /// ALiBi's bias in the units of the raw scores.
  Value alibiCoefficient(Value headIndex);
  /// Softcap (tanh), ALiBi and the user's regions on every score; with
  /// `slope`, d logit / d s over the softmax scale (for the backward's chain
  /// rule), left empty where it is 1.
  void emitScoreModifiers(Tiles &s, const ScorePlacement &at, Tiles *slope = nullptr);
  void emitAlibi(Tiles &s, const ScorePlacement &at);
  /// −inf where a row may not see a column (bounds, causal, window); only
  /// blocks that straddle a boundary pay for it.
  void emitPlacedMask(Tiles &s, const ScorePlacement &at);
  /// Replaces `s` by what `maskedScores()` emits (every score, in tile,
  /// fragment, register order) where `needMask` holds, in an scf.if: blocks
  /// inside every bound pay nothing.
  template <typename MaskedScores>
  void emitMaskBranch(std::vector<std::vector<Fragment>> &s, Value needMask,
                      MaskedScores &&maskedScores);
  /// The forward's S of the key block at `kvStart` to the P that multiplies
  /// V: modifiers, mask, online softmax, dropout; returns emitOnlineSoftmax's.
  SoftmaxUpdate emitProbabilities(std::vector<std::vector<Fragment>> &s, Value kvStart,
                                  std::vector<Value> &rowMax, std::vector<Value> &rowSum,
                                  int64_t columns = 0, double lazyRescale = 0);
  /// Turns S into P in place and updates the row max and sum; returns the
  /// factor per fragment row (2 per 16-row tile) by which O must be rescaled.
  /// With `lazyRescale` > 0 a row keeps its max until the block's exceeds it
  /// by more than that (log2 units): P stays below 2^lazyRescale, and O need
  /// not be rescaled while `rescaled` is 0.
  SoftmaxUpdate emitOnlineSoftmax(std::vector<std::vector<Fragment>> &s,
                                  std::vector<Value> &rowMax, std::vector<Value> &rowSum,
                                  double lazyRescale = 0);
  void rescale(std::vector<std::vector<Fragment>> &o, const std::vector<Value> &alpha);
  /// Issues C = A Bᵀ on wgmma (fence, k-steps, commit) for this warpgroup's
  /// 64 rows of the swizzled tile at byte offset `aTile` (null: 0; `aRows`
  /// rows) and the first `bColumns` (0: all) of the `bRows` rows of the one
  /// at `bTile`; the accumulators are in flight until a wgmmaWaitFor.
  /// Without `fence` when one just issued covers it (a fence while a group
  /// is in flight makes ptxas wait for it).
  std::vector<Value> issueWgmmaABt(Value aTile, int64_t aRows, Value bTile, int64_t bRows,
                                   int64_t kSteps, bool fence = true, int64_t bColumns = 0);
  /// Issues C += P B on wgmma (no fence; commit): P as A fragments (one per
  /// 16 rows of B), B the swizzled tile at `bTile` (`bRows` rows) read
  /// N-major, n columns.
  std::vector<Value> issueWgmmaPB(const std::vector<std::array<Value, 4>> &pFrag,
                                  std::vector<Value> acc, Value bTile, int64_t bRows, int64_t n);
  /// Q Kᵀ of this warpgroup and the slot's first `keys` keys (0: all n).
  std::vector<Value> issueScoresWgmma(Value slotOffset, int64_t keys = 0);
  /// P as wgmma/mma.sync A fragments: 4 packed registers per 16 keys.
  std::vector<std::array<Value, 4>> packP(const std::vector<Fragment> &p);
  /// packP of every 16-row tile (the A operand of warpGemmPB).
  std::vector<std::vector<std::array<Value, 4>>>
  packTiles(const std::vector<std::vector<Fragment>> &p);
  /// Warp-level mma.sync GEMMs on shared-memory tiles of padded rows (the
  /// forward's and the backward's): C = A Bᵀ, and C += P B with P in registers.
  std::vector<std::vector<Fragment>> warpGemmABt(Value aTile, Value aFirstRow, int64_t aPitch,
                                                 Value bTile, int64_t bPitch, int64_t mTiles,
                                                 int64_t nTiles, int64_t kSteps);
  void warpGemmPB(const std::vector<std::vector<std::array<Value, 4>>> &pFrag, Value bTile,
                  int64_t bPitch, std::vector<std::vector<Fragment>> &c);
  /// Issues O += P V on wgmma (no fence; commit); accumulators in flight.
  std::vector<Value> issuePVWgmma(const std::vector<std::array<Value, 4>> &pFrag,
                                  std::vector<Value> acc, Value slotOffset);
  /// A flat register list (wgmma's accumulators, or any tiles in tile,
  /// fragment, register order) as 16-row tiles of `tiles` fragments, and back.
  std::vector<std::vector<Fragment>> toFragments(const std::vector<Value> &acc, int64_t tiles);
  std::vector<Value> fromFragments(const std::vector<std::vector<Fragment>> &frags);
  void emitPV(const std::vector<std::vector<Fragment>> &p, std::vector<std::vector<Fragment>> &o,
              Value slotOffset);
  void emitPVWgmma(const std::vector<std::vector<Fragment>> &p,
                   std::vector<std::vector<Fragment>> &o, Value slotOffset);
  void emitEpilogue(const std::vector<std::vector<Fragment>> &o, const std::vector<Value> &rowMax,
                    const std::vector<Value> &rowSum);
  /// tma_store: this thread's values of O's fragment row (i, h) into the Q
  /// tile's shared memory (its swizzled layout), and then each warpgroup's
  /// rows out with TMA (WarpSpecializedMainLoop.cpp).
  void stageOutputRow(const std::vector<std::vector<Fragment>> &o, int64_t i, int64_t h,
                      Value inv);
  void storeStagedOutput();
  bool defersStoreWait() const;          // the O store's wait moves into the next tile
  void handBackStagedQuery(Value tilesDone);
  Value isStoringThread();
  Value quadReduce(Value x, bool isMax);
  Value rowOf(int64_t mTile, int64_t half); // absolute query row of a thread's fragment row

  // ModifierRegions.cpp: the user's score_mod and mask_mod, inlined.
  /// log2(e) times what turns a score into a logit: the softmax's exponent scale.
  Value softmaxScaleLog2();
  /// score_mod on the logit of every score (leaving a logit), mask_mod's
  /// −inf; `slope` (non-empty or sized here) times d score_mod / d logit.
  void emitModifierRegions(Tiles &s, const ScorePlacement &at, Tiles *slope);

  // MaskIntervals.cpp: the block mask derived from the mask region.
  struct BlockMaskTruth {
    Value mayKeep, keepsAll; // i1: some / every (query, key) pair of the block may be kept
  };
  /// The mask region over a block: queries [q0, q1], keys [k0, k1] (i32).
  BlockMaskTruth userMaskOverBlock(Value headIndex, Value q0, Value q1, Value k0, Value k1);
  /// Narrows [firstBlock, firstBlock + numBlocks) to the key blocks from the
  /// first to the last the mask region may keep, for rows [firstRow, lastRow].
  void trimKeyBlocksByUserMask(Value firstRow, Value lastRow);

  // PackedHeads.cpp: a forward tile's rows, queries of one head or (GQA
  // packing) (query, head) pairs: row r = query r / group of head head + r % group.
  Value groupSize();
  Value tileRows();        // rows a tile covers: m, or packed group · ⌊m / group⌋
  Value queryRowsTotal();  // the rows of one (head, batch): seq_q, or packed seq_q · group
  Value positionOfRow(Value row);
  Value headOfRow(Value row);
  /// Offset of a row from the tile's head base in a [seq, heads, dim] tensor
  /// whose strides start at `strideArg`.
  Value queryRowOffset(int strideArg, Value row);

  // BlockMask.cpp: the blocks a user-given block mask lists.
  Value blockMaskArg(int which); // a BlockMaskParam of this kernel
  /// The list of a tile's block row: `tiles` steps (listed blocks times the
  /// tiles a block holds), whose starts listedTileStart gives.
  struct ListedBlocks {
    Value tiles, tilesPerBlock, listOffset, indices;
    int64_t tileRows;
  };
  /// The list of query head `headIndex` for the block row holding `firstRow`:
  /// key blocks of a query row, or (`keyRows`, the backward's key-block
  /// kernels) query blocks of a key row.
  ListedBlocks listedBlocks(Value headIndex, Value firstRow, bool keyRows);
  /// First row (key, or query for key rows) of step j of a list.
  Value listedTileStart(const ListedBlocks &l, Value j);

  // Dropout.cpp: which probabilities are dropped (Philox-4x32-10).
  Value dropoutArg(int which); // a DropoutParam of this kernel
  Value dropoutKeepScale();    // 1 / (1 − p)
  /// Philox-4x32-10 of counter `c` under this kernel's seed.
  std::array<Value, 4> philox(std::array<Value, 4> c);
  /// f(i, t, c, kept) for every element (tile i, tile t, register c) of a
  /// block placed at `at`, a counter's elements at a time (short live ranges).
  void forEachDropoutKeep(const ScorePlacement &at, size_t rowTiles, size_t columnTiles,
                          llvm::function_ref<void(size_t, size_t, int64_t, Value)> f);
  /// The same as i1 tiles, for uses far apart.
  Tiles dropoutKeeps(const ScorePlacement &at, size_t rowTiles, size_t columnTiles);
  /// x · scale (x when scale is null) where kept, 0 where dropped.
  Value keptOrZero(Value keep, Value x, Value scale);
  void applyDropout(Tiles &x, const ScorePlacement &at, Value scale);
  void applyDropout(Tiles &x, const Tiles &keep, Value scale);

  // VariableLength.cpp: where a tile's rows are, padded or packed.
  Value varlenArg(int which); // a VarlenParam of this kernel
  /// seqQ, seqK and (varlen) the sequences' first rows, of batch `batch`.
  void emitSequenceBounds();
  /// Element offset of (this batch, head `headIndex`, row 0) in a tensor
  /// whose strides start at `strideArg`; querySide: a tensor of seq_q rows.
  Value tensorBase(int strideArg, Value headIndex, bool querySide);
  /// Offset of (this batch, head, row) in lse / delta.
  Value rowStatsOffset(Value headIndex, Value row);
  /// TMA coordinates (row, batch) of a tile's first row.
  Value tensorMapRow(Value firstRow, bool querySide);
  Value tensorMapBatch();
  /// Runs `body` when the tile starting at `firstRow` lies inside its
  /// sequence of `length` rows; always for padded batches, whose grid fits.
  template <typename Fn> void emitInsideSequence(Value firstRow, Value length, Fn &&body);

  // CausalTileOrder.cpp: the order of tiles whose work differs (causal masks).
  struct RankedTile {
    Value rank;      // 0: the head's heaviest tile
    Value headBatch; // head + heads · batch
  };
  /// Tile `tile` of headBatches x tilesPerHead: head by head, or for causal
  /// masks the last heads rank by rank.
  RankedTile tileOrder(Value tile, Value tilesPerHead, Value headBatches);
  /// This block's tile on a grid x = a head's tiles, y = heads, z = batch:
  /// (x, y, z), or for causal masks (x + X (y + Y z)) ranked as above.
  struct GridTile {
    Value rank, head, batch;
  };
  GridTile gridTile();

  // WarpSpecializedMainLoop.cpp: the TMA producer and the wgmma consumers.
  void emitWarpSpecializedMainLoop();
  void emitTileLoop(bool producer, const std::function<Value(Value, Value)> &body);
  void emitTileCoordinatesOf(Value tile); // the warp-specialized tile order
  Value tileQueryBlocks();
  Value tileHeads();
  Value currentTile;                      // of emitTileLoop's body (the producer's)
  // and its (query block, head, batch), as emitTileCoordinates takes them
  std::array<Value, 3> currentTileCoordinates;
  void emitCurrentTileCoordinates();
  enum TileWord : int64_t { kTileIndex, kTileQueryBlock, kTileHead, kTileBatch };
  void emitProducer();
  void emitConsumer();
  Value barrierAt(int64_t offset);                   // shared::cta pointer
  Value querySlotOf(Value tilesDone);                // the Q slot of a block's tile
  Value queryPhaseOf(Value tilesDone);               // and the parity of its use
  Value querySlotByte(Value slot, int64_t byte);     // of a Q slot's 32 bytes of barriers
  Value queryBarrier(Value slot, int64_t word);      // word: 0 full, 1 empty, 2-3 tile words
  Value queryFullBarrier(Value slot);
  Value queryEmptyBarrier(Value slot);
  Value tileWord(Value slot, TileWord word);
  Value querySlot, queryTile;                        // of emitTileLoop's body: slot, byte offset
  Value stageBarrier(Value slot, int64_t kind);      // kind: 0 K full, 1 V full, 2 K empty, 3 V empty
  /// TMA of `rows` rows from firstRow of head `headIndex` (query: a tensor
  /// of seq_q rows) into the swizzled tile at dstOffset (+ dstSlotOffset),
  /// completing on `barrier`.
  void emitTensorLoad(int tensorMapArg, bool query, int64_t rows, int64_t dstOffset,
                      Value dstSlotOffset, int64_t headDim, Value firstRow, Value headIndex,
                      Value barrier);

  KernelEmitter e;
  OpBuilder &b;
  Location loc;
  const Variant &v;
  gpu::GPUFuncOp kernel;
  StringRef smemSymbol;

  // Values computed once at kernel entry.
  Value smemBase, smemBase32, tid, lane, warp, quadRow, quadCol, firstQueryRow;
  Value firstQueryPosition, lastQueryPosition; // the queries of the tile's rows (packed: / group)
  Value seqQ, seqK, numBlocks, kBase, vBase, qBase, oBase, batch, head, headK;
  Value rowStartQ, rowStartK; // varlen: the sequence's first packed rows
  Value firstBlock;          // first key block of the tile (null: 0)
  std::optional<ListedBlocks> keyList; // with a block mask: the tile's key blocks
  Value alibiCoef;           // of the current query head (ALiBi variants)
};

/// Calls f on every register of accumulator tiles, in tile, fragment,
/// register order (the order of every flattened list of them).
template <typename F> void eachValue(std::vector<std::vector<Fragment>> &tiles, F &&f) {
  for (auto &row : tiles)
    for (auto &frag : row)
      for (Value &x : frag)
        f(x);
}

/// Loop- or branch-carried SSA values that live in C++ variables: `each(f)`
/// calls f on every variable, always in the same order; these turn them into
/// one flat list (for scf.for / scf.if operands) and back.
template <typename Each> SmallVector<Value> flattenCarried(Each &&each) {
  SmallVector<Value> flat;
  each([&](Value &x) { flat.push_back(x); });
  return flat;
}
template <typename Each> void unflattenCarried(Each &&each, ValueRange flat) {
  size_t next = 0;
  each([&](Value &x) { x = flat[next++]; });
}

/// An scf.for carrying `init`, with the builder left at the end of its empty
/// body (the caller yields); callers hold an InsertionGuard.
inline scf::ForOp openLoop(OpBuilder &b, Location loc, Value lower, Value upper, Value step,
                           ValueRange init) {
  auto loop = scf::ForOp::create(b, loc, lower, upper, step, init);
  Block *body = loop.getBody();
  if (!body->empty() && body->back().hasTrait<OpTrait::IsTerminator>())
    body->back().erase();
  b.setInsertionPointToEnd(body);
  return loop;
}

template <typename Fn> void Generator::emitIf(Value cond, Fn &&body) {
  auto ifOp = scf::IfOp::create(b, loc, cond, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  body();
}

template <typename Fn>
void Generator::emitInsideSequence(Value firstRow, Value length, Fn &&body) {
  if (v.varlen)
    emitIf(e.cmpi(arith::CmpIPredicate::slt, firstRow, length), body);
  else
    body();
}

template <typename MaskedScores>
void Generator::emitMaskBranch(std::vector<std::vector<Fragment>> &s, Value needMask,
                               MaskedScores &&maskedScores) {
  auto eachScore = [&](auto &&f) { eachValue(s, f); };
  SmallVector<Value> flat = flattenCarried(eachScore);
  auto ifOp = scf::IfOp::create(b, loc, ValueRange(flat).getTypes(), needMask,
                                /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, flat);
    b.setInsertionPointToStart(ifOp.thenBlock());
    SmallVector<Value> masked = maskedScores();
    scf::YieldOp::create(b, loc, masked);
  }
  unflattenCarried(eachScore, ifOp.getResults());
}

} // namespace flashjit::detail

#endif

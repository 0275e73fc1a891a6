//===- WarpSpecializedMainLoop.cpp - TMA producer, wgmma consumers --------===//
//
// The Hopper main loop (tile switch `warp_specialized`), in the manner of
// FlashAttention-3:
//   * warpgroup 0 is the producer: it gives up registers (setmaxnreg) and one
//     thread issues TMA loads of Q once and of K/V block by block into a
//     `stages`-deep ring; each load completes on a "full" mbarrier with the
//     bytes it carries, and a slot is refilled only after its "empty"
//     mbarrier saw every consumer warp arrive;
//   * warpgroups 1.. are consumers (64 query rows each, more registers):
//     S = Q Kᵀ from shared memory and O += P V with P in registers, both on
//     wgmma. Step j issues Q K_jᵀ and P_{j-1} V_{j-1} back to back and runs the
//     softmax of S_j while the P V product is still on the tensor cores
//     (from head dim 128; below, ptxas's order, P V waited for first, is
//     faster); from head dim 128 too, O is rescaled only where a row's
//     max grew by more than 2^8 (lazy rescaling);
//   * the consumer warpgroups take turns issuing their GEMMs (ping-pong
//     on named barriers), so one's softmax runs while the others' GEMMs
//     keep the tensor cores busy.
//   * under a plain causal mask a warpgroup whose rows see only the first
//     half of the diagonal (last) key block multiplies by that half;
//   * odd lengths and head dims need no padding: TMA fills rows past the
//     sequence and columns past the head dim with zeros;
//   * with the tma_store switch, each consumer warpgroup writes its 64 rows
//     of O into the Q tile's shared memory (its own Q rows, which only it
//     reads) and one of its threads stores them with TMA; the Q tile is
//     released to the producer once that store has read it;
//   * each block runs one (query block, head, batch) tile, or with the
//     `persistent` switch (as many blocks as the SMs hold) many: blockIdx.x,
//     then x + gridDim.x, ... or, causal, each next one from an atomic tile
//     counter (emitTileLoop); the query blocks of one head are adjacent (its
//     K/V stay in L2) and heaviest first for causal masks. The producer loads
//     the next tile's K/V and Q (guarded by a "Q empty" barrier) while the
//     consumers finish the last one: where shared memory allows, into a
//     second Q tile (tiles alternate between the two), so the next tile's Q
//     is there long before the consumers are, and O can be staged where this
//     tile's Q was without holding the next tile back.
// Phases: the K/V ring counts key blocks over all tiles of the block; the
// k-th use of slot s waits for parity k & 1 on its full barrier; the
// producer waits on empty barriers with the opposite parity, which a fresh
// barrier satisfies at once. The Q slots' barriers likewise, counting the
// tiles that used the slot.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;
using arith::CmpIPredicate;

namespace flashjit::detail {

namespace {
enum StageBarrier : int64_t { kKeyFull = 0, kValueFull, kKeyEmpty, kValueEmpty };
} // namespace

Value Generator::barrierAt(int64_t offset) { return sharedAt(e.i32(offset)); }

// Tile number `tilesDone` of a block takes Q slot tilesDone % querySlots, for
// the (tilesDone / querySlots)-th time: the parity its Q full barrier flips to.
Value Generator::querySlotOf(Value tilesDone) {
  return v.smem.querySlots == 1 ? e.i32(0) : e.remui(tilesDone, e.i32(v.smem.querySlots));
}
Value Generator::queryPhaseOf(Value tilesDone) {
  return e.andi(e.divui(tilesDone, e.i32(v.smem.querySlots)), e.i32(1));
}

// A Q slot's barriers and the persistent producer's tile words (SharedMemoryLayout).
Value Generator::querySlotByte(Value slot, int64_t byte) {
  using Layout = flash::SharedMemoryLayout;
  return sharedAt(e.add(e.mul(slot, e.i32(8 * Layout::kQueryBarriers)),
                        e.i32(v.smem.barrierOffset + byte)));
}
Value Generator::queryBarrier(Value slot, int64_t word) { return querySlotByte(slot, 8 * word); }
Value Generator::queryFullBarrier(Value slot) { return queryBarrier(slot, 0); }
Value Generator::queryEmptyBarrier(Value slot) { return queryBarrier(slot, 1); }
Value Generator::tileWord(Value slot, TileWord word) { return querySlotByte(slot, 16 + 4 * word); }

Value Generator::stageBarrier(Value slot, int64_t kind) {
  using Layout = flash::SharedMemoryLayout;
  Value offset = e.add(e.mul(slot, e.i32(8 * Layout::kBarriersPerStage)),
                       e.i32(v.smem.stageBarriersOffset() + 8 * kind));
  return sharedAt(offset);
}

// Tile `tile`'s coordinates (query block, head, batch): a head's query
// blocks in a row (its K/V stay in L2), heaviest first for causal masks,
// the last heads' rank by rank (tileOrder). (Sections of several
// heads' heaviest blocks first throughout, FlashAttention-3's order, ran up
// to 13% slower on an H200 at short sequences and no faster at long ones:
// bench/results/h200-forward-short-problems.md.)
// Everything from the kernel parameters, so a persistent block can redo it
// after its key-block loop instead of keeping it in registers.
void Generator::emitTileCoordinatesOf(Value tile) {
  Value queryBlocks = tileQueryBlocks(), headsQ = tileHeads();
  RankedTile ranked = tileOrder(tile, queryBlocks, e.mul(headsQ, arg(abi::kBatch)));
  Value heaviestFirst = e.sub(e.sub(queryBlocks, e.i32(1)), ranked.rank);
  currentTileCoordinates = {heaviestFirst, e.remui(ranked.headBatch, headsQ),
                            e.divui(ranked.headBatch, headsQ)};
  emitCurrentTileCoordinates();
}

void Generator::emitCurrentTileCoordinates() {
  emitTileCoordinates(currentTileCoordinates[0], currentTileCoordinates[1],
                      currentTileCoordinates[2]);
}

// Query blocks a head has (of the longest sequence when varlen) and the heads
// of tiles: packed GQA tiles walk (query, head) rows of each key/value head.
Value Generator::tileQueryBlocks() {
  Value rows = v.packGQA ? e.mul(arg(abi::kSeqQ), groupSize()) : arg(abi::kSeqQ);
  return e.ceilDiv(rows, tileRows());
}

Value Generator::tileHeads() {
  return v.packGQA ? e.divui(arg(abi::kHeadsQ), groupSize()) : arg(abi::kHeadsQ);
}

// The tiles of a block, carrying the key blocks and tiles it has done (for
// the barrier phases); `body` sets the tile's coordinates up and returns how
// many key blocks it had. One tile a block: tile blockIdx.x, varlen tiles
// past their sequence's end (the grid fits the longest) skipped. Persistent:
// the producer's thread takes blockIdx.x, then (causal) gridDim.x + the tile
// counter's next value, atomically, so blocks that finish early take more and
// causal tiles of different lengths balance as over a grid of one block a
// tile; tiles of equal work take x + k gridDim.x (no counter to zero);
// skipping varlen tiles without rows. It writes each tile index and the
// tile's (query block, head, batch) to shared memory before the tile's Q-full
// arrival, and past the last one `tiles`, with a plain arrival. The consumers
// wait for Q full and read them: the tile order's divisions are the
// producer's alone (they were ~100 instructions of each consumer thread's
// ~2400 a tile at d 64, causal 1024 tokens, between two tiles' GEMMs).
// `body` gets the key blocks and tiles the block has done before; it finds
// the tile's Q slot in queryTile.
void Generator::emitTileLoop(bool producer, const std::function<Value(Value, Value)> &body) {
  auto setTile = [&](Value tile) {
    currentTile = tile;
    emitTileCoordinatesOf(tile);
  };
  auto setQuerySlot = [&](Value tilesDone) {
    querySlot = querySlotOf(tilesDone);
    queryTile = e.mul(querySlot, e.i32(v.smem.queryTileBytes));
  };
  if (!v.persistent) { // one tile a block: no loop (measured faster than a one-trip loop)
    setTile(e.blockId(0));
    setQuerySlot(e.i32(0));
    if (!v.varlen) {
      body(e.i32(0), e.i32(0));
      return;
    }
    emitIf(e.cmpi(CmpIPredicate::slt, firstQueryRow, seqQ), [&] { body(e.i32(0), e.i32(0)); });
    return;
  }
  Type i32 = b.getI32Type();
  Value tiles = e.mul(e.mul(tileQueryBlocks(), tileHeads()), arg(abi::kBatch));
  auto following = [&](Value tile) { // the producer's next tile
    if (!v.causal)
      return e.add(tile, e.gridDim(0));
    return e.add(e.gridDim(0), e.atomicAddGlobalI32(arg(abi::kTileCounter), e.i32(1)));
  };
  auto withRows = [&](Value candidate) -> Value { // the first tile from candidate on with rows
    if (!v.varlen)
      return candidate;
    auto skip = scf::WhileOp::create(b, loc, TypeRange{i32}, ValueRange{candidate});
    OpBuilder::InsertionGuard guard(b);
    Block *before = b.createBlock(&skip.getBefore(), {}, {i32}, {loc});
    Value tile = before->getArgument(0);
    Value inRange = e.cmpi(CmpIPredicate::slt, tile, tiles);
    setTile(e.minsi(tile, e.sub(tiles, e.i32(1)))); // (in range for its cu_seqlens reads)
    Value rowless = e.cmpi(CmpIPredicate::sge, firstQueryRow, seqQ);
    scf::ConditionOp::create(b, loc, arith::AndIOp::create(b, loc, inRange, rowless), ValueRange{tile});
    Block *after = b.createBlock(&skip.getAfter(), {}, {i32}, {loc});
    scf::YieldOp::create(b, loc, ValueRange{following(after->getArgument(0))});
    return skip.getResult(0);
  };

  SmallVector<Value> init = {e.i32(0), e.i32(0)}; // blocks done, tiles done
  if (producer)
    init.insert(init.begin(), withRows(e.blockId(0)));
  SmallVector<Type> types(init.size(), i32);
  // On to the body: the tile, blocks and tiles done, and (consumers) the
  // tile's coordinates as the producer wrote them.
  const int64_t carried = producer ? 3 : 6;
  SmallVector<Type> onward(carried, i32);
  auto loop = scf::WhileOp::create(b, loc, onward, init);
  {
    OpBuilder::InsertionGuard guard(b);
    Block *before = b.createBlock(&loop.getBefore(), {}, types, SmallVector<Location>(types.size(), loc));
    Value blocksDone = before->getArgument(producer ? 1 : 0);
    Value tilesDone = before->getArgument(producer ? 2 : 1);
    SmallVector<Value> words; // tile index, query block, head, batch
    if (producer) {
      words.push_back(before->getArgument(0));
    } else {
      // Lane 0 reads them for its warp: the lane that later releases Q (and
      // so the words) to the producer.
      Value slot = querySlotOf(tilesDone);
      e.mbarrierWait(queryFullBarrier(slot), queryPhaseOf(tilesDone));
      const TileWord all[] = {kTileIndex, kTileQueryBlock, kTileHead, kTileBatch};
      auto read = scf::IfOp::create(b, loc, SmallVector<Type>(4, i32),
                                    e.cmpi(CmpIPredicate::eq, lane, e.i32(0)),
                                    /*withElseRegion=*/true);
      b.setInsertionPointToStart(read.thenBlock());
      SmallVector<Value> loaded;
      for (TileWord word : all)
        loaded.push_back(e.loadSharedI32(tileWord(slot, word)));
      scf::YieldOp::create(b, loc, loaded);
      b.setInsertionPointToStart(read.elseBlock());
      scf::YieldOp::create(b, loc, SmallVector<Value>(4, e.i32(0)));
      b.setInsertionPointAfter(read);
      for (Value word : read.getResults())
        words.push_back(e.broadcastLane0(word));
    }
    SmallVector<Value> passed = {words[0], blocksDone, tilesDone};
    passed.append(words.begin() + 1, words.end());
    scf::ConditionOp::create(b, loc, e.cmpi(CmpIPredicate::slt, words[0], tiles), passed);
    Block *after = b.createBlock(&loop.getAfter(), {}, onward, SmallVector<Location>(carried, loc));
    Value tile = after->getArgument(0);
    blocksDone = after->getArgument(1);
    tilesDone = after->getArgument(2);
    // Taken early, used after the tile: its latency hides behind the loads.
    Value nextTile = producer ? following(tile) : Value();
    if (producer) {
      setTile(tile);
    } else {
      currentTileCoordinates = {after->getArgument(3), after->getArgument(4),
                                after->getArgument(5)};
      emitCurrentTileCoordinates();
    }
    setQuerySlot(tilesDone);
    Value blocks = body(blocksDone, tilesDone);
    SmallVector<Value> next = {e.add(blocksDone, blocks), e.add(tilesDone, e.i32(1))};
    if (producer)
      next.insert(next.begin(), withRows(nextTile));
    scf::YieldOp::create(b, loc, next);
  }
  if (!producer)
    return;
  // No more tiles: wake the consumers with `tiles` in the slot the next tile
  // would take, once they are done with it.
  Value tilesDone = loop.getResult(2);
  Value slot = querySlotOf(tilesDone);
  e.mbarrierWait(queryEmptyBarrier(slot),
                 arith::XOrIOp::create(b, loc, queryPhaseOf(tilesDone), e.i32(1)));
  e.store(tiles, tileWord(slot, kTileIndex), 4);
  e.mbarrierArrive(queryFullBarrier(slot));
}

// One TMA box per 64 head-dim columns: [rows x 128 B] blocks, the swizzled
// layout wgmma reads.
void Generator::emitTensorLoad(int tensorMapArg, bool query, int64_t rows, int64_t dstOffset,
                               Value dstSlotOffset, int64_t headDim, Value firstRow,
                               Value headIndex, Value barrier) {
  const int64_t boxes = (headDim + abi::kTensorMapBoxColumns - 1) / abi::kTensorMapBoxColumns;
  Value row = tensorMapRow(firstRow, /*querySide=*/query);
  for (int64_t c = 0; c < boxes; ++c) {
    Value dst = e.i32(dstOffset + c * rows * 128);
    if (dstSlotOffset)
      dst = e.add(dst, dstSlotOffset);
    Value column = e.i32(c * abi::kTensorMapBoxColumns);
    // Packed GQA: Q as [dim, group, seq, heads_k, batch], a box of every head
    // of the group for ⌊m / group⌋ queries: the tile's rows in order.
    SmallVector<Value> at = {column, row, headIndex, tensorMapBatch()};
    if (query && v.packGQA)
      at = {column, e.i32(0), positionOfRow(firstRow), headK, tensorMapBatch()};
    e.tmaLoad(sharedAt(dst), arg(tensorMapArg), at, barrier);
  }
}

void Generator::emitWarpSpecializedMainLoop() {
  const int64_t consumerWarps = v.warps;
  emitIf(e.cmpi(CmpIPredicate::eq, tid, e.i32(0)), [&] {
    for (int64_t q = 0; q < v.smem.querySlots; ++q) {
      Value slot = e.i32(q);
      e.mbarrierInit(queryFullBarrier(slot), 1);
      // Q empty: every consumer warp after its last Q Kᵀ, or (tma_store) each
      // warpgroup once its O, staged where Q was, has left (persistent: each
      // warp then, and with two Q slots each warp plus each warpgroup's
      // storing thread; see storeStagedOutput).
      const int64_t arrivals = !v.tmaStore         ? consumerWarps
                               : !v.persistent     ? consumerWarps / 4
                               : defersStoreWait() ? consumerWarps + consumerWarps / 4
                                                   : consumerWarps;
      e.mbarrierInit(queryEmptyBarrier(slot), arrivals);
    }
    for (int64_t s = 0; s < v.stages; ++s) {
      Value slot = e.i32(s);
      e.mbarrierInit(stageBarrier(slot, kKeyFull), 1);
      e.mbarrierInit(stageBarrier(slot, kValueFull), 1);
      e.mbarrierInit(stageBarrier(slot, kKeyEmpty), consumerWarps);
      e.mbarrierInit(stageBarrier(slot, kValueEmpty), consumerWarps);
    }
    e.fenceMbarrierInit(); // visible to the async proxy (TMA) too
  });
  e.barrier(); // the last block-wide barrier: the roles never meet again

  auto ifOp = scf::IfOp::create(b, loc, e.cmpi(CmpIPredicate::ult, tid, e.i32(128)),
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  emitProducer();
  b.setInsertionPoint(ifOp.elseBlock()->getTerminator());
  emitConsumer();
}

void Generator::emitProducer() {
  e.setMaxRegisters(abi::warpSpecializedRegisters(v.warps, std::max(v.headDimQK, v.headDimV)).producer, /*increase=*/false);
  const int64_t keyBytes = v.smem.paddedHeadDimQK * v.n * 2;
  const int64_t valueBytes = v.smem.paddedHeadDimV * v.n * 2;
  // Key or value block j of the tile into ring slot (blocksDone + j) % stages,
  // once the consumers have emptied it.
  auto loadBlock = [&](Value blocksDone, Value j, bool key) {
    Value ring = e.add(blocksDone, j);
    Value slot = e.remui(ring, e.i32(v.stages));
    Value emptyParity = arith::XOrIOp::create(
        b, loc, e.andi(e.divui(ring, e.i32(v.stages)), e.i32(1)), e.i32(1));
    e.mbarrierWait(stageBarrier(slot, key ? kKeyEmpty : kValueEmpty), emptyParity);
    Value full = stageBarrier(slot, key ? kKeyFull : kValueFull);
    e.mbarrierArriveExpectTx(full, key ? keyBytes : valueBytes);
    emitTensorLoad(key ? abi::kTensorMapK : abi::kTensorMapV, /*query=*/false, v.n,
                   v.smem.queryBytes + (key ? 0 : v.smem.keyBytes),
                   e.mul(slot, e.i32(v.smem.stageBytes)), key ? v.headDimQK : v.headDimV,
                   keyBlockStart(j), headK, full);
  };
  emitIf(e.cmpi(CmpIPredicate::eq, tid, e.i32(0)), [&] {
    emitTileLoop(/*producer=*/true, [&](Value blocksDone, Value tilesDone) {
      // K_0 first: it needs only a ring slot, which the last tile's Q Kᵀ
      // freed long ago, while Q waits for the tile that last used its slot.
      Value any = e.cmpi(CmpIPredicate::sgt, numBlocks, e.i32(0));
      emitIf(any, [&] { loadBlock(blocksDone, e.i32(0), /*key=*/true); });
      e.mbarrierWait(queryEmptyBarrier(querySlot),
                     arith::XOrIOp::create(b, loc, queryPhaseOf(tilesDone), e.i32(1)));
      if (v.persistent) { // the consumers' words on which tile comes (emitTileLoop)
        e.store(currentTile, tileWord(querySlot, kTileIndex), 4);
        e.store(currentTileCoordinates[0], tileWord(querySlot, kTileQueryBlock), 4);
        e.store(currentTileCoordinates[1], tileWord(querySlot, kTileHead), 4);
        e.store(currentTileCoordinates[2], tileWord(querySlot, kTileBatch), 4);
      }
      Value queryFull = queryFullBarrier(querySlot);
      e.mbarrierArriveExpectTx(queryFull, e.mul(tileRows(), e.i32(v.smem.paddedHeadDimQK * 2)));
      emitTensorLoad(abi::kTensorMapQ, /*query=*/true, v.m, 0, queryTile, v.headDimQK,
                     firstQueryRow, head, queryFull);
      emitIf(any, [&] { loadBlock(blocksDone, e.i32(0), /*key=*/false); });

      auto loop = scf::ForOp::create(b, loc, e.i32(1), e.maxsi(numBlocks, e.i32(1)), e.i32(1));
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(loop.getBody()->getTerminator());
      loadBlock(blocksDone, loop.getInductionVar(), /*key=*/true);
      loadBlock(blocksDone, loop.getInductionVar(), /*key=*/false);
      return numBlocks;
    });
  });
}

void Generator::emitConsumer() {
  e.setMaxRegisters(abi::warpSpecializedRegisters(v.warps, std::max(v.headDimQK, v.headDimV)).consumer, /*increase=*/true);
  warp = consumerWarpIndex();

  Value zero = e.f32(0.0);
  Value zeroPacked = e.i32(0);
  std::vector<Value> o(size_t(v.headDimV / 2), zero);
  std::vector<std::array<Value, 4>> p(size_t(v.n / 16), {zeroPacked, zeroPacked, zeroPacked,
                                                         zeroPacked});
  std::vector<Value> rowMax(2, e.negInf()), rowSum(2, zero);

  // Loop-carried state: O, P, row max, row sum.
  auto eachCarried = [&](auto &&f) {
    for (Value &x : o)
      f(x);
    for (auto &frag : p)
      for (Value &x : frag)
        f(x);
    for (auto *stats : {&rowMax, &rowSum})
      for (Value &x : *stats)
        f(x);
  };
  auto flatten = [&] { return flattenCarried(eachCarried); };
  auto unflatten = [&](ValueRange flat) { unflattenCarried(eachCarried, flat); };
  auto parityOf = [&](Value block) {
    return e.andi(e.divui(block, e.i32(v.stages)), e.i32(1));
  };
  auto slotOf = [&](Value block) { return e.remui(block, e.i32(v.stages)); };
  auto release = [&](Value barrier) { // one arrival per consumer warp
    emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)), [&] { e.mbarrierArrive(barrier); });
  };
  // S_j = Q K_jᵀ of the block's first `keys` keys, masked and turned into
  // P_j (the P of keys past them zero); returns the softmax's update (O's
  // rescale factors, and with lazy rescaling whether this thread rescales).
  // From head dim 128 on, where O's rescale costs most (d 64: slower), a
  // row keeps its softmax max until a block's exceeds it by 2^8 (P < 256),
  // and O is rescaled only by threads whose rows moved it; and the wait for
  // P V is kept below the softmax, which then overlaps P V (ptxas otherwise
  // hoists the wait above it). H200: bench/results/h200-forward-lazy-rescale.md.
  const bool largeHeadDim = v.headDimV >= 128;
  const double lazyRescale = largeHeadDim ? 8.0 : 0.0;
  auto scoresToP = [&](std::vector<Value> s, Value block, int64_t keys) {
    auto frags = toFragments(s, keys / 8);
    SoftmaxUpdate update =
        emitProbabilities(frags, keyBlockStart(block), rowMax, rowSum, keys, lazyRescale);
    p = packP(frags[0]);
    p.resize(size_t(v.n / 16), {zeroPacked, zeroPacked, zeroPacked, zeroPacked});
    return update;
  };
  auto withState = [&](Value cond, auto &&body) { // if (cond) body(); state flows out
    SmallVector<Value> before = flatten();
    auto ifOp = scf::IfOp::create(b, loc, ValueRange(before).getTypes(), cond,
                                  /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, before);
    b.setInsertionPointToStart(ifOp.thenBlock());
    body();
    scf::YieldOp::create(b, loc, flatten());
    b.setInsertionPointAfter(ifOp);
    unflatten(ifOp.getResults());
  };

  // Ping-pong: warpgroup w issues its GEMMs after bar.sync on barrier 1 + w
  // and then lets the next go (bar.arrive on barrier 1 + (w + 1) % W), in a
  // ring of the W consumer warpgroups: with three (small head dims), two
  // keep the tensor cores busy while the third runs its softmax. Each issues
  // numBlocks + 1 times a tile, so the turns run on from tile to tile: one
  // warpgroup's first Q Kᵀ of the next tile goes while another finishes
  // this one. The last warpgroup opens with one arrival so warpgroup 0 goes
  // first; warpgroup 0 takes one more turn at the end so no arrival is left
  // pending. A lone consumer warpgroup (two blocks an SM) takes no turns:
  // the other block's warpgroup fills the tensor cores' gaps.
  const int64_t warpgroups = v.warps / 4;
  const bool pingPong = warpgroups > 1;
  Value warpgroup = e.shrui(warp, 2);
  Value myTurn = e.add(warpgroup, e.i32(1));
  Value nextTurn = e.add(e.remui(myTurn, e.i32(warpgroups)), e.i32(1));
  const int64_t turnThreads = 2 * 128;
  auto beginIssue = [&] {
    if (pingPong)
      e.namedBarrierSync(myTurn, turnThreads);
  };
  auto endIssue = [&] {
    if (pingPong)
      e.namedBarrierArrive(nextTurn, turnThreads);
  };

  // A causal tile's last key block holds the diagonal: a warpgroup whose
  // rows see none of its second half multiplies by the first half only
  // (half the Q Kᵀ, softmax and P V of that block; the plain mask only, and
  // n / 2 a multiple of 16 for P V's k-steps).
  const bool narrowsDiagonal = v.causal && !v.softcap && !v.alibi && !v.scoreMod &&
                               !v.maskMod && !v.dropout && !v.blockMask && !v.packGQA &&
                               v.n % 32 == 0;

  emitIf(e.cmpi(CmpIPredicate::eq, warpgroup, e.i32(warpgroups - 1)), endIssue);
  emitTileLoop(/*producer=*/false, [&](Value blocksDone, Value tilesDone) {
    Value zero = e.f32(0.0), zeroPacked = e.i32(0);
    std::fill(o.begin(), o.end(), zero);
    for (auto &frag : p)
      frag = {zeroPacked, zeroPacked, zeroPacked, zeroPacked};
    rowMax.assign(2, e.negInf());
    rowSum.assign(2, zero);
    if (!v.persistent) // (else emitTileLoop waited to read the tile index)
      e.mbarrierWait(queryFullBarrier(querySlot), queryPhaseOf(tilesDone));
    Value any = e.cmpi(CmpIPredicate::sgt, numBlocks, e.i32(0));

    // Block 0: scores and softmax only (O is still zero). The last tile's O
    // store is waited for while its Q Kᵀ runs.
    if (defersStoreWait())
      emitIf(e.logicalNot(any), [&] { handBackStagedQuery(tilesDone); });
    withState(any, [&] {
      Value slot = slotOf(blocksDone);
      e.mbarrierWait(stageBarrier(slot, kKeyFull), parityOf(blocksDone));
      beginIssue();
      std::vector<Value> issued = issueScoresWgmma(e.mul(slot, e.i32(v.smem.stageBytes)));
      endIssue();
      handBackStagedQuery(tilesDone);
      std::vector<Value> s = e.wgmmaWaitFor(0, issued);
      release(stageBarrier(slot, kKeyEmpty));
      scoresToP(s, e.i32(0), v.n);
    });

    // Block j >= 1: Q K_jᵀ (its first `keys` keys) and P_{j-1} V_{j-1} in
    // flight together; the softmax of S_j runs while P V finishes.
    auto block = [&](Value j, int64_t keys) {
      Value ring = e.add(blocksDone, j), previous = e.sub(ring, e.i32(1));
      Value slot = slotOf(ring), previousSlot = slotOf(previous);

      e.mbarrierWait(stageBarrier(slot, kKeyFull), parityOf(ring));
      e.mbarrierWait(stageBarrier(previousSlot, kValueFull), parityOf(previous));
      beginIssue();
      std::vector<Value> s = issueScoresWgmma(e.mul(slot, e.i32(v.smem.stageBytes)), keys);
      std::vector<Value> oInFlight =
          issuePVWgmma(p, o, e.mul(previousSlot, e.i32(v.smem.stageBytes)));
      endIssue();
      s = e.wgmmaWaitFor(1, s);
      release(stageBarrier(slot, kKeyEmpty));
      SoftmaxUpdate update = scoresToP(s, j, keys);
      std::vector<Value> &alpha = update.alpha;
      // The row statistics go through the wait with O: otherwise LLVM is free
      // to sink the softmax below it. (Not P: redefining wgmma A registers
      // there makes ptxas serialize the wgmmas.) ptxas in turn hoists the
      // wait to the top of its basic block; from head dim 128 a block ends
      // after the softmax (a branch on the row sums), so the softmax runs
      // while P V does.
      std::vector<Value> rescaled;
      if (update.rescaled)
        rescaled.push_back(update.rescaled);
      if (largeHeadDim) {
        Value sums = rowSum[0];
        for (size_t r = 1; r < rowSum.size(); ++r)
          sums = e.fadd(sums, rowSum[r]);
        e.endBlockAfter(sums);
      }
      std::vector<Value> waited(oInFlight);
      for (auto *stats : {&rowMax, &rowSum, &alpha, &rescaled})
        waited.insert(waited.end(), stats->begin(), stats->end());
      waited = e.wgmmaWaitFor(0, waited);
      auto next = waited.begin();
      for (auto *values : {&o, &rowMax, &rowSum, &alpha, &rescaled})
        for (Value &x : *values)
          x = *next++;
      release(stageBarrier(previousSlot, kValueEmpty));
      auto rescaleO = [&] {
        auto oFrags = toFragments(o, v.nTilesO);
        rescale(oFrags, alpha);
        o = fromFragments(oFrags);
      };
      if (rescaled.empty())
        rescaleO();
      else // only where one of this thread's rows moved its max
        withState(e.cmpi(CmpIPredicate::ne, rescaled[0], e.i32(0)), rescaleO);
    };
    // Where the diagonal may narrow, the last block (from the second on) is
    // taken after the loop, narrowed or not.
    Value loopEnd = e.maxsi(narrowsDiagonal ? e.sub(numBlocks, e.i32(1)) : numBlocks, e.i32(1));
    scf::ForOp loop;
    {
      OpBuilder::InsertionGuard guard(b);
      loop = openLoop(b, loc, e.i32(1), loopEnd, e.i32(1), flatten());
      unflatten(loop.getRegionIterArgs());
      block(loop.getInductionVar(), v.n);
      scf::YieldOp::create(b, loc, flatten());
    }
    unflatten(loop.getResults());
    Value narrowed; // this warpgroup's last block narrowed (null: never)
    if (narrowsDiagonal) {
      Value last = e.sub(numBlocks, e.i32(1));
      Value hasLater = e.cmpi(CmpIPredicate::sgt, numBlocks, e.i32(1));
      // Does this warpgroup's last row see past the block's first half?
      Value lastRow = e.add(firstQueryRow, e.sub(e.mul(myTurn, e.i32(64)), e.i32(1)));
      Value seen = visibleColumns(positionOfRow(lastRow), /*transposed=*/false).hi;
      Value half = e.cmpi(CmpIPredicate::sle, seen, e.add(keyBlockStart(last), e.i32(v.n / 2)));
      narrowed = arith::AndIOp::create(b, loc, hasLater, half);
      withState(narrowed, [&] { block(last, v.n / 2); });
      withState(arith::AndIOp::create(b, loc, hasLater, e.logicalNot(half)),
                [&] { block(last, v.n); });
    }
    if (!v.tmaStore) // (else O is staged there first: storeStagedOutput releases it)
      release(queryEmptyBarrier(querySlot)); // every Q Kᵀ of the tile is done

    // The last block's P V (over the first half of its keys where narrowed).
    auto lastPV = [&](int64_t keys) {
      Value last = e.sub(e.add(blocksDone, numBlocks), e.i32(1));
      Value slot = slotOf(last);
      e.mbarrierWait(stageBarrier(slot, kValueFull), parityOf(last));
      beginIssue();
      e.wgmmaFence();
      std::vector<std::array<Value, 4>> pUsed(p.begin(), p.begin() + keys / 16);
      std::vector<Value> issued = issuePVWgmma(pUsed, o, e.mul(slot, e.i32(v.smem.stageBytes)));
      endIssue();
      o = e.wgmmaWaitFor(0, issued);
      release(stageBarrier(slot, kValueEmpty)); // the next tile reuses the ring
    };
    if (!narrowed) {
      withState(any, [&] { lastPV(v.n); });
    } else {
      withState(narrowed, [&] { lastPV(v.n / 2); });
      withState(arith::AndIOp::create(b, loc, any, e.logicalNot(narrowed)),
                [&] { lastPV(v.n); });
    }

    if (v.persistent) // the offsets recomputed rather than held in registers through the loop
      emitCurrentTileCoordinates();
    emitEpilogue(toFragments(o, v.nTilesO), rowMax, rowSum);
    return numBlocks;
  });
  if (defersStoreWait()) // the last tile's O store reads shared memory until it is done
    emitIf(isStoringThread(), [&] { e.bulkWait(0, /*readOnly=*/true); });
  emitIf(e.cmpi(CmpIPredicate::eq, warpgroup, e.i32(0)), beginIssue);
}

// Row (i, h) of this warp's O fragments at the Q tile's place for it: the
// 128-byte-swizzled blocks of 64 columns that TMA moves (16-byte chunk
// (column / 8) ^ (row % 8) of the row's 128 bytes; row % 8 is quadRow).
// A warp's stores hit 8 rows x 4 words in 32 distinct banks.
void Generator::stageOutputRow(const std::vector<std::vector<Fragment>> &o, int64_t i, int64_t h,
                               Value inv) {
  Value row = e.add(e.mul(warp, e.i32(16 * v.mTilesPerWarp)),
                    e.add(quadRow, e.i32(16 * i + 8 * h)));
  Value rowBase = e.add(queryTile, e.add(e.mul(row, e.i32(128)), e.mul(quadCol, e.i32(4))));
  for (int64_t t = 0; t < v.nTilesO; ++t) {
    Value chunk = arith::XOrIOp::create(b, loc, e.i32(t % 8), quadRow);
    Value offset = e.add(rowBase, e.add(e.mul(chunk, e.i32(16)), e.i32((t / 8) * v.m * 128)));
    Value packed = e.packPair(v.elementType, e.fmul(o[i][t][2 * h], inv),
                              e.fmul(o[i][t][2 * h + 1], inv));
    e.store(packed, sharedAt(offset), 4);
  }
}

// Each warpgroup's 64 staged rows, one box of 64 columns at a time, stored
// by its first thread once all of its threads have written them; the rows
// past seq_q and columns past d_v are clipped by the tensor map. That thread
// then waits until the store has read shared memory and hands the Q tile
// back to the producer (the next tile's Q lands there); persistent, every
// warp does after a second warpgroup barrier. With two Q slots (persistent)
// the slot is not needed before the tile after next: the warps hand it back
// at once and the storing thread waits for the store during the next tile
// (handBackStagedQuery), so the warpgroup does not wait for it.
void Generator::storeStagedOutput() {
  e.fenceProxyAsyncShared(); // the generic-proxy writes, before TMA reads them
  Value warpgroup = e.shrui(warp, 2);
  // Named barriers 1 .. warpgroups take the ping-pong turns.
  Value stagedBarrier = e.add(warpgroup, e.i32(1 + v.warps / 4));
  e.namedBarrierSync(stagedBarrier, 128);
  emitIf(isStoringThread(), [&] {
    const int64_t rows = abi::kTensorMapOutputRows;
    Value firstRow = e.add(firstQueryRow, e.mul(warpgroup, e.i32(rows)));
    Value rowInBlock = e.add(queryTile, e.mul(warpgroup, e.i32(rows * 128)));
    for (int64_t c = 0; c * abi::kTensorMapBoxColumns < v.headDimV; ++c) {
      Value src = e.add(rowInBlock, e.i32(c * v.m * 128));
      e.tmaStore(sharedAt(src), arg(abi::kTensorMapO),
                 {e.i32(c * abi::kTensorMapBoxColumns), tensorMapRow(firstRow, true), head,
                  tensorMapBatch()});
    }
    e.bulkCommit();
    if (defersStoreWait())
      return; // handBackStagedQuery waits, during the next tile
    e.bulkWait(0, /*readOnly=*/true);
    if (!v.persistent)
      e.mbarrierArrive(queryEmptyBarrier(querySlot));
  });
  if (!v.persistent)
    return;
  if (defersStoreWait()) { // each warp is done with the slot's rows and tile word
    emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)),
           [&] { e.mbarrierArrive(queryEmptyBarrier(querySlot)); });
    return;
  }
  // Persistent: each warp's lane 0 read the next tile's index from shared
  // memory (emitTileLoop), so that lane hands Q (and the word) back itself,
  // once the store has read the rows.
  e.namedBarrierSync(stagedBarrier, 128);
  emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)),
         [&] { e.mbarrierArrive(queryEmptyBarrier(querySlot)); });
}

// The thread that stores its warpgroup's staged O (the warpgroup's first).
Value Generator::isStoringThread() {
  return e.cmpi(CmpIPredicate::eq, e.andi(tid, e.i32(127)), e.i32(0));
}

bool Generator::defersStoreWait() const {
  return v.tmaStore && v.persistent && v.smem.querySlots == 2;
}

// The last tile's staged O (tilesDone > 0): its warpgroup's storing thread
// waits until the store has read it and hands the Q slot back.
void Generator::handBackStagedQuery(Value tilesDone) {
  if (!defersStoreWait())
    return;
  Value after = e.cmpi(CmpIPredicate::sgt, tilesDone, e.i32(0));
  emitIf(arith::AndIOp::create(b, loc, isStoringThread(), after), [&] {
    e.bulkWait(0, /*readOnly=*/true);
    e.mbarrierArrive(queryEmptyBarrier(querySlotOf(e.sub(tilesDone, e.i32(1)))));
  });
}

} // namespace flashjit::detail

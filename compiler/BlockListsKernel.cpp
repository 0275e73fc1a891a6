//===- BlockListsKernel.cpp - the key blocks a mask_mod may keep, as lists -===//
//
// The forward trims a mask_mod's empty key blocks at the ends of a query
// tile's range only (MaskIntervals.cpp): finding the j-th non-empty block
// inside the pipelined loops would cost a search per step. This kernel runs
// first and writes, for every query block of the forward's m rows, the key
// blocks of n keys that the causal / window bounds and the mask region may
// keep, as block-mask lists (KernelABI.h's BlockMaskParams); the forward's
// block-mask variant then walks them, so a sink-plus-window or dilated mask
// skips the blocks between its kept ones too. The test per block is the
// forward's own (userMaskOverBlock): a block the lists drop is one the
// forward would have computed fully masked.
//
// One warp a query block: lanes test 32 consecutive key blocks at once, and
// vote.ballot + popc give each kept block its place in the list, so the
// lists come out ascending with no shared memory and no second pass.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;
using arith::CmpIPredicate;

namespace flashjit::detail {

void Generator::emitBlockLists() {
  Block &entry = kernel.getBody().front();
  b.setInsertionPointToStart(&entry);
  tid = e.threadIdX();
  lane = e.andi(tid, e.i32(31));
  warp = e.shrui(tid, 5);
  seqQ = arg(abi::kSeqQ);
  seqK = arg(abi::kSeqK);
  // Grid: (query blocks / warps, mask heads, mask batches); a shared mask
  // (1 head or batch) is the same for every head or batch, its expression
  // does not read h or b.
  Value queryBlocks = blockMaskArg(abi::kQueryBlocksParam);
  Value queryBlock = e.add(e.mul(e.blockId(0), e.i32(v.warps)), warp);
  emitIf(e.cmpi(CmpIPredicate::slt, queryBlock, queryBlocks), [&] {
    emitTileCoordinates(queryBlock, e.blockId(1), e.blockId(2));
    // The range again over the block's real rows only (the forward's counts
    // the last block's rows past seq_q too).
    Value lastQuery = e.minsi(lastQueryPosition, e.sub(seqQ, e.i32(1)));
    emitKeyBlockRange(firstQueryPosition, lastQuery);
    Value start = firstBlock ? firstBlock : e.i32(0);
    Value end = e.add(start, numBlocks);
    Value row = e.add(
        e.mul(e.add(e.mul(batch, blockMaskArg(abi::kMaskHeadsParam)), head), queryBlocks),
        queryBlock);
    Value listBase = e.toI64(e.mul(row, blockMaskArg(abi::kKeyBlocksParam)));
    Value lanesBelow = e.sub(arith::ShLIOp::create(b, loc, e.i32(1), lane), e.i32(1));

    Value count;
    {
      OpBuilder::InsertionGuard guard(b);
      scf::ForOp loop = openLoop(b, loc, start, end, e.i32(32), ValueRange{e.i32(0)});
      Value listed = loop.getRegionIterArgs()[0];
      Value block = e.add(loop.getInductionVar(), lane);
      Value keep = e.cmpi(CmpIPredicate::slt, block, end);
      if (v.maskMod) {
        Value k0 = e.mul(block, e.i32(v.n));
        Value k1 = e.minsi(e.add(k0, e.i32(v.n - 1)), e.sub(seqK, e.i32(1)));
        keep = arith::AndIOp::create(
            b, loc, keep, userMaskOverBlock(head, firstQueryPosition, lastQuery, k0, k1).mayKeep);
      }
      Value kept = e.ballot(keep);
      emitIf(keep, [&] {
        Value at = e.add(listed, e.popCount(e.andi(kept, lanesBelow)));
        e.store(block, e.globalElementPtr(blockMaskArg(abi::kKvIndicesParam),
                                          e.add(listBase, e.toI64(at)), b.getI32Type()),
                4);
      });
      scf::YieldOp::create(b, loc, ValueRange{e.add(listed, e.popCount(kept))});
      count = loop.getResult(0);
    }
    emitIf(e.cmpi(CmpIPredicate::eq, lane, e.i32(0)), [&] {
      e.store(count, e.globalElementPtr(blockMaskArg(abi::kKvCountsParam), e.toI64(row),
                                        b.getI32Type()),
              4);
    });
  });
  gpu::ReturnOp::create(b, loc);
}

} // namespace flashjit::detail

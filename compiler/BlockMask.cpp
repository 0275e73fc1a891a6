//===- BlockMask.cpp - the blocks a user-given block mask lists -----------===//
//
// With a block mask (KernelABI.h's BlockMaskParams) a tile does not walk a
// range of blocks but a list: step j of a query tile is tile j % (blockK / n)
// of the (j / (blockK / n))-th listed key block. The main loops, the TMA
// ring and the cp.async pipeline stay as they are, over [0, listed tiles);
// only where a step's keys start changes (keyBlockStart). The key-block
// kernels of the backward walk the transposed lists the same way. Tiles
// divide the blocks (the runtime picks them so), so all rows of a tile lie in
// one block row.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;

namespace flashjit::detail {

Value Generator::blockMaskArg(int which) {
  return kernelArg(abi::kBlockMask0 + which, abi::bwd::kBlockMask0 + which);
}

Generator::ListedBlocks Generator::listedBlocks(Value headIndex, Value firstRow, bool keyRows) {
  using namespace abi;
  Value rowBlockSize = blockMaskArg(keyRows ? kBlockKParam : kBlockQParam);
  Value columnBlockSize = blockMaskArg(keyRows ? kBlockQParam : kBlockKParam);
  Value rowsPerHead = blockMaskArg(keyRows ? kKeyBlocksParam : kQueryBlocksParam);
  Value columns = blockMaskArg(keyRows ? kQueryBlocksParam : kKeyBlocksParam);
  // Shared masks (batches or heads 1) index 0 for every batch or head.
  Value maskBatch = e.remui(batch, blockMaskArg(kMaskBatchesParam));
  Value heads = blockMaskArg(kMaskHeadsParam);
  Value maskHead = e.remui(headIndex, heads);
  Value row = e.add(e.mul(e.add(e.mul(maskBatch, heads), maskHead), rowsPerHead),
                    e.divui(firstRow, rowBlockSize));
  Value counts = blockMaskArg(keyRows ? kQCountsParam : kKvCountsParam);
  Value count = e.loadGlobalI32(e.globalElementPtr(counts, e.toI64(row), b.getI32Type()));
  ListedBlocks l;
  l.tilesPerBlock = e.divui(columnBlockSize, e.i32(keyRows ? v.m : v.n));
  l.tiles = e.mul(count, l.tilesPerBlock);
  l.listOffset = e.toI64(e.mul(row, columns));
  l.indices = blockMaskArg(keyRows ? kQIndicesParam : kKvIndicesParam);
  l.tileRows = keyRows ? v.m : v.n;
  return l;
}

Value Generator::listedTileStart(const ListedBlocks &l, Value j) {
  Value entry = e.add(l.listOffset, e.toI64(e.divui(j, l.tilesPerBlock)));
  Value block = e.loadGlobalI32(e.globalElementPtr(l.indices, entry, b.getI32Type()));
  return e.mul(e.add(e.mul(block, l.tilesPerBlock), e.remui(j, l.tilesPerBlock)),
               e.i32(l.tileRows));
}

} // namespace flashjit::detail

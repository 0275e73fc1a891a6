//===- CausalTileOrder.cpp - which tile a block runs when work differs ----===//
//
// Under a causal mask tiles differ in work: a query block sees more keys the
// later it is, a key block fewer queries. Blocks (or, persistent, a tile
// counter) take tiles in index order as SMs free up, so putting heavy tiles
// first schedules longest-first and the grid ends evenly -- if the light ones
// come last. A head's tiles in a row, heaviest first, keep its K/V (or Q/dO)
// in L2, but leave the last head's heaviest tile to start late, alone: the
// grid's tail (a greedy-dispatch simulation puts it at 3-13% of the kernel's
// time up to 8192 tokens). So the tiles go head by head except those of the
// last heads, enough for two waves of one block an SM: they go heaviest of
// each head first, then the next heaviest, ... and the tail is light tiles.
// H200, causal bf16 against head by head (bench/results/h200-causal-tile-order.md):
// forward +1-4% from 1024 to 8192 tokens, backward +2-3% at d 128.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"

using namespace mlir;
using arith::CmpIPredicate;

namespace flashjit::detail {

Generator::RankedTile Generator::tileOrder(Value tile, Value tilesPerHead, Value headBatches) {
  RankedTile headByHead{e.remui(tile, tilesPerHead), e.divui(tile, tilesPerHead)};
  if (!v.causal)
    return headByHead;
  // From half the SMs' worth of tiles a head, the heads run about one after
  // another and head by head leaves a small tail, while the last heads' K/V
  // at once cost L2 hits: there every head goes head by head.
  Value sms = e.smIdentifiers();
  Value fewTiles = e.cmpi(CmpIPredicate::sle, e.mul(tilesPerHead, e.i32(2)), sms);
  Value twoWaves = e.ceilDiv(e.mul(sms, e.i32(2)), tilesPerHead);
  Value lastHeads = e.select(fewTiles, e.minsi(headBatches, twoWaves), e.i32(0));
  Value firstHeads = e.sub(headBatches, lastHeads);
  Value lastTile = e.sub(tile, e.mul(firstHeads, tilesPerHead)); // (< 0 before them)
  Value inLast = e.cmpi(CmpIPredicate::sge, lastTile, e.i32(0));
  Value safeLast = e.maxsi(lastTile, e.i32(0)), divisor = e.maxsi(lastHeads, e.i32(1));
  return RankedTile{e.select(inLast, e.divui(safeLast, divisor), headByHead.rank),
                    e.select(inLast, e.add(firstHeads, e.remui(safeLast, divisor)),
                             headByHead.headBatch)};
}

Generator::GridTile Generator::gridTile() {
  Value x = e.blockId(0), y = e.blockId(1), z = e.blockId(2);
  if (!v.causal)
    return GridTile{x, y, z};
  Value heads = e.gridDim(1);
  Value tile = e.add(x, e.mul(e.gridDim(0), e.add(y, e.mul(heads, z))));
  RankedTile ranked = tileOrder(tile, e.gridDim(0), e.mul(heads, e.gridDim(2)));
  return GridTile{ranked.rank, e.remui(ranked.headBatch, heads),
                  e.divui(ranked.headBatch, heads)};
}

} // namespace flashjit::detail

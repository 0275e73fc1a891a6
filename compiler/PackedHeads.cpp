//===- PackedHeads.cpp - GQA head packing: a group's heads in one tile ----===//
//
// With the `pack_gqa` switch a forward tile belongs to a key/value head and
// its rows are (query, query head) pairs of that head's group: row r is
// query r / group of head headK · group + r % group. For decoding (a few
// queries, many heads per key/value head) that fills the tile's rows, where
// one head's queries would leave most of them empty, and streams each K/V
// block once per group instead of once per head. A tile covers
// group · ⌊m / group⌋ rows (whole queries); the rows left over hold the next
// tile's first ones, computed and not stored. Masks and the key range see
// the rows' queries; loads and stores map rows to (query, head) addresses,
// which are two strides, not one (the TMA load is a 5-D box for it).
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;

namespace flashjit::detail {

Value Generator::groupSize() { return arg(abi::kGroupSize); }

Value Generator::tileRows() {
  if (!v.packGQA)
    return e.i32(v.m);
  return e.mul(groupSize(), e.divui(e.i32(v.m), groupSize()));
}

Value Generator::queryRowsTotal() { return v.packGQA ? e.mul(seqQ, groupSize()) : seqQ; }

Value Generator::positionOfRow(Value row) {
  return v.packGQA ? e.divui(row, groupSize()) : row;
}

Value Generator::headOfRow(Value row) {
  return v.packGQA ? e.add(head, e.remui(row, groupSize())) : head;
}

Value Generator::queryRowOffset(int strideArg, Value row) {
  Value offset = e.mul(e.toI64(positionOfRow(row)), arg(strideArg + 1));
  if (!v.packGQA)
    return offset;
  return e.add(offset, e.mul(e.toI64(e.remui(row, groupSize())), arg(strideArg + 2)));
}

Generator::RowOffset Generator::stridedRows(Value rowStride) {
  return [this, rowStride](Value row) { return e.mul(e.toI64(row), rowStride); };
}

} // namespace flashjit::detail

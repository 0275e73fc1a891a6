//===- VariableLength.cpp - packed variable-length sequences --------------===//
//
// Where a (batch, head) tile's rows live, for padded batches and for packed
// variable-length ones (flash_attn_varlen_func): with the `varlen` variant
// batch b's queries are rows [cu_seqlens_q[b], cu_seqlens_q[b + 1]) of the
// [total, heads, dim] tensors (keys likewise), its lengths are read from those
// prefix sums, and the row statistics (lse, delta) are [heads_q, total_q].
// The grid is sized for the longest sequence; tiles past a shorter one's end
// do nothing.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

using namespace mlir;

namespace flashjit::detail {

Value Generator::varlenArg(int which) {
  return kernelArg(abi::kVarlen0 + which, abi::bwd::kVarlen0 + which);
}

void Generator::emitSequenceBounds() {
  if (!v.varlen)
    return;
  auto prefixSum = [&](int which, Value index) {
    return e.loadGlobalI32(e.globalElementPtr(varlenArg(which), e.toI64(index), b.getI32Type()));
  };
  Value next = e.add(batch, e.i32(1));
  rowStartQ = prefixSum(abi::kCuSeqlensQParam, batch);
  rowStartK = prefixSum(abi::kCuSeqlensKParam, batch);
  seqQ = e.sub(prefixSum(abi::kCuSeqlensQParam, next), rowStartQ);
  seqK = e.sub(prefixSum(abi::kCuSeqlensKParam, next), rowStartK);
}

Value Generator::tensorBase(int strideArg, Value headIndex, bool querySide) {
  Value headOffset = e.mul(e.toI64(headIndex), arg(strideArg + 2));
  if (!v.varlen)
    return e.add(e.mul(e.toI64(batch), arg(strideArg)), headOffset);
  Value firstRow = querySide ? rowStartQ : rowStartK;
  return e.add(e.mul(e.toI64(firstRow), arg(strideArg + 1)), headOffset);
}

Value Generator::rowStatsOffset(Value headIndex, Value row) {
  if (v.varlen) { // [heads_q, total_q]
    Value totalQ = varlenArg(abi::kTotalQParam);
    return e.add(e.mul(e.toI64(headIndex), e.toI64(totalQ)), e.toI64(e.add(rowStartQ, row)));
  }
  Value headsQ = kernelArg(abi::kHeadsQ, abi::bwd::kHeadsQ);
  Value headRow = e.add(e.mul(batch, headsQ), headIndex); // [batch, heads_q, seq_q]
  return e.add(e.mul(e.toI64(headRow), e.toI64(seqQ)), e.toI64(row));
}

Value Generator::tensorMapRow(Value firstRow, bool querySide) {
  return v.varlen ? e.add(querySide ? rowStartQ : rowStartK, firstRow) : firstRow;
}

Value Generator::tensorMapBatch() { return v.varlen ? e.i32(0) : batch; }

} // namespace flashjit::detail

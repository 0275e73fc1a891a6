//===- ScoreModifiers.cpp - masks, sliding window, softcap, ALiBi ---------===//
//
// What every kernel does to a block of S = Q Kᵀ between the GEMM and the
// exponential, written once for the forward's layout (rows = queries) and the
// backward key-block kernels' (rows = keys):
//   * softcap: s ← tanh(s · scale / softcap); the softmax then runs with
//     scale' = softcap (the runtime passes scaleLog2 = softcap · log2 e);
//   * ALiBi: s ← s − slope / scale' · |query + seq_k − seq_q − key|, so that
//     the logit scale' · s gains −slope · |distance to the diagonal|;
//   * the mask: keys past seq_k (and, transposed, queries past seq_q), and
//     for causal / window masks keys outside [diagonal − left, diagonal +
//     right]. Visible columns of a row form one interval whose ends grow with
//     the row, so a block needs the element-wise mask only when its first
//     row's interval ends early or its last row's starts late, and key blocks
//     outside every row's interval are never visited.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"
#include "compiler/KernelABI.h"

#include <cmath>

using namespace mlir;
using arith::CmpIPredicate;

namespace flashjit::detail {

Value Generator::modifierArg(int which) {
  return kernelArg(abi::kScoreModifiers0 + which, abi::bwd::kScoreModifiers0 + which);
}

// Row (query) i's diagonal key is i + seq_k − seq_q. Causal: keys up to the
// diagonal; window: from left before it to right after it. Transposed rows
// are keys: the queries that see key j are those whose diagonal lies in
// [j − right, j + left].
VisibleColumns Generator::visibleColumns(Value row, bool transposed) {
  Value shift = e.sub(seqK, seqQ);
  Value columnLimit = transposed ? seqQ : seqK;
  VisibleColumns c{Value(), columnLimit};
  if (!v.causal && !v.window)
    return c;
  Value right = v.causal ? e.i32(0) : modifierArg(abi::kWindowRightParam);
  Value left = v.window ? modifierArg(abi::kWindowLeftParam) : Value();
  if (!transposed) {
    Value diagonal = e.add(row, shift);
    c.hi = e.minsi(columnLimit, e.add(e.add(diagonal, right), e.i32(1)));
    if (left)
      c.lo = e.sub(diagonal, left);
  } else {
    Value query = e.sub(row, shift); // the query whose diagonal is this key
    c.lo = e.sub(query, right);
    if (left)
      c.hi = e.minsi(columnLimit, e.add(e.add(query, left), e.i32(1)));
  }
  return c;
}

void Generator::emitKeyBlockRange(Value firstRow, Value lastRow) {
  if (v.blockMask) { // the listed blocks replace the range; masks still apply within them
    keyList = listedBlocks(head, firstRow, /*keyRows=*/false);
    firstBlock = Value();
    numBlocks = keyList->tiles;
    return;
  }
  VisibleColumns last = visibleColumns(lastRow, /*transposed=*/false);
  Value endBlock = e.ceilDiv(e.maxsi(last.hi, e.i32(0)), v.n);
  firstBlock = Value();
  if (Value lo = visibleColumns(firstRow, /*transposed=*/false).lo) {
    firstBlock = e.divui(e.maxsi(lo, e.i32(0)), e.i32(v.n));
    numBlocks = e.maxsi(e.sub(endBlock, firstBlock), e.i32(0));
  } else {
    numBlocks = endBlock;
  }
  if (v.maskMod && v.kind != KernelKind::ForwardBlockLists) // that kernel tests every block
    trimKeyBlocksByUserMask(firstRow, lastRow);
}

Value Generator::keyBlockStart(Value j) {
  if (v.blockMask)
    return listedTileStart(*keyList, j);
  return e.mul(firstBlock ? e.add(firstBlock, j) : j, e.i32(v.n));
}

Value Generator::scaleLog2Arg() {
  return kernelArg(abi::kScaleLog2, abi::bwd::kScaleLog2);
}

Value Generator::alibiCoefficient(Value headIndex) {
  Value scaleLog2 = scaleLog2Arg();
  Value slopes = modifierArg(abi::kAlibiSlopesParam);
  Value offset = e.add(e.mul(e.toI64(batch), modifierArg(abi::kAlibiBatchStrideParam)),
                       e.toI64(headIndex));
  Value slope = e.loadGlobalF32(e.globalElementPtr(slopes, offset, b.getF32Type()));
  return arith::NegFOp::create(b, loc, e.fmul(e.fmul(slope, e.f32(M_LOG2E)),
                                              e.reciprocal(scaleLog2)));
}

void Generator::emitScoreModifiers(Tiles &s, const ScorePlacement &at, Tiles *slope) {
  if (v.softcap) {
    Value inputScale = modifierArg(abi::kSoftcapInputScaleParam);
    eachValue(s, [&](Value &x) { x = e.tanhApprox(e.fmul(x, inputScale)); });
    if (slope) { // d tanh = 1 − tanh²
      *slope = s;
      eachValue(*slope, [&](Value &x) {
        x = e.fma(arith::NegFOp::create(b, loc, x), x, e.f32(1.0));
      });
    }
  }
  if (v.alibi)
    emitAlibi(s, at);
  emitModifierRegions(s, at, slope);
}

void Generator::emitAlibi(Tiles &s, const ScorePlacement &at) {
  // Distance to the diagonal, query + seq_k − seq_q − key, as a float: one
  // base per fragment row, a constant offset per element (exact below 2^24).
  Value shift = e.sub(seqK, seqQ);
  for (size_t i = 0; i < s.size(); ++i)
    for (int64_t h = 0; h < 2; ++h) {
      Value row = at.rows[2 * i + h];
      Value base = at.transposed ? e.sub(e.add(at.columnBase, shift), row)
                                 : e.sub(e.add(row, shift), at.columnBase);
      Value baseF = e.toF32(base);
      for (size_t t = 0; t < s[i].size(); ++t)
        for (int64_t c = 2 * h; c < 2 * h + 2; ++c) {
          double offset = double(int64_t(t) * 8 + (c & 1));
          Value distance = e.fadd(baseF, e.f32(at.transposed ? offset : -offset));
          s[i][t][c] = e.fma(alibiCoef, e.fabs(distance), s[i][t][c]);
        }
    }
}

void Generator::emitPlacedMask(Tiles &s, const ScorePlacement &at) {
  Value columnEnd = e.add(at.firstColumn, e.i32(at.columns));
  VisibleColumns first = visibleColumns(at.firstRow, at.transposed);
  Value needMask = e.cmpi(CmpIPredicate::slt, first.hi, columnEnd);
  if (Value lo = visibleColumns(at.lastRow, at.transposed).lo)
    needMask = arith::OrIOp::create(b, loc, needMask,
                                    e.cmpi(CmpIPredicate::sgt, lo, at.firstColumn));
  if (at.transposed) // rows are keys: those past seq_k see nothing
    needMask = arith::OrIOp::create(b, loc, needMask,
                                    e.cmpi(CmpIPredicate::sge, at.lastRow, seqK));
  emitMaskBranch(s, needMask, [&] {
    SmallVector<Value> masked;
    Value minusInf = e.negInf();
    for (size_t i = 0; i < s.size(); ++i) {
      VisibleColumns visible[2];
      for (int64_t h = 0; h < 2; ++h) {
        Value row = at.rows[2 * i + h];
        visible[h] = visibleColumns(row, at.transposed);
        if (at.transposed) // an empty interval for keys past seq_k
          visible[h].hi = e.select(e.cmpi(CmpIPredicate::slt, row, seqK), visible[h].hi,
                                   e.i32(std::numeric_limits<int32_t>::min()));
      }
      for (size_t t = 0; t < s[i].size(); ++t)
        for (int64_t c = 0; c < 4; ++c) {
          const VisibleColumns &in = visible[c / 2];
          Value col = e.add(at.columnBase, e.i32(int64_t(t) * 8 + (c & 1)));
          Value hidden = e.cmpi(CmpIPredicate::sge, col, in.hi);
          if (in.lo)
            hidden = arith::OrIOp::create(b, loc, hidden, e.cmpi(CmpIPredicate::slt, col, in.lo));
          masked.push_back(e.select(hidden, minusInf, s[i][t][c]));
        }
    }
    return masked;
  });
}

} // namespace flashjit::detail

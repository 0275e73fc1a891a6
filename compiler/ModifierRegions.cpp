//===- ModifierRegions.cpp - user score_mod / mask_mod in the kernels -----===//
//
// The op's modifier regions are inlined at every score a thread holds: arith
// ops are cloned, math ops become the fast PTX forms the rest of the kernel
// uses (ex2/lg2/tanh .approx), and for the backward the score region is
// differentiated with respect to %score on the way (forward-mode: each value
// carries its derivative, null meaning 0), so a score_mod needs no
// hand-written gradient.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"

#include "mlir/IR/IRMapping.h"

#include <cmath>

using namespace mlir;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

namespace flashjit::detail {
namespace {

class RegionInliner {
public:
  RegionInliner(KernelEmitter &e, OpBuilder &b, Location loc) : e(e), b(b), loc(loc) {}

  /// The region's result for `args`; with `derivative`, also d result / d
  /// args[0] (args[0] seeded with 1).
  Value inlineRegion(Region &region, ArrayRef<Value> args, Value *derivative) {
    Block &block = region.front();
    for (auto [formal, actual] : llvm::zip(block.getArguments(), args))
      mapping.map(formal, actual);
    wantDerivative = derivative != nullptr;
    if (wantDerivative)
      tangent[block.getArgument(0)] = e.f32(1.0);
    for (Operation &op : block.without_terminator())
      inlineOp(op);
    Value yielded = cast<flash::YieldOp>(block.getTerminator()).getValue();
    if (derivative) {
      Value d = tangent.lookup(yielded);
      *derivative = d ? d : e.f32(0.0);
    }
    return mapping.lookup(yielded);
  }

private:
  Value in(Value original) { return mapping.lookup(original); }
  Value dOf(Value original) { return wantDerivative ? tangent.lookup(original) : Value(); }
  Value orZero(Value d) { return d ? d : e.f32(0.0); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  // Division that may use a reciprocal (a constant divisor: a multiplication).
  Value fdiv(Value x, Value y) {
    return arith::DivFOp::create(b, loc, x, y,
                                 arith::FastMathFlags::arcp | arith::FastMathFlags::afn);
  }
  Value fneg(Value x) { return arith::NegFOp::create(b, loc, x); }

  void inlineOp(Operation &op) {
    Value result = lowered(op);
    if (!result)
      result = b.clone(op, mapping)->getResult(0);
    else
      mapping.map(op.getResult(0), result);
    if (wantDerivative && isa<FloatType>(op.getResult(0).getType()))
      if (Value d = derivativeOf(op, result))
        tangent[op.getResult(0)] = d;
  }

  // math ops and float min / max in the kernel's fast forms (the GPU lowering
  // would call libdevice); divisions may use reciprocals (a constant
  // divisor becomes a multiplication).
  Value lowered(Operation &op) {
    if (auto x = dyn_cast<arith::MaxNumFOp>(op))
      return e.fmax(in(x.getLhs()), in(x.getRhs()));
    if (auto x = dyn_cast<arith::MinNumFOp>(op))
      return e.fmin(in(x.getLhs()), in(x.getRhs()));
    if (auto x = dyn_cast<arith::DivFOp>(op))
      return fdiv(in(x.getLhs()), in(x.getRhs()));
    if (auto t = dyn_cast<math::TanhOp>(op))
      return e.tanhApprox(in(t.getOperand()));
    if (auto x = dyn_cast<math::ExpOp>(op))
      return e.exp2Approx(e.fmul(in(x.getOperand()), e.f32(M_LOG2E)));
    if (auto x = dyn_cast<math::Exp2Op>(op))
      return e.exp2Approx(in(x.getOperand()));
    if (auto x = dyn_cast<math::LogOp>(op))
      return e.fmul(e.log2Approx(in(x.getOperand())), e.f32(M_LN2));
    if (auto x = dyn_cast<math::Log2Op>(op))
      return e.log2Approx(in(x.getOperand()));
    if (auto x = dyn_cast<math::SqrtOp>(op))
      return e.sqrtApprox(in(x.getOperand()));
    if (auto x = dyn_cast<math::AbsFOp>(op))
      return e.fabs(in(x.getOperand()));
    if (auto x = dyn_cast<math::AbsIOp>(op)) {
      Value v = in(x.getOperand());
      return e.select(e.cmpi(CmpIPredicate::slt, v, e.i32(0)), e.sub(e.i32(0), v), v);
    }
    return Value();
  }

  // d result for the float ops (null: 0, as for constants and conversions).
  Value derivativeOf(Operation &op, Value result) {
    auto operand = [&](unsigned i) { return op.getOperand(i); };
    auto d = [&](unsigned i) { return dOf(operand(i)); };
    if (isa<arith::AddFOp, arith::SubFOp>(op)) {
      Value da = d(0), db = d(1);
      if (!da && !db)
        return Value();
      if (isa<arith::AddFOp>(op))
        return da && db ? e.fadd(da, db) : (da ? da : db);
      return db ? fsub(orZero(da), db) : da;
    }
    if (isa<arith::MulFOp>(op)) {
      Value da = d(0), db = d(1), sum;
      if (da)
        sum = e.fmul(da, in(operand(1)));
      if (db)
        sum = sum ? e.fma(in(operand(0)), db, sum) : e.fmul(in(operand(0)), db);
      return sum;
    }
    if (isa<arith::DivFOp>(op)) { // (da − r·db) / y
      Value da = d(0), db = d(1);
      if (!da && !db)
        return Value();
      Value num = db ? fsub(orZero(da), e.fmul(result, db)) : da;
      return fdiv(num, in(operand(1)));
    }
    if (isa<arith::NegFOp>(op))
      return d(0) ? fneg(d(0)) : Value();
    if (isa<arith::MaxNumFOp, arith::MinNumFOp>(op)) {
      Value da = d(0), db = d(1);
      if (!da && !db)
        return Value();
      auto p = isa<arith::MaxNumFOp>(op) ? CmpFPredicate::OGE : CmpFPredicate::OLE;
      return e.select(e.cmpf(p, in(operand(0)), in(operand(1))), orZero(da), orZero(db));
    }
    if (auto s = dyn_cast<arith::SelectOp>(op)) {
      Value da = dOf(s.getTrueValue()), db = dOf(s.getFalseValue());
      if (!da && !db)
        return Value();
      return e.select(in(s.getCondition()), orZero(da), orZero(db));
    }
    Value da = op.getNumOperands() ? d(0) : Value();
    if (!da)
      return Value();
    if (isa<math::TanhOp>(op))
      return e.fmul(da, e.fma(fneg(result), result, e.f32(1.0)));
    if (isa<math::ExpOp>(op))
      return e.fmul(da, result);
    if (isa<math::Exp2Op>(op))
      return e.fmul(da, e.fmul(result, e.f32(M_LN2)));
    if (isa<math::LogOp>(op))
      return fdiv(da, in(operand(0)));
    if (isa<math::Log2Op>(op))
      return fdiv(da, e.fmul(in(operand(0)), e.f32(M_LN2)));
    if (isa<math::SqrtOp>(op))
      return fdiv(da, e.fmul(result, e.f32(2.0)));
    if (isa<math::AbsFOp>(op))
      return e.select(e.cmpf(CmpFPredicate::OLT, in(operand(0)), e.f32(0.0)), fneg(da), da);
    return Value();
  }

  KernelEmitter &e;
  OpBuilder &b;
  Location loc;
  IRMapping mapping;
  DenseMap<Value, Value> tangent; // original value → its derivative in the kernel
  bool wantDerivative = false;
};

} // namespace

Value Generator::softmaxScaleLog2() {
  if (v.scoreMod) // the score region's results are logits already
    return e.f32(M_LOG2E);
  return scaleLog2Arg();
}

void Generator::emitModifierRegions(Tiles &s, const ScorePlacement &at, Tiles *slope) {
  if (!v.scoreMod && !v.maskMod)
    return;
  // Query and key of fragment element (i, t, c).
  auto indices = [&](size_t i, size_t t, int64_t c) {
    Value row = at.rows[2 * i + c / 2];
    Value column = e.add(at.columnBase, e.i32(int64_t(t) * 8 + (c & 1)));
    return at.transposed ? std::pair{column, row} : std::pair{row, column};
  };
  if (v.scoreMod) {
    // Raw scores times this are logits (scale, or softcap after the tanh).
    Value logitScale = e.fmul(scaleLog2Arg(), e.f32(M_LN2));
    if (slope && slope->empty()) // null entries: 1 until the region's derivative
      *slope = Tiles(s.size(), std::vector<Fragment>(s.empty() ? 0 : s[0].size()));
    for (size_t i = 0; i < s.size(); ++i)
      for (size_t t = 0; t < s[i].size(); ++t)
        for (int64_t c = 0; c < 4; ++c) {
          auto [query, key] = indices(i, t, c);
          Value derivative;
          Value &x = s[i][t][c];
          x = RegionInliner(e, b, loc)
                  .inlineRegion(*v.scoreMod, {e.fmul(x, logitScale), batch, at.head, query, key},
                                slope ? &derivative : nullptr);
          if (slope) {
            Value &g = (*slope)[i][t][c];
            g = g ? e.fmul(g, derivative) : derivative;
          }
        }
  }
  if (!v.maskMod)
    return;
  // Element by element only where the block mask cannot tell that the
  // region keeps every pair of the block.
  Value blockLastColumn = e.add(at.firstColumn, e.i32(at.columns - 1));
  BlockMaskTruth block =
      at.transposed ? userMaskOverBlock(at.head, at.firstColumn, blockLastColumn, at.firstRow,
                                        at.lastRow)
                    : userMaskOverBlock(at.head, at.firstRow, at.lastRow, at.firstColumn,
                                        blockLastColumn);
  Value partial = e.logicalNot(block.keepsAll);
  emitMaskBranch(s, partial, [&] {
    SmallVector<Value> masked;
    Value minusInf = e.negInf();
    for (size_t i = 0; i < s.size(); ++i)
      for (size_t t = 0; t < s[i].size(); ++t)
        for (int64_t c = 0; c < 4; ++c) {
          auto [query, key] = indices(i, t, c);
          Value keep = RegionInliner(e, b, loc)
                           .inlineRegion(*v.maskMod, {batch, at.head, query, key}, nullptr);
          masked.push_back(e.select(keep, s[i][t][c], minusInf));
        }
    return masked;
  });
}

} // namespace flashjit::detail

//===- MaskIntervals.cpp - a block mask derived from the mask_mod region --===//
//
// The user's mask region is evaluated once per (query block, key block) over
// intervals instead of points: every integer value becomes [lo, hi] (i64, so
// sums of positions cannot wrap), every condition a pair (can be true, can be
// false). Integer arithmetic with constants, min / max / abs, comparisons and
// logic are exact enough for the masks people write (chunks, prefixes,
// windows, documents of fixed size); anything else (float arithmetic, products
// of two positions) is "unknown", both true and false possible. Key blocks
// whose answer cannot be true are not visited (the range is trimmed at both
// ends), blocks whose answer cannot be false skip the element-wise mask.
//
//===----------------------------------------------------------------------===//
#include "compiler/AttentionGeneratorImpl.h"


#include <limits>

using namespace mlir;
using arith::CmpIPredicate;

namespace flashjit::detail {
namespace {

constexpr int64_t kUnbounded = int64_t(1) << 40; // beyond any position, far from i64 limits

class IntervalEvaluator {
public:
  struct Range { Value lo, hi; };         // i64, inclusive
  struct Truth { Value canTrue, canFalse; }; // i1

  IntervalEvaluator(KernelEmitter &e, OpBuilder &b, Location loc) : e(e), b(b), loc(loc) {}

  /// (can be true, can be false) of the mask region over b, h (points) and
  /// query / key positions in [q0, q1] x [k0, k1] (i32).
  Truth evaluate(Region &region, Value batch, Value head, Value q0, Value q1, Value k0,
                 Value k1) {
    Block &block = region.front();
    ranges[block.getArgument(0)] = point(batch);
    ranges[block.getArgument(1)] = point(head);
    ranges[block.getArgument(2)] = {wide(q0), wide(q1)};
    ranges[block.getArgument(3)] = {wide(k0), wide(k1)};
    for (Operation &op : block.without_terminator())
      visit(op);
    return truth(cast<flash::YieldOp>(block.getTerminator()).getValue());
  }

private:
  Value i64(int64_t x) { return arith::ConstantIntOp::create(b, loc, x, 64); }
  Value i1(bool x) { return arith::ConstantIntOp::create(b, loc, x, 1); }
  Value wide(Value i32Value) { return arith::ExtSIOp::create(b, loc, b.getI64Type(), i32Value); }
  Range point(Value i32Value) {
    Value x = wide(i32Value);
    return {x, x};
  }
  Range unknownRange() { return {i64(-kUnbounded), i64(kUnbounded)}; }
  Truth unknownTruth() { return {i1(true), i1(true)}; }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value clamp(Value x) { return max(min(x, i64(kUnbounded)), i64(-kUnbounded)); }
  Value lt(Value x, Value y) { return e.cmpi(CmpIPredicate::slt, x, y); }
  Value le(Value x, Value y) { return e.cmpi(CmpIPredicate::sle, x, y); }
  Value eq(Value x, Value y) { return e.cmpi(CmpIPredicate::eq, x, y); }
  Value andi(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value ori(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }

  Range range(Value v) {
    auto it = ranges.find(v);
    return it != ranges.end() ? it->second : unknownRange();
  }
  Truth truth(Value v) {
    auto it = truths.find(v);
    return it != truths.end() ? it->second : unknownTruth();
  }
  std::optional<int64_t> constantOf(Value v) {
    if (auto c = v.getDefiningOp<arith::ConstantIntOp>())
      return c.value();
    return std::nullopt;
  }

  void visit(Operation &op) {
    Value result = op.getResult(0);
    if (result.getType().isInteger(1))
      truths[result] = truthOf(op);
    else if (result.getType().isInteger(32))
      ranges[result] = inInt32(rangeOf(op));
    // f32 values: unknown (comparisons of them give unknown truths).
  }

  // The kernel computes in i32: a range leaving it may have wrapped there, so
  // it becomes unknown.
  Range inInt32(Range r) {
    Value fits = andi(le(i64(std::numeric_limits<int32_t>::min()), r.lo),
                      le(r.hi, i64(std::numeric_limits<int32_t>::max())));
    return {e.select(fits, r.lo, i64(-kUnbounded)), e.select(fits, r.hi, i64(kUnbounded))};
  }

  Range rangeOf(Operation &op) {
    if (auto c = dyn_cast<arith::ConstantIntOp>(op)) {
      Value x = i64(c.value());
      return {x, x};
    }
    auto operand = [&](unsigned i) { return range(op.getOperand(i)); };
    if (isa<arith::AddIOp>(op))
      return {clamp(add(operand(0).lo, operand(1).lo)), clamp(add(operand(0).hi, operand(1).hi))};
    if (isa<arith::SubIOp>(op))
      return {clamp(sub(operand(0).lo, operand(1).hi)), clamp(sub(operand(0).hi, operand(1).lo))};
    if (isa<arith::MaxSIOp, arith::MinSIOp>(op)) {
      bool isMax = isa<arith::MaxSIOp>(op);
      Range x = operand(0), y = operand(1);
      return isMax ? Range{max(x.lo, y.lo), max(x.hi, y.hi)} : Range{min(x.lo, y.lo), min(x.hi, y.hi)};
    }
    if (isa<math::AbsIOp>(op)) { // [0 or the nearer end, the farther end]
      Range x = operand(0);
      Value far = max(arith::SubIOp::create(b, loc, i64(0), x.lo), x.hi);
      Value nearLo = e.select(le(i64(0), x.lo), x.lo,
                              e.select(le(x.hi, i64(0)), sub(i64(0), x.hi), i64(0)));
      return {nearLo, far};
    }
    if (auto s = dyn_cast<arith::SelectOp>(op)) {
      Range x = range(s.getTrueValue()), y = range(s.getFalseValue());
      return {min(x.lo, y.lo), max(x.hi, y.hi)};
    }
    std::optional<int64_t> c = op.getNumOperands() == 2 ? constantOf(op.getOperand(1))
                                                        : std::nullopt;
    // By a constant: monotone. |c| <= 2^22 keeps |bound · c| below 2^62.
    if (isa<arith::MulIOp>(op) && c && *c >= -(int64_t(1) << 22) && *c <= (int64_t(1) << 22)) {
      Range x = operand(0);
      Value lo = clamp(arith::MulIOp::create(b, loc, x.lo, i64(*c)));
      Value hi = clamp(arith::MulIOp::create(b, loc, x.hi, i64(*c)));
      return *c >= 0 ? Range{lo, hi} : Range{hi, lo};
    }
    if (isa<arith::DivSIOp>(op) && c && *c != 0) { // truncating division: monotone
      Range x = operand(0);
      Value lo = arith::DivSIOp::create(b, loc, x.lo, i64(*c));
      Value hi = arith::DivSIOp::create(b, loc, x.hi, i64(*c));
      return *c > 0 ? Range{lo, hi} : Range{hi, lo};
    }
    if (isa<arith::RemSIOp>(op) && c && *c > 0) {
      // Exact while [lo, hi] stays in one non-negative period; else the
      // remainder's range (C's sign follows the dividend).
      Range x = operand(0);
      Value n = i64(*c);
      Value onePeriod = andi(le(i64(0), x.lo),
                             eq(arith::DivSIOp::create(b, loc, x.lo, n),
                                arith::DivSIOp::create(b, loc, x.hi, n)));
      Value anyLo = e.select(le(i64(0), x.lo), i64(0), i64(1 - *c));
      return {e.select(onePeriod, arith::RemSIOp::create(b, loc, x.lo, n), anyLo),
              e.select(onePeriod, arith::RemSIOp::create(b, loc, x.hi, n), i64(*c - 1))};
    }
    return unknownRange();
  }

  Truth truthOf(Operation &op) {
    if (auto c = dyn_cast<arith::ConstantIntOp>(op))
      return {i1(c.value() != 0), i1(c.value() == 0)};
    if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
      if (!cmp.getLhs().getType().isInteger(32))
        return unknownTruth();
      Range x = range(cmp.getLhs()), y = range(cmp.getRhs());
      // x < y can be true when x.lo < y.hi, false when x.hi >= y.lo; the others alike.
      switch (cmp.getPredicate()) {
      case CmpIPredicate::slt: return {lt(x.lo, y.hi), le(y.lo, x.hi)};
      case CmpIPredicate::sle: return {le(x.lo, y.hi), lt(y.lo, x.hi)};
      case CmpIPredicate::sgt: return {lt(y.lo, x.hi), le(x.lo, y.hi)};
      case CmpIPredicate::sge: return {le(y.lo, x.hi), lt(x.lo, y.hi)};
      case CmpIPredicate::eq:
      case CmpIPredicate::ne: {
        Value overlap = andi(le(x.lo, y.hi), le(y.lo, x.hi));
        Value samePoint = andi(andi(eq(x.lo, x.hi), eq(y.lo, y.hi)), eq(x.lo, y.lo));
        Value canDiffer = e.select(samePoint, i1(false), i1(true));
        if (cmp.getPredicate() == CmpIPredicate::eq)
          return {overlap, canDiffer};
        return {canDiffer, overlap};
      }
      default: return unknownTruth();
      }
    }
    auto operand = [&](unsigned i) { return truth(op.getOperand(i)); };
    if (isa<arith::AndIOp>(op))
      return {andi(operand(0).canTrue, operand(1).canTrue),
              ori(operand(0).canFalse, operand(1).canFalse)};
    if (isa<arith::OrIOp>(op))
      return {ori(operand(0).canTrue, operand(1).canTrue),
              andi(operand(0).canFalse, operand(1).canFalse)};
    if (isa<arith::XOrIOp>(op)) {
      Truth x = operand(0), y = operand(1);
      return {ori(andi(x.canTrue, y.canFalse), andi(x.canFalse, y.canTrue)),
              ori(andi(x.canTrue, y.canTrue), andi(x.canFalse, y.canFalse))};
    }
    if (auto s = dyn_cast<arith::SelectOp>(op)) {
      Truth c = truth(s.getCondition()), x = truth(s.getTrueValue()),
            y = truth(s.getFalseValue());
      return {ori(andi(c.canTrue, x.canTrue), andi(c.canFalse, y.canTrue)),
              ori(andi(c.canTrue, x.canFalse), andi(c.canFalse, y.canFalse))};
    }
    return unknownTruth();
  }

  KernelEmitter &e;
  OpBuilder &b;
  Location loc;
  DenseMap<Value, Range> ranges;
  DenseMap<Value, Truth> truths;
};

} // namespace

Generator::BlockMaskTruth Generator::userMaskOverBlock(Value headIndex, Value q0, Value q1,
                                                        Value k0, Value k1) {
  IntervalEvaluator::Truth t =
      IntervalEvaluator(e, b, loc).evaluate(*v.maskMod, batch, headIndex, q0, q1, k0, k1);
  Value keepsAll = e.logicalNot(t.canFalse);
  return {t.canTrue, keepsAll};
}

// Drops the key blocks at both ends of [firstBlock, firstBlock + numBlocks)
// in which the mask region keeps nothing for rows [firstRow, lastRow].
void Generator::trimKeyBlocksByUserMask(Value firstRow, Value lastRow) {
  auto mayKeep = [&](Value block) {
    Value k0 = e.mul(block, e.i32(v.n));
    return userMaskOverBlock(head, firstRow, lastRow, k0, e.add(k0, e.i32(v.n - 1))).mayKeep;
  };
  // x, stepped by `step` while `inRange(x)` and the mask keeps nothing in
  // block `blockOf(x)` (evaluated past the range too: harmless, the loop
  // stops on inRange).
  auto advance = [&](Value x, int64_t step, auto &&inRange, auto &&blockOf) {
    auto loop = scf::WhileOp::create(
        b, loc, TypeRange{b.getI32Type()}, ValueRange{x},
        [&](OpBuilder &, Location, ValueRange args) {
          Value inside = inRange(args[0]);
          Value empty = e.logicalNot(mayKeep(blockOf(args[0])));
          Value skip = arith::AndIOp::create(b, loc, inside, empty);
          scf::ConditionOp::create(b, loc, skip, ValueRange{args[0]});
        },
        [&](OpBuilder &, Location, ValueRange args) {
          scf::YieldOp::create(b, loc, ValueRange{e.add(args[0], e.i32(step))});
        });
    return loop.getResult(0);
  };
  Value start = firstBlock ? firstBlock : e.i32(0);
  Value end = e.add(start, numBlocks);
  start = advance(
      start, 1, [&](Value s) { return e.cmpi(CmpIPredicate::slt, s, end); },
      [](Value s) { return s; });
  end = advance(
      end, -1, [&](Value en) { return e.cmpi(CmpIPredicate::sgt, en, start); },
      [&](Value en) { return e.sub(en, e.i32(1)); });
  firstBlock = start;
  numBlocks = e.sub(end, start);
}

} // namespace flashjit::detail

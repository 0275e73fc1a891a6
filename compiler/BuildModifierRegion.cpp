//===- BuildModifierRegion.cpp - modifier expression -> region ------------===//
//
// One op per tree node; the parser already made C's conversions explicit, so
// each node maps to exactly one arith or math op of its type.
//
//===----------------------------------------------------------------------===//
#include "compiler/BuildModifierRegion.h"
#include "dialect/FlashDialect.h"

#include "llvm/ADT/StringSwitch.h"

#include <map>

using namespace mlir;

namespace flashjit {
namespace {

using Node = ModifierNode;

class RegionBuilder {
public:
  RegionBuilder(OpBuilder &b, Location loc, Block &block, bool withScore)
      : b(b), loc(loc) {
    unsigned next = 0;
    if (withScore)
      names["score"] = block.getArgument(next++);
    for (const char *name : {"b", "h", "q_idx", "kv_idx"})
      names[name] = block.getArgument(next++);
  }

  Value emit(const Node &n) {
    switch (n.kind) {
    case Node::Kind::Number:
      if (n.type == Node::Type::Int)
        return arith::ConstantIntOp::create(b, loc, int64_t(n.number), 32);
      return arith::ConstantFloatOp::create(b, loc, b.getF32Type(),
                                            llvm::APFloat(float(n.number)));
    case Node::Kind::Variable:
      return names.at(n.name);
    case Node::Kind::ToFloat:
      return arith::SIToFPOp::create(b, loc, b.getF32Type(), emit(*n.operands[0]));
    case Node::Kind::Unary: {
      Value x = emit(*n.operands[0]);
      if (n.name == "!")
        return arith::XOrIOp::create(b, loc, x, arith::ConstantIntOp::create(b, loc, 1, 1));
      if (n.type == Node::Type::Float)
        return arith::NegFOp::create(b, loc, x);
      return arith::SubIOp::create(b, loc, arith::ConstantIntOp::create(b, loc, 0, 32), x);
    }
    case Node::Kind::Binary: { // operands in source order (not C++'s argument order)
      Value x = emit(*n.operands[0]);
      Value y = emit(*n.operands[1]);
      return binary(n, x, y);
    }
    case Node::Kind::Conditional: {
      Value c = emit(*n.operands[0]);
      Value x = emit(*n.operands[1]);
      Value y = emit(*n.operands[2]);
      return arith::SelectOp::create(b, loc, c, x, y);
    }
    case Node::Kind::Call:
      return call(n);
    }
    llvm_unreachable("unknown modifier node");
  }

private:
  Value binary(const Node &n, Value x, Value y) {
    const std::string &op = n.name;
    if (op == "&&")
      return arith::AndIOp::create(b, loc, x, y);
    if (op == "||")
      return arith::OrIOp::create(b, loc, x, y);
    Type operand = x.getType();
    if (n.type == Node::Type::Bool) { // a comparison
      if (isa<FloatType>(operand)) {
        // C: every comparison with NaN is false but !=.
        auto p = llvm::StringSwitch<arith::CmpFPredicate>(op)
                     .Case("<", arith::CmpFPredicate::OLT)
                     .Case("<=", arith::CmpFPredicate::OLE)
                     .Case(">", arith::CmpFPredicate::OGT)
                     .Case(">=", arith::CmpFPredicate::OGE)
                     .Case("==", arith::CmpFPredicate::OEQ)
                     .Default(arith::CmpFPredicate::UNE);
        return arith::CmpFOp::create(b, loc, p, x, y);
      }
      auto p = llvm::StringSwitch<arith::CmpIPredicate>(op)
                   .Case("<", arith::CmpIPredicate::slt)
                   .Case("<=", arith::CmpIPredicate::sle)
                   .Case(">", arith::CmpIPredicate::sgt)
                   .Case(">=", arith::CmpIPredicate::sge)
                   .Case("==", arith::CmpIPredicate::eq)
                   .Default(arith::CmpIPredicate::ne);
      return arith::CmpIOp::create(b, loc, p, x, y);
    }
    if (n.type == Node::Type::Float) {
      if (op == "+")
        return arith::AddFOp::create(b, loc, x, y);
      if (op == "-")
        return arith::SubFOp::create(b, loc, x, y);
      if (op == "*")
        return arith::MulFOp::create(b, loc, x, y);
      return arith::DivFOp::create(b, loc, x, y);
    }
    if (op == "+")
      return arith::AddIOp::create(b, loc, x, y);
    if (op == "-")
      return arith::SubIOp::create(b, loc, x, y);
    if (op == "*")
      return arith::MulIOp::create(b, loc, x, y);
    if (op == "/")
      return arith::DivSIOp::create(b, loc, x, y); // C: truncating
    return arith::RemSIOp::create(b, loc, x, y);
  }

  Value call(const Node &n) {
    Value x = emit(*n.operands[0]);
    bool isFloat = n.type == Node::Type::Float;
    if (n.name == "min" || n.name == "max") {
      Value y = emit(*n.operands[1]);
      if (n.name == "min")
        return isFloat ? Value(arith::MinNumFOp::create(b, loc, x, y))
                       : Value(arith::MinSIOp::create(b, loc, x, y));
      return isFloat ? Value(arith::MaxNumFOp::create(b, loc, x, y))
                     : Value(arith::MaxSIOp::create(b, loc, x, y));
    }
    if (n.name == "abs")
      return isFloat ? Value(math::AbsFOp::create(b, loc, x)) : Value(math::AbsIOp::create(b, loc, x));
    if (n.name == "tanh")
      return math::TanhOp::create(b, loc, x);
    if (n.name == "exp")
      return math::ExpOp::create(b, loc, x);
    if (n.name == "exp2")
      return math::Exp2Op::create(b, loc, x);
    if (n.name == "log")
      return math::LogOp::create(b, loc, x);
    if (n.name == "log2")
      return math::Log2Op::create(b, loc, x);
    return math::SqrtOp::create(b, loc, x);
  }

  OpBuilder &b;
  Location loc;
  std::map<std::string, Value> names;
};

} // namespace

void buildModifierRegion(OpBuilder &b, Location loc, Region &region, const ModifierTree &tree,
                         ModifierKind kind) {
  bool withScore = kind == ModifierKind::Score;
  SmallVector<Type> argTypes;
  if (withScore)
    argTypes.push_back(b.getF32Type());
  argTypes.append(4, b.getI32Type());
  OpBuilder::InsertionGuard guard(b);
  Block *block = b.createBlock(&region, region.end(), argTypes,
                               SmallVector<Location>(argTypes.size(), loc));
  Value result = RegionBuilder(b, loc, *block, withScore).emit(*tree);
  flash::YieldOp::create(b, loc, result);
}

} // namespace flashjit

//===- ModifierExpression.cpp - parse and type-check modifier expressions -===//
//
// A recursive-descent parser over C's precedence levels; every node gets its
// C type on the way up and implicit int → float conversions become explicit
// ToFloat nodes, so later stages (the region builder, the canonical text)
// need no type rules of their own.
//
//===----------------------------------------------------------------------===//
#include "compiler/ModifierExpression.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace flashjit {
namespace {

using Node = ModifierNode;
using Type = ModifierNode::Type;

struct ParseError {
  std::string message;
};

class Parser {
public:
  Parser(const std::string &text, ModifierKind kind) : text_(text), kind_(kind) {}

  ModifierTree parseAll() {
    ModifierTree tree = conditional();
    skipSpace();
    if (pos_ < text_.size())
      fail("unexpected '" + text_.substr(pos_, 1) + "'", pos_);
    if (kind_ == ModifierKind::Mask && tree->type != Type::Bool)
      fail("a mask_mod must be a condition (for example q_idx >= kv_idx), this is a number", 0);
    if (kind_ == ModifierKind::Score && tree->type == Type::Bool)
      fail("a score_mod must be a number (the new score), this is a condition; write "
           "(cond ? score : -inf) to mask",
           0);
    return toFloat(tree);
  }

private:
  [[noreturn]] void fail(const std::string &what, size_t at) {
    throw ParseError{what + " at column " + std::to_string(at + 1)};
  }
  [[noreturn]] void fail(const std::string &what) { fail(what, tokenStart_); }

  void skipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_])))
      ++pos_;
  }
  // Consumes `token` if it comes next (and, for "<" or "!", is not "<=" or "!=").
  bool accept(const char *token) {
    skipSpace();
    size_t n = std::char_traits<char>::length(token);
    if (text_.compare(pos_, n, token) != 0)
      return false;
    if (n == 1 && pos_ + 1 < text_.size() && text_[pos_ + 1] == '=' &&
        (token[0] == '<' || token[0] == '>' || token[0] == '!' || token[0] == '='))
      return false;
    if (n == 1 && pos_ + 1 < text_.size() && (token[0] == '&' || token[0] == '|') &&
        text_[pos_ + 1] == token[0])
      return false;
    tokenStart_ = pos_;
    pos_ += n;
    return true;
  }
  void expect(const char *token) {
    if (!accept(token)) {
      tokenStart_ = pos_;
      fail(std::string("expected '") + token + "'");
    }
  }

  static ModifierTree make(Node::Kind kind, Type type, std::string name,
                           std::vector<ModifierTree> operands, double number = 0.0) {
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->type = type;
    n->name = std::move(name);
    n->number = number;
    n->operands = std::move(operands);
    return n;
  }
  static ModifierTree toFloat(const ModifierTree &x) {
    return x->type == Type::Int ? make(Node::Kind::ToFloat, Type::Float, "", {x}) : x;
  }
  void requireNumber(const ModifierTree &x, const std::string &where, size_t at) {
    if (x->type == Type::Bool)
      fail(where + " needs a number, got a condition (write cond ? 1 : 0)", at);
  }
  // C's usual arithmetic conversions between int and float.
  void promote(ModifierTree &a, ModifierTree &b) {
    if (a->type == Type::Float || b->type == Type::Float) {
      a = toFloat(a);
      b = toFloat(b);
    }
  }

  ModifierTree conditional() {
    ModifierTree c = logicalOr();
    if (!accept("?"))
      return c;
    size_t at = tokenStart_;
    if (c->type != Type::Bool)
      fail("the condition of ?: must be a comparison or a logical expression", at);
    ModifierTree a = conditional();
    expect(":");
    ModifierTree b = conditional();
    if ((a->type == Type::Bool) != (b->type == Type::Bool))
      fail("the branches of ?: must both be numbers or both conditions", at);
    promote(a, b);
    return make(Node::Kind::Conditional, a->type, "?:", {c, a, b});
  }

  template <typename Next>
  ModifierTree logical(const char *op, Next &&next) {
    ModifierTree a = next();
    while (accept(op)) {
      size_t at = tokenStart_;
      ModifierTree b = next();
      if (a->type != Type::Bool || b->type != Type::Bool)
        fail(std::string("the operands of ") + op + " must be conditions", at);
      a = make(Node::Kind::Binary, Type::Bool, op, {a, b});
    }
    return a;
  }
  ModifierTree logicalOr() { return logical("||", [&] { return logicalAnd(); }); }
  ModifierTree logicalAnd() { return logical("&&", [&] { return equality(); }); }

  ModifierTree comparison(ModifierTree a, const std::string &op, ModifierTree b, size_t at) {
    bool boolean = a->type == Type::Bool && b->type == Type::Bool;
    if (!boolean || (op != "==" && op != "!=")) {
      requireNumber(a, "'" + op + "'", at);
      requireNumber(b, "'" + op + "'", at);
      promote(a, b);
    }
    return make(Node::Kind::Binary, Type::Bool, op, {a, b});
  }
  ModifierTree equality() {
    ModifierTree a = relational();
    for (;;) {
      const char *op = accept("==") ? "==" : accept("!=") ? "!=" : nullptr;
      if (!op)
        return a;
      size_t at = tokenStart_;
      a = comparison(a, op, relational(), at);
    }
  }
  ModifierTree relational() {
    ModifierTree a = additive();
    for (;;) {
      const char *op = accept("<=") ? "<=" : accept(">=") ? ">=" : accept("<") ? "<"
                     : accept(">")  ? ">"
                                    : nullptr;
      if (!op)
        return a;
      size_t at = tokenStart_;
      a = comparison(a, op, additive(), at);
    }
  }

  ModifierTree arithmetic(ModifierTree a, const std::string &op, ModifierTree b, size_t at) {
    requireNumber(a, "'" + op + "'", at);
    requireNumber(b, "'" + op + "'", at);
    if (op == "%" && (a->type != Type::Int || b->type != Type::Int))
      fail("'%' needs integer operands (as in C)", at);
    promote(a, b);
    return make(Node::Kind::Binary, a->type, op, {a, b});
  }
  ModifierTree additive() {
    ModifierTree a = multiplicative();
    for (;;) {
      const char *op = accept("+") ? "+" : accept("-") ? "-" : nullptr;
      if (!op)
        return a;
      size_t at = tokenStart_;
      a = arithmetic(a, op, multiplicative(), at);
    }
  }
  ModifierTree multiplicative() {
    ModifierTree a = unary();
    for (;;) {
      const char *op = accept("*") ? "*" : accept("/") ? "/" : accept("%") ? "%" : nullptr;
      if (!op)
        return a;
      size_t at = tokenStart_;
      a = arithmetic(a, op, unary(), at);
    }
  }
  ModifierTree unary() {
    if (accept("-")) {
      size_t at = tokenStart_;
      ModifierTree x = unary();
      requireNumber(x, "unary '-'", at);
      return make(Node::Kind::Unary, x->type, "-", {x});
    }
    if (accept("+"))
      return unary();
    if (accept("!")) {
      size_t at = tokenStart_;
      ModifierTree x = unary();
      if (x->type != Type::Bool)
        fail("'!' needs a condition", at);
      return make(Node::Kind::Unary, Type::Bool, "!", {x});
    }
    return primary();
  }

  ModifierTree number() {
    size_t start = pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
      ++pos_;
    bool isFloat = false;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      isFloat = true;
      ++pos_;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
        ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      size_t save = pos_++;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-'))
        ++pos_;
      if (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        isFloat = true;
        while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
          ++pos_;
      } else {
        pos_ = save;
      }
    }
    std::string spelled = text_.substr(start, pos_ - start);
    if (pos_ < text_.size() && (text_[pos_] == 'f' || text_[pos_] == 'F') && isFloat)
      ++pos_; // C's float suffix
    if (pos_ < text_.size() &&
        (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
      fail("malformed number", start);
    if (spelled == ".")
      fail("malformed number", start);
    double value = std::strtod(spelled.c_str(), nullptr);
    if (!isFloat && value > double(std::numeric_limits<int32_t>::max()))
      fail("integer " + spelled + " does not fit in 32 bits", start);
    return make(Node::Kind::Number, isFloat ? Type::Float : Type::Int, "", {}, value);
  }

  ModifierTree call(const std::string &name, size_t at) {
    std::vector<ModifierTree> args;
    if (!accept(")")) {
      do
        args.push_back(conditional());
      while (accept(","));
      expect(")");
    }
    auto arity = [&](size_t n) {
      if (args.size() != n)
        fail(name + "() takes " + std::to_string(n) + " argument" + (n == 1 ? "" : "s") +
                 ", got " + std::to_string(args.size()),
             at);
      for (const ModifierTree &a : args)
        requireNumber(a, name + "()", at);
    };
    static const char *floatFunctions[] = {"tanh", "exp", "exp2", "log", "log2", "sqrt"};
    for (const char *f : floatFunctions)
      if (name == f) {
        arity(1);
        return make(Node::Kind::Call, Type::Float, name, {toFloat(args[0])});
      }
    if (name == "abs") {
      arity(1);
      return make(Node::Kind::Call, args[0]->type, name, args);
    }
    if (name == "min" || name == "max") {
      arity(2);
      promote(args[0], args[1]);
      return make(Node::Kind::Call, args[0]->type, name, args);
    }
    if (name == "float") {
      arity(1);
      return toFloat(args[0]);
    }
    fail("unknown function '" + name +
             "' (functions: tanh, exp, exp2, log, log2, sqrt, abs, min, max, float)",
         at);
  }

  ModifierTree primary() {
    skipSpace();
    tokenStart_ = pos_;
    if (pos_ >= text_.size())
      fail("unexpected end of expression");
    char c = text_[pos_];
    if (accept("(")) {
      ModifierTree x = conditional();
      expect(")");
      return x;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.')
      return number();
    if (!std::isalpha(static_cast<unsigned char>(c)) && c != '_')
      fail(std::string("unexpected '") + c + "'");
    size_t at = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
      ++pos_;
    std::string name = text_.substr(at, pos_ - at);
    if (accept("("))
      return call(name, at);
    if (name == "score") {
      if (kind_ == ModifierKind::Mask)
        fail("'score' is not available in a mask_mod (it sees positions only)", at);
      return make(Node::Kind::Variable, Type::Float, name, {});
    }
    if (name == "b" || name == "h" || name == "q_idx" || name == "kv_idx")
      return make(Node::Kind::Variable, Type::Int, name, {});
    if (name == "inf")
      return make(Node::Kind::Number, Type::Float, "", {}, std::numeric_limits<double>::infinity());
    if (name == "true" || name == "false")
      return make(Node::Kind::Binary, Type::Bool, name == "true" ? "==" : "!=",
                  {make(Node::Kind::Number, Type::Int, "", {}, 0),
                   make(Node::Kind::Number, Type::Int, "", {}, 0)});
    fail("unknown name '" + name + "' (names: " +
             (kind_ == ModifierKind::Score ? "score, " : "") + "b, h, q_idx, kv_idx, inf)",
         at);
  }

  const std::string &text_;
  ModifierKind kind_;
  size_t pos_ = 0, tokenStart_ = 0;
};

void print(const ModifierNode &n, std::string &out) {
  switch (n.kind) {
  case Node::Kind::Number: {
    if (std::isinf(n.number)) {
      out += "inf";
      return;
    }
    char buf[64];
    if (n.type == Type::Int) {
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n.number));
    } else {
      std::snprintf(buf, sizeof buf, "%.17g", n.number);
      std::string s = buf;
      if (s.find_first_of(".e") == std::string::npos)
        std::snprintf(buf, sizeof buf, "%s.0", s.c_str());
    }
    out += buf;
    return;
  }
  case Node::Kind::Variable:
    out += n.name;
    return;
  case Node::Kind::Unary:
    out += "(" + n.name;
    print(*n.operands[0], out);
    out += ")";
    return;
  case Node::Kind::Binary:
    out += "(";
    print(*n.operands[0], out);
    out += " " + n.name + " ";
    print(*n.operands[1], out);
    out += ")";
    return;
  case Node::Kind::Conditional:
    out += "(";
    print(*n.operands[0], out);
    out += " ? ";
    print(*n.operands[1], out);
    out += " : ";
    print(*n.operands[2], out);
    out += ")";
    return;
  case Node::Kind::Call:
  case Node::Kind::ToFloat:
    out += n.kind == Node::Kind::ToFloat ? "float" : n.name;
    out += "(";
    for (size_t i = 0; i < n.operands.size(); ++i) {
      if (i)
        out += ", ";
      print(*n.operands[i], out);
    }
    out += ")";
    return;
  }
}

} // namespace

ModifierTree parseModifier(const std::string &text, ModifierKind kind, std::string &error) {
  try {
    return Parser(text, kind).parseAll();
  } catch (const ParseError &e) {
    error = std::string(modifierKindName(kind)) + " \"" + text + "\": " + e.message;
    return nullptr;
  }
}

std::string canonicalModifier(const ModifierTree &tree) {
  std::string out;
  if (tree)
    print(*tree, out);
  return out;
}

bool canonicalizeModifier(const std::string &text, ModifierKind kind, std::string &canonical,
                          std::string &error) {
  canonical.clear();
  if (text.empty())
    return true;
  ModifierTree tree = parseModifier(text, kind, error);
  canonical = canonicalModifier(tree);
  return tree != nullptr;
}

std::string canonicalModifierText(const char *text, ModifierKind kind) {
  std::string canonical, error;
  canonicalizeModifier(text ? text : "", kind, canonical, error);
  return canonical;
}

bool modifierReads(const ModifierTree &tree, const std::string &name) {
  if (!tree)
    return false;
  if (tree->kind == ModifierNode::Kind::Variable && tree->name == name)
    return true;
  for (const ModifierTree &operand : tree->operands)
    if (modifierReads(operand, name))
      return true;
  return false;
}

std::string modifierHash(const std::string &canonicalText) {
  uint64_t h = 1469598103934665603ull; // FNV-1a, 64 bits
  for (unsigned char c : canonicalText) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 10);
}

const char *modifierKindName(ModifierKind kind) {
  return kind == ModifierKind::Score ? "score_mod" : "mask_mod";
}

} // namespace flashjit

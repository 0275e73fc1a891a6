//===- ModifierExpression.h - score / mask modifiers as C expressions -*- C++ -*-===//
//
// The text form of the flash dialect's score_mod and mask_mod regions, as
// users write them (FlexAttention's score_mod / mask_mod, as expressions):
//
//   score_mod:  score + 0.5 * (q_idx - kv_idx)        → a new score (float)
//   mask_mod:   q_idx / 128 == kv_idx / 128            → keep? (bool)
//
// Names: `score` (f32, the scaled logit q·k · scale after the built-in
// modifiers; score_mod only), `b`, `h` (batch, query head), `q_idx`, `kv_idx`
// (query and key positions in their sequences), all i32; `inf`.
// Operators and precedence are C's: ?: || && == != < <= > >= + - * / % unary
// - !; int op int stays int (C division and remainder, truncating), int op
// float is float; conditions are bool. Functions: tanh exp exp2 log log2
// sqrt (float), abs min max (int or float), float(x). Every expression is
// valid C++ with the same meaning, which the GPU reference relies on.
//
// Plain C++ (no LLVM/MLIR): the runtime-only library checks and names
// modifiers too; compiler/BuildModifierRegion.cpp turns the tree into ops.
//
#ifndef FLASHJIT_COMPILER_MODIFIEREXPRESSION_H
#define FLASHJIT_COMPILER_MODIFIEREXPRESSION_H

#include <memory>
#include <string>
#include <vector>

namespace flashjit {

enum class ModifierKind { Score, Mask };

struct ModifierNode {
  enum class Kind { Number, Variable, Unary, Binary, Conditional, Call, ToFloat };
  enum class Type { Int, Float, Bool };
  Kind kind;
  Type type;           // after the C conversions (ToFloat nodes made explicit)
  std::string name;    // Variable and Call names; Unary / Binary operator spelling
  double number = 0.0; // Number
  std::vector<std::shared_ptr<const ModifierNode>> operands;
};
using ModifierTree = std::shared_ptr<const ModifierNode>;

/// Parses and type-checks `text` as a modifier of `kind`. On failure returns
/// null and sets `error` to a message naming the position.
ModifierTree parseModifier(const std::string &text, ModifierKind kind, std::string &error);

/// A canonical, fully parenthesized spelling (the cache key's input): equal
/// for texts that differ only in spacing or redundant parentheses.
std::string canonicalModifier(const ModifierTree &tree);

/// Checks `text` and sets `canonical` to its canonical spelling; empty text
/// is no modifier (canonical ""). False, with `error` set, when it does not parse.
bool canonicalizeModifier(const std::string &text, ModifierKind kind, std::string &canonical,
                          std::string &error);

/// canonicalModifier of `text` (null or empty: ""; text that does not parse,
/// which validation rejects first: "").
std::string canonicalModifierText(const char *text, ModifierKind kind);

/// A short stable hash of the canonical text, for variant names ("3fa9c2d1").
std::string modifierHash(const std::string &canonicalText);

/// Whether the expression reads the variable `name` ("b", "h", ...).
bool modifierReads(const ModifierTree &tree, const std::string &name);

const char *modifierKindName(ModifierKind kind); // "score_mod" / "mask_mod"

} // namespace flashjit

#endif

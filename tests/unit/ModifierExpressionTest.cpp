// The modifier expression front end: C's precedence and conversions made
// explicit, canonical text independent of spacing, and clear errors.
#include "compiler/ModifierExpression.h"

#include <gtest/gtest.h>

using namespace flashjit;

static std::string canonical(const std::string &text, ModifierKind kind = ModifierKind::Score) {
  std::string error;
  ModifierTree tree = parseModifier(text, kind, error);
  EXPECT_TRUE(tree) << error;
  return canonicalModifier(tree);
}

static std::string errorOf(const std::string &text, ModifierKind kind = ModifierKind::Score) {
  std::string error;
  EXPECT_FALSE(parseModifier(text, kind, error)) << text;
  return error;
}

TEST(ModifierExpression, PrecedenceAndConversionsFollowC) {
  EXPECT_EQ(canonical("score + 2 * q_idx - kv_idx"),
            "((score + float((2 * q_idx))) - float(kv_idx))");
  EXPECT_EQ(canonical("(q_idx - kv_idx) / 2 * 0.5"), "(float(((q_idx - kv_idx) / 2)) * 0.5)");
  EXPECT_EQ(canonical("q_idx % 7 < 3 && !(b == h) || kv_idx >= 1", ModifierKind::Mask),
            "((((q_idx % 7) < 3) && (!(b == h))) || (kv_idx >= 1))");
  EXPECT_EQ(canonical("q_idx >= kv_idx ? score : -inf"), "((q_idx >= kv_idx) ? score : (-inf))");
  EXPECT_EQ(canonical("abs(q_idx - kv_idx)"), "float(abs((q_idx - kv_idx)))");
  EXPECT_EQ(canonical("max(score, 1)"), "max(score, float(1))");
  EXPECT_EQ(canonical("min(q_idx, 3) + tanh(2)"), "(float(min(q_idx, 3)) + tanh(float(2)))");
}

TEST(ModifierExpression, CanonicalTextIgnoresSpacingAndParentheses) {
  EXPECT_EQ(canonical("score*0.5"), canonical("  ((score) * 0.5f) "));
  EXPECT_NE(canonical("score*0.5"), canonical("score*0.25"));
  EXPECT_EQ(modifierHash(canonical("score*0.5")), modifierHash(canonical("(score * 0.5)")));
  EXPECT_NE(modifierHash(canonical("score*0.5")), modifierHash(canonical("score*0.25")));
  // The canonical text parses to itself (it is what bundles and tuning store).
  for (const char *text : {"score - 0.1 * abs(q_idx - kv_idx)", "1e-3 * score + exp2(-h)",
                           "q_idx < kv_idx ? -inf : score / 3"}) {
    std::string c = canonical(text);
    EXPECT_EQ(canonical(c), c);
  }
}

TEST(ModifierExpression, KindsAndTypesAreChecked) {
  EXPECT_NE(errorOf("q_idx >= kv_idx").find("must be a number"), std::string::npos);
  EXPECT_NE(errorOf("q_idx - kv_idx", ModifierKind::Mask).find("must be a condition"),
            std::string::npos);
  EXPECT_NE(errorOf("score > 0", ModifierKind::Mask).find("'score' is not available in a mask_mod"),
            std::string::npos);
  EXPECT_NE(errorOf("score % 2").find("'%' needs integer operands"), std::string::npos);
  EXPECT_NE(errorOf("(q_idx > 1) + score").find("needs a number, got a condition"),
            std::string::npos);
  EXPECT_NE(errorOf("q_idx ? score : 0").find("condition of ?:"), std::string::npos);
  EXPECT_NE(errorOf("q_idx > 1 && 2", ModifierKind::Mask).find("operands of && must be conditions"),
            std::string::npos);
}

TEST(ModifierExpression, ErrorsNameThePosition) {
  EXPECT_EQ(errorOf("score + foo"),
            "score_mod \"score + foo\": unknown name 'foo' (names: score, b, h, q_idx, kv_idx, "
            "inf) at column 9");
  EXPECT_NE(errorOf("cos(score)").find("unknown function 'cos'"), std::string::npos);
  EXPECT_NE(errorOf("tanh(score, 2)").find("tanh() takes 1 argument, got 2"), std::string::npos);
  EXPECT_NE(errorOf("score +").find("unexpected end of expression at column 8"),
            std::string::npos);
  EXPECT_NE(errorOf("(score").find("expected ')'"), std::string::npos);
  EXPECT_NE(errorOf("score score").find("unexpected 's' at column 7"), std::string::npos);
  EXPECT_NE(errorOf("score + 4294967296").find("does not fit in 32 bits"), std::string::npos);
  EXPECT_NE(errorOf("score + 1x").find("malformed number"), std::string::npos);
  EXPECT_NE(errorOf("").find("unexpected end"), std::string::npos);
}

TEST(ModifierExpression, EmptyTextMeansNoModifier) {
  EXPECT_EQ(canonicalModifierText(nullptr, ModifierKind::Score), "");
  EXPECT_EQ(canonicalModifierText("", ModifierKind::Mask), "");
  EXPECT_EQ(canonicalModifierText("q_idx>=kv_idx", ModifierKind::Mask), "(q_idx >= kv_idx)");
}

// Derived block-mask lists are shared by every batch / head unless the mask reads b / h.
TEST(ModifierExpression, ReadsNamesTheVariablesUsed) {
  std::string error;
  ModifierTree t = parseModifier("h % 2 == 0 || q_idx / 64 == kv_idx / 64", ModifierKind::Mask,
                                 error);
  ASSERT_TRUE(t) << error;
  EXPECT_TRUE(modifierReads(t, "h"));
  EXPECT_TRUE(modifierReads(t, "kv_idx"));
  EXPECT_FALSE(modifierReads(t, "b"));
  EXPECT_FALSE(modifierReads(nullptr, "h"));
  EXPECT_TRUE(modifierReads(parseModifier("b == 0 ? score : 0.0", ModifierKind::Score, error), "b"))
      << error;
}

//===- UserModifierTest.cpp - score_mod / mask_mod expressions vs the reference ===//
//
// User modifiers compiled into the kernels (the flash dialect's regions,
// inlined per score, the backward through their symbolic derivative) against
// the fp32 reference that compiles the same expressions as C++ (with dual
// numbers for the derivative): biases from positions, heads and batches,
// smooth functions, user-written masks that hide blocks, rows and single
// keys, -inf from a score_mod, and combinations with the built-in mask,
// softcap, ALiBi, GQA and packed batches; odd sizes, every forward main loop.
//
#include "GpuTestEnvironment.h"

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::Shape;
using flashjit::testing::baseSeed;
using flashjit::testing::caseName;
using flashjit::testing::gridCase;

namespace {

struct UserModifiers {
  const char *scoreMod, *maskMod;
  bool causal;
};

const UserModifiers kUserModifiers[] = {
    {"score - 0.05 * abs(q_idx - kv_idx)", "", false},              // relative-position bias
    {"20 * tanh(score / 20)", "", true},                             // softcap, written out
    {"score + 0.25 * float((h + 1) % 3) - 0.125 * b", "", false},    // per head and batch
    {"", "q_idx / 64 == kv_idx / 64", true},                         // chunked (Llama 4)
    {"", "kv_idx < 100 || q_idx >= kv_idx", false},                  // prefix LM
    {"", "q_idx % 5 != 0 && (q_idx + kv_idx) % 3 != 1", false},      // empty rows, holes
    {"q_idx >= kv_idx ? score : -inf", "", false},                   // -inf from a score_mod
    {"max(score, -2.0) + log(1.0 + exp(-abs(score))) * 0.5 + sqrt(float(kv_idx % 7)) * 0.01",
     "", false},                                                     // smooth and kinked
    {"exp2(-0.5) * score + min(q_idx - kv_idx, 0) * 0.02 - log2(2.0 + h) / 2",
     "b == 0 || kv_idx % 2 == 0", true},                             // both at once
};

// Masks whose block test decides whole blocks (MaskIntervals.cpp): key
// blocks trimmed at either end, blocks kept entirely (no element-wise mask),
// per-head answers; long enough for several blocks each way.
const UserModifiers kBlockMasks[] = {
    {"", "q_idx / 256 == kv_idx / 256", true},             // chunks of whole blocks
    {"", "kv_idx < 256 || q_idx >= kv_idx", false},        // prefix LM: full, gap, triangle
    {"", "abs(q_idx - kv_idx) <= 300", false},             // a window, trimmed both ends
    {"", "h % 2 == 0 || (q_idx / 128 == kv_idx / 128)", false}, // all kept on even heads
    {"", "(q_idx - 7) % 512 < 384 && kv_idx >= q_idx / 4", false}, // remainders, scaled
    // Empty blocks between kept ones: the forward skips them with the lists
    // it derives (BlockListsKernel.cpp), the backward per step.
    {"", "kv_idx < 64 || q_idx - kv_idx < 200", true},       // attention sink + window
    {"", "kv_idx % 512 < 128 || abs(q_idx - kv_idx) < 64", false}, // dilated, plus a band
};

CheckCase withUserModifiers(CheckCase c, const UserModifiers &m) {
  c.scoreMod = m.scoreMod;
  c.maskMod = m.maskMod;
  c.causal = m.causal;
  return c;
}

std::vector<CheckCase> forwardGrid() {
  const Shape shapes[] = {{2, 257, 301, 4, 2}, {1, 1000, 777, 2, 2}, {3, 1, 17, 1, 1}};
  std::vector<CheckCase> cases;
  uint64_t seed = 30000;
  for (const UserModifiers &m : kUserModifiers) {
    for (int64_t d : {64, 128})
      for (const Shape &s : shapes)
        cases.push_back(withUserModifiers(gridCase(s, d, false, seed++), m));
    // Every forward main loop: mma.sync, wgmma on all warps, warp-specialized
    // persistent (the default is warp-specialized, one tile a block).
    CheckCase c = withUserModifiers(gridCase({2, 700, 900, 4, 1}, 128, false, seed++), m);
    c.tile = TileConfig{128, 64, 4, 2};
    cases.push_back(c);
    c.seed = baseSeed() + seed++;
    c.tile = TileConfig{128, 128, 8, 2, true, true};
    cases.push_back(c);
    c.seed = baseSeed() + seed++;
    c.tile = TileConfig{128, 128, 8, 2, true, true, true, true};
    cases.push_back(c);
  }
  // With the built-in modifiers: window + softcap + ALiBi per batch under a
  // user bias and mask; and a packed batch (b is the sequence's index).
  CheckCase all = withUserModifiers(gridCase({2, 600, 600, 4, 2}, 128, false, seed++),
                                    kUserModifiers[8]);
  all.windowLeft = 200;
  all.softcap = 3.0f;
  all.alibi = all.alibiPerBatch = true;
  cases.push_back(all);
  CheckCase packed = withUserModifiers(gridCase({1, 1, 1, 4, 2}, 128, false, seed++),
                                       kUserModifiers[2]);
  packed.setSeqlens({1, 7, 1000, 333}, {5, 7, 1000, 1});
  packed.maskMod = "b != 2 || q_idx / 128 == kv_idx / 128";
  cases.push_back(packed);
  for (const UserModifiers &m : kBlockMasks) {
    CheckCase c = withUserModifiers(gridCase({2, 1100, 1300, 4, 2}, 128, false, seed++), m);
    cases.push_back(c);
    c.seed = baseSeed() + seed++;
    c.tile = TileConfig{64, 64, 4, 2};
    cases.push_back(c);
    c.seed = baseSeed() + seed++; // the ends trimmed only
    c.tile.reset();
    c.maskModBlockLists = false;
    cases.push_back(c);
  }
  // Derived lists on every forward main loop, per head and per batch (the
  // lists then are too), seq_q != seq_k both ways.
  for (const TileConfig &t : flashjit::testing::everyForwardMainLoop())
    for (const char *mask : {"kv_idx < 64 || q_idx - kv_idx < 200",
                             "(h + b) % 2 == 0 || kv_idx % 384 < 128"}) {
      CheckCase c = withUserModifiers(gridCase({2, 901, 2100, 4, 2}, 128, false, seed++),
                                      {"", mask, true});
      c.tile = t;
      cases.push_back(c);
      c = withUserModifiers(gridCase({3, 1500, 700, 2, 2}, 64, false, seed++), {"", mask, false});
      c.tile = t;
      cases.push_back(c);
    }
  return cases;
}

class UserModifierForward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(UserModifierForward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, UserModifierForward, ::testing::ValuesIn(forwardGrid()),
                         caseName);

// The backward differentiates the score region: every modifier of the grid,
// GQA, d = 64 (one dK/dV kernel) and 256 (split), and the combinations.
std::vector<CheckCase> backwardGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 31000;
  for (const UserModifiers &m : kUserModifiers) {
    cases.push_back(withUserModifiers(gridCase({2, 257, 301, 4, 2}, 64, false, seed++), m));
    cases.push_back(withUserModifiers(gridCase({1, 333, 190, 2, 1}, 128, false, seed++), m));
  }
  cases.push_back(withUserModifiers(gridCase({1, 200, 300, 2, 2}, 256, false, seed++),
                                    kUserModifiers[7]));
  CheckCase all = withUserModifiers(gridCase({2, 400, 400, 4, 2}, 64, false, seed++),
                                    kUserModifiers[8]);
  all.windowLeft = 150;
  all.softcap = 3.0f;
  all.alibi = true;
  cases.push_back(all);
  CheckCase packed = withUserModifiers(gridCase({1, 1, 1, 2, 1}, 64, false, seed++),
                                       kUserModifiers[2]);
  packed.setSeqlens({1, 7, 300, 129}, {5, 7, 300, 1});
  cases.push_back(packed);
  for (const UserModifiers &m : kBlockMasks)
    cases.push_back(withUserModifiers(gridCase({1, 1100, 1300, 4, 2}, 64, false, seed++), m));
  // The backward skips the steps a block mask empties wherever they lie
  // (interior ones too: a chunk's later query blocks, the prefix LM's gap),
  // per query head of a GQA group; at d = 128 too (other step widths).
  for (int i : {0, 1, 3})
    cases.push_back(
        withUserModifiers(gridCase({2, 1500, 1500, 8, 2}, 128, false, seed++), kBlockMasks[i]));
  return cases;
}

class UserModifierBackward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(UserModifierBackward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectBackwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, UserModifierBackward, ::testing::ValuesIn(backwardGrid()),
                         caseName);

// One variant per distinct expression: spacing does not make a new kernel,
// another constant does; and a bad expression is a clear error, not a crash.
TEST(UserModifierVariants, NamedByTheCanonicalExpression) {
  FLASHJIT_REQUIRE_GPU();
  alignas(256) static char device[1024]; // never dereferenced: selectVariant only names
  AttentionParams p;
  p.q = device;
  p.k = device + 256;
  p.v = device + 512;
  p.o = device + 768;
  p.batch = 1;
  p.seqQ = p.seqK = 128;
  p.headsQ = p.headsK = 1;
  p.headDimQK = 64;
  AttentionSpec a, b, c;
  p.scoreMod = "score*0.5";
  for (auto [text, spec] : {std::pair{"score*0.5", &a}, {" ( score ) * 0.5 ", &b},
                            {"score*0.25", &c}}) {
    p.scoreMod = text;
    Status s = Gpu::get().runtime->selectVariant(p, *spec);
    ASSERT_TRUE(s.isOk()) << s.message();
  }
  EXPECT_EQ(a.variantName(), b.variantName());
  EXPECT_NE(a.variantName(), c.variantName());
  EXPECT_NE(a.variantName().find("_smod"), std::string::npos) << a.variantName();
  p.scoreMod = "score * cos(q_idx)";
  Status s = Gpu::get().runtime->selectVariant(p, a);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("unknown function 'cos'"), std::string::npos) << s.message();
  // A mask_mod's forward runs the block-mask variant on the lists derived
  // for it, unless asked not to.
  p.scoreMod = nullptr;
  p.maskMod = "kv_idx < 64 || q_idx - kv_idx < 100";
  ASSERT_TRUE(Gpu::get().runtime->selectVariant(p, a).isOk());
  EXPECT_NE(a.variantName().find("_mmod"), std::string::npos) << a.variantName();
  EXPECT_NE(a.variantName().find("_blockmask"), std::string::npos) << a.variantName();
  p.maskModBlockLists = false;
  ASSERT_TRUE(Gpu::get().runtime->selectVariant(p, a).isOk());
  EXPECT_EQ(a.variantName().find("_blockmask"), std::string::npos) << a.variantName();
}

} // namespace

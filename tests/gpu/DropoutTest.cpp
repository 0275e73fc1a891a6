//===- DropoutTest.cpp - dropout, forward and backward, vs the reference --===//
//
// Dropout on P against the fp32 reference, which draws the same Philox bits
// from its own implementation of the definition (templates/
// reference_attention.cu, checked against Random123's known answers and a
// float64 CPU computation in ReferenceSelfTest). Every forward main loop
// (mma.sync, all-warps wgmma, warp-specialized one-tile and persistent),
// the backward's kernels at d = 64, 128, 256, odd sizes, causal, GQA,
// varlen, p from 0.1 to 0.9; then determinism and that a new seed or offset
// draws a new mask.
//
#include "GpuTestEnvironment.h"

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::Shape;
using flashjit::testing::caseName;
using flashjit::testing::gridCase;
using flashjit::testing::baseSeed;

namespace {

const float kProbabilities[] = {0.1f, 0.5f, 0.25f, 0.9f};

CheckCase withDropout(CheckCase c, uint64_t index) {
  c.dropoutP = kProbabilities[index % 4];
  c.dropoutSeed = (baseSeed() + index) * 0x9E3779B97F4A7C15ULL;
  c.dropoutOffset = uint32_t(index * 7919);
  return c;
}

const Shape kShapes[] = {{1, 1000, 1000, 4, 2}, {2, 17, 333, 2, 2}, {1, 777, 129, 3, 1}};

// A packed batch of sequences 1, 7, 1000, 300 long (keys 1, 7, 1000, 333).
CheckCase packedCase(int64_t d, uint64_t index) {
  CheckCase c = withDropout(gridCase({1, 1, 1, 2, 1}, d, true, index), index);
  c.setSeqlens({1, 7, 1000, 300}, {1, 7, 1000, 333});
  return c;
}

std::vector<CheckCase> forwardGrid() {
  const TileConfig tiers[] = {
      TileConfig{128, 64, 4, 2},                           // mma.sync
      TileConfig{128, 128, 8, 2, true, true},              // wgmma, all warps
      TileConfig{128, 128, 8, 2, true, true, true, false}, // warp-specialized
      TileConfig{128, 176, 8, 2, true, true, true, true},  // persistent
      TileConfig{128, 128, 8, 2, true, true, true, false, true}}; // O by TMA stores
  std::vector<CheckCase> cases;
  uint64_t seed = 30000;
  for (bool causal : {false, true}) {
    for (int64_t d : {40, 64, 96, 128, 256}) // the default tile of each head dim
      for (const Shape &s : kShapes)
        cases.push_back(withDropout(gridCase(s, d, causal, seed), seed++));
    for (const TileConfig &tile : tiers)
      for (const Shape &s : kShapes) {
        CheckCase c = withDropout(gridCase(s, 128, causal, seed), seed++);
        c.tile = tile;
        cases.push_back(c);
      }
  }
  cases.push_back(packedCase(128, seed++));
  return cases;
}

class DropoutForward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(DropoutForward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, DropoutForward, ::testing::ValuesIn(forwardGrid()), caseName);

std::vector<CheckCase> backwardGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 31000;
  for (bool causal : {false, true})
    for (int64_t d : {64, 128, 256})
      for (const Shape &s : kShapes)
        cases.push_back(withDropout(gridCase(s, d, causal, seed), seed++));
  cases.push_back(withDropout(gridCase({2, 333, 517, 16, 2}, 128, true, seed), seed++)); // GQA 8:1
  cases.push_back(packedCase(64, seed++));
  return cases;
}

class DropoutBackward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(DropoutBackward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectBackwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, DropoutBackward, ::testing::ValuesIn(backwardGrid()), caseName);

// The same seed and offset give the same bits, forward and backward; a new
// offset or seed a different output (each run still matches the reference
// drawn with its own seed and offset).
TEST(Dropout, SameSeedAndOffsetSameBitsOtherwiseNewMask) {
  FLASHJIT_REQUIRE_GPU();
  CheckCase c = withDropout(gridCase({2, 300, 300, 4, 2}, 128, true, 32000), 1);
  auto forward = [&](const CheckCase &x) {
    CheckResult r;
    Status s = Gpu::get().checker->run(x, r);
    EXPECT_TRUE(s.isOk()) << s.message();
    EXPECT_LT(r.relativeL2, 1e-2) << x.describe();
    return r.outputSha256;
  };
  auto backward = [&](const CheckCase &x) {
    BackwardCheckResult r;
    Status s = Gpu::get().checker->runBackward(x, r);
    EXPECT_TRUE(s.isOk()) << s.message();
    return r.gradientsSha256;
  };
  const std::string first = forward(c);
  EXPECT_EQ(forward(c), first) << "the same seed and offset gave another output";
  EXPECT_EQ(backward(c), backward(c)) << "the same seed and offset gave other gradients";
  CheckCase otherOffset = c;
  otherOffset.dropoutOffset += 1;
  EXPECT_NE(forward(otherOffset), first) << "a new offset gave the same output";
  CheckCase otherSeed = c;
  otherSeed.dropoutSeed ^= 1ULL << 40; // the key's high word
  EXPECT_NE(forward(otherSeed), first) << "a new seed gave the same output";
}

} // namespace

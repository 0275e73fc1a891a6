//===- ScoreModifierTest.cpp - window, softcap, ALiBi and GQA vs the reference ===//
//
// The variants of issue #8 that are built, forward and backward, against the
// fp32 reference that applies the same mask and bias to the naive formula
// (templates/reference_attention.cu, itself checked against float64 in
// ReferenceSelfTest): sliding windows of every shape (causal-sliding,
// two-sided, diagonal only, one side unbounded), softcap, ALiBi per head and
// per batch, and all of them at once; odd sizes, seq_q != seq_k both ways,
// every tier. Same bounds as the plain grids.
//
#include "GpuTestEnvironment.h"

#include <cstdio>

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::Shape;
using flashjit::testing::caseName;
using flashjit::testing::gridCase;
using flashjit::testing::baseSeed;

namespace {

struct Modifiers {
  bool causal;
  int64_t left, right;
  float softcap;
  bool alibi, alibiPerBatch;
};

const Modifiers kModifiers[] = {
    {true, 64, -1, 0.0f, false, false},    // causal sliding window (Mistral)
    {false, 100, 37, 0.0f, false, false},  // two-sided
    {false, 0, 0, 0.0f, false, false},     // the diagonal alone
    {false, -1, 50, 0.0f, false, false},   // only a right bound
    {false, 300, -1, 0.0f, false, false},  // only a left bound
    {false, -1, -1, 0.5f, false, false},   // softcap small enough that tanh bends
    {false, -1, -1, 0.0f, true, false},    // ALiBi, slopes per head
    {true, -1, -1, 0.0f, true, true},      // causal ALiBi, slopes per batch and head
    {true, 256, -1, 2.0f, true, false},    // all at once
};

CheckCase withModifiers(CheckCase c, const Modifiers &m) {
  c.causal = m.causal;
  c.windowLeft = m.left;
  c.windowRight = m.right;
  c.softcap = m.softcap;
  c.alibi = m.alibi;
  c.alibiPerBatch = m.alibiPerBatch;
  return c;
}

std::vector<CheckCase> forwardGrid() {
  const Shape shapes[] = {
      {1, 1000, 1000, 4, 2}, {2, 17, 333, 2, 2}, {1, 777, 129, 3, 1}, {3, 1, 1, 1, 1}};
  std::vector<CheckCase> cases;
  uint64_t seed = 20000;
  for (const Modifiers &m : kModifiers) {
    for (int64_t d : {40, 64, 128, 256})
      for (const Shape &s : shapes)
        cases.push_back(withModifiers(gridCase(s, d, false, seed++), m));
    // Every forward main loop: mma.sync, wgmma on all warps, and (the
    // default at these head dims on Hopper) the warp-specialized one.
    CheckCase mmaSync = withModifiers(gridCase({2, 1000, 777, 4, 2}, 128, false, seed++), m);
    mmaSync.tile = TileConfig{128, 64, 4, 2};
    cases.push_back(mmaSync);
    CheckCase wgmma = mmaSync;
    wgmma.seed = baseSeed() + seed++;
    wgmma.tile = TileConfig{128, 128, 8, 2, true, true};
    cases.push_back(wgmma);
  }
  // Long sequences: most key blocks of a window are skipped.
  for (int i : {0, 1, 8})
    cases.push_back(withModifiers(gridCase({2, 4097, 4097, 2, 1}, 128, false, seed++),
                                  kModifiers[i]));
  return cases;
}

class ScoreModifierForward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(ScoreModifierForward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, ScoreModifierForward, ::testing::ValuesIn(forwardGrid()),
                         caseName);

std::vector<CheckCase> backwardGrid() {
  const Shape shapes[] = {{1, 1000, 1000, 4, 2}, {2, 17, 333, 2, 2}, {1, 777, 129, 3, 1}};
  std::vector<CheckCase> cases;
  uint64_t seed = 21000;
  for (const Modifiers &m : kModifiers)
    for (int64_t d : {64, 128, 256})
      for (const Shape &s : shapes)
        cases.push_back(withModifiers(gridCase(s, d, false, seed++), m));
  cases.push_back(withModifiers(gridCase({1, 4097, 4097, 2, 1}, 64, false, seed++),
                                kModifiers[0]));
  return cases;
}

class ScoreModifierBackward : public ::testing::TestWithParam<CheckCase> {};

TEST_P(ScoreModifierBackward, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectBackwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, ScoreModifierBackward, ::testing::ValuesIn(backwardGrid()),
                         caseName);

// Grouped-query attention at the ratios of the issue (1, 2, 4, 7, 8 query
// heads per key/value head) and MQA, forward and backward, causal and not.
std::vector<CheckCase> groupGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 22000;
  for (int64_t group : {1, 2, 4, 7, 8})
    for (bool causal : {false, true})
      cases.push_back(gridCase({2, 333, 517, 2 * group, 2}, 128, causal, seed++));
  for (bool causal : {false, true})
    cases.push_back(gridCase({2, 517, 333, 12, 1}, 64, causal, seed++)); // MQA
  return cases;
}

class GroupedQueryAttention : public ::testing::TestWithParam<CheckCase> {};

TEST_P(GroupedQueryAttention, ForwardAndBackwardMatchReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
  flashjit::testing::expectBackwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Ratios, GroupedQueryAttention, ::testing::ValuesIn(groupGrid()),
                         caseName);

} // namespace

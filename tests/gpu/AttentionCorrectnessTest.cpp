//===- AttentionCorrectnessTest.cpp - generated kernels vs the reference --===//
//
// Fresh random inputs per case, poisoned outputs with a guard region, every
// element compared with the fp32 reference. Tolerance: relative L2 error
// below 1e-2 (bf16/f16 outputs), LSE within 1e-3 (natural-log units).
//
#include "GpuTestEnvironment.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::Shape;
using flashjit::testing::kCausalManyHeads;
using flashjit::testing::caseName;
using flashjit::testing::gridCase;
using flashjit::testing::baseSeed;

namespace {

// The grid of the foundation issue: seq 1, 17, 1000, 4097 (and seq_q != seq_k),
// batch 1 and 3, heads 1 and 12 (and GQA), head dims 8..256, causal and not.
std::vector<CheckCase> correctnessGrid() {
  const Shape shapes[] = {
      {1, 1, 1, 1, 1},     {3, 17, 17, 12, 12},   {1, 1000, 1000, 12, 4},
      {3, 4097, 4097, 1, 1}, {1, 17, 1000, 12, 12}, {3, 1000, 17, 12, 3},
  };
  std::vector<CheckCase> cases;
  uint64_t seed = 1;
  for (int64_t d : {8, 40, 64, 80, 96, 128, 160, 256})
    for (bool causal : {false, true})
      for (const Shape &s : shapes)
        cases.push_back(gridCase(s, d, causal, seed++));
  // Different head dims for Q/K and V.
  CheckCase mixed;
  mixed.headDimQK = 192;
  mixed.headDimV = 128;
  mixed.seqQ = mixed.seqK = 777;
  mixed.headsQ = mixed.headsK = 2;
  cases.push_back(mixed);
  return cases;
}

class AttentionCorrectness : public ::testing::TestWithParam<CheckCase> {};

TEST_P(AttentionCorrectness, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, AttentionCorrectness, ::testing::ValuesIn(correctnessGrid()),
                         caseName);

// The Hopper switches, each case in eight variants: S = Q Kᵀ on wgmma from
// swizzled shared memory; also O += P V on wgmma; the warp-specialized kernel
// (TMA producer, both GEMMs on wgmma); that kernel on a persistent grid;
// both with O stored by TMA (staged where Q was; clipped at seq_q and d_v);
// and the last two with one consumer warpgroup (64 rows, no ping-pong, two
// blocks an SM up to d = 128), on the head dims of that tier and the same
// odd shapes.
std::vector<CheckCase> wgmmaGrid() {
  const Shape shapes[] = {
      {1, 1, 1, 1, 1},        {3, 17, 17, 12, 12},   {1, 1000, 1000, 12, 4},
      {2, 4097, 4097, 2, 1},  {1, 17, 1000, 4, 4},   {3, 1000, 17, 12, 3},
  };
  std::vector<CheckCase> cases;
  uint64_t seed = 5000;
  for (int64_t d : {64, 96, 128, 192, 256})
    for (bool causal : {false, true})
      for (const Shape &s : shapes)
        for (int variant : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
          // 6, 7: one consumer warpgroup; 8, 9: three (head dims up to 128).
          const bool pv = variant >= 1, warpSpecialized = variant >= 2,
                     persistent = variant % 2 == 1 && variant >= 3, tmaStore = variant >= 4;
          const int64_t consumers = variant >= 8 ? 3 : variant >= 6 ? 1 : 2;
          if (consumers == 3 && d > 128)
            continue;
          CheckCase c = gridCase(s, d, causal, seed++);
          c.headDimV = d == 192 ? 128 : d;
          c.tile = TileConfig{64 * consumers, d <= 64 ? 128 : d <= 128 && consumers < 3 ? 128 : 64,
                              4 * consumers, 2, true, pv, warpSpecialized, persistent, tmaStore};
          cases.push_back(c);
        }
  return cases;
}

// The mma.sync path at the head dims where Hopper's default is wgmma, so both
// stay covered on every GPU.
std::vector<CheckCase> mmaSyncGrid() {
  const Shape shapes[] = {{3, 17, 17, 12, 12}, {1, 1000, 333, 4, 2}};
  std::vector<CheckCase> cases;
  uint64_t seed = 9000;
  for (int64_t d : {96, 128, 160, 256})
    for (bool causal : {false, true})
      for (const Shape &s : shapes) {
        CheckCase c = gridCase(s, d, causal, seed++);
        c.tile = d <= 128 ? TileConfig{128, 64, 4, 2} : TileConfig{64, 32, 4, 2};
        cases.push_back(c);
      }
  // Enough heads that the causal tile order runs its first heads head by
  // head before the last ones' rank by rank (CausalTileOrder.cpp).
  CheckCase manyHeads = gridCase(kCausalManyHeads, 128, true, seed++);
  manyHeads.tile = TileConfig{128, 64, 4, 2};
  cases.push_back(manyHeads);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(MmaSync, AttentionCorrectness, ::testing::ValuesIn(mmaSyncGrid()),
                         caseName);

// Scores of large spread (Q and K from [-8, 8)): row maxima that move by
// more than 2^8 from one key block to the next and rows dominated by a few
// keys. On Hopper from head dim 128 the default kernels rescale O lazily
// (only when a row's max grew past that): these cases take both the rescale
// and the skip often. Default tiles (the runtime's), both dtypes.
std::vector<CheckCase> largeScoresGrid() {
  const Shape shapes[] = {{3, 1000, 1000, 4, 2}, {1, 17, 1500, 2, 2}, {2, 4097, 4097, 2, 1},
                          {1, 1531, 300, 3, 3}};
  std::vector<CheckCase> cases;
  uint64_t seed = 9500;
  for (int64_t d : {64, 128, 192, 256})
    for (bool causal : {false, true})
      for (const Shape &s : shapes)
        for (DType dtype : {DType::BF16, DType::F16}) {
          CheckCase c = gridCase(s, d, causal, seed++);
          c.dtype = dtype;
          c.headDimV = d == 192 ? 128 : d;
          c.queryKeyAmplitude = 8.0f;
          cases.push_back(c);
        }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(LargeScores, AttentionCorrectness,
                         ::testing::ValuesIn(largeScoresGrid()), caseName);

class HopperQkWgmma : public ::testing::TestWithParam<CheckCase> {};

TEST_P(HopperQkWgmma, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  if (Gpu::get().runtime->device().arch != "sm_90a")
    GTEST_SKIP() << "wgmma needs sm_90a; this GPU is " << Gpu::get().runtime->device().arch;
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, HopperQkWgmma, ::testing::ValuesIn(wgmmaGrid()), caseName);

// Persistent blocks that walk many tiles each (the grid above has at most a
// few tiles a block): ~1000 tiles on a grid of the SMs' resident blocks, taken
// from the tile counter; causal rows of 1 to 12 key blocks; GQA; odd lengths.
// Two and three consumer warpgroups with and without TMA stores, one with. The third shape is small enough for compute-sanitizer and still
// has more tiles (160 or 320) than an H100/H200 holds blocks, so the blocks
// take a second tile and its Q slot.
std::vector<CheckCase> persistentManyTilesGrid() {
  const Shape shapes[] = {{6, 1500, 1500, 16, 4}, {5, 1000, 1531, 24, 24}, {1, 200, 300, 80, 80}};
  std::vector<CheckCase> cases;
  uint64_t seed = 7000;
  for (int64_t d : {64, 128})
    for (bool causal : {false, true})
      for (const Shape &s : shapes)
        for (const TileConfig &t : {TileConfig{128, 128, 8, 2, true, true, true, true, false},
                                    TileConfig{128, 128, 8, 2, true, true, true, true, true},
                                    TileConfig{64, 128, 4, 2, true, true, true, true, true},
                                    TileConfig{192, d <= 64 ? 128 : 64, 12, 2, true, true, true,
                                               true, false},
                                    TileConfig{192, d <= 64 ? 128 : 64, 12, 2, true, true, true,
                                               true, true}}) {
          CheckCase c = gridCase(s, d, causal, seed++);
          c.tile = t;
          cases.push_back(c);
        }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(PersistentManyTiles, HopperQkWgmma,
                         ::testing::ValuesIn(persistentManyTilesGrid()), caseName);

// The causal tile order's two parts (CausalTileOrder.cpp) on one tile a
// block, with and without TMA stores (the persistent grid above takes the
// same order from its tile counter).
std::vector<CheckCase> causalManyHeadsGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 7100;
  for (int64_t d : {64, 128})
    for (bool tmaStore : {false, true}) {
      CheckCase c = gridCase(kCausalManyHeads, d, true, seed++);
      c.tile = TileConfig{128, 128, 8, 2, true, true, true, false, tmaStore};
      cases.push_back(c);
    }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(CausalManyHeads, HopperQkWgmma,
                         ::testing::ValuesIn(causalManyHeadsGrid()), caseName);

// O 4 bytes past a 16-byte boundary (its contract's least alignment) on the
// default tiles, which then store it thread by thread instead of by TMA; odd
// lengths, GQA, head dims with and without a TMA-store default. (JIT only:
// the tests bundle holds the TMA-store variants.)
std::vector<CheckCase> offsetOutputGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 7200;
  for (int64_t d : {40, 64, 128, 256})
    for (bool causal : {false, true}) {
      CheckCase c = gridCase({2, 1000, 777, 6, 2}, d, causal, seed++);
      c.outputsOffset4 = true;
      cases.push_back(c);
    }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(OffsetOutputs, AttentionCorrectness,
                         ::testing::ValuesIn(offsetOutputGrid()), caseName);

// Every tile configuration the autotuner may pick must be correct, not just
// the default: sweep a few shapes of the configuration space.
TEST(AttentionTiles, NonDefaultTilesMatchReference) {
  FLASHJIT_REQUIRE_GPU();
  const TileConfig tiles[] = {{64, 64, 4, 1},       {64, 32, 2, 3}, {128, 128, 8, 2},
                              {16, 16, 1, 2},       {64, 64, 4, 1, true}, {128, 32, 8, 3, true},
                              {64, 128, 4, 2, false, true}, {128, 64, 8, 1, true, true},
                              {128, 64, 8, 3, true, true, true}, {128, 128, 8, 4, true, true, true, true},
                              {128, 176, 8, 2, true, true, true, false, true},
                              {128, 96, 8, 3, true, true, true, true, true},
                              {64, 176, 4, 2, true, true, true, false, true},
                              {64, 96, 4, 3, true, true, true, true, false},
                              {192, 128, 12, 3, true, true, true, false, true},
                              {192, 96, 12, 2, true, true, true, true, false},
                              {64, 128, 4, 2, true, true, true, false, false},
                              {192, 128, 12, 2, true, true, true, false, false},
                              {128, 192, 8, 2, true, true, true, false, true}};
  for (const TileConfig &t : tiles) {
    if ((t.qkWgmma || t.pvWgmma) && Gpu::get().runtime->device().arch != "sm_90a")
      continue; // wgmma needs sm_90a
    CheckCase c;
    c.seqQ = 333;
    c.seqK = 517;
    c.headsQ = 4;
    c.headsK = 2;
    c.headDimQK = 64;
    c.causal = true;
    c.tile = t;
    c.seed = baseSeed() + 1000 +
             uint64_t(t.m * 7 + t.n * 3 + t.warps + t.stages + t.qkWgmma + 2 * t.pvWgmma +
                      4 * t.warpSpecialized + 8 * t.persistent + 16 * t.tmaStore);
    CheckResult r;
    Status s = Gpu::get().checker->run(c, r);
    ASSERT_TRUE(s.isOk()) << s.message();
    EXPECT_EQ(r.unwritten, 0) << r.variant;
    EXPECT_LT(r.relativeL2, 1e-2) << r.variant;
    EXPECT_LT(r.maxLseError, 1e-3) << r.variant;
  }
}

} // namespace

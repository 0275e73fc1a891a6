//===- PackedGqaTest.cpp - GQA head packing vs the reference --------------===//
//
// The forward with a GQA group's query heads packed into the tiles' rows
// (row r = query r / group of head r % group) against the fp32 reference:
// decode-size and longer seq_q, groups of 2, 4, 7 (not dividing the tile),
// 8 and MQA, causal (bottom-right aligned, so a lone query sees every key),
// window and softcap; every forward main loop. Then the runtime's choice:
// packed where it needs fewer tiles, and a clear error where it cannot pack.
//
#include "GpuTestEnvironment.h"

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::Shape;
using flashjit::testing::baseSeed;
using flashjit::testing::caseName;
using flashjit::testing::gridCase;

namespace {

CheckCase packed(CheckCase c) {
  c.packGQA = true;
  return c;
}

std::vector<CheckCase> packedGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 60000;
  const Shape shapes[] = {{2, 1, 1000, 8, 1},   {3, 7, 333, 14, 2}, {1, 33, 2000, 32, 8},
                          {2, 100, 150, 16, 2}, {1, 1, 1, 8, 2},    {2, 300, 700, 6, 3}};
  for (int64_t d : {64, 128})
    for (const Shape &s : shapes)
      for (bool causal : {false, true})
        cases.push_back(packed(gridCase(s, d, causal, seed++)));
  for (bool causal : {false, true})
    cases.push_back(packed(gridCase({2, 5, 999, 16, 4}, 256, causal, seed++)));
  CheckCase window = packed(gridCase({2, 64, 1200, 8, 2}, 128, false, seed++));
  window.windowLeft = 300;
  window.windowRight = 20;
  window.softcap = 5.0f;
  cases.push_back(window);
  // Every forward main loop, and a tile of 64 rows (9 queries of a group of 7).
  std::vector<TileConfig> tiles = flashjit::testing::everyForwardMainLoop();
  tiles.push_back(TileConfig{64, 64, 4, 2});
  for (const TileConfig &t : tiles) {
    CheckCase c = packed(gridCase({3, 13, 777, 14, 2}, 128, true, seed++));
    c.tile = t;
    cases.push_back(c);
  }
  // Three consumer warpgroups (the long d = 64 default): 192 rows, groups
  // of 4 and 7 (27 queries a tile), persistent and one tile a block.
  for (const TileConfig &t : {TileConfig{192, 128, 12, 2, true, true, true, true},
                              TileConfig{192, 128, 12, 2, true, true, true}})
    for (const Shape &s : {Shape{2, 1100, 2100, 16, 4}, Shape{3, 13, 777, 14, 2}})
      for (bool causal : {false, true}) {
        CheckCase c = packed(gridCase(s, 64, causal, seed++));
        c.tile = t;
        cases.push_back(c);
      }
  // 192 keys a step (the long non-causal d = 128 default), packed for decoding.
  CheckCase wide = packed(gridCase({2, 1, 4500, 16, 2}, 128, false, seed++));
  wide.tile = TileConfig{128, 192, 8, 2, true, true, true};
  cases.push_back(wide);
  return cases;
}

class PackedGqa : public ::testing::TestWithParam<CheckCase> {};

TEST_P(PackedGqa, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  flashjit::testing::expectForwardMatchesReference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Grid, PackedGqa, ::testing::ValuesIn(packedGrid()), caseName);

// selectVariant only names kernels: no tensor is touched.
AttentionParams gqaShape(int64_t seqQ) {
  alignas(256) static char device[1024];
  AttentionParams p;
  p.q = device;
  p.k = device + 256;
  p.v = device + 512;
  p.o = device + 768;
  p.batch = 4;
  p.seqQ = seqQ;
  p.seqK = 4096;
  p.headsQ = 32;
  p.headsK = 8;
  p.headDimQK = 128;
  return p;
}

TEST(PackedGqaChoice, PacksWhereItNeedsFewerTiles) {
  FLASHJIT_REQUIRE_GPU();
  AttentionSpec spec;
  for (int64_t seqQ : {1, 16, 31}) { // decoding: packed
    ASSERT_TRUE(Gpu::get().runtime->selectVariant(gqaShape(seqQ), spec).isOk());
    EXPECT_TRUE(spec.packGQA) << seqQ << ": " << spec.variantName();
  }
  ASSERT_TRUE(Gpu::get().runtime->selectVariant(gqaShape(4096), spec).isOk()); // prefill
  EXPECT_FALSE(spec.packGQA) << spec.variantName();
  AttentionParams never = gqaShape(1);
  never.packGQA = AttentionParams::PackGQA::Never;
  ASSERT_TRUE(Gpu::get().runtime->selectVariant(never, spec).isOk());
  EXPECT_FALSE(spec.packGQA) << spec.variantName();
}

TEST(PackedGqaChoice, AlwaysIsAnErrorWhereItCannotPack) {
  FLASHJIT_REQUIRE_GPU();
  AttentionParams p = gqaShape(1);
  p.packGQA = AttentionParams::PackGQA::Always;
  p.maskMod = "kv_idx % 2 == 0";
  AttentionSpec spec;
  Status s = Gpu::get().runtime->selectVariant(p, spec);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("user modifiers"), std::string::npos) << s.message();
  p = gqaShape(1);
  p.headsK = 32;
  p.packGQA = AttentionParams::PackGQA::Always;
  s = Gpu::get().runtime->selectVariant(p, spec);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("no group"), std::string::npos) << s.message();
}

} // namespace

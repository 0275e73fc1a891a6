//===- BackwardCorrectnessTest.cpp - gradients vs the fp32 reference ------===//
//
// Fresh random Q, K, V and dO per case; flashjit's forward gives O and LSE as
// in training; the gradients are poisoned (NaN) with a guard region and every
// element is compared with the fp32 reference's (ReferenceSelfTest checks
// that one against float64). Tolerance: relative L2 error of each of dQ, dK,
// dV below 6e-3 (bf16) or 1.5e-3 (f16), about twice the largest seen on an
// H200 over this grid (P and dS are rounded to bf16/f16 for the tensor cores,
// as in FlashAttention-2, and the gradients are written in bf16/f16). A
// looser bound let a pipelining race (4x the usual error) pass once.
//
#include "GpuTestEnvironment.h"

#include <cstdio>

using namespace flashjit;
using flashjit::testing::Gpu;
using flashjit::testing::Shape;
using flashjit::testing::kCausalManyHeads;
using flashjit::testing::caseName;
using flashjit::testing::gridCase;

namespace {

// The backward grids' shapes (see backwardGrid).
const Shape kShapes[] = {
    {1, 1, 1, 1, 1},       {3, 17, 17, 6, 6},      {1, 1000, 1000, 12, 4},
    {2, 4097, 4097, 1, 1}, {1, 17, 1000, 4, 4},    {3, 1000, 17, 6, 2},
};

// The forward's odd sizes: one token, 17, 1000 with GQA 3:1, 4097, and
// seq_q != seq_k both ways (causal: bottom-right aligned, so some queries see
// no key and some keys no query); head dims 8..256 (two and three kernels).
// On sm_90a also the atomic-dQ kernels (the same grid at d = 64, 128, 256).
std::vector<CheckCase> backwardGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 9000;
  for (int64_t d : {8, 40, 64, 96, 128, 160, 256})
    for (bool causal : {false, true})
      for (const Shape &s : kShapes)
        cases.push_back(gridCase(s, d, causal, seed++));
  CheckCase mixed = gridCase({2, 333, 517, 4, 2}, 192, true, seed++);
  mixed.headDimV = 128;
  cases.push_back(mixed);
  // MQA, and GQA with 7 query heads a group.
  cases.push_back(gridCase({2, 300, 300, 8, 1}, 64, true, seed++));
  cases.push_back(gridCase({1, 259, 300, 14, 2}, 128, false, seed++));
  for (int64_t d : {64, 128, 256})
    for (bool causal : {false, true})
      for (const Shape &s : kShapes) {
        CheckCase c = gridCase(s, d, causal, seed++);
        c.atomicQueryGradient = true;
        cases.push_back(c);
      }
  // Enough heads that the causal tile order runs its first heads head by
  // head before the last ones' rank by rank (CausalTileOrder.cpp), in the
  // key-block and the query-block (deterministic dQ) kernels.
  for (int64_t d : {64, 128})
    for (bool atomic : {false, true}) {
      CheckCase c = gridCase(kCausalManyHeads, d, true, seed++);
      c.atomicQueryGradient = atomic;
      cases.push_back(c);
    }
  return cases;
}

// Tiles other than the defaults: one stage, three stages, 8 warps, more keys
// a block and fewer query rows a step; on mma.sync (the sm80 tier, also on a
// Hopper GPU, whose defaults are the wgmma tiles) and on wgmma (sm_90a only:
// one or two warpgroups, 16 to 128 streamed rows a step).
std::vector<CheckCase> backwardTileGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 9500;
  std::vector<std::pair<TileConfig, TileConfig>> tiles = {
      {{64, 64, 4, 1}, {32, 64, 4, 1}},
      {{64, 32, 4, 3}, {16, 64, 4, 3}},
      {{128, 64, 8, 2}, {32, 128, 8, 2}},
      {{32, 64, 2, 2}, {64, 64, 4, 2}},
  };
  for (auto [dq, dkv] : std::vector<std::pair<TileConfig, TileConfig>>{
           {{64, 64, 4, 1}, {64, 64, 4, 1}},
           {{128, 128, 8, 2}, {16, 128, 8, 3}},
           {{64, 16, 4, 3}, {128, 64, 4, 2}},
       }) {
    dq.qkWgmma = dq.pvWgmma = dkv.qkWgmma = dkv.pvWgmma = true;
    tiles.push_back({dq, dkv});
  }
  for (const auto &[dq, dkv] : tiles)
    for (int64_t d : {64, 128})
      for (bool causal : {false, true}) {
        CheckCase c = gridCase({2, 1000, 777, 4, 2}, d, causal, seed++);
        c.tileDQ = dq;
        c.tileDKV = dkv;
        cases.push_back(c);
      }
  // The atomic-dQ key-block kernel on other wgmma tiles: 16 to 64 query
  // rows a step, one or two warpgroups (sharing each step's dQ product).
  for (TileConfig dkv : std::vector<TileConfig>{
           {64, 64, 4, 1}, {16, 128, 8, 3}, {32, 64, 4, 2}, {32, 128, 8, 2}}) {
    dkv.qkWgmma = dkv.pvWgmma = true;
    for (int64_t d : {64, 128})
      for (bool causal : {false, true}) {
        CheckCase c = gridCase({2, 1000, 777, 4, 2}, d, causal, seed++);
        c.tileDKV = dkv;
        c.atomicQueryGradient = true;
        cases.push_back(c);
      }
  }
  return cases;
}

// A warp-specialized wgmma tile.
TileConfig ws(int64_t m, int64_t n, int64_t warps, int64_t stages) {
  return TileConfig{m, n, warps, stages, true, true, true};
}

// The warp-specialized kernels (TMA producer warpgroup, one or two wgmma
// consumer warpgroups): the main grid's shapes at d = 64, 128, 256 (the
// split dK and dV kernels), deterministic (the dQ kernel warp-specialized
// too) and atomic dQ.
std::vector<CheckCase> backwardWarpSpecializedGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 9700;
  for (int64_t d : {64, 128, 256})
    for (bool causal : {false, true})
      for (const Shape &s : kShapes)
        for (bool atomic : {false, true}) {
          CheckCase c = gridCase(s, d, causal, seed++);
          c.tileDKV = ws(d <= 128 ? 32 : 16, 64, 4, 2);
          if (!atomic)
            c.tileDQ = ws(64, d <= 128 ? 64 : 32, 4, 2);
          c.atomicQueryGradient = atomic;
          cases.push_back(c);
        }
  return cases;
}

// Other warp-specialized tiles: 16 to 64 query rows a step (key-block
// kernels) or 32 to 128 keys (dQ kernel), one or two consumer warpgroups, two
// to four stages (JIT only: not in the tests bundle).
std::vector<CheckCase> backwardWarpSpecializedTileGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 9800;
  const std::pair<TileConfig, TileConfig> tiles[] = {
      {ws(64, 64, 4, 3), ws(32, 64, 4, 3)},   {ws(64, 128, 4, 2), ws(32, 128, 8, 2)},
      {ws(128, 64, 8, 2), ws(64, 128, 8, 2)}, {ws(128, 128, 8, 2), ws(16, 128, 8, 4)},
      {ws(64, 32, 4, 4), ws(64, 64, 4, 2)}};
  for (const auto &[dq, dkv] : tiles)
    for (int64_t d : {64, 128})
      for (bool causal : {false, true})
        for (bool atomic : {false, true}) {
          CheckCase c = gridCase({2, 1000, 777, 4, 2}, d, causal, seed++);
          c.tileDKV = dkv;
          if (!atomic)
            c.tileDQ = dq;
          c.atomicQueryGradient = atomic;
          cases.push_back(c);
        }
  return cases;
}

// The atomic form's step-wide dQ on warp-specialized tiles: the consumer
// warpgroups share dQᵀ = Kᵀ dSᵀ over all the block's keys by head-dim chunks
// (d = 128; d = 96: the second chunk is partial) or by queries (d = 64 with
// two warpgroups), one or two warpgroups, 32 to 128 queries a step; odd
// lengths, GQA, causal with seq_q != seq_k.
std::vector<CheckCase> backwardAtomicWarpSpecializedGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 9900;
  for (const TileConfig &dkv : {ws(64, 128, 8, 2), ws(128, 128, 8, 2), ws(64, 64, 4, 2),
                                ws(32, 128, 8, 3)})
    for (int64_t d : {64, 96, 128})
      for (bool causal : {false, true})
        for (const Shape &s : {Shape{2, 1000, 777, 4, 2}, Shape{1, 300, 1111, 6, 6}}) {
          if (dkv.m == 128 && d > 64)
            continue; // 128 queries a step spill above d = 64 (ptxas)
          CheckCase c = gridCase(s, d, causal, seed++);
          c.tileDKV = dkv;
          c.atomicQueryGradient = true;
          cases.push_back(c);
        }
  return cases;
}

// The persistent key-block kernels (as many blocks as the SMs hold, each
// walking key blocks; causal: pairs j, last - j, a single middle block where
// the count is odd): shapes with
// several tiles a block (40 heads of 200 x 300; 16 query heads on 8
// key/value heads over 1100 x 1500) and one with fewer tiles than blocks,
// atomic dQ and deterministic (the dK/dV kernel persistent beside the dQ
// kernel), plus modifiers a step may skip (sliding window with softcap,
// dropout, a block mask: V then leaves after the tile) on the deterministic
// form.
std::vector<CheckCase> backwardPersistentGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 9950;
  auto persistent = [](TileConfig t) {
    t.persistent = true;
    return t;
  };
  for (const TileConfig &dkv : {persistent(ws(64, 128, 8, 2)), persistent(ws(64, 64, 4, 2))})
    for (int64_t d : {64, 96, 128})
      for (bool causal : {false, true})
        for (const Shape &s : {Shape{2, 200, 300, 40, 40}, Shape{4, 1100, 1500, 16, 8},
                               Shape{1, 300, 1111, 6, 6}})
          for (bool atomic : {false, true}) {
            CheckCase c = gridCase(s, d, causal, seed++);
            c.tileDKV = dkv;
            if (!atomic)
              c.tileDQ = ws(64, 64, 4, 2);
            c.atomicQueryGradient = atomic;
            cases.push_back(c);
          }
  // Three stages at d 128 (226 KB of shared memory).
  for (bool causal : {false, true})
    for (const Shape &s : {Shape{2, 200, 300, 40, 40}, Shape{4, 1100, 1500, 16, 8}}) {
      CheckCase c = gridCase(s, 128, causal, seed++);
      c.tileDKV = persistent(ws(64, 128, 8, 3));
      c.atomicQueryGradient = true;
      cases.push_back(c);
    }
  for (int variant = 0; variant < 3; ++variant) {
    CheckCase c = gridCase({2, 700, 900, 16, 8}, 128, variant != 0, seed++);
    c.tileDKV = persistent(ws(64, 128, 8, 2));
    c.tileDQ = ws(64, 64, 4, 2);
    if (variant == 0) {
      c.windowLeft = 200;
      c.windowRight = 50;
      c.softcap = 20.0f;
    } else if (variant == 1) {
      c.dropoutP = 0.1f;
      c.dropoutSeed = 77;
    } else {
      c.blockMaskKeep = 0.6;
      c.blockMaskPerHead = true;
    }
    cases.push_back(c);
  }
  return cases;
}

// O and the gradients 4 bytes past a 16-byte boundary (their contract's
// least alignment): the gradients' 4-byte stores (elsewhere 16 bytes after a
// quad transpose), and in the atomic form the Δ kernel's 4-byte loads of O
// and the dQ conversion's 4-byte stores; d 96 leaves lanes of a row idle in
// the Δ kernel, d 40 has columns past the last whole 32. (JIT only: the
// forward then stores O without TMA, a variant the tests bundle does not
// hold.)
std::vector<CheckCase> backwardOffsetOutputsGrid() {
  std::vector<CheckCase> cases;
  uint64_t seed = 9990;
  for (int64_t d : {40, 64, 96, 128, 256})
    for (const Shape &s : {Shape{3, 17, 17, 6, 6}, Shape{1, 1000, 1000, 12, 4}})
      for (bool atomic : {false, true}) {
        if (atomic && d < 64)
          continue; // (the atomic form needs the wgmma key-block tile)
        CheckCase c = gridCase(s, d, /*causal=*/seed % 2 == 0, seed++);
        c.atomicQueryGradient = atomic;
        c.outputsOffset4 = true;
        cases.push_back(c);
      }
  return cases;
}

class BackwardCorrectness : public ::testing::TestWithParam<CheckCase> {};

TEST_P(BackwardCorrectness, MatchesReference) {
  FLASHJIT_REQUIRE_GPU();
  const CheckCase &c = GetParam();
  const std::string &arch = Gpu::get().runtime->device().arch;
  if (((c.tileDQ && c.tileDQ->qkWgmma) || (c.tileDKV && c.tileDKV->qkWgmma) ||
       c.atomicQueryGradient) &&
      arch != "sm_90a")
    GTEST_SKIP() << "wgmma needs sm_90a; this GPU is " << arch;
  flashjit::testing::expectBackwardMatchesReference(c);
}

INSTANTIATE_TEST_SUITE_P(Grid, BackwardCorrectness, ::testing::ValuesIn(backwardGrid()), caseName);
INSTANTIATE_TEST_SUITE_P(Tiles, BackwardCorrectness, ::testing::ValuesIn(backwardTileGrid()),
                         caseName);
INSTANTIATE_TEST_SUITE_P(WarpSpecialized, BackwardCorrectness,
                         ::testing::ValuesIn(backwardWarpSpecializedGrid()), caseName);
INSTANTIATE_TEST_SUITE_P(WarpSpecializedTiles, BackwardCorrectness,
                         ::testing::ValuesIn(backwardWarpSpecializedTileGrid()), caseName);
INSTANTIATE_TEST_SUITE_P(AtomicWarpSpecialized, BackwardCorrectness,
                         ::testing::ValuesIn(backwardAtomicWarpSpecializedGrid()), caseName);
INSTANTIATE_TEST_SUITE_P(OffsetOutputs, BackwardCorrectness,
                         ::testing::ValuesIn(backwardOffsetOutputsGrid()), caseName);
INSTANTIATE_TEST_SUITE_P(PersistentKeyBlocks, BackwardCorrectness,
                         ::testing::ValuesIn(backwardPersistentGrid()), caseName);

// Deterministic (the check harness asks for it unless a case leaves the form
// to the runtime): the same inputs give the same gradient bits, run after run
// (GQA and causal, where several query heads and blocks meet in one dK/dV).
TEST(BackwardDeterminism, GradientsAreBitIdenticalRunToRun) {
  FLASHJIT_REQUIRE_GPU();
  CheckCase c = gridCase({2, 1000, 1000, 8, 2}, 128, true, 9999);
  std::string first;
  for (int run = 0; run < 3; ++run) {
    BackwardCheckResult r;
    Status s = Gpu::get().checker->runBackward(c, r);
    ASSERT_TRUE(s.isOk()) << s.message();
    EXPECT_LT(r.relativeL2[0], 6e-3);
    if (run == 0)
      first = r.gradientsSha256;
    else
      EXPECT_EQ(r.gradientsSha256, first) << "run " << run << " differs from run 0";
  }
}

} // namespace

namespace {

// The kernels each mode runs on sm_90a: deterministic the dQ and dK/dV
// kernels; with atomicQueryGradient the delta, dK/dV/dQ and conversion ones;
// by default (neither asked) the atomic ones for plain or causal attention at
// d <= 128 from 512 queries and keys (causal 1024), and the deterministic ones
// with a modifier (softcap), above d = 128, with a tile given or shorter.
TEST(BackwardModes, EachModeRunsItsOwnKernelsOnHopper) {
  FLASHJIT_REQUIRE_GPU();
  if (Gpu::get().runtime->device().arch != "sm_90a")
    GTEST_SKIP() << "the atomic dQ needs the wgmma tiles (sm_90a)";
  struct Mode {
    const char *name;
    bool atomic, byDefault;
    int64_t headDim;
    float softcap;
    bool tileDQ;
    bool expectAtomic;
    int64_t seqK = 1024;
    bool tileDKV = false;
    bool causal = true;
  };
  for (const Mode &m : {Mode{"deterministic", false, false, 128, 0.0f, false, false},
                        Mode{"atomic", true, false, 128, 0.0f, false, true},
                        Mode{"default, causal d 128", false, true, 128, 0.0f, false, true},
                        Mode{"default, d 64", false, true, 64, 0.0f, false, true},
                        Mode{"default, softcap", false, true, 128, 30.0f, false, false},
                        Mode{"default, d 256", false, true, 256, 0.0f, false, false},
                        Mode{"default, dQ tile given", false, true, 128, 0.0f, true, false},
                        Mode{"default, dK/dV tile given", false, true, 128, 0.0f, false, false,
                             1024, true},
                        Mode{"default, 1000 keys", false, true, 128, 0.0f, false, false, 1000},
                        Mode{"default, no mask, 600 keys", false, true, 128, 0.0f, false, true,
                             600, false, false},
                        Mode{"default, no mask, 500 keys", false, true, 128, 0.0f, false, false,
                             500, false, false}}) {
    SCOPED_TRACE(m.name);
    CheckCase c = gridCase({1, 1031, m.seqK, 8, 2}, m.headDim, m.causal, 9998);
    c.atomicQueryGradient = m.atomic;
    c.defaultQueryGradient = m.byDefault;
    c.softcap = m.softcap;
    if (m.tileDQ)
      c.tileDQ = TileConfig{64, 64, 4, 2, true, true};
    if (m.tileDKV)
      c.tileDKV = TileConfig{64, 64, 4, 2, true, true, true};
    BackwardCheckResult r;
    Status s = Gpu::get().checker->runBackward(c, r);
    ASSERT_TRUE(s.isOk()) << s.message();
    for (double e : r.relativeL2)
      EXPECT_LT(e, 6e-3) << c.describe();
    auto runs = [&](const char *kind) { return r.variants.find(kind) != std::string::npos; };
    const bool split = m.headDim > 128; // dK and dV in kernels of their own
    EXPECT_EQ(runs("flash_bwd_delta_"), m.expectAtomic) << r.variants;
    EXPECT_EQ(runs(split ? "flash_bwd_dkq_" : "flash_bwd_dkvq_"), m.expectAtomic) << r.variants;
    EXPECT_EQ(runs("flash_bwd_dq_convert_"), m.expectAtomic) << r.variants;
    EXPECT_EQ(runs("flash_bwd_dq_bf16") || runs("flash_bwd_dq_f16"), !m.expectAtomic)
        << r.variants;
    if (!split)
      EXPECT_EQ(runs("flash_bwd_dkv_"), !m.expectAtomic) << r.variants;
  }
}

} // namespace
